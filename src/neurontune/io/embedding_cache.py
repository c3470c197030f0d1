"""The embedding cache every stage after ``embedding_caching`` reads, validated on load.

A cache file holds, for one split: ``embeddings`` (N, M), ``logits`` (N, C) of the ERM model,
``early_logits`` (N, C) of its early checkpoint, ``y`` (N,) class labels and ``sample_id`` (N,).
A corrupt or tampered cache (NaN, mismatched shapes, labels out of range, duplicated ids) is an
error naming the file, the array and the first offending rows, before anything is fitted.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from kedro.io import DatasetError

from neurontune.io.datasets import NpzDataset

REQUIRED = ("embeddings", "logits", "y", "sample_id")
OPTIONAL = ("early_logits",)
#: A row whose largest |value| exceeds this many times the split's typical row (the median over rows of
#: each row's largest |value|) is refused: finite, but a corrupt or hostile value that overflows a fit.
MAGNITUDE_BOUND = 1e4


def outlying_rows(array: np.ndarray, bound: float = MAGNITUDE_BOUND) -> tuple[np.ndarray, float]:
    """Rows of a finite (N, M) array whose largest |value| exceeds ``bound`` × the median row's, and that median."""
    peaks = np.abs(array).max(axis=1) if array.size else np.zeros(len(array))
    typical = float(np.median(peaks)) if peaks.size else 0.0
    if typical == 0.0:  # a split of all-zero rows has no scale to compare with
        return np.array([], dtype=np.int64), typical
    return np.flatnonzero(peaks > bound * typical), typical


def validate_embedding_cache(arrays: dict[str, np.ndarray], source: str) -> dict[str, np.ndarray]:
    """Check one split's cache; raise ``ValueError`` naming ``source``, the array and the rows at fault."""
    missing = [key for key in REQUIRED if key not in arrays]
    if missing:
        raise ValueError(f"{source}: the embedding cache lacks {missing}; expected {list(REQUIRED)} "
                         f"(+ {list(OPTIONAL)}). Rerun `kedro run --pipelines embedding_caching`.")
    n = len(arrays["y"])
    for key in ("embeddings", "logits", *[k for k in OPTIONAL if k in arrays]):
        array = arrays[key]
        if array.ndim != 2 or array.shape[0] != n:
            raise ValueError(f"{source}: array {key!r} has shape {array.shape}; expected ({n}, …) like 'y'.")
        bad = np.flatnonzero(~np.isfinite(array).all(axis=1))
        if bad.size:
            raise ValueError(f"{source}: array {key!r} has NaN/inf values in {bad.size} rows (first: "
                             f"{bad[:5].tolist()}); the cache is corrupt — rerun embedding_caching.")
        huge, typical = outlying_rows(array)
        if huge.size:
            raise ValueError(f"{source}: array {key!r} has {huge.size} rows with values over {MAGNITUDE_BOUND:g} × the "
                             f"split's typical magnitude {typical:.3g} (first: {huge[:5].tolist()}, largest "
                             f"|value| {np.abs(array[huge]).max():.3g}); the cache is corrupt — rerun embedding_caching.")
    n_classes = arrays["logits"].shape[1]
    if "early_logits" in arrays and arrays["early_logits"].shape[1] != n_classes:
        raise ValueError(f"{source}: 'early_logits' has {arrays['early_logits'].shape[1]} classes but 'logits' "
                         f"has {n_classes}.")
    y = arrays["y"]
    if y.ndim != 1 or not np.issubdtype(y.dtype, np.integer):
        raise ValueError(f"{source}: array 'y' must be a 1-D integer array; got {y.dtype} {y.shape}.")
    bad = np.flatnonzero((y < 0) | (y >= n_classes))
    if bad.size:
        raise ValueError(f"{source}: array 'y' has labels outside [0, {n_classes}) in rows {bad[:5].tolist()} "
                         f"(values {np.unique(y[bad])[:5].tolist()}).")
    if arrays["sample_id"].shape != (n,) or len(np.unique(arrays["sample_id"])) != n:
        raise ValueError(f"{source}: array 'sample_id' must hold {n} unique ids.")
    return arrays


class EmbeddingCacheDataset(NpzDataset):
    """An :class:`NpzDataset` that validates the cache on load and refuses to save an invalid one."""

    def load(self) -> dict[str, np.ndarray]:
        arrays = super().load()
        try:
            return validate_embedding_cache(arrays, str(self._filepath))
        except ValueError as error:
            raise DatasetError(str(error)) from error

    def save(self, data: dict[str, np.ndarray]) -> None:
        validate_embedding_cache(data, str(Path(self._filepath)))
        super().save(data)
