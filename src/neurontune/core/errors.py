"""Label-free error sets and pseudo-groups: where NeuronTune finds more errors to learn from.

The paper identifies biased neurons from the ERM model's errors on half of validation. When
validation is as biased as training, that half holds a handful of errors per class. These
functions give other error sets, all from class labels only:

- ``crossfit``: held-out predictions of plain (ERM-like) linear heads fitted on the other folds
  of the training embeddings — honest for a frozen backbone, which never saw the labels;
- ``early``: the predictions of an early ERM checkpoint (JTT's idea; for a fine-tuned backbone,
  whose final model has memorised the training split);
- ``loss_quantile``: per class, the highest-loss fraction against the lowest-loss fraction, so
  a model that is rarely wrong still yields two sets.

A *pseudo-group* is (class, in the error set): the label-free stand-in for a group, used to
select hyperparameters (worst pseudo-group accuracy) and to balance retraining.
"""

from __future__ import annotations

import numpy as np

from neurontune.core._validation import check_embeddings, check_fraction, check_labels, check_n_classes
from neurontune.core.head import head_predict, retrain_head

ERROR_SOURCES = ("erm", "early", "crossfit", "loss_quantile")


def crossfit_predictions(embeddings, y, n_classes: int, *, n_folds: int = 5, weight_decay: float = 1e-3,
                         seed: int = 0) -> np.ndarray:
    """Held-out class predictions, shape (N,), of plain logistic heads fitted on the other ``n_folds − 1`` folds.

    The heads are fitted like ERM's (no class balancing), so they lean on the same shortcuts
    and err on the samples that contradict them. Folds are stratified by class and seeded.
    """
    embeddings = check_embeddings(embeddings, "embeddings")
    n_classes = check_n_classes(n_classes)
    y = check_labels(y, n_classes, "y", n_samples=len(embeddings))
    if not isinstance(n_folds, (int, np.integer)) or n_folds < 2:
        raise ValueError(f"n_folds must be an integer >= 2; got {n_folds!r}.")
    rng = np.random.default_rng(seed)
    fold = np.empty(len(y), dtype=np.int64)
    for label in np.unique(y):
        rows = rng.permutation(np.flatnonzero(y == label))
        fold[rows] = np.arange(len(rows)) % n_folds
    predictions = np.empty(len(y), dtype=np.int64)
    for k in range(n_folds):
        held_out = fold == k
        head = retrain_head(embeddings[~held_out], y[~held_out], n_classes, balance_classes=False,
                            weight_decay=weight_decay)
        predictions[held_out] = head_predict(embeddings[held_out], head)
    return predictions


def loss_quantile_sets(logits, y, n_classes: int, fraction: float = 0.2) -> tuple[np.ndarray, np.ndarray]:
    """Per class, the ``fraction`` of samples with the highest cross-entropy loss (``wrong``) and the
    ``fraction`` with the lowest (``right``); boolean arrays (N,)."""
    logits = check_embeddings(logits, "logits")
    y = check_labels(y, check_n_classes(n_classes), "y", n_samples=len(logits))
    fraction = check_fraction(fraction, "fraction", low=0.0, high=0.5)
    shifted = logits - logits.max(axis=1, keepdims=True)
    loss = np.log(np.exp(shifted).sum(axis=1)) - shifted[np.arange(len(y)), y]
    wrong, right = np.zeros(len(y), dtype=bool), np.zeros(len(y), dtype=bool)
    for label in np.unique(y):
        rows = np.flatnonzero(y == label)
        count = max(1, int(round(fraction * len(rows))))
        order = rows[np.argsort(loss[rows], kind="stable")]
        right[order[:count]] = True
        wrong[order[-count:]] = True
    return wrong, right


def pseudo_groups(y, in_error_set) -> np.ndarray:
    """Pseudo-group ids ``2 · y + in_error_set`` (class × error set), shape (N,)."""
    y = np.asarray(y, dtype=np.int64)
    in_error_set = np.asarray(in_error_set)
    if in_error_set.shape != y.shape or in_error_set.dtype != bool:
        raise ValueError(f"in_error_set must be a boolean array of shape {y.shape}; got {in_error_set.dtype} "
                         f"{in_error_set.shape}.")
    return 2 * y + in_error_set.astype(np.int64)
