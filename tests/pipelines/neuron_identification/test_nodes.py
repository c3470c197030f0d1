import numpy as np
import pytest

from neurontune.core import score_neurons
from neurontune.core.errors import crossfit_predictions
from neurontune.core.roles import PAPER_ROLES
from neurontune.core.roles import scores_of as neuron_scores_of
from neurontune.methods import variant_roles
from neurontune.pipelines.neuron_identification.nodes import plot_neuron_scores, select_default_mask, split_validation


def test_validation_halves_are_disjoint_stratified_and_seeded(tiny_run, parameters):
    halves = tiny_run["validation_split"]
    y = tiny_run["embeddings_val"]["y"]
    assert np.intersect1d(halves["ide"], halves["sel"]).size == 0
    assert len(halves["ide"]) + len(halves["sel"]) == len(y)
    assert abs(np.mean(y[halves["ide"]]) - np.mean(y[halves["sel"]])) < 0.05
    again = split_validation(tiny_run["embeddings_val"], parameters["neuron_identification"]["selection_split"])
    np.testing.assert_array_equal(again["ide"], halves["ide"])




def test_each_role_is_scored_on_its_own_rows(tiny_run):
    val, halves = tiny_run["embeddings_val"], tiny_run["validation_split"]
    rows = {"ide": halves["ide"], "sel": halves["sel"], "all": np.arange(len(val["y"]))}
    for role in PAPER_ROLES:
        expected = score_neurons(val["embeddings"][rows[role]], val["y"][rows[role]],
                                 val["logits"][rows[role]].argmax(1), 2)
        stored = neuron_scores_of(tiny_run["neuron_scores"], role)
        np.testing.assert_array_equal(stored.scores, expected.scores)
        np.testing.assert_array_equal(stored.n_wrong, expected.n_wrong)


def test_mask_summary_and_plot(tiny_run):
    scores = tiny_run["neuron_scores"]
    assert neuron_scores_of(scores, "ide").scores.shape == (2, 64)
    mask, summary = select_default_mask(scores, tiny_run["chance_discoveries"], {"threshold": 0.0, "rule": "any"})
    assert mask["mask"].shape == (64,) and summary["n_selected"] == int(mask["mask"].sum())
    assert summary["n_wrong_per_class"] == neuron_scores_of(scores, "ide").n_wrong.tolist()
    figure = plot_neuron_scores(scores, {"threshold": 0.0})
    assert len(figure.axes) == 2


def test_error_sets_come_from_class_labels_and_each_source(tiny_run, parameters):
    errors, train, val = tiny_run["error_sets"], tiny_run["embeddings_train"], tiny_run["embeddings_val"]
    np.testing.assert_array_equal(errors["val_erm"], val["logits"].argmax(1) != val["y"])
    np.testing.assert_array_equal(errors["train_early"], train["early_logits"].argmax(1) != train["y"])
    crossfit = parameters["neuron_identification"]["error_sets"]["crossfit"]
    held_out = crossfit_predictions(train["embeddings"], train["y"], 2, **crossfit)
    np.testing.assert_array_equal(errors["train_crossfit"], held_out != train["y"])
    np.testing.assert_array_equal(errors["train_auto"], errors["train_early"])  # ci fine-tunes its CNN
    quantile = errors["val_loss_quantile"]
    assert set(np.unique(quantile)) <= {-1, 0, 1} and (quantile == 1).sum() == (quantile == 0).sum()


def test_every_registered_variant_finds_its_scores(tiny_run, parameters):
    for name, variant in parameters["neurontune_regulation"]["variants"].items():
        for role in variant_roles(variant):
            assert f"{role}_scores" in tiny_run["neuron_scores"], (name, role)
            assert np.isfinite(tiny_run["chance_discoveries"][str(role)])
    summary = tiny_run["identification_summary"]
    assert "train.auto.scaled" in summary["roles"] and "chance_discoveries" in summary["roles"]["val_ide.erm.median"]