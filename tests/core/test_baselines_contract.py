"""The baselines' contract in detail: documented defaults, every bad argument named, the candidate table
returned. Written from the survivors of mutation testing (docs/testing.md)."""

from __future__ import annotations

import inspect

import numpy as np
import pytest
from scipy.special import softmax

from neurontune.core import LinearHead, balanced_sample_weights, baselines, head_logits, head_predict, retrain_head

SHARED_DFR = {"c_grid": baselines.DFR_C_GRID, "n_refits": 20, "refit_on_all": True, "seed": 0}


def defaults(function) -> dict:
    return {name: p.default for name, p in inspect.signature(function).parameters.items()
            if p.default is not p.empty and p.kind is not p.VAR_KEYWORD}


def test_documented_defaults():
    assert baselines.DFR_C_GRID == (1.0, 0.7, 0.3, 0.1, 0.07, 0.03, 0.01)  # the reference implementation's grid
    assert defaults(baselines.dfr) == SHARED_DFR and defaults(baselines.dfr_groupfree) == SHARED_DFR
    assert defaults(baselines.jtt_last_layer) == {"upweights": (1.0, 5.0, 20.0, 50.0, 100.0),
                                                  "weight_decays": (1e-4, 1e-3, 1e-2), "balance_classes": False,
                                                  "init_from_erm": True}
    assert defaults(baselines.afr) == {"gammas": (0.0, 1.0, 2.0, 4.0, 8.0, 16.0), "anchor_strengths": (1e-3, 1e-2, 1e-1),
                                       "weight_decay": 0.0}
    assert defaults(baselines.group_balanced_oracle) == {"weight_decays": (1e-4, 1e-3, 1e-2), "c_grid": baselines.DFR_C_GRID,
                                                         "n_refits": 20, "erm_head": None, "init_from_erm": True, "seed": 0}


@pytest.fixture(scope="module")
def halves():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 3))
    y = (x[:, 0] > 0).astype(int)
    groups = 2 * y + (x[:, 1] > 0)
    return {"tune": (x[:20], y[:20], groups[:20]), "sel": (x[20:], y[20:], groups[20:])}


def call(method, halves, **change):
    (tune_x, tune_y, tune_g), (sel_x, sel_y, sel_g) = halves["tune"], halves["sel"]
    arguments = {"tune_embeddings": tune_x, "tune_y": tune_y, "sel_embeddings": sel_x, "sel_y": sel_y, **change}
    options = {"c_grid": (1.0,), "n_refits": 1}
    if method in ("dfr", "group_balanced_oracle"):
        options.update(tune_groups=change.pop("tune_groups", tune_g), sel_groups=change.pop("sel_groups", sel_g), n_groups=4)
        arguments.pop("tune_groups", None), arguments.pop("sel_groups", None)
    if method == "group_balanced_oracle":
        options["weight_decays"] = (1e-2,)
    options.update({key: change[key] for key in ("c_grid", "n_refits") if key in change})
    arguments = {key: value for key, value in arguments.items() if key not in ("c_grid", "n_refits")}
    return getattr(baselines, method)(arguments.pop("tune_embeddings"), arguments.pop("tune_y"),
                                      arguments.pop("sel_embeddings"), arguments.pop("sel_y"), 2, **options)


