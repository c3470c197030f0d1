"""Accuracy summaries reported by evaluation and used (class-level only) by model selection."""

from __future__ import annotations

import numpy as np

from neurontune.core._validation import check_labels
from neurontune.core.groups import has_group_labels, per_group_accuracy

#: Why a number that needs group labels is not reported, in every report (metrics.json, tables, plots, tags).
NO_GROUP_LABELS = "no group labels"
NOT_MEASURED_PREFIX = "not measurable: "


def not_measurable(reason: str = NO_GROUP_LABELS) -> str:
    """The note a report holds instead of a number it cannot measure, e.g. ``not measurable: no group labels``."""
    return NOT_MEASURED_PREFIX + reason


#: The note for worst-group accuracy (and every number built on it) on a split without group labels.
NOT_MEASURABLE = not_measurable()


#: The metrics the promotion gate may compare, and ``auto``: the first where the gate split has group labels, else the second.
GATE_METRICS = ("worst_group_accuracy", "worst_class_accuracy")
AUTO = "auto"


def is_measured(value) -> bool:
    """True for a finite real number; False for a "not measurable: …" note, None, NaN or a missing value."""
    return (isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)
            and bool(np.isfinite(value)))


def measured_or_nan(value) -> float:
    """A measured number as a float, NaN for anything else (a note): for arithmetic and sorting only, never for display."""
    return float(value) if is_measured(value) else float("nan")


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
    check_measurable(y_true, groups, n_classes, n_groups, require_groups=False)
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


def class_report(y_true, y_pred, n_classes: int) -> dict:
    """The metrics that need class labels only: ``accuracy_class_<k>`` for each present class,
    ``worst_class_accuracy`` and ``mean_accuracy`` (plain, over samples).

    Parameters
    ----------
    y_true, y_pred : array of int, shape (N,), N > 0
    n_classes : int
    """
    y_true = check_labels(y_true, n_classes, "y_true")
    y_pred = check_labels(y_pred, n_classes, "y_pred", n_samples=y_true.shape[0])
    if y_true.size == 0:
        raise ValueError("cannot report accuracy on an empty split (0 samples).")
    accuracy = per_group_accuracy(y_true, y_pred, y_true, n_classes)
    report = {f"accuracy_class_{k}": float(v) for k, v in enumerate(accuracy) if np.isfinite(v)}
    report["worst_class_accuracy"] = float(np.nanmin(accuracy))
    report["mean_accuracy"] = mean_accuracy(y_true, y_pred)
    return report


def pseudo_group_report(y_true, y_pred, reference_wrong, n_classes: int) -> dict:
    """Accuracy on the label-free pseudo-groups: (class, whether a reference model — ERM — got the sample wrong).

    Pseudo-group ``2·class + wrong`` (:func:`neurontune.core.errors.pseudo_groups`): odd ids are the reference's
    error set of each class, where a debiased head has to improve; the reference itself scores 0 there.

    Parameters
    ----------
    y_true, y_pred : array of int, shape (N,)
    reference_wrong : bool array, shape (N,): True where the reference model's prediction is wrong
    n_classes : int

    Returns
    -------
    dict with ``accuracy_pseudo_group_<k>`` for each populated pseudo-group and ``worst_pseudo_group_accuracy``.
    """
    from neurontune.core.errors import pseudo_groups

    y_true = check_labels(y_true, n_classes, "y_true")
    y_pred = check_labels(y_pred, n_classes, "y_pred", n_samples=y_true.shape[0])
    if y_true.size == 0:
        raise ValueError("cannot report accuracy on an empty split (0 samples).")
    groups = pseudo_groups(y_true, np.asarray(reference_wrong))
    accuracy = per_group_accuracy(y_true, y_pred, groups, 2 * n_classes)
    report = {f"accuracy_pseudo_group_{k}": float(v) for k, v in enumerate(accuracy) if np.isfinite(v)}
    report["worst_pseudo_group_accuracy"] = float(np.nanmin(accuracy))
    return report


def split_report(y_true, y_pred, n_classes: int, *, groups=None, n_groups: int | None = None,
                 train_group_proportions=None, reference_wrong=None) -> dict:
    """Every evaluation metric for one split, with or without group labels.

    Where the split has group labels (:func:`neurontune.core.groups.has_group_labels`), the numbers of
    :func:`group_report`; where it has none, ``worst_group_accuracy`` and ``mean_accuracy_train_weighted`` hold
    :data:`NOT_MEASURABLE` instead of a number (so does the weighted mean when only the training split lacks
    groups). Always the class-level numbers of :func:`class_report`, and the pseudo-group numbers of
    :func:`pseudo_group_report` when ``reference_wrong`` is given.

    Parameters
    ----------
    y_true, y_pred : array of int, shape (N,)
    n_classes : int
    groups : array of int, shape (N,), or None (no group column); -1 = unknown group
    n_groups : int, needed when ``groups`` are known
    train_group_proportions : array, shape (n_groups,), or None when the training split has no group labels
    reference_wrong : bool array, shape (N,), optional
    """
    if has_group_labels(groups):
        if n_groups is None:
            raise ValueError("n_groups is needed to report accuracy per group; got None.")
        report = group_report(y_true, y_pred, groups, n_classes, n_groups, train_group_proportions)
        if train_group_proportions is None:
            report["mean_accuracy_train_weighted"] = not_measurable("no group labels on the training split")
    else:
        report = {"worst_group_accuracy": NOT_MEASURABLE, "mean_accuracy_train_weighted": NOT_MEASURABLE}
    report.update(class_report(y_true, y_pred, n_classes))
    if reference_wrong is not None:
        report.update(pseudo_group_report(y_true, y_pred, reference_wrong, n_classes))
    return report


