"""Label-free error sets, robust scores and pseudo-groups on the planted benchmark (fixture ``planted``)."""

import numpy as np
import pytest

from neurontune.core import head_predict, retrain_head, select_biased_neurons
from neurontune.core.errors import crossfit_predictions, loss_quantile_sets, pseudo_groups
from neurontune.core.scoring import permutation_discoveries, score_error_sets
from tests.core.conftest import SPURIOUS_NEURON


def test_crossfit_errors_fall_on_the_minority_groups(planted):
    train = planted["train"]
    held_out = crossfit_predictions(train["x"], train["y"], 2, n_folds=5, seed=0)
    wrong = held_out != train["y"]
    minority = train["a"] != train["y"]
    assert wrong.sum() > 20, "held-out folds must give many more errors than a memorised split"
    assert wrong[minority].mean() > 5 * wrong[~minority].mean()
    np.testing.assert_array_equal(held_out, crossfit_predictions(train["x"], train["y"], 2, n_folds=5, seed=0))


def test_scores_from_crossfit_errors_single_out_the_planted_neuron(planted):
    train = planted["train"]
    wrong = crossfit_predictions(train["x"], train["y"], 2) != train["y"]
    for statistic in ("median", "scaled", "lcb"):
        scores = score_error_sets(train["x"], train["y"], wrong, ~wrong, 2, statistic=statistic, n_bootstrap=50).scores
        assert np.nanargmax(np.nanmax(scores, axis=0)) == SPURIOUS_NEURON, statistic


def test_the_lower_bound_is_below_the_scaled_score_and_noise_passes_rarely(planted):
    train = planted["train"]
    wrong = crossfit_predictions(train["x"], train["y"], 2) != train["y"]
    scaled = score_error_sets(train["x"], train["y"], wrong, ~wrong, 2, statistic="scaled").scores
    lower = score_error_sets(train["x"], train["y"], wrong, ~wrong, 2, statistic="lcb", n_bootstrap=100).scores
    assert np.all(lower <= scaled + 1e-9)
    chance = permutation_discoveries(train["x"], train["y"], wrong, ~wrong, 2, threshold=1.0, statistic="scaled",
                                     n_permutations=10)
    assert chance < 1.0, "with the error labels shuffled, almost no neuron should pass λ = 1 spread"


def test_loss_quantile_sets_take_the_extremes_of_each_class():
    logits = np.array([[2.0, 0.0], [0.0, 2.0], [1.0, 0.0], [0.0, 0.5], [0.0, 3.0], [1.0, 1.0]])
    y = np.array([0, 0, 0, 1, 1, 1])
    wrong, right = loss_quantile_sets(logits, y, 2, fraction=1 / 3)
    assert wrong.tolist() == [False, True, False, False, False, True]
    assert right.tolist() == [True, False, False, False, True, False]
    with pytest.raises(ValueError, match="fraction must be a number in"):
        loss_quantile_sets(logits, y, 2, fraction=0.8)


def test_pseudo_groups_and_the_top_k_cap():
    assert pseudo_groups([0, 1, 1], np.array([True, False, True])).tolist() == [1, 2, 3]
    with pytest.raises(ValueError, match="in_error_set must be a boolean array"):
        pseudo_groups([0, 1], np.array([1, 0]))
    scores = np.array([[0.5, 3.0, 1.0, -1.0], [0.2, 0.1, 2.0, -1.0]])
    assert select_biased_neurons(scores, 0.0, "any", top_k=2).tolist() == [False, True, True, False]
    assert select_biased_neurons(scores, 0.0, "per_class", top_k=1).tolist() == [[False, True, False, False],
                                                                                 [False, False, False, False]]
    with pytest.raises(ValueError, match="top_k must be a positive integer"):
        select_biased_neurons(scores, 0.0, "any", top_k=0)


def test_pseudo_group_balancing_reweights_the_error_cells(planted):
    from neurontune.core import NeuronTune

    train, val = planted["train"], planted["val"]
    erm = retrain_head(train["x"], train["y"], 2, balance_classes=False, weight_decay=1e-3)
    wrong = crossfit_predictions(train["x"], train["y"], 2) != train["y"]
    arguments = (val["x"], val["y"], head_predict(val["x"], erm), train["x"], train["y"])
    balanced = NeuronTune(2, use_mask=False, balance="pseudo_group").fit(*arguments, tune_groups=pseudo_groups(train["y"], wrong))
    plain = NeuronTune(2, use_mask=False).fit(*arguments)
    test = planted["test"]
    minority = test["a"] != test["y"]
    assert np.mean(balanced.predict(test["x"])[minority] == test["y"][minority]) > \
        np.mean(plain.predict(test["x"])[minority] == test["y"][minority])
    with pytest.raises(ValueError, match="balance='pseudo_group' needs tune_groups"):
        NeuronTune(2, balance="pseudo_group").fit(*arguments)
