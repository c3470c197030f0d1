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
