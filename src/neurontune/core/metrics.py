"""Accuracy summaries reported by evaluation and used (class-level only) by model selection."""

from __future__ import annotations

import numpy as np

from neurontune.core._validation import check_labels
from neurontune.core.groups import per_group_accuracy


def worst_class_accuracy(y_true, y_pred, n_classes: int) -> float:
    """Lowest per-class accuracy over the classes present; needs class labels only."""
    y_true = check_labels(y_true, n_classes, "y_true")
    y_pred = check_labels(y_pred, n_classes, "y_pred", n_samples=y_true.shape[0])
    return float(np.nanmin(per_group_accuracy(y_true, y_pred, y_true, n_classes)))


def mean_accuracy(y_true, y_pred) -> float:
    """Plain accuracy over all samples."""
    y_true = np.asarray(y_true)
    y_pred = np.asarray(y_pred)
    if y_true.shape != y_pred.shape or y_true.size == 0:
        raise ValueError(f"y_true and y_pred must be non-empty and of equal shape; got {y_true.shape} and {y_pred.shape}.")
    return float(np.mean(y_true == y_pred))


def group_report(y_true, y_pred, groups, n_classes: int, n_groups: int, train_group_proportions=None) -> dict:
    """Every evaluation metric for one split.

    Parameters
    ----------
    y_true, y_pred, groups : array of int, shape (N,)
    n_classes, n_groups : int
    train_group_proportions : array, shape (n_groups,), optional
        Group frequencies of the training split, for ``mean_accuracy_train_weighted``.

    Returns
    -------
    dict with ``accuracy_group_<k>`` for each present group, ``worst_group_accuracy``,
    ``mean_accuracy`` (plain average over samples), ``mean_accuracy_train_weighted``
    (group accuracies weighted by training group proportions, as in the Waterbirds
    literature) and ``worst_class_accuracy``.
    """
    y_true = check_labels(y_true, n_classes, "y_true")
    y_pred = check_labels(y_pred, n_classes, "y_pred", n_samples=y_true.shape[0])
    if y_true.size == 0:
        raise ValueError("cannot report accuracy on an empty split (0 samples).")
    group_acc = per_group_accuracy(y_true, y_pred, groups, n_groups)
    report = {f"accuracy_group_{k}": float(v) for k, v in enumerate(group_acc) if np.isfinite(v)}
    report["worst_group_accuracy"] = float(np.nanmin(group_acc))
    report["mean_accuracy"] = mean_accuracy(y_true, y_pred)
    if train_group_proportions is not None:
        weights = np.asarray(train_group_proportions, dtype=np.float64)
        present = np.isfinite(group_acc) & (weights > 0)
        report["mean_accuracy_train_weighted"] = float(np.sum(group_acc[present] * weights[present]) / weights[present].sum())
    report["worst_class_accuracy"] = worst_class_accuracy(y_true, y_pred, n_classes)
    return report


def overlapping_group_report(y_true, y_pred, members: dict, n_classes: int) -> dict:
    """Accuracy of each (attribute, class) group when attributes overlap (CivilComments' identities).

    Parameters
    ----------
    y_true, y_pred : array of int, shape (N,)
    members : {attribute name: bool array (N,)}, True where the sample has the attribute
    n_classes : int

    Returns
    -------
    dict with ``accuracy_<attribute>_y<k>`` for every populated group and
    ``worst_overlapping_group_accuracy`` (their minimum; NaN when no group is populated).
    """
    y_true = check_labels(y_true, n_classes, "y_true")
    y_pred = check_labels(y_pred, n_classes, "y_pred", n_samples=y_true.shape[0])
    report = {}
    for name, member in members.items():
        member = np.asarray(member).astype(bool)
        if member.shape != y_true.shape:
            raise ValueError(f"members[{name!r}] must have shape {y_true.shape}; got {member.shape}.")
        accuracy = per_group_accuracy(y_true[member], y_pred[member], y_true[member], n_classes)
        report.update({f"accuracy_{name}_y{k}": float(v) for k, v in enumerate(accuracy) if np.isfinite(v)})
    report["worst_overlapping_group_accuracy"] = min(report.values()) if report else float("nan")
    return report


#: Thresholds below which a benchmark cannot separate debiasing methods (the validity card's warning).
MIN_ORACLE_WORST_GROUP_ACCURACY = 0.80
MIN_HEADROOM = 0.10


def validity_card(erm: dict, oracle: dict, *, min_oracle_worst_group_accuracy: float = MIN_ORACLE_WORST_GROUP_ACCURACY,
                  min_headroom: float = MIN_HEADROOM) -> dict:
    """Can this benchmark separate debiasing methods? ERM against the best last-layer head group labels buy.

    Parameters
    ----------
    erm, oracle : one split's :func:`group_report` of the ERM head and of the group-balanced oracle
    min_oracle_worst_group_accuracy, min_headroom : the thresholds of the warning

    Returns
    -------
    dict with ``erm_mean_accuracy``, ``erm_worst_group_accuracy``, ``oracle_worst_group_accuracy``,
    ``headroom`` (oracle WGA − ERM WGA) and ``separates_methods`` (1.0 when the oracle reaches
    ``min_oracle_worst_group_accuracy`` and the headroom ``min_headroom``, else 0.0).
    """
    card = {
        "erm_mean_accuracy": float(erm["mean_accuracy"]),
        "erm_worst_group_accuracy": float(erm["worst_group_accuracy"]),
        "oracle_worst_group_accuracy": float(oracle["worst_group_accuracy"]),
    }
    card["headroom"] = card["oracle_worst_group_accuracy"] - card["erm_worst_group_accuracy"]
    card["separates_methods"] = float(card["oracle_worst_group_accuracy"] >= min_oracle_worst_group_accuracy
                                      and card["headroom"] >= min_headroom)
    return card


def validity_warning(card: dict, *, min_oracle_worst_group_accuracy: float = MIN_ORACLE_WORST_GROUP_ACCURACY,
                     min_headroom: float = MIN_HEADROOM) -> str | None:
    """The warning a report prints for a card that fails a threshold, else None."""
    if card["separates_methods"]:
        return None
    reasons = []
    if card["oracle_worst_group_accuracy"] < min_oracle_worst_group_accuracy:
        reasons.append(f"the group-balanced oracle reaches only {card['oracle_worst_group_accuracy']:.3f} worst-group "
                       f"accuracy (< {min_oracle_worst_group_accuracy:.2f}): the core feature is barely learnable from "
                       "these embeddings")
    if card["headroom"] < min_headroom:
        reasons.append(f"the headroom over ERM is {card['headroom']:+.3f} (< {min_headroom:.2f}): ERM is hardly biased")
    return "this benchmark cannot separate debiasing methods: " + "; ".join(reasons) + "."
