import numpy as np
import pytest

from neurontune.core import score_neurons
from neurontune.pipelines.neuron_identification.nodes import (
    SCORED_ROLES,
    neuron_scores_of,
    plot_neuron_scores,
    select_default_mask,
    split_validation,
)


def test_validation_halves_are_disjoint_stratified_and_seeded(tiny_run, parameters):
    halves = tiny_run["validation_split"]
    y = tiny_run["embeddings_val"]["y"]
    assert np.intersect1d(halves["ide"], halves["sel"]).size == 0
    assert len(halves["ide"]) + len(halves["sel"]) == len(y)
    assert abs(np.mean(y[halves["ide"]]) - np.mean(y[halves["sel"]])) < 0.05
    again = split_validation(tiny_run["embeddings_val"], parameters["neuron_identification"]["selection_split"])
    np.testing.assert_array_equal(again["ide"], halves["ide"])


def test_bad_fraction_is_rejected(tiny_run):
    with pytest.raises(ValueError, match=r"ide_fraction must be in \(0, 1\); got 1.0"):
        split_validation(tiny_run["embeddings_val"], {"seed": 0, "ide_fraction": 1.0})


def test_each_role_is_scored_on_its_own_rows(tiny_run):
    val, halves = tiny_run["embeddings_val"], tiny_run["validation_split"]
    rows = {"ide": halves["ide"], "sel": halves["sel"], "all": np.arange(len(val["y"]))}
    for role in SCORED_ROLES:
        expected = score_neurons(val["embeddings"][rows[role]], val["y"][rows[role]],
                                 val["logits"][rows[role]].argmax(1), 2)
        stored = neuron_scores_of(tiny_run["neuron_scores"], role)
        np.testing.assert_array_equal(stored.scores, expected.scores)
        np.testing.assert_array_equal(stored.n_wrong, expected.n_wrong)


def test_mask_summary_and_plot(tiny_run):
    scores = tiny_run["neuron_scores"]
    assert scores["ide_scores"].shape == (2, 64)
    mask, summary = select_default_mask(scores, {"threshold": 0.0, "rule": "any"})
    assert mask["mask"].shape == (64,) and summary["n_selected"] == int(mask["mask"].sum())
    assert summary["n_wrong_per_class"] == scores["ide_n_wrong"].tolist()
    figure = plot_neuron_scores(scores, {"threshold": 0.0})
    assert len(figure.axes) == 2