@pytest.mark.parametrize("method", ["dfr", "dfr_groupfree", "group_balanced_oracle"])
@pytest.mark.parametrize(("change", "message"), [
    ({"tune_embeddings": np.zeros(20)}, r"^tune_embeddings must be a 2-D array"),
    ({"sel_embeddings": np.zeros(20)}, r"^sel_embeddings must be a 2-D array"),
    ({"sel_embeddings": np.zeros((20, 2))}, r"embedding widths differ between splits \(tune_embeddings: 3, sel_embeddings: 2\)"),
    ({"tune_y": np.zeros(3, int)}, r"^tune_y has 3 entries but the embeddings have 20 rows"),
    ({"sel_y": np.zeros(3, int)}, r"^sel_y has 3 entries but the embeddings have 20 rows"),
    ({"n_refits": 0}, r"^n_refits must be a positive integer; got 0\.$"),
    ({"c_grid": (1.0, 0.0)}, r"^c_grid must be a non-empty list of positive numbers; got \[1\.0, 0\.0\]\.$"),
], ids=["tune_embeddings", "sel_embeddings", "widths", "tune_y", "sel_y", "n_refits", "c_grid"])
def test_bad_arguments_are_named(halves, method, change, message):
    with pytest.raises(ValueError, match=message):
        call(method, halves, **change)


@pytest.mark.parametrize("method", ["dfr", "group_balanced_oracle"])
@pytest.mark.parametrize(("change", "message"), [
    ({"tune_groups": np.zeros(3, int)}, r"^tune_groups has 3 entries but the embeddings have 20 rows"),
    ({"sel_groups": np.zeros(3, int)}, r"^sel_groups has 3 entries but the embeddings have 20 rows"),
], ids=["tune_groups", "sel_groups"])
def test_bad_group_labels_are_named(halves, method, change, message):
    with pytest.raises(ValueError, match=message):
        call(method, halves, **change)


@pytest.mark.parametrize("method", ["dfr", "dfr_groupfree", "group_balanced_oracle"])
def test_one_refit_is_enough_and_the_candidate_table_comes_back(halves, method):
    fitted = call(method, halves)
    assert isinstance(fitted.head, LinearHead) and fitted.head.weight.shape == (2, 3)
    assert sum(row["selected"] for row in fitted.candidates) == 1


@pytest.mark.parametrize("method", ["jtt_last_layer", "afr"])
def test_erm_based_baselines_check_the_erm_head(halves, method):
    (tune_x, tune_y, _), (sel_x, sel_y, _) = halves["tune"], halves["sel"]
    wrong_width = LinearHead.from_arrays(np.zeros((2, 5)), np.zeros(2))
    with pytest.raises(ValueError, match=r"^head weight has 5 input neurons but the embeddings have 3;"):
        getattr(baselines, method)(tune_x, tune_y, sel_x, sel_y, 2, erm_head=wrong_width)


# What each baseline hands to its solver, checked against the solver called directly. ``max_iter=3`` keeps the
# L-BFGS run short enough that the starting point and the options show in the head.

SPURIOUS = LinearHead.from_arrays(np.array([[0.0, -1.0, 0.0], [0.0, 1.0, 0.0]]), np.zeros(2))  # wrong on half the points
PERFECT = LinearHead.from_arrays(np.array([[-1.0, 0.0, 0.0], [1.0, 0.0, 0.0]]), np.zeros(2))  # y = x_0 > 0
SHORT = {"max_iter": 3}


def fit(method, halves, **options):
    """``method`` on the two halves with the arguments it requires (group labels, an ERM head) and ``options``."""
    (tune_x, tune_y, tune_g), (sel_x, sel_y, sel_g) = halves["tune"], halves["sel"]
    required = {"dfr": {"tune_groups": tune_g, "sel_groups": sel_g, "n_groups": 4}, "jtt_last_layer": {"erm_head": SPURIOUS},
                "afr": {"erm_head": SPURIOUS}, "group_balanced_oracle": {"tune_groups": tune_g, "sel_groups": sel_g,
                                                                         "n_groups": 4}}.get(method, {})
    return getattr(baselines, method)(tune_x, tune_y, sel_x, sel_y, 2, **{**required, **options})


@pytest.mark.parametrize("method", ["dfr", "dfr_groupfree", "jtt_last_layer", "afr", "group_balanced_oracle"])
def test_a_call_without_options_fits_with_the_documented_defaults(halves, method):
    omitted = fit(method, halves)
    spelled_out = fit(method, halves, **defaults(getattr(baselines, method)))
    np.testing.assert_array_equal(omitted.head.weight, spelled_out.head.weight)
    np.testing.assert_equal(omitted.candidates, spelled_out.candidates)


