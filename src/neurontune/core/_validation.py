"""Input checks shared by the public functions of :mod:`neurontune.core`.

Every check raises ``ValueError``/``TypeError`` with a message that names the
argument, what was expected and what arrived, so a user can fix the call.
"""

from __future__ import annotations

import numpy as np


def check_embeddings(embeddings, name: str = "embeddings") -> np.ndarray:
    """Return ``embeddings`` as a finite float array of shape (N, M)."""
    array = np.asarray(embeddings)
    if array.ndim != 2:
        raise ValueError(f"{name} must be a 2-D array (n_samples, n_neurons); got shape {array.shape}.")
    if array.shape[0] == 0 or array.shape[1] == 0:
        raise ValueError(f"{name} is empty (shape {array.shape}); expected at least one sample and one neuron.")
    if not np.issubdtype(array.dtype, np.number) or np.issubdtype(array.dtype, np.complexfloating):
        raise TypeError(f"{name} must hold real numbers; got dtype {array.dtype}.")
    array = array.astype(np.float64 if array.dtype == np.float64 else np.float32, copy=False)
    if not np.all(np.isfinite(array)):
        bad = int(np.size(array) - np.count_nonzero(np.isfinite(array)))
        raise ValueError(f"{name} contains {bad} NaN/inf values; embeddings must be finite.")
    return array


def check_labels(labels, n_classes: int, name: str = "labels", n_samples: int | None = None) -> np.ndarray:
    """Return ``labels`` as an int64 vector with values in ``[0, n_classes)``."""
    check_n_classes(n_classes)
    array = np.asarray(labels)
    if array.ndim != 1:
        raise ValueError(f"{name} must be a 1-D array; got shape {array.shape}.")
    if array.size and not np.issubdtype(array.dtype, np.integer):
        if np.issubdtype(array.dtype, np.floating) and np.all(np.isfinite(array)) and np.all(array == np.round(array)):
            array = array.astype(np.int64)
        else:
            raise TypeError(f"{name} must hold integer class ids; got dtype {array.dtype}.")
    if n_samples is not None and array.shape[0] != n_samples:
        raise ValueError(f"{name} has {array.shape[0]} entries but the embeddings have {n_samples} rows; they must match.")
    if array.size and (array.min() < 0 or array.max() >= n_classes):
        raise ValueError(
            f"{name} must lie in [0, {n_classes}); got values from {array.min()} to {array.max()}."
        )
    return array.astype(np.int64, copy=False)


def check_classes_present(labels: np.ndarray, n_classes: int, name: str) -> np.ndarray:
    """Raise unless every class in ``[0, n_classes)`` occurs in ``labels`` (a head or a worst-class score
    computed without a class is silently wrong)."""
    counts = np.bincount(labels, minlength=n_classes)
    missing = np.flatnonzero(counts == 0)
    if missing.size:
        raise ValueError(f"{name} has no sample of class(es) {missing.tolist()} (class counts {counts.tolist()}); "
                         f"every one of the {n_classes} classes needs samples here.")
    return labels


def check_n_classes(n_classes) -> int:
    if not isinstance(n_classes, (int, np.integer)) or isinstance(n_classes, bool) or n_classes < 2:
        raise ValueError(f"n_classes must be an integer >= 2; got {n_classes!r}.")
    return int(n_classes)


def check_head(weight, bias, n_neurons: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Return a linear head ``(weight (C, M), bias (C,))`` after checking shapes and finiteness."""
    weight = check_embeddings(weight, "head weight")
    bias = np.asarray(bias, dtype=weight.dtype)
    if bias.shape != (weight.shape[0],):
        raise ValueError(f"head bias must have shape ({weight.shape[0]},) to match the weight; got {bias.shape}.")
    if not np.all(np.isfinite(bias)):
        raise ValueError("head bias contains NaN/inf values; it must be finite.")
    if n_neurons is not None and weight.shape[1] != n_neurons:
        raise ValueError(
            f"head weight has {weight.shape[1]} input neurons but the embeddings have {n_neurons}; "
            "the head and the embeddings must come from the same model."
        )
    return weight, bias


def check_same_width(widths: dict[str, int]) -> None:
    """Raise when embeddings of different splits disagree on the number of neurons."""
    if len(set(widths.values())) > 1:
        listed = ", ".join(f"{k}: {v}" for k, v in widths.items())
        raise ValueError(f"embedding widths differ between splits ({listed}); all splits must come from one backbone.")


def check_mask(mask, n_classes: int, n_neurons: int, name: str = "mask") -> np.ndarray:
    """Return a boolean neuron mask of shape (M,) or (C, M)."""
    array = np.asarray(mask)
    if array.dtype != bool:
        raise TypeError(f"{name} must be boolean (True = suppress the neuron); got dtype {array.dtype}.")
    if array.shape not in ((n_neurons,), (n_classes, n_neurons)):
        raise ValueError(f"{name} must have shape ({n_neurons},) or ({n_classes}, {n_neurons}); got {array.shape}.")
    return array


def check_choice(value, choices, name: str):
    if value not in choices:
        raise ValueError(f"{name} must be one of {sorted(choices)}; got {value!r}.")
    return value


def check_fraction(value, name: str, *, low: float = 0.0, high: float = 1.0):
    if not isinstance(value, (int, float, np.floating)) or not low <= float(value) <= high:
        raise ValueError(f"{name} must be a number in [{low}, {high}]; got {value!r}.")
    return float(value)
