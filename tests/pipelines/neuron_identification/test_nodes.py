import numpy as np
import pytest

from neurontune.pipelines.neuron_identification.nodes import plot_neuron_scores, select_default_mask, split_validation


def test_validation_halves_are_disjoint_stratified_and_seeded(tiny_run):
    halves = tiny_run["validation_split"]
    y = tiny_run["embeddings_val"]["y"]
    assert np.intersect1d(halves["ide"], halves["sel"]).size == 0
    assert len(halves["ide"]) + len(halves["sel"]) == len(y)
    assert abs(np.mean(y[halves["ide"]]) - np.mean(y[halves["sel"]])) < 0.05
    again = split_validation(tiny_run["embeddings_val"], {"seed": 0, "ide_fraction": 0.5})
    np.testing.assert_array_equal(again["ide"], halves["ide"])


def test_bad_fraction_is_rejected(tiny_run):
    with pytest.raises(ValueError, match=r"ide_fraction must be in \(0, 1\); got 1.0"):
        split_validation(tiny_run["embeddings_val"], {"seed": 0, "ide_fraction": 1.0})


def test_mask_summary_and_plot(tiny_run):
    scores = tiny_run["neuron_scores"]
    assert scores["scores"].shape == (2, 64)
    mask, summary = select_default_mask(scores, {"threshold": 0.0, "rule": "any"})
    assert mask["mask"].shape == (64,) and summary["n_selected"] == int(mask["mask"].sum())
    assert summary["n_wrong_per_class"] == scores["n_wrong"].tolist()
    figure = plot_neuron_scores(scores, {"threshold": 0.0})
    assert len(figure.axes) == 2