@pytest.mark.parametrize("method", ["dfr", "dfr_groupfree"])
def test_dfr_refits_the_winner_on_both_halves_by_default(halves, method):
    (tune_x, tune_y, tune_g), (sel_x, sel_y, sel_g) = halves["tune"], halves["sel"]
    options = {"c_grid": (0.3,), "n_refits": 3}
    published = fit(method, halves, **options)
    union = {"tune_embeddings": np.concatenate([tune_x, sel_x]), "tune_y": np.concatenate([tune_y, sel_y])}
    if method == "dfr":
        union.update(tune_groups=np.concatenate([tune_g, sel_g]), sel_groups=sel_g, n_groups=4)
    on_union = getattr(baselines, method)(**union, sel_embeddings=sel_x, sel_y=sel_y, n_classes=2, refit_on_all=False,
                                          **options)
    on_tune = fit(method, halves, refit_on_all=False, **options)
    np.testing.assert_array_equal(published.head.weight, on_union.head.weight)
    np.testing.assert_array_equal(published.head.bias, on_union.head.bias)
    assert not np.allclose(on_tune.head.weight, on_union.head.weight)


def test_dfr_fits_one_vs_rest_rows_for_more_than_two_classes():
    rng = np.random.default_rng(1)

    def sample(n):
        y = rng.integers(0, 3, n)
        return 3 * np.eye(3)[y] + rng.normal(0, 0.5, (n, 3)), y

    (tune_x, tune_y), (sel_x, sel_y), (test_x, test_y) = sample(60), sample(60), sample(300)
    fitted = baselines.dfr_groupfree(tune_x, tune_y, sel_x, sel_y, 3, c_grid=(1.0,), n_refits=2)
    assert fitted.head.weight.shape == (3, 3)
    assert np.mean(head_predict(test_x, fitted.head) == test_y) > 0.95


def test_dfr_names_the_class_its_tuning_data_lacks(halves):
    (tune_x, tune_y, _), (sel_x, sel_y, _) = halves["tune"], halves["sel"]
    only_zeros = tune_y == 0
    with pytest.raises(ValueError, match=r"^a balanced subset holds classes \[0\] only; every one of the 2 classes "
                                         r"needs samples in the tuning data\.$"):
        baselines.dfr_groupfree(tune_x[only_zeros], tune_y[only_zeros], sel_x, sel_y, 2, c_grid=(1.0,), n_refits=1)


def test_the_oracles_l1_candidate_is_dfr_refit_on_both_halves(halves):
    oracle = fit("group_balanced_oracle", halves, weight_decays=(), c_grid=(0.3,))
    dfr = fit("dfr", halves, c_grid=(0.3,))  # both with their default n_refits and seed
    np.testing.assert_array_equal(oracle.head.weight, dfr.head.weight)
    np.testing.assert_array_equal(oracle.head.bias, dfr.head.bias)


@pytest.mark.parametrize("init_from_erm", [True, False])
def test_the_oracles_l2_candidate_weighs_every_group_alike_with_the_given_options(halves, init_from_erm):
    (tune_x, tune_y, _), (sel_x, sel_y, _) = halves["tune"], halves["sel"]
    # class 0 spans two groups and class 1 one, so balancing the classes on top would change the weights
    tune_g, sel_g = (np.where(y == 0, x[:, 1] > 0, 2) for x, y in ((tune_x, tune_y), (sel_x, sel_y)))
    fitted = baselines.group_balanced_oracle(tune_x, tune_y, sel_x, sel_y, 2, tune_groups=tune_g, sel_groups=sel_g,
                                             n_groups=3, weight_decays=(1e-3,), c_grid=(), erm_head=SPURIOUS,
                                             init_from_erm=init_from_erm, **SHORT)
    x, y, groups = (np.concatenate(parts) for parts in ((tune_x, sel_x), (tune_y, sel_y), (tune_g, sel_g)))
    direct = retrain_head(x, y, 2, sample_weight=balanced_sample_weights(groups, 3), balance_classes=False,
                          init=SPURIOUS if init_from_erm else None, weight_decay=1e-3, **SHORT)
    np.testing.assert_allclose(fitted.head.weight, direct.weight, rtol=1e-10)


