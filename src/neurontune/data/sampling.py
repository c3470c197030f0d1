"""Split and attribute assignment shared by the bundled benchmarks.

Every bundled benchmark realises a per-split spurious correlation the same way:
within each split and class, exactly ``round(correlation * n)`` samples carry
the class's *aligned* attribute value. Counts are exact, not sampled, so group
sizes are reproducible.
"""

from __future__ import annotations

import numpy as np

from neurontune.data.tables import SPLITS


def check_split_settings(split_sizes: dict, correlations: dict) -> None:
    """Every split needs a positive size and a correlation in [0, 1]."""
    for name in SPLITS:
        if name not in split_sizes or int(split_sizes[name]) < 1:
            raise ValueError(f"split_sizes[{name!r}] must be a positive integer; got {split_sizes.get(name)!r}.")
        if name not in correlations or not 0.0 <= float(correlations[name]) <= 1.0:
            raise ValueError(f"correlations[{name!r}] must be in [0, 1]; got {correlations.get(name)!r}.")


def split_column(split_sizes: dict) -> np.ndarray:
    """``["train"] * n_train + ["val"] * n_val + ["test"] * n_test``."""
    return np.repeat(np.array(SPLITS), [int(split_sizes[s]) for s in SPLITS])


def assign_attributes(labels: np.ndarray, split: np.ndarray, correlations: dict, rng: np.random.Generator) -> np.ndarray:
    """Binary attribute per sample with ``P(a = y) = correlations[split]`` exactly, per split and class.

    Parameters
    ----------
    labels : int array (N,), binary class labels
    split : str array (N,)
    correlations : {split: float in [0, 1]}
    rng : numpy Generator

    Returns
    -------
    attribute : int array (N,)
    """
    attribute = np.empty_like(labels)
    for name in SPLITS:
        for label in (0, 1):
            rows = np.flatnonzero((split == name) & (labels == label))
            aligned = np.zeros(len(rows), dtype=bool)
            aligned[: int(round(correlations[name] * len(rows)))] = True
            attribute[rows] = np.where(rng.permutation(aligned), label, 1 - label)
    return attribute


def group_quota(split_sizes: dict, correlations: dict) -> dict[tuple[str, int, bool], int]:
    """Class-balanced sample counts ``{(split, class, aligned): n}`` for benchmarks drawn from a fixed pool.

    Each split holds ``size // 2`` samples per class (class 0 gets the odd one) and,
    within each class, ``round(correlation * n_class)`` carry the aligned attribute.
    """
    quota = {}
    for name in SPLITS:
        size = int(split_sizes[name])
        for label, n_class in ((0, size - size // 2), (1, size // 2)):
            n_aligned = int(round(float(correlations[name]) * n_class))
            quota[(name, label, True)] = n_aligned
            quota[(name, label, False)] = n_class - n_aligned
    return quota
