"""SELF (early-stop disagreement) on the planted benchmark, and the one calling convention of every baseline."""

import inspect

import numpy as np
import pytest

from neurontune.core import LinearHead, head_logits, head_predict, per_group_accuracy, retrain_head
from neurontune.core import baselines
from neurontune.core.baselines import BaselineInputs, MissingBaselineInput, call_baseline, self_disagreement

GRID = {"num_data": (20, 100), "learning_rates": (1e-2,), "steps": 100}


def worst_group(head, split):
    return float(np.nanmin(per_group_accuracy(split["y"], head_predict(split["x"], head), split["g"], 4)))


@pytest.fixture(scope="module")
def setting(planted):
    """ERM on the 95%-correlated training split; an 'early checkpoint' that has learnt only the core neuron, so the two
    disagree where the planted attribute contradicts the class (the minority groups)."""
    train, val = planted["train"], planted["val"]
    erm = retrain_head(train["x"], train["y"], 2, balance_classes=False, weight_decay=1e-4)
    early = LinearHead.from_arrays(np.array([[-1.0] + [0.0] * 7, [1.0] + [0.0] * 7]), np.array([0.5, -0.5]))
    half = len(val["y"]) // 2
    ide = {key: value[:half] for key, value in val.items()}
    sel = {key: value[half:] for key, value in val.items()}
    inputs = BaselineInputs(ide["x"], ide["y"], sel["x"], sel["y"], 2, erm, head_logits(ide["x"], erm),
                            head_logits(sel["x"], erm), head_logits(ide["x"], early), head_logits(sel["x"], early))
    return {"erm": erm, "ide": ide, "sel": sel, "test": planted["test"], "inputs": inputs}


def test_the_disagreement_set_holds_the_minority_and_self_lifts_the_worst_group(setting):
    ide, sel, erm, inputs = setting["ide"], setting["sel"], setting["erm"], setting["inputs"]
    fit = self_disagreement(ide["x"], ide["y"], sel["x"], sel["y"], 2, erm_head=erm,
                            tune_erm_logits=inputs.tune_erm_logits, tune_early_logits=inputs.tune_early_logits, **GRID)
    kl = baselines._disagreement(inputs.tune_erm_logits, inputs.tune_early_logits, len(ide["y"]), 2)
    top = np.argsort(-kl, kind="stable")[:100]
    assert np.mean(ide["a"][top] != ide["y"][top]) > 0.8  # the points ERM and the early model disagree on: minority
    assert worst_group(fit.head, setting["test"]) > worst_group(erm, setting["test"]) + 0.3
    assert {row["n_points"] for row in fit.candidates} == {20, 100}
    assert all(row["criterion"] == "sel_worst_class_accuracy" for row in fit.candidates)


def test_disagreement_is_the_kl_divergence_of_the_final_from_the_early_model():
    final, early = np.log(np.array([[0.9, 0.1], [0.5, 0.5]])), np.log(np.array([[0.1, 0.9], [0.5, 0.5]]))
    expected = 0.9 * np.log(0.9 / 0.1) + 0.1 * np.log(0.1 / 0.9)
    np.testing.assert_allclose(baselines._disagreement(final, early, 2, 2), [expected, 0.0], atol=1e-12)


def test_with_validation_groups_it_selects_by_worst_group_accuracy(setting):
    ide, sel, inputs = setting["ide"], setting["sel"], setting["inputs"]
    fit = self_disagreement(ide["x"], ide["y"], sel["x"], sel["y"], 2, erm_head=setting["erm"],
                            tune_erm_logits=inputs.tune_erm_logits, tune_early_logits=inputs.tune_early_logits,
                            sel_groups=sel["g"], n_groups=4, **GRID)
    winner = next(row for row in fit.candidates if row["selected"])
    assert winner["criterion"] == "sel_worst_group_accuracy"
    assert winner["sel_worst_group_accuracy"] == max(row["sel_worst_group_accuracy"] for row in fit.candidates)


def test_a_class_absent_from_the_disagreement_set_gets_its_most_disagreeing_point():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(40, 3)), np.repeat([0, 1], 20)
    final = np.zeros((40, 2))
    early = np.zeros((40, 2))
    early[:20, 1] = 5.0  # only class 0 disagrees
    early[25, 1] = 0.5  # class 1's most-disagreeing point
    erm = LinearHead.from_arrays(np.zeros((2, 3)), np.zeros(2))
    fit = self_disagreement(x, y, x, y, 2, erm_head=erm, tune_erm_logits=final, tune_early_logits=early,
                            num_data=(5,), learning_rates=(1e-2,), steps=5)
    assert fit.candidates[0]["n_points"] == 6


@pytest.mark.parametrize("bad, match", [({"steps": 0}, "steps"), ({"num_data": ()}, "num_data"),
                                        ({"tune_early_logits": np.zeros((3, 2))}, "tune_early_logits"),
                                        ({"tune_erm_logits": np.full((6, 2), np.nan)}, "tune_erm_logits")])
def test_bad_arguments_are_named(bad, match):
    x, y = np.zeros((6, 3)), np.array([0, 1, 0, 1, 0, 1])
    arguments = {"erm_head": LinearHead.from_arrays(np.zeros((2, 3)), np.zeros(2)), "tune_erm_logits": np.zeros((6, 2)),
                 "tune_early_logits": np.zeros((6, 2)), **bad}
    with pytest.raises(ValueError, match=match):
        self_disagreement(x, y, x, y, 2, **arguments)


# ----------------------------------------------------------------------------- the calling convention


def test_call_baseline_passes_the_fields_a_function_names_then_its_options(setting):
    seen = {}

    def probe(tune_y, n_classes, *, tune_early_logits, sel_groups=None, width=1):
        seen.update(tune_y=tune_y, n_classes=n_classes, early=tune_early_logits, sel_groups=sel_groups, width=width)
        return "fit"

    assert call_baseline(probe, setting["inputs"], {"width": 3}, {"solver": "sgd"}) == "fit"
    assert seen["n_classes"] == 2 and seen["width"] == 3 and seen["sel_groups"] is None
    assert seen["early"] is setting["inputs"].tune_early_logits


def test_only_functions_taking_retrain_options_get_the_shared_settings(setting):
    def takes_any(n_classes, **retrain_options):
        return retrain_options

    assert call_baseline(takes_any, setting["inputs"], {"max_iter": 5}, {"solver": "sgd", "max_iter": 9, "x": 1}) == \
        {"solver": "sgd", "max_iter": 5}


def test_a_baseline_asking_for_an_input_the_run_lacks_is_refused_by_name(setting):
    without_early = BaselineInputs(**{**setting["inputs"].__dict__, "tune_early_logits": None, "sel_early_logits": None})
    with pytest.raises(MissingBaselineInput, match="self_disagreement needs tune_early_logits.*no early checkpoint"):
        call_baseline(self_disagreement, without_early)
    with pytest.raises(MissingBaselineInput, match="dfr needs tune_groups.*labels_used: val_groups"):
        call_baseline(baselines.dfr, setting["inputs"])


def test_every_baseline_asks_only_for_fields_of_the_inputs():
    fields = set(BaselineInputs.field_names())
    for name in ("dfr", "dfr_groupfree", "jtt_last_layer", "afr", "group_balanced_oracle", "self_disagreement"):
        function = getattr(baselines, name)
        positional = list(inspect.signature(function).parameters)[:5]
        assert positional == ["tune_embeddings", "tune_y", "sel_embeddings", "sel_y", "n_classes"], name
        assert set(baselines.baseline_data_arguments(function)) <= fields
