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


#: How a neuron's wrong-vs-right difference is turned into a score.
STATISTICS = ("median", "scaled", "lcb")


def score_neurons(embeddings, y, y_pred, n_classes: int, *, statistic: str = "median", n_bootstrap: int = 200,
                  confidence: float = 0.9, seed: int = 0, chunk_size: int | None = None) -> NeuronScores:
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
        Predictions of the model whose errors identify the neurons (ERM's, in the paper).
    n_classes : int
    statistic, n_bootstrap, confidence, seed, chunk_size
        See :func:`score_error_sets`; the default ``median`` is the paper's δ.

    Returns
    -------
    NeuronScores
        A class with no wrong or no right sample gets a NaN row and a warning
        naming the class and the counts.
    """
    n_classes = check_n_classes(n_classes)
    y = check_labels(y, n_classes, "y", n_samples=len(embeddings))
    y_pred = check_labels(y_pred, n_classes, "y_pred", n_samples=len(embeddings))
    return score_error_sets(embeddings, y, y_pred != y, y_pred == y, n_classes, statistic=statistic,
                            n_bootstrap=n_bootstrap, confidence=confidence, seed=seed, chunk_size=chunk_size)


def score_error_sets(embeddings, y, wrong, right, n_classes: int, *, statistic: str = "median", n_bootstrap: int = 200,
                     confidence: float = 0.9, seed: int = 0, chunk_size: int | None = None) -> NeuronScores:
    """Score neurons from any split of each class into an error set and a reference set.

    ``wrong`` and ``right`` need not be complements (a loss-quantile split leaves the middle
    out); the errors may come from any label-free source (ERM, an early checkpoint,
    cross-fitted heads).

    Parameters
    ----------
    embeddings : array (N, M); y : int array (N,)
    wrong, right : bool arrays (N,), disjoint
    n_classes : int
    statistic : {"median", "scaled", "lcb"}
        ``median``: the paper's δ, in the embedding's units. ``scaled``: δ divided by the
        neuron's robust spread within the class (IQR / 1.349), so λ means the same on every
        backbone. ``lcb``: a bootstrap lower confidence bound on the scaled δ (wrong and right
        sets resampled ``n_bootstrap`` times; the ``1 − confidence`` quantile), so a neuron
        passes λ only when its difference is unlikely to be noise.
    n_bootstrap, confidence, seed : bootstrap settings (``lcb`` only)
    chunk_size : int, optional
        Read ``embeddings`` (an array or an ``np.memmap`` of the embedding store) this many rows
        at a time, so memory stays flat in N; the medians equal the in-memory ones exactly.
        ``median`` statistic only. None (default) loads the whole array.

    Returns
    -------
    NeuronScores (``n_wrong``/``n_right`` count the two sets per class)
    """
    embeddings = check_row_source(embeddings, "embeddings") if chunk_size is not None else check_embeddings(embeddings, "embeddings")
    n_classes = check_n_classes(n_classes)
    y = check_labels(y, n_classes, "y", n_samples=embeddings.shape[0])
    wrong, right = (np.asarray(mask) for mask in (wrong, right))
    for name, mask in (("wrong", wrong), ("right", right)):
        if mask.dtype != bool or mask.shape != y.shape:
            raise ValueError(f"{name} must be a boolean array of shape {y.shape}; got {mask.dtype} {mask.shape}.")
    if np.any(wrong & right):
        raise ValueError("wrong and right overlap; a sample belongs to at most one of the two sets.")
    check_choice(statistic, STATISTICS, "statistic")
    if chunk_size is not None:
        if statistic != "median":
            raise ValueError(f"chunked scoring computes the median statistic only; got statistic={statistic!r}.")
        return _score_chunked(embeddings, y, wrong, right, n_classes, check_chunk_size(chunk_size))
    if statistic == "lcb" and (not isinstance(n_bootstrap, (int, np.integer)) or n_bootstrap < 2 or not 0 < confidence < 1):
        raise ValueError(f"lcb needs n_bootstrap >= 2 and confidence in (0, 1); got {n_bootstrap!r} and {confidence!r}.")
    return _compute_scores(embeddings, y, wrong, right, n_classes, statistic, n_bootstrap, confidence,
                           np.random.default_rng(seed))


def _compute_scores(embeddings, y, is_wrong, is_right, n_classes, statistic="median", n_bootstrap=200, confidence=0.9,
                    rng=None) -> NeuronScores:
    scores = np.full((n_classes, embeddings.shape[1]), np.nan)
    n_wrong = np.zeros(n_classes, dtype=np.int64)
    n_right = np.zeros(n_classes, dtype=np.int64)
    for label in range(n_classes):
        in_class = y == label
        wrong = in_class & is_wrong
        right = in_class & is_right
        n_wrong[label], n_right[label] = wrong.sum(), right.sum()
        if _warn_unscored(label, n_wrong[label], n_right[label]):
            continue
        wrong_values, right_values = embeddings[wrong], embeddings[right]
        delta = np.median(wrong_values, axis=0) - np.median(right_values, axis=0)
        if statistic == "median":
            scores[label] = delta
            continue
        spread = _robust_spread(embeddings[in_class & (is_wrong | is_right)])
        if statistic == "scaled":
            scores[label] = delta / spread
            continue
        draws = np.empty((n_bootstrap, embeddings.shape[1]))
        for draw in range(n_bootstrap):
            resampled_wrong = wrong_values[rng.integers(len(wrong_values), size=len(wrong_values))]
            resampled_right = right_values[rng.integers(len(right_values), size=len(right_values))]
            draws[draw] = np.median(resampled_wrong, axis=0) - np.median(resampled_right, axis=0)
        scores[label] = np.quantile(draws, 1.0 - confidence, axis=0) / spread
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


def _score_chunked(embeddings, y, is_wrong, is_right, n_classes, chunk_size) -> NeuronScores:
    """The ``median`` scores, reading the embeddings a block of rows at a time (exact medians, see ``group_medians``)."""
    n_wrong = np.bincount(y[is_wrong], minlength=n_classes)
    n_right = np.bincount(y[is_right], minlength=n_classes)
    scored = np.array([not _warn_unscored(label, n_wrong[label], n_right[label]) for label in range(n_classes)])
    # group 2y: class y in the error set, 2y + 1: class y in the reference set, -1: neither / unscored class
    groups = np.where(scored[y] & (is_wrong | is_right), 2 * y + is_right, -1)
    medians = group_medians(embeddings, groups, 2 * n_classes, chunk_size)
    scores = np.full((n_classes, embeddings.shape[1]), np.nan)
    scores[scored] = (medians[0::2] - medians[1::2])[scored]
    return NeuronScores(scores=scores, n_wrong=n_wrong.astype(np.int64), n_right=n_right.astype(np.int64))


def _robust_spread(values: np.ndarray) -> np.ndarray:
    """Per neuron: IQR / 1.349 (the standard deviation for Gaussian data, robust to outliers); the standard
    deviation where the IQR is 0 (a ReLU neuron that is mostly zero), and a tiny floor for constant neurons."""
    q25, q75 = np.quantile(values, [0.25, 0.75], axis=0)
    spread = (q75 - q25) / 1.349
    spread = np.where(spread > 0, spread, values.std(axis=0))
    return np.maximum(spread, 1e-6 * max(float(np.max(spread)), 1e-12))


def permutation_discoveries(embeddings, y, wrong, right, n_classes: int, *, threshold: float = 0.0, rule: str = "any",
                            statistic: str = "median", n_permutations: int = 20, seed: int = 0) -> float:
    """How many neurons pass λ by chance: the mean number selected when the wrong/right labels are
    shuffled within each class (a false-discovery estimate for the identification summary).

    Parameters: as :func:`score_error_sets` and :func:`select_biased_neurons`; ``n_permutations``
    shuffles, seeded by ``seed`` (the ``lcb`` statistic is estimated with 50 bootstrap draws here).
    """
    y = np.asarray(y)
    wrong, right = np.asarray(wrong, dtype=bool), np.asarray(right, dtype=bool)
    rng = np.random.default_rng(seed)
    counts = []
    for _ in range(n_permutations):
        shuffled_wrong, shuffled_right = wrong.copy(), right.copy()
        for label in np.unique(y):
            rows = np.flatnonzero((y == label) & (wrong | right))
            permuted = rng.permutation(rows)
            shuffled_wrong[rows] = wrong[permuted]
            shuffled_right[rows] = right[permuted]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            scores = score_error_sets(embeddings, y, shuffled_wrong, shuffled_right, n_classes, statistic=statistic,
                                      n_bootstrap=50, seed=int(rng.integers(2**31)))
            mask = select_biased_neurons(scores.scores, threshold, rule, warn=False)
        counts.append(int(mask.any(axis=0).sum() if mask.ndim == 2 else mask.sum()))
    return float(np.mean(counts))


def select_biased_neurons(scores, threshold: float = 0.0, rule: str = "all", *, top_k: int | None = None,
                          warn: bool = True) -> np.ndarray:
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
    if top_k is not None:
        mask = _cap(mask, scores, top_k)
    if warn:
        _warn_degenerate(mask)
    return mask


def _cap(mask: np.ndarray, scores: np.ndarray, top_k) -> np.ndarray:
    """The ``top_k`` highest-scoring entries of ``mask``."""
    if not isinstance(top_k, (int, np.integer)) or top_k < 1:
        raise ValueError(f"top_k must be a positive integer or None; got {top_k!r}.")
    strength = np.nan_to_num(scores, nan=-np.inf) if mask.ndim == 2 else np.nanmax(np.nan_to_num(scores, nan=-np.inf), axis=0)
    if mask.sum() <= top_k:
        return mask
    kept = np.zeros(mask.size, dtype=bool)
    ranked = np.argsort(-np.where(mask, strength, -np.inf), axis=None, kind="stable")[:top_k]
    kept[ranked] = True
    return kept.reshape(mask.shape)


def _warn_degenerate(mask: np.ndarray) -> None:
    n_selected = int(mask.sum())
    if n_selected == 0:
        message = "no neuron was selected as biased: the head will be retrained without suppression."
    elif n_selected == mask.size:
        message = "every neuron was selected as biased: the retrained head will see only zeros (raise the threshold)."
    else:
        return
    warnings.warn(message, UserWarning, stacklevel=3)


def spuriousness_fit(scores) -> float:
    """``SFit = Σ_y Σ_i |δ_i^y|`` over scored classes; higher = biased and core neurons more separable."""
    scores = np.asarray(scores, dtype=np.float64)
    return float(np.nansum(np.abs(scores)))
