"""Baselines on synthetic embeddings with a planted spurious neuron (fixture ``planted``)."""

import inspect
import os

import numpy as np
import pytest

from neurontune.core import LinearHead, head_predict, per_group_accuracy, retrain_head
from neurontune.core import baselines

LABELLED = {"dfr", "group_balanced_oracle"}

FAST = {"solver": "lbfgs", "max_iter": 200}


def worst_group(head, split):
    return float(np.nanmin(per_group_accuracy(split["y"], head_predict(split["x"], head), split["g"], 4)))


@pytest.fixture(scope="module")
def setting(planted):
    """ERM head fitted on the 95%-correlated training split, and the two validation halves."""
    train, val = planted["train"], planted["val"]
    erm = retrain_head(train["x"], train["y"], 2, balance_classes=False, solver="lbfgs", epochs=5, weight_decay=1e-4)
    half = len(val["y"]) // 2
    ide = {key: value[:half] for key, value in val.items()}
    sel = {key: value[half:] for key, value in val.items()}
    return {"erm": erm, "ide": ide, "sel": sel, "train": train, "test": planted["test"]}


def per_test_while_mutmut_collects(fixture_name, config) -> str:
    """mutmut runs against a mutant only the tests that called its function while it collected stats, and a module
    fixture is built inside the first test alone; so while it collects (cheap here) the fits are built per test."""
    return "function" if os.environ.get("MUTANT_UNDER_TEST") == "stats" else "module"


@pytest.fixture(scope=per_test_while_mutmut_collects)
def fits(setting):
    ide, sel, train, erm = setting["ide"], setting["sel"], setting["train"], setting["erm"]
    groups = {"tune_groups": ide["g"], "sel_groups": sel["g"], "n_groups": 4}
    return {
        "dfr": baselines.dfr(ide["x"], ide["y"], sel["x"], sel["y"], 2, **groups, c_grid=(1.0, 0.1, 0.01), n_refits=3),
        "dfr_groupfree": baselines.dfr_groupfree(ide["x"], ide["y"], sel["x"], sel["y"], 2, c_grid=(1.0, 0.1), n_refits=3),
        "jtt_last_layer": baselines.jtt_last_layer(train["x"], train["y"], sel["x"], sel["y"], 2, erm_head=erm,
                                                   upweights=(1.0, 50.0), weight_decays=(1e-3,), **FAST),
        "afr": baselines.afr(train["x"], train["y"], sel["x"], sel["y"], 2, erm_head=erm, gammas=(0.0, 4.0),
                             anchor_strengths=(0.01,), **FAST),
        "group_balanced_oracle": baselines.group_balanced_oracle(
            ide["x"], ide["y"], sel["x"], sel["y"], 2, **groups, weight_decays=(1e-3,), c_grid=(1.0, 0.1), n_refits=3,
            erm_head=erm, **FAST),
    }


def test_erm_leans_on_the_planted_spurious_neuron(setting):
    assert worst_group(setting["erm"], setting["test"]) < 0.3


@pytest.mark.parametrize("method", ["dfr", "group_balanced_oracle"])
def test_group_labelled_baselines_recover_worst_group_accuracy(fits, setting, method):
    assert worst_group(fits[method].head, setting["test"]) > 0.7


@pytest.mark.parametrize("method", ["dfr_groupfree", "jtt_last_layer", "afr"])
def test_group_free_baselines_beat_erm_on_the_worst_group(fits, setting, method):
    assert worst_group(fits[method].head, setting["test"]) > worst_group(setting["erm"], setting["test"]) + 0.3


def test_only_labelled_baselines_accept_group_arrays():
    for method in ("dfr", "dfr_groupfree", "jtt_last_layer", "afr", "group_balanced_oracle"):
        takes_groups = any("groups" in name for name in inspect.signature(getattr(baselines, method)).parameters)
        assert takes_groups == (method in LABELLED), method


def test_every_baseline_shares_the_calling_convention():
    for method in ("dfr", "dfr_groupfree", "jtt_last_layer", "afr", "group_balanced_oracle"):
        positional = list(inspect.signature(getattr(baselines, method)).parameters)[:5]
        assert positional == ["tune_embeddings", "tune_y", "sel_embeddings", "sel_y", "n_classes"], method