def check_measurable(y_true, groups, n_classes: int, n_groups: int, name: str = "the split",
                     require_groups: bool = True) -> list[int]:
    """Raise unless every class (and, with ``require_groups``, every group) occurs; return the absent groups.

    A worst-group (or worst-class) accuracy over the groups that happen to be present overstates the
    model and is not a measurement of the split.
    """
    classes = np.bincount(np.asarray(y_true), minlength=n_classes)[:n_classes]
    group_counts = np.bincount(np.asarray(groups, dtype=np.int64), minlength=n_groups)[:n_groups]
    missing_classes, missing_groups = np.flatnonzero(classes == 0), np.flatnonzero(group_counts == 0)
    if missing_classes.size or (require_groups and missing_groups.size):
        raise ValueError(
            f"not measurable: {name} has no sample of class(es) {missing_classes.tolist()} / group(s) "
            f"{missing_groups.tolist()} (class counts {classes.tolist()}, group counts {group_counts.tolist()}); "
            f"its worst-group accuracy needs all {n_classes} classes and {n_groups} groups. Fix the split "
            "assignment in the metadata and rerun from data_versioning.")
    return missing_groups.tolist()


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
    ``min_oracle_worst_group_accuracy`` and the headroom ``min_headroom``, else 0.0). When either worst-group
    accuracy is not measured (a split without group labels, an oracle that could not be fitted), the card holds
    the first note saying why in place of every number built on them.
    """
    notes = [report["worst_group_accuracy"] for report in (erm, oracle) if not is_measured(report["worst_group_accuracy"])]
    if notes:
        return {"erm_mean_accuracy": float(erm["mean_accuracy"]), "erm_worst_group_accuracy": erm["worst_group_accuracy"],
                "oracle_worst_group_accuracy": oracle["worst_group_accuracy"], "headroom": notes[0],
                "separates_methods": notes[0]}
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
    """The warning a report prints for a card that fails a threshold, else None (also for a card that could not
    be measured: its notes say why)."""
    if not is_measured(card["separates_methods"]) or card["separates_methods"]:
        return None
    reasons = []
    if card["oracle_worst_group_accuracy"] < min_oracle_worst_group_accuracy:
        reasons.append(f"the group-balanced oracle reaches only {card['oracle_worst_group_accuracy']:.3f} worst-group "
                       f"accuracy (< {min_oracle_worst_group_accuracy:.2f}): the core feature is barely learnable from "
                       "these embeddings")
    if card["headroom"] < min_headroom:
        reasons.append(f"the headroom over ERM is {card['headroom']:+.3f} (< {min_headroom:.2f}): ERM is hardly biased")
    return "this benchmark cannot separate debiasing methods: " + "; ".join(reasons) + "."


# ----------------------------------------------------------------- does the mask hit the shortcut?


def auroc(scores, target) -> np.ndarray:
    """Area under the ROC curve of every column of ``scores`` for a binary ``target``.

    Parameters
    ----------
    scores : array, shape (N, M) — e.g. the activations of M neurons
    target : bool array, shape (N,)

    Returns
    -------
    array, shape (M,): P(score of a positive > score of a negative), ties counting half
    (the Mann–Whitney statistic); NaN for every column when ``target`` has one value only.
    """
    from scipy.stats import rankdata

    scores = np.asarray(scores, dtype=np.float64)
    target = np.asarray(target)
    if scores.ndim != 2 or target.ndim != 1 or scores.shape[0] != target.shape[0]:
        raise ValueError(f"scores must be (N, M) and target (N,) with the same N; got {scores.shape} and {target.shape}.")
    if target.dtype != bool:
        raise TypeError(f"target must be boolean (True = positive); got dtype {target.dtype}.")
    n_positive = int(target.sum())
    n_negative = target.size - n_positive
    if n_positive == 0 or n_negative == 0:
        return np.full(scores.shape[1], np.nan)
    ranks = rankdata(scores, axis=0)
    return (ranks[target].sum(axis=0) - n_positive * (n_positive + 1) / 2) / (n_positive * n_negative)


def within_stratum_auroc(scores, target, strata) -> np.ndarray:
    """AUROC of every column of ``scores`` for ``target``, computed within each stratum and averaged over strata.

    Within-class AUROC for the attribute (``strata`` = class) asks whether a neuron codes the
    attribute beyond what the class explains; within-attribute AUROC for the class, the reverse.
    A target with more than two values is scored one value against the rest, keeping per column
    the value farthest from 0.5. Strata where the target takes one value are skipped.

    Parameters
    ----------
    scores : array, shape (N, M)
    target, strata : int arrays, shape (N,)

    Returns
    -------
    array, shape (M,): the mean over strata (NaN when no stratum has two target values)
    """
    scores = np.asarray(scores, dtype=np.float64)
    target, strata = np.asarray(target), np.asarray(strata)
    if target.shape != (scores.shape[0],) or strata.shape != target.shape:
        raise ValueError(f"target and strata must have shape ({scores.shape[0]},) to match scores {scores.shape}; "
                         f"got {target.shape} and {strata.shape}.")
    per_stratum = []
    for stratum in np.unique(strata):
        rows = strata == stratum
        values = np.unique(target[rows])
        if values.size < 2:
            continue
        candidates = np.stack([auroc(scores[rows], target[rows] == value) for value in values[-1 if values.size == 2 else 0:]])
        per_stratum.append(candidates[np.argmax(np.abs(candidates - 0.5), axis=0), np.arange(scores.shape[1])])
    if not per_stratum:
        return np.full(scores.shape[1], np.nan)
    return np.mean(per_stratum, axis=0)


def extreme_auroc(aurocs, threshold: float = 0.7) -> np.ndarray:
    """Columns whose AUROC is ``>= threshold`` or ``<= 1 - threshold`` (bool, shape (M,)); NaN is not extreme."""
    if not 0.5 < threshold <= 1.0:
        raise ValueError(f"threshold must lie in (0.5, 1]; got {threshold!r}.")
    aurocs = np.asarray(aurocs, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        return (aurocs >= threshold) | (aurocs <= 1.0 - threshold)


def mask_hits(masked, relevant) -> dict:
    """How well a neuron mask matches a set of relevant (e.g. attribute-coding) neurons.

    Parameters
    ----------
    masked, relevant : bool arrays, shape (M,)

    Returns
    -------
    dict with ``precision`` (share of masked neurons that are relevant), ``recall`` (share of
    relevant neurons that are masked), the expected values of both for a random mask of the
    same size (``random_precision`` = relevant / M, ``random_recall`` = masked / M), and the
    counts ``n_masked``, ``n_relevant``, ``n_neurons``. An undefined share (nothing masked,
    nothing relevant) is NaN.
    """
    masked, relevant = np.asarray(masked), np.asarray(relevant)
    if masked.dtype != bool or relevant.dtype != bool or masked.ndim != 1 or masked.shape != relevant.shape:
        raise ValueError(f"masked and relevant must be boolean vectors of one length; got {masked.dtype}{masked.shape} "
                         f"and {relevant.dtype}{relevant.shape}.")
    n_masked, n_relevant, n_neurons, hits = int(masked.sum()), int(relevant.sum()), masked.size, int((masked & relevant).sum())
    return {
        "precision": hits / n_masked if n_masked else float("nan"),
        "recall": hits / n_relevant if n_relevant else float("nan"),
        "random_precision": n_relevant / n_neurons if n_masked else float("nan"),
        "random_recall": n_masked / n_neurons if n_relevant else float("nan"),
        "n_masked": n_masked,
        "n_relevant": n_relevant,
        "n_neurons": n_neurons,
    }


# ----------------------------------------------------------------- do no harm

#: The per-split numbers a method is compared on with ERM.
HARM_METRICS = ("worst_group_accuracy", "mean_accuracy")
#: What "worse than ERM" is judged by where worst-group accuracy cannot be measured (class labels only).
LABEL_FREE_HARM_METRIC = "worst_class_accuracy"


def change_against_reference(method: dict, reference: dict, metrics=HARM_METRICS) -> dict:
    """``delta_<metric>`` = method − reference for each of ``metrics``, from two reports of one split; a metric
    either report could not measure gives its note (e.g. ``not measurable: no group labels``), not a number."""
    missing = [name for name in metrics if name not in method or name not in reference]
    if missing:
        raise ValueError(f"both reports need {list(metrics)}; {missing} missing.")
    changes = {}
    for name in metrics:
        notes = [report[name] for report in (method, reference) if not is_measured(report[name])]
        changes[f"delta_{name}"] = notes[0] if notes else float(method[name]) - float(reference[name])
    return changes


def guard_fires(score: float, reference_score: float, margin: float) -> bool:
    """The do-no-harm guard: True unless ``score >= reference_score + margin`` (a NaN never passes)."""
    if not np.isfinite(margin):
        raise ValueError(f"margin must be a finite number; got {margin!r}.")
    return not (np.isfinite(score) and np.isfinite(reference_score) and score - reference_score >= margin)
