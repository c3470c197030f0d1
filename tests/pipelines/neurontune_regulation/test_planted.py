"""The shipped identification and regulation pipelines on embeddings with a planted spurious neuron.

The tiny colored_mnist run is too small for its ERM to err in a useful way, so structure checks
there pass even when identification sees no error at all. Here the ERM head leans on a planted
shortcut neuron, so the paper's variants must find it in the ERM's errors and suppress it.
"""

import copy

import numpy as np
import pytest

from neurontune.core import head_logits, retrain_head
from neurontune.pipelines.neurontune_regulation import nodes
from tests.core.conftest import SPURIOUS_NEURON, make_split
from tests.pipelines.conftest import run_pipelines

CORE_NEURON = 0


def cache(x, y, erm_head):
    logits = head_logits(x, erm_head)
    return {"embeddings": x.astype(np.float32), "y": y, "logits": logits, "early_logits": logits}


def run_planted(parameters, rounds: int = 1) -> dict:
    parameters = copy.deepcopy(parameters)
    tuning = parameters["neurontune_regulation"]["tuning"]
    # every candidate masks: which one wins is then irrelevant to whether the planted neuron is found
    tuning["grid"] = {"threshold": [0.5, 1.0], "rule": ["any"], "weight_decay": [1e-3]}
    tuning["rounds"] = rounds
    rng = np.random.default_rng(0)
    (train_x, train_y, _), (val_x, val_y, _) = make_split(rng, 2000, 0.95), make_split(rng, 1000, 0.5)
    erm = retrain_head(train_x, train_y, 2, balance_classes=False, weight_decay=1e-3)
    inputs = {"embeddings_train": cache(train_x, train_y, erm), "embeddings_val": cache(val_x, val_y, erm),
              "erm_head": erm.to_dict(), "params:erm_training.mode": "linear_probe"}
    return run_pipelines(["neuron_identification", "neurontune_regulation"], parameters, inputs=inputs)


@pytest.fixture(scope="module")
def planted_run(parameters):
    return run_planted(parameters)


@pytest.mark.parametrize("variant", ["neurontune", "neurontune_dagger", "neurontune_dagger_crossfit"])
def test_the_paper_variants_suppress_the_planted_neuron(planted_run, variant):
    head = planted_run[f"neurontune_regulation.{variant}_head"]
    masked = head["mask"] if head["mask"].ndim == 1 else head["mask"].any(axis=0)
    assert masked[SPURIOUS_NEURON] and not masked[CORE_NEURON], masked
    assert np.all(head["keep"][head["mask"]] == 0)  # suppressed, not just recorded
    table = planted_run[f"neurontune_regulation.{variant}_candidates"]
    assert table.loc[table["selected"], "n_masked"].item() == masked.sum() >= 1


def test_suppressing_the_planted_neuron_beats_the_same_retraining_without_it(planted_run):
    """On the training split the shortcut holds 95% of the time: retraining there without the mask keeps it."""
    with_mask, without = (planted_run[f"neurontune_regulation.{name}_candidates"] for name in
                          ("neurontune", "class_balanced_retrain"))
    best = [table.loc[table["selected"], "sel_worst_class_accuracy"].item() for table in (with_mask, without)]
    assert best[0] > best[1] + 0.1, best


def test_identification_scores_the_erm_errors(planted_run):
    """Errors of the ERM head (not the labels themselves) define δ: both classes are scored, and the planted
    neuron fires more on the errors of the class its shortcut misleads."""
    scores = planted_run["neuron_scores"]
    n_wrong = scores["val_ide.erm.median_n_wrong"]
    assert np.all(n_wrong > 0), n_wrong
    delta = scores["val_ide.erm.median_scores"]
    assert np.nanargmax(delta.max(axis=0)) == SPURIOUS_NEURON
    assert planted_run["biased_neuron_mask"]["mask"].ndim == 1


def test_tuning_rounds_reach_the_estimator(planted_run, parameters):
    """Round 2 re-scores the errors of round 1's head: once the shortcut is masked the core neuron explains them,
    so with ``tuning.rounds: 2`` the same candidates mask more neurons."""
    one, two = (run["neurontune_regulation.neurontune_candidates"] for run in (planted_run, run_planted(parameters, 2)))
    assert list(one["threshold"]) == list(two["threshold"])
    assert (two["n_masked"] >= one["n_masked"]).all() and (two["n_masked"] > one["n_masked"]).any(), (one, two)


class _Captured(Exception):
    """Raised by the spy once the node has built its folds: the grid search itself is not under test."""


@pytest.mark.parametrize(("variant", "tune_rows"), [("neurontune", "train"), ("neurontune_dagger", "ide")])
def test_the_shipped_variants_tune_on_their_paper_rows(planted_run, parameters, monkeypatch, variant, tune_rows):
    """NeuronTune retrains on the training split and NeuronTune† on the identification half of validation, never
    on the selection half that chooses among its candidates (the shipped variant settings, through the node)."""
    captured = {}

    def spy(grid, fixed, folds, selection_sets, **kwargs):
        captured.update(folds=folds, selection_sets=selection_sets, refit=kwargs.get("refit"))
        raise _Captured

    monkeypatch.setattr(nodes, "select_neurontune", spy)
    inputs = [planted_run[name] for name in ("embeddings_train", "embeddings_val", "validation_split", "erm_head",
                                             "neuron_scores", "error_sets")]
    regulation = parameters["neurontune_regulation"]
    with pytest.raises(_Captured):
        nodes.regulate_head(*inputs, regulation["variants"][variant], regulation["tuning"])
    train, val, split = inputs[:3]
    expected = train["embeddings"] if tune_rows == "train" else val["embeddings"][split["ide"]]
    (fold,), (selection,) = captured["folds"], captured["selection_sets"]
    np.testing.assert_array_equal(fold["tune_embeddings"], expected)
    np.testing.assert_array_equal(selection.embeddings, val["embeddings"][split["sel"]])
    np.testing.assert_array_equal(fold["ide_embeddings"], val["embeddings"][split["ide"]])
    assert captured["refit"] is None