def test_the_oracles_candidates_share_one_set_of_columns(halves):
    l2, l1 = fit("group_balanced_oracle", halves, weight_decays=(1e-2,), c_grid=(1.0,), n_refits=1).candidates
    assert set(l2) == set(l1)
    assert (l2["solver"], l1["solver"]) == ("l2", "dfr_l1")
    assert np.isnan(l2["C"]) and np.isnan(l1["weight_decay"])


@pytest.mark.parametrize(("init_from_erm", "balance_classes"), [(True, False), (False, True)])
def test_jtt_retrains_on_the_upweighted_error_set_with_the_given_options(halves, init_from_erm, balance_classes):
    (tune_x, tune_y, _), _ = halves["tune"], halves["sel"]
    errors = head_predict(tune_x, SPURIOUS) != tune_y
    fitted = fit("jtt_last_layer", halves, upweights=(5.0,), weight_decays=(1e-3,), init_from_erm=init_from_erm,
                 balance_classes=balance_classes, **SHORT)
    direct = retrain_head(tune_x, tune_y, 2, sample_weight=np.where(errors, 5.0, 1.0), balance_classes=balance_classes,
                          init=SPURIOUS if init_from_erm else None, weight_decay=1e-3, **SHORT)
    np.testing.assert_allclose(fitted.head.weight, direct.weight, rtol=1e-10)
    assert fitted.candidates[0]["n_errors"] == errors.sum() > 0


def test_jtt_warns_when_the_erm_head_makes_no_error_on_the_tuning_data(halves, caplog):
    def warnings_of(erm_head) -> list[str]:
        caplog.clear()
        with caplog.at_level("WARNING", logger=baselines.logger.name):
            fit("jtt_last_layer", halves, erm_head=erm_head, upweights=(1.0, 5.0), weight_decays=(1e-3,), **SHORT)
        return [record.getMessage() for record in caplog.records if record.name == baselines.logger.name]

    assert warnings_of(PERFECT) == ["jtt_last_layer: the ERM head makes no error on the 20 tuning points; every λ "
                                    "retrains the same unweighted head."]
    assert warnings_of(SPURIOUS) == []


@pytest.mark.parametrize("confidence", [1.0, 1e4], ids=["plain", "confident"])
def test_afr_weights_each_point_by_the_erm_probability_of_its_class(halves, confidence):
    """``exp(-γ p_true)``; a confident ERM head (logits far beyond float64's ``exp`` range) must not overflow."""
    (tune_x, tune_y, _), _ = halves["tune"], halves["sel"]
    erm = LinearHead.from_arrays(confidence * SPURIOUS.weight, SPURIOUS.bias)
    p_true = softmax(head_logits(tune_x, erm), axis=1)[np.arange(len(tune_y)), tune_y]
    fitted = fit("afr", halves, erm_head=erm, gammas=(2.0,), anchor_strengths=(0.01,), weight_decay=1e-3, **SHORT)
    direct = retrain_head(tune_x, tune_y, 2, sample_weight=np.exp(-2.0 * p_true), balance_classes=True, init=erm,
                          anchor_strength=0.01, weight_decay=1e-3, **SHORT)
    assert np.all(np.isfinite(fitted.head.weight))
    np.testing.assert_allclose(fitted.head.weight, direct.weight, rtol=1e-10)
