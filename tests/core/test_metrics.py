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



# ----------------------------------------------------------------- without group labels

from neurontune.core.metrics import (  # noqa: E402
    NOT_MEASURABLE,
    class_report,
    is_measured,
    measured_or_nan,
    not_measurable,
    pseudo_group_report,
    split_report,
    validity_card,
    validity_warning,
)

Y = np.array([0, 0, 0, 0, 1, 1, 1, 1])
PRED = np.array([0, 0, 0, 1, 1, 1, 0, 0])
ERM_WRONG = np.array([False, False, True, True, False, True, True, False])


def test_class_report_by_hand():
    assert class_report(Y, PRED, 2) == pytest.approx({"accuracy_class_0": 0.75, "accuracy_class_1": 0.5,
                                                      "worst_class_accuracy": 0.5, "mean_accuracy": 5 / 8})
    assert set(class_report([0, 0], [0, 0], 3)) == {"accuracy_class_0", "worst_class_accuracy", "mean_accuracy"}
    with pytest.raises(ValueError, match="empty split"):
        class_report([], [], 2)


def test_pseudo_group_report_by_hand():
    """Pseudo-group 2·class + ERM wrong: class 0 right {0, 1}, wrong {2, 3}; class 1 right {4, 7}, wrong {5, 6}."""
    report = pseudo_group_report(Y, PRED, ERM_WRONG, 2)
    assert report == pytest.approx({"accuracy_pseudo_group_0": 1.0, "accuracy_pseudo_group_1": 0.5,
                                    "accuracy_pseudo_group_2": 0.5, "accuracy_pseudo_group_3": 0.5,
                                    "worst_pseudo_group_accuracy": 0.5})
    assert "accuracy_pseudo_group_1" not in pseudo_group_report([0, 1], [0, 1], [False, False], 2)
    with pytest.raises(ValueError, match="in_error_set must be a boolean array of shape"):
        pseudo_group_report(Y, PRED, ERM_WRONG.astype(int), 2)


def test_split_report_without_group_labels_says_so_instead_of_a_number():
    for groups in (None, np.array([0, 0, 0, 1, 2, 2, 3, -1])):  # no group column; one unknown row
        report = split_report(Y, PRED, 2, groups=groups, n_groups=4, reference_wrong=ERM_WRONG)
        assert report["worst_group_accuracy"] == NOT_MEASURABLE == "not measurable: no group labels"
        assert report["mean_accuracy_train_weighted"] == NOT_MEASURABLE
        assert not any(key.startswith("accuracy_group_") for key in report)
        assert report["worst_class_accuracy"] == 0.5 and report["worst_pseudo_group_accuracy"] == 0.5
    assert "worst_pseudo_group_accuracy" not in split_report(Y, PRED, 2)


def test_split_report_with_group_labels_keeps_group_reports_numbers():
    groups = np.array([0, 0, 0, 1, 2, 2, 3, 3])
    proportions = [0.45, 0.05, 0.05, 0.45]
    report = split_report(Y, PRED, 2, groups=groups, n_groups=4, train_group_proportions=proportions)
    expected = group_report(Y, PRED, groups, 2, 4, proportions)
    assert {key: report[key] for key in expected} == expected and list(report)[:len(expected)] == list(expected)
    assert report["accuracy_class_0"] == 0.75
    test_only = split_report(Y, PRED, 2, groups=groups, n_groups=4)  # groups here, none on the training split
    assert test_only["worst_group_accuracy"] == 0.0
    assert test_only["mean_accuracy_train_weighted"] == "not measurable: no group labels on the training split"
    with pytest.raises(ValueError, match="n_groups is needed"):
        split_report(Y, PRED, 2, groups=groups)


def test_is_measured_takes_finite_numbers_only():
    assert [is_measured(value) for value in (0.0, 1, np.float32(0.5), np.int64(3))] == [True] * 4
    assert [is_measured(value) for value in (NOT_MEASURABLE, None, float("nan"), float("inf"), True)] == [False] * 5
    assert measured_or_nan(0.25) == 0.25 and np.isnan(measured_or_nan(NOT_MEASURABLE))
    assert not_measurable("the oracle was not fitted") == "not measurable: the oracle was not fitted"


def test_the_validity_card_without_group_labels_holds_the_reason():
    erm = {"mean_accuracy": 0.9, "worst_group_accuracy": NOT_MEASURABLE}
    oracle = {"worst_group_accuracy": not_measurable("oracle not fitted")}
    card = validity_card(erm, oracle)
    assert card == {"erm_mean_accuracy": 0.9, "erm_worst_group_accuracy": NOT_MEASURABLE,
                    "oracle_worst_group_accuracy": "not measurable: oracle not fitted", "headroom": NOT_MEASURABLE,
                    "separates_methods": NOT_MEASURABLE}
    assert validity_warning(card) is None
    only_oracle = validity_card({"mean_accuracy": 0.9, "worst_group_accuracy": 0.5}, oracle)
    assert only_oracle["erm_worst_group_accuracy"] == 0.5 and only_oracle["headroom"] == "not measurable: oracle not fitted"


def test_a_change_in_an_unmeasured_metric_is_the_note():
    method = {"worst_group_accuracy": NOT_MEASURABLE, "mean_accuracy": 0.9, "worst_class_accuracy": 0.7}
    erm = {"worst_group_accuracy": NOT_MEASURABLE, "mean_accuracy": 0.8, "worst_class_accuracy": 0.6}
    change = change_against_reference(method, erm, ("worst_group_accuracy", "mean_accuracy", "worst_class_accuracy"))
    assert change["delta_worst_group_accuracy"] == NOT_MEASURABLE
    assert change["delta_mean_accuracy"] == pytest.approx(0.1) and change["delta_worst_class_accuracy"] == pytest.approx(0.1)