def test_the_oracle_is_cross_fitted_over_both_solvers_and_refit_on_all(fits, setting):
    table = fits["group_balanced_oracle"].candidates
    assert {row["solver"] for row in table} == {"l2", "dfr_l1"}
    ide, sel = setting["ide"], setting["sel"]
    winner = next(row for row in table if row["selected"])
    # scores are the mean over the two folds, so they need not be a worst-group accuracy of one half
    assert 0.0 <= winner["sel_worst_group_accuracy"] <= 1.0
    refit = baselines.group_balanced_oracle(ide["x"], ide["y"], sel["x"], sel["y"], 2, tune_groups=ide["g"],
                                            sel_groups=sel["g"], n_groups=4, weight_decays=(1e-3,), c_grid=(),
                                            erm_head=setting["erm"], **FAST)
    everything = baselines.retrain_head(np.concatenate([ide["x"], sel["x"]]), np.concatenate([ide["y"], sel["y"]]), 2,
                                        sample_weight=baselines.balanced_sample_weights(np.concatenate([ide["g"], sel["g"]]), 4),
                                        balance_classes=False, init=setting["erm"], weight_decay=1e-3, **FAST)
    np.testing.assert_allclose(refit.head.weight, everything.weight, atol=1e-6)


def test_the_oracle_is_at_least_dfr_on_the_planted_benchmark(fits, setting):
    assert worst_group(fits["group_balanced_oracle"].head, setting["test"]) >= worst_group(fits["dfr"].head, setting["test"]) - 0.01


def test_selection_tables_mark_one_winner_by_the_declared_criterion(fits):
    for method, fit in fits.items():
        table = fit.candidates
        assert sum(row["selected"] for row in table) == 1
        assert sorted(row["selection_rank"] for row in table) == list(range(1, len(table) + 1))
        criterion = "sel_worst_group_accuracy" if method in LABELLED else "sel_worst_class_accuracy"
        winner = next(row for row in table if row["selected"])
        assert all(row["criterion"] == criterion for row in table)
        assert winner[criterion] == max(row[criterion] for row in table)


def test_heads_live_in_the_raw_embedding_space(fits, setting):
    for fit in fits.values():
        assert isinstance(fit.head, LinearHead)
        assert fit.head.weight.shape == (2, setting["test"]["x"].shape[1])
        assert np.all(np.isfinite(fit.head.weight))


def test_dfr_is_reproducible_for_a_seed_and_varies_across_seeds(setting):
    ide, sel = setting["ide"], setting["sel"]
    args = (ide["x"], ide["y"], sel["x"], sel["y"], 2)
    groups = {"tune_groups": ide["g"], "sel_groups": sel["g"], "n_groups": 4}
    first = baselines.dfr(*args, **groups, c_grid=(0.1,), n_refits=2, seed=3).head
    again = baselines.dfr(*args, **groups, c_grid=(0.1,), n_refits=2, seed=3).head
    other = baselines.dfr(*args, **groups, c_grid=(0.1,), n_refits=2, seed=4).head
    np.testing.assert_array_equal(first.weight, again.weight)
    assert not np.array_equal(first.weight, other.weight)


def test_jtt_reports_the_error_set_size(fits, setting):
    errors = int(np.sum(head_predict(setting["train"]["x"], setting["erm"]) != setting["train"]["y"]))
    assert errors > 0
    assert all(row["n_errors"] == errors for row in fits["jtt_last_layer"].candidates)


def test_arguments_are_validated():
    x, y = np.zeros((6, 3)), np.array([0, 1, 0, 1, 0, 1])
    with pytest.raises(ValueError, match="tune_groups"):
        baselines.dfr(x, y, x, y, 2, tune_groups=np.array([0, 1]), sel_groups=y, n_groups=2)
    with pytest.raises(ValueError, match="c_grid"):
        baselines.dfr_groupfree(x, y, x, y, 2, c_grid=())
    with pytest.raises(ValueError, match="widths differ"):
        baselines.dfr_groupfree(x, y, np.zeros((6, 4)), y, 2)
    with pytest.raises(ValueError, match="n_refits"):
        baselines.dfr_groupfree(x, y, x, y, 2, n_refits=0)
