"""Shared concepts used by the method, the baselines and the evaluation alike.

Group ids, class- or group-balanced sampling, and per-group accuracy live here
and nowhere else. Group ids may only be *computed* by data loading, evaluation
and the explicitly labelled baselines; NeuronTune itself only ever calls the
class-level helpers.
"""

from __future__ import annotations

import numpy as np

from neurontune.core._validation import check_labels


#: The group id of a sample whose group is not known (e.g. groups given on the test split only).
UNKNOWN_GROUP = -1


def has_group_labels(groups) -> bool:
    """Whether a split has group labels: it has samples and every one of them has a known group (id >= 0).

    The one rule every stage applies. ``groups`` is the split's group ids, shape (N,), or None when the
    data has no group column at all; :data:`UNKNOWN_GROUP` (-1) or a missing value (NaN) marks a sample
    whose group is not known, and one such sample makes the whole split unlabelled.
    """
    if groups is None:
        return False
    groups = np.asarray(groups)
    if groups.ndim != 1:
        raise ValueError(f"groups must be a 1-D array of group ids (or None); got shape {groups.shape}.")
    if groups.size == 0:
        return False
    if not np.issubdtype(groups.dtype, np.number) or np.issubdtype(groups.dtype, np.complexfloating):
        raise TypeError(f"groups must hold integer group ids (-1 = unknown); got dtype {groups.dtype}.")
    with np.errstate(invalid="ignore"):
        return bool(np.all(np.isfinite(groups)) and np.all(groups >= 0))


def group_ids(y, a, n_classes: int, n_attributes: int) -> np.ndarray:
    """Group id ``y * n_attributes + a`` for each sample, shape (N,)."""
    y = check_labels(y, n_classes, "y")
    a = check_labels(a, max(n_attributes, 2), "a", n_samples=y.shape[0])
    return y * n_attributes + a


def balanced_sample_weights(labels, n_labels: int, sample_weight=None) -> np.ndarray:
    """Per-sample weights that give every present label the same total weight.

    Parameters
    ----------
    labels : array of int, shape (N,)
        Class ids (class balance) or group ids (group balance).
    n_labels : int
        Number of possible labels.
    sample_weight : array of float, shape (N,), optional
        Non-negative importance of each sample *within* its label (AFR's
        ``exp(-γ p_true)``, JTT's upweighted errors); each label's total weight
        stays equal. None = uniform within each label.

    Returns
    -------
    weights : ndarray, shape (N,), summing to N.
    """
    labels = check_labels(labels, n_labels, "labels")
    if sample_weight is None:
        sample_weight = np.ones(labels.shape[0])
    sample_weight = np.asarray(sample_weight, dtype=np.float64)
    if sample_weight.shape != labels.shape or not np.all(np.isfinite(sample_weight)) or np.any(sample_weight < 0):
        raise ValueError(
            f"sample_weight must be finite, non-negative and of shape {labels.shape}; got shape {sample_weight.shape}."
        )
    totals = np.bincount(labels, weights=sample_weight, minlength=n_labels)
    present = totals > 0
    if not present.any():
        raise ValueError("sample_weight is zero for every sample; at least one sample needs a positive weight.")
    scale = np.zeros(n_labels)
    scale[present] = labels.shape[0] / (present.sum() * totals[present])
    return scale[labels] * sample_weight


def balanced_sample_indices(labels, n_labels: int, n_samples: int, rng: np.random.Generator) -> np.ndarray:
    """Draw ``n_samples`` indices with replacement so that each present label is equally likely."""
    probabilities = balanced_sample_weights(labels, n_labels)
    return rng.choice(len(probabilities), size=n_samples, replace=True, p=probabilities / probabilities.sum())


def balanced_subset_indices(labels, n_labels: int, rng: np.random.Generator) -> np.ndarray:
    """Indices of a subset with exactly as many samples of each present label as the rarest has."""
    labels = check_labels(labels, n_labels, "labels")
    counts = np.bincount(labels, minlength=n_labels)
    smallest = counts[counts > 0].min()
    chosen = [rng.choice(np.flatnonzero(labels == k), size=smallest, replace=False) for k in np.flatnonzero(counts)]
    return np.sort(np.concatenate(chosen))


def stratified_split(labels, first_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Two disjoint sets of row indices, each label's rows shared at random (by ``seed``) between them.

    Parameters
    ----------
    labels : array of int, shape (N,)
        Class ids (a class-stratified split) or group ids.
    first_fraction : float in (0, 1)
        Share of each label's rows in the first set (rounded to the nearest count, halves to even).
    seed : int

    Returns
    -------
    first, second : sorted int arrays, together ``0 … N-1``
    """
    labels = np.asarray(labels)
    if labels.ndim != 1:
        raise ValueError(f"labels must be one-dimensional (N,); got shape {labels.shape}.")
    if not 0 < first_fraction < 1:
        raise ValueError(f"first_fraction must be in (0, 1); got {first_fraction!r}.")
    rng = np.random.default_rng(seed)
    first = [np.empty(0, dtype=np.int64)]
    for label in np.unique(labels):
        rows = rng.permutation(np.flatnonzero(labels == label))
        first.append(rows[: int(round(first_fraction * len(rows)))])
    first = np.sort(np.concatenate(first))
    return first, np.setdiff1d(np.arange(len(labels)), first)


def per_group_accuracy(y_true, y_pred, groups, n_groups: int) -> np.ndarray:
    """Accuracy within each group, shape (n_groups,); NaN for a group with no samples."""
    groups = check_labels(groups, n_groups, "groups")
    y_true = np.asarray(y_true)
    y_pred = np.asarray(y_pred)
    if not y_true.shape == y_pred.shape == groups.shape:
        raise ValueError(
            f"y_true, y_pred and groups must have the same shape; got {y_true.shape}, {y_pred.shape}, {groups.shape}."
        )
    correct = np.bincount(groups, weights=(y_true == y_pred).astype(np.float64), minlength=n_groups)
    totals = np.bincount(groups, minlength=n_groups)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(totals > 0, correct / np.maximum(totals, 1), np.nan)
