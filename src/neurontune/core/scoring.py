"""Step 2 and 3 of NeuronTune: score each neuron, then select the biased ones."""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass

import numpy as np

from neurontune.core._chunked import check_chunk_size, check_row_source, group_medians
from neurontune.core._validation import check_choice, check_embeddings, check_labels, check_n_classes

logger = logging.getLogger(__name__)

SELECTION_RULES = ("all", "any", "per_class")


@dataclass(frozen=True)
class NeuronScores:
    """Result of :func:`score_neurons`.

    Attributes
    ----------
    scores : ndarray, shape (C, M)
        ``δ_i^y``; a row is NaN for a class that could not be scored.
    n_wrong, n_right : ndarray of int, shape (C,)
        Identification samples of each class the ERM model got wrong / right.
    """

    scores: np.ndarray
    n_wrong: np.ndarray
    n_right: np.ndarray

    @property
    def scored_classes(self) -> np.ndarray:
        """Boolean (C,): classes that have both wrong and right samples."""
        return (self.n_wrong > 0) & (self.n_right > 0)


def score_neurons(embeddings, y, y_pred, n_classes: int, *, chunk_size: int | None = None) -> NeuronScores:
    """Score every neuron for every class by how much more it fires on misclassified samples.

    ``δ_i^y = median{v_i : ŷ ≠ y} − median{v_i : ŷ = y}`` over the class-``y``
    samples. ``δ > 0``: the neuron drives wrong predictions for class ``y``.

    Parameters
    ----------
    embeddings : array, shape (N, M)
        Embeddings of the identification set (never seen in ERM training).
    y : array of int, shape (N,)
        Class labels.
    y_pred : array of int, shape (N,)
        ERM predictions.
    n_classes : int
    chunk_size : int, optional
        Read ``embeddings`` (an array or an ``np.memmap`` of the embedding store)
        this many rows at a time, so memory stays flat in N; the scores equal the
        in-memory ones exactly. None (default) loads the whole array.

    Returns
    -------
    NeuronScores
        A class with no wrong or no right sample gets a NaN row and a warning
        naming the class and the counts.
    """
    if chunk_size is not None:
        return _score_chunked(embeddings, y, y_pred, n_classes, chunk_size)
    embeddings = check_embeddings(embeddings, "embeddings")
    n_classes = check_n_classes(n_classes)
    y = check_labels(y, n_classes, "y", n_samples=embeddings.shape[0])
    y_pred = check_labels(y_pred, n_classes, "y_pred", n_samples=embeddings.shape[0])
    return _compute_scores(embeddings, y, y_pred, n_classes)


def _compute_scores(embeddings, y, y_pred, n_classes) -> NeuronScores:
    scores = np.full((n_classes, embeddings.shape[1]), np.nan)
    n_wrong = np.zeros(n_classes, dtype=np.int64)
    n_right = np.zeros(n_classes, dtype=np.int64)
    for label in range(n_classes):
        in_class = y == label
        wrong = in_class & (y_pred != label)
        right = in_class & (y_pred == label)
        n_wrong[label], n_right[label] = wrong.sum(), right.sum()
        if _warn_unscored(label, n_wrong[label], n_right[label]):
            continue
        scores[label] = np.median(embeddings[wrong], axis=0) - np.median(embeddings[right], axis=0)
    return NeuronScores(scores=scores, n_wrong=n_wrong, n_right=n_right)


def _warn_unscored(label, n_wrong, n_right) -> bool:
    """Warn and return True when class ``label`` lacks wrong or right samples."""
    if n_wrong > 0 and n_right > 0:
        return False
    message = (
        f"class {label} is not scored: it has {n_wrong} misclassified and {n_right} "
        "correctly classified identification samples; both must be non-zero."
    )
    warnings.warn(message, UserWarning, stacklevel=4)
    logger.warning(message)
    return True


def _score_chunked(embeddings, y, y_pred, n_classes, chunk_size) -> NeuronScores:
    """:func:`_compute_scores` reading the embeddings a block of rows at a time (exact medians, see ``group_medians``)."""
    embeddings = check_row_source(embeddings, "embeddings")
    n_classes = check_n_classes(n_classes)
    y = check_labels(y, n_classes, "y", n_samples=embeddings.shape[0])
    y_pred = check_labels(y_pred, n_classes, "y_pred", n_samples=embeddings.shape[0])
    chunk_size = check_chunk_size(chunk_size)
    right = y_pred == y
    n_wrong = np.bincount(y[~right], minlength=n_classes)
    n_right = np.bincount(y[right], minlength=n_classes)
    scored = np.array([not _warn_unscored(label, n_wrong[label], n_right[label]) for label in range(n_classes)])
    groups = np.where(scored[y], 2 * y + right, -1)  # group 2y: class y wrong, 2y + 1: class y right
    medians = group_medians(embeddings, groups, 2 * n_classes, chunk_size)
    scores = np.full((n_classes, embeddings.shape[1]), np.nan)
    scores[scored] = (medians[0::2] - medians[1::2])[scored]
    return NeuronScores(scores=scores, n_wrong=n_wrong.astype(np.int64), n_right=n_right.astype(np.int64))


def select_biased_neurons(scores, threshold: float = 0.0, rule: str = "all") -> np.ndarray:
    """Boolean mask of the neurons to suppress (True = biased).

    Parameters
    ----------
    scores : array, shape (C, M)
        ``δ`` from :func:`score_neurons`; NaN rows (unscored classes) are ignored.
    threshold : float
        ``λ``: a neuron is biased for class ``y`` when ``δ_i^y > λ``.
    rule : {"all", "any", "per_class"}
        ``all``: biased for every scored class (the paper's formula);
        ``any``: biased for at least one; ``per_class``: a (C, M) mask that
        suppresses neuron ``i`` only in class ``y``'s row of the head.

    Returns
    -------
    mask : ndarray of bool, shape (M,) or (C, M) for ``per_class``.
    """
    scores = np.asarray(scores, dtype=np.float64)
    if scores.ndim != 2:
        raise ValueError(f"scores must have shape (n_classes, n_neurons); got {scores.shape}.")
    if not np.isfinite(threshold):
        raise ValueError(f"threshold must be a finite number; got {threshold!r}.")
    check_choice(rule, SELECTION_RULES, "rule")
    biased = np.nan_to_num(scores, nan=-np.inf) > threshold
    scored = np.isfinite(scores).all(axis=1)
    if rule == "per_class":
        mask = biased
    elif not scored.any():
        mask = np.zeros(scores.shape[1], dtype=bool)
    elif rule == "all":
        mask = biased[scored].all(axis=0)
    else:
        mask = biased[scored].any(axis=0)
    _warn_degenerate(mask)
    return mask


def _warn_degenerate(mask: np.ndarray) -> None:
    n_selected = int(mask.sum())
    if n_selected == 0:
        message = "no neuron was selected as biased: the head will be retrained without suppression."
    elif n_selected == mask.size:
        message = "every neuron was selected as biased: the retrained head will see only zeros (raise the threshold)."
    else:
        return
    warnings.warn(message, UserWarning, stacklevel=3)
    logger.warning(message)


def spuriousness_fit(scores) -> float:
    """``SFit = Σ_y Σ_i |δ_i^y|`` over scored classes; higher = biased and core neurons more separable."""
    scores = np.asarray(scores, dtype=np.float64)
    return float(np.nansum(np.abs(scores)))
