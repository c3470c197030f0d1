import numpy as np
import pytest

from neurontune.core import overlapping_group_report


def test_each_attribute_and_class_is_its_own_group_even_when_attributes_overlap():
    y_true = np.array([0, 0, 1, 1, 1, 0])
    y_pred = np.array([0, 1, 1, 0, 1, 0])
    members = {"male": np.array([1, 1, 1, 0, 0, 0], bool), "black": np.array([0, 1, 1, 1, 0, 0], bool)}
    report = overlapping_group_report(y_true, y_pred, members, n_classes=2)
    assert report == {"accuracy_male_y0": 0.5, "accuracy_male_y1": 1.0, "accuracy_black_y0": 0.0,
                      "accuracy_black_y1": 0.5, "worst_overlapping_group_accuracy": 0.0}


def test_empty_groups_are_skipped_and_shapes_checked():
    report = overlapping_group_report(np.array([0, 1]), np.array([0, 1]), {"x": np.array([True, False])}, 2)
    assert report == {"accuracy_x_y0": 1.0, "worst_overlapping_group_accuracy": 1.0}
    with pytest.raises(ValueError, match=r"members\['x'\] must have shape \(2,\)"):
        overlapping_group_report(np.array([0, 1]), np.array([0, 1]), {"x": np.array([True])}, 2)
