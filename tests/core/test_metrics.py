import numpy as np
import pytest

from neurontune.core.metrics import group_report, mean_accuracy, worst_class_accuracy


def test_group_report_by_hand():
    y = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    pred = np.array([0, 0, 0, 1, 1, 1, 0, 0])
    groups = np.array([0, 0, 0, 1, 2, 2, 3, 3])
    report = group_report(y, pred, groups, n_classes=2, n_groups=4, train_group_proportions=[0.45, 0.05, 0.05, 0.45])
    assert report["accuracy_group_0"] == 1.0
    assert report["accuracy_group_1"] == 0.0
    assert report["accuracy_group_2"] == 1.0
    assert report["accuracy_group_3"] == 0.0
    assert report["worst_group_accuracy"] == 0.0
    assert report["mean_accuracy"] == pytest.approx(5 / 8)
    assert report["mean_accuracy_train_weighted"] == pytest.approx(0.45 + 0.05)
    assert report["worst_class_accuracy"] == pytest.approx(0.5)


def test_worst_class_accuracy_by_hand():
    assert worst_class_accuracy([0, 0, 1, 1, 1], [0, 0, 1, 0, 0], 2) == pytest.approx(1 / 3)


def test_mean_accuracy_rejects_empty():
    with pytest.raises(ValueError, match="non-empty"):
        mean_accuracy([], [])


def test_group_report_rejects_predictions_out_of_range():
    with pytest.raises(ValueError, match=r"y_pred must lie in \[0, 2\)"):
        group_report([0, 1], [0, 5], [0, 1], 2, 2)


# ----------------------------------------------------------------- does the mask hit the shortcut?

from neurontune.core.metrics import (  # noqa: E402
    auroc,
    change_against_reference,
    extreme_auroc,
    guard_fires,
    mask_hits,
    within_stratum_auroc,
)
from tests.core.conftest import SPURIOUS_NEURON  # noqa: E402


def test_auroc_by_hand_with_ties():
    scores = np.array([[0.1, 1.0], [0.4, 1.0], [0.35, 1.0], [0.8, 1.0]])
    target = np.array([False, False, True, True])
    # column 0: positives 0.35, 0.8 vs negatives 0.1, 0.4 → 3 of 4 pairs; column 1: all tied → 0.5
    np.testing.assert_allclose(auroc(scores, target), [0.75, 0.5])
    assert np.isnan(auroc(scores, np.zeros(4, dtype=bool))).all()
    with pytest.raises(TypeError, match="target must be boolean"):
        auroc(scores, np.array([0, 0, 1, 1]))


def test_within_stratum_auroc_separates_attribute_from_class(planted):
    test = planted["test"]
    attribute = within_stratum_auroc(test["x"], test["a"], test["y"])
    core = within_stratum_auroc(test["x"], test["y"], test["a"])
    assert attribute[SPURIOUS_NEURON] > 0.95 and 0.4 < attribute[0] < 0.6  # the core neuron carries no attribute
    assert core[0] > 0.8 and 0.4 < core[SPURIOUS_NEURON] < 0.6
    flipped = within_stratum_auroc(-test["x"], test["a"], test["y"])
    np.testing.assert_allclose(flipped, 1 - attribute)  # an anti-coding neuron is as extreme
    # a three-valued target is scored one value against the rest, keeping the most extreme
    three = np.where(test["a"] == 1, 2, test["y"] % 2)
    assert within_stratum_auroc(test["x"], three, np.zeros_like(three))[SPURIOUS_NEURON] > 0.9


def test_mask_hits_find_a_neuron_that_copies_the_attribute(planted):
    test = planted["test"]
    relevant = extreme_auroc(within_stratum_auroc(test["x"], test["a"], test["y"]), 0.7)
    n_neurons = test["x"].shape[1]
    assert relevant.tolist() == [i == SPURIOUS_NEURON for i in range(n_neurons)]
    on_target = mask_hits(np.arange(n_neurons) == SPURIOUS_NEURON, relevant)
    assert on_target["precision"] == 1.0 and on_target["recall"] == 1.0
    assert on_target["random_precision"] == pytest.approx(1 / n_neurons)
    assert on_target["random_recall"] == pytest.approx(1 / n_neurons)
    wide = mask_hits(np.arange(n_neurons) < 4, relevant)
    assert wide["precision"] == 0.25 and wide["recall"] == 1.0 and wide["random_recall"] == pytest.approx(4 / n_neurons)
    missed = mask_hits(np.arange(n_neurons) == 0, relevant)
    assert missed["precision"] == 0.0 and missed["recall"] == 0.0
    nothing = mask_hits(np.zeros(n_neurons, dtype=bool), relevant)
    assert np.isnan(nothing["precision"]) and nothing["recall"] == 0.0 and nothing["n_masked"] == 0
    with pytest.raises(ValueError, match="boolean vectors of one length"):
        mask_hits(np.zeros(3, dtype=bool), relevant)


def test_extreme_auroc_is_symmetric_and_checks_its_threshold():
    assert extreme_auroc([0.71, 0.7, 0.5, 0.3, 0.29, np.nan], 0.7).tolist() == [True, True, False, True, True, False]
    with pytest.raises(ValueError, match=r"threshold must lie in \(0.5, 1\]"):
        extreme_auroc([0.5], 0.4)


def test_change_against_reference_and_the_guard():
    method, erm = {"worst_group_accuracy": 0.5, "mean_accuracy": 0.9}, {"worst_group_accuracy": 0.6, "mean_accuracy": 0.8}
    change = change_against_reference(method, erm)
    assert change == pytest.approx({"delta_worst_group_accuracy": -0.1, "delta_mean_accuracy": 0.1})
    with pytest.raises(ValueError, match="missing"):
        change_against_reference({"mean_accuracy": 0.9}, erm)
    assert guard_fires(0.70, 0.75, margin=0.0)          # worse than ERM
    assert not guard_fires(0.75, 0.75, margin=0.0)      # as good as ERM passes a zero margin
    assert guard_fires(0.76, 0.75, margin=0.02)         # better, but not by the margin
    assert guard_fires(float("nan"), 0.75, margin=0.0)  # no score never passes
    with pytest.raises(ValueError, match="margin must be a finite number"):
        guard_fires(0.8, 0.7, margin=float("nan"))
