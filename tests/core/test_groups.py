import numpy as np
import pytest

from neurontune.core.groups import (
    balanced_sample_indices,
    balanced_sample_weights,
    balanced_subset_indices,
    group_ids,
    per_group_accuracy,
    stratified_split,
)


def test_group_ids_combine_class_and_attribute():
    assert group_ids([0, 0, 1, 1], [0, 1, 0, 1], n_classes=2, n_attributes=2).tolist() == [0, 1, 2, 3]


def test_balanced_weights_give_each_label_equal_mass():
    weights = balanced_sample_weights([0, 0, 0, 1], 2)
    np.testing.assert_allclose(weights, [2 / 3, 2 / 3, 2 / 3, 2.0])
    assert weights[:3].sum() == pytest.approx(weights[3:].sum())


def test_balanced_weights_ignore_absent_labels():
    np.testing.assert_allclose(balanced_sample_weights([2, 2, 0], 3), [0.75, 0.75, 1.5])


def test_balanced_sampling_is_roughly_even_and_seeded():
    labels = np.array([0] * 90 + [1] * 10)
    draw = balanced_sample_indices(labels, 2, 4000, np.random.default_rng(1))
    assert abs(np.mean(labels[draw]) - 0.5) < 0.05
    np.testing.assert_array_equal(draw, balanced_sample_indices(labels, 2, 4000, np.random.default_rng(1)))


def test_balanced_subset_takes_the_rarest_count_per_label():
    labels = np.array([0] * 5 + [1] * 2 + [3] * 3)
    subset = balanced_subset_indices(labels, 4, np.random.default_rng(0))
    assert np.bincount(labels[subset], minlength=4).tolist() == [2, 2, 0, 2]


def test_per_group_accuracy_by_hand():
    accuracy = per_group_accuracy([0, 0, 1, 1, 1], [0, 1, 1, 1, 0], [0, 0, 1, 1, 2], n_groups=4)
    np.testing.assert_allclose(accuracy[:3], [0.5, 1.0, 0.0])
    assert np.isnan(accuracy[3])


def test_per_group_accuracy_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="same shape"):
        per_group_accuracy([0, 1], [0], [0, 1], 2)


def test_group_ids_reject_labels_out_of_range():
    with pytest.raises(ValueError, match=r"y must lie in \[0, 2\)"):
        group_ids([0, 2], [0, 1], 2, 2)


def test_stratified_split_shares_each_label_and_is_seeded():
    labels = np.array([0] * 7 + [1] * 4 + [2] * 3)
    first, second = stratified_split(labels, 0.5, seed=0)
    assert np.intersect1d(first, second).size == 0 and sorted([*first, *second]) == list(range(14))
    assert np.bincount(labels[first]).tolist() == [4, 2, 2]  # round(3.5) = 4, round(1.5) = 2: halves to even
    assert np.all(np.diff(first) > 0) and np.all(np.diff(second) > 0)
    again, _ = stratified_split(labels, 0.5, seed=0)
    other, _ = stratified_split(labels, 0.5, seed=1)
    np.testing.assert_array_equal(again, first)
    assert not np.array_equal(other, first)
    assert np.bincount(labels[stratified_split(labels, 0.25, seed=0)[0]], minlength=3).tolist() == [2, 1, 1]


@pytest.mark.parametrize("labels, fraction, message", [
    ([0, 1], 1.0, r"first_fraction must be in \(0, 1\); got 1.0"),
    ([[0, 1]], 0.5, r"labels must be one-dimensional \(N,\); got shape \(1, 2\)"),
])
def test_stratified_split_rejects_bad_arguments(labels, fraction, message):
    with pytest.raises(ValueError, match=message):
        stratified_split(labels, fraction, seed=0)


# ----------------------------------------------------------------- a split has group labels iff every row's group is known

from neurontune.core.groups import UNKNOWN_GROUP, has_group_labels  # noqa: E402


@pytest.mark.parametrize(("groups", "expected"), [
    ([0, 1, 3, 2], True),
    ([0, 1, UNKNOWN_GROUP], False),        # one unknown row makes the whole split unlabelled
    ([UNKNOWN_GROUP] * 3, False),
    ([0.0, 1.0, np.nan], False),           # a missing value (pandas reads absent ints as NaN)
    ([2.0, 0.0], True),
    ([], False),                           # an empty split has no group labels to use
    (None, False),                         # no group column at all
], ids=["known", "one_unknown", "all_unknown", "nan", "float_ids", "empty", "no_column"])
def test_a_split_has_group_labels_only_when_every_row_is_known(groups, expected):
    assert has_group_labels(None if groups is None else np.asarray(groups)) is expected


def test_has_group_labels_rejects_what_is_not_a_vector_of_ids():
    with pytest.raises(ValueError, match=r"groups must be a 1-D array of group ids \(or None\); got shape \(2, 1\)"):
        has_group_labels(np.zeros((2, 1), dtype=int))
    with pytest.raises(TypeError, match="groups must hold integer group ids"):
        has_group_labels(np.array(["a", "b"]))
