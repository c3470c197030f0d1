"""The metadata table every benchmark shares, its validation, and the content digest."""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd

from neurontune.core.groups import group_ids, has_group_labels

SPLITS = ("train", "val", "test")
METADATA_COLUMNS = ("sample_id", "split", "y", "a", "group")
#: The columns every training-side stage may read; ``a`` and ``group`` are for evaluation only.
CLASS_LABEL_COLUMNS = ("sample_id", "split", "y")


def build_metadata(split, y, a, *, n_attributes: int = 2, sample_id=None, **columns) -> pd.DataFrame:
    """The metadata table every benchmark builder returns: ``sample_id, split, y, a, group`` (+ ``columns``).

    ``group`` comes from :func:`neurontune.core.groups.group_ids` (``y * n_attributes + a``), the one
    definition of a group id; ``sample_id`` defaults to the row number.
    """
    y = integer_values(y, "y")
    a = integer_values(a, "a")
    n_classes = int(y.max()) + 1 if y.size else 2
    sample_id = np.arange(len(y)) if sample_id is None else integer_values(sample_id, "sample_id")
    return pd.DataFrame({"sample_id": sample_id, "split": np.asarray(split), "y": y, "a": a,
                         "group": group_ids(y, a, max(n_classes, 2), n_attributes), **columns})


def integer_values(values, name: str, source: str = "metadata") -> np.ndarray:
    """``values`` as int64, refusing what a cast would change: a fractional label (0.5 would become 0), NaN, text."""
    array = np.asarray(values)
    if array.size and not np.issubdtype(array.dtype, np.integer):
        numbers = pd.to_numeric(pd.Series(array.ravel()), errors="coerce").to_numpy(dtype=np.float64)
        bad = np.flatnonzero(~np.isfinite(numbers) | (numbers != np.round(numbers)))
        if bad.size:
            raise ValueError(f"{source} column {name!r} must hold integers; {bad.size} row(s) do not, e.g. row "
                             f"{int(bad[0])} = {array.ravel()[bad[0]]} (rows {bad[:5].tolist()}). Fix those rows: "
                             "a cast would silently change them.")
        array = numbers.reshape(array.shape)
    return array.astype(np.int64)


def validate_metadata(metadata: pd.DataFrame, n_classes: int, columns=METADATA_COLUMNS, source: str = "metadata") -> pd.DataFrame:
    """Check a benchmark metadata table; raise naming the column/split at fault."""
    missing = [column for column in columns if column not in metadata.columns]
    if missing:
        raise ValueError(
            f"{source} is missing column(s) {missing}; expected columns {list(columns)}, found {list(metadata.columns)}."
        )
    unknown = sorted(set(metadata["split"]) - set(SPLITS))
    if unknown:
        raise ValueError(f"{source} column 'split' has unknown value(s) {unknown}; expected {list(SPLITS)}.")
    for split in SPLITS:
        if not (metadata["split"] == split).any():
            raise ValueError(f"{source} has an empty split {split!r}: every split in {list(SPLITS)} needs samples.")
    labels = metadata["y"].to_numpy()
    if not np.issubdtype(labels.dtype, np.integer) or labels.min() < 0 or labels.max() >= n_classes:
        raise ValueError(
            f"{source} column 'y' must hold integer labels in [0, {n_classes}); got dtype {labels.dtype}, "
            f"values {labels.min()}..{labels.max()}."
        )
    if metadata["sample_id"].duplicated().any():
        raise ValueError(f"{source} column 'sample_id' has duplicates; every sample needs a unique id.")
    return metadata


def split_indices(metadata: pd.DataFrame, split: str) -> np.ndarray:
    """Row positions of ``split``, in table order."""
    return np.flatnonzero(metadata["split"].to_numpy() == split)


def content_digest(inputs: np.ndarray, metadata: pd.DataFrame) -> str:
    """SHA-256 of the inputs' bytes, shape and dtype, and of the metadata table's values."""
    digest = hashlib.sha256()
    digest.update(f"{inputs.dtype.str}{inputs.shape}".encode())
    digest.update(np.ascontiguousarray(inputs).tobytes())
    digest.update(pd.util.hash_pandas_object(metadata, index=False).to_numpy().tobytes())
    digest.update(",".join(metadata.columns).encode())
    return digest.hexdigest()


def group_counts(metadata: pd.DataFrame) -> dict[str, dict[str, int]]:
    """``{split: {"y=0,a=1": count}}`` for the dataset manifest (``{"group=g": count}`` when the data give groups
    but no attribute); rows whose group is unknown (-1) are not counted, and a split with none known is omitted."""
    keys = ["y", "a"] if "a" in metadata.columns else ["group"] if "group" in metadata.columns else []
    known = metadata[(metadata[keys] >= 0).all(axis=1)] if keys else metadata.iloc[:0]
    table: dict[str, dict[str, int]] = {}
    for (split, *values), count in known.groupby(["split", *keys]).size().items():
        table.setdefault(str(split), {})[",".join(f"{key}={value}" for key, value in zip(keys, values))] = int(count)
    return table


def group_columns(metadata: pd.DataFrame) -> list[str]:
    """The optional group columns (``a``, ``group``) ``metadata`` has: none when the data have no group labels."""
    return [column for column in METADATA_COLUMNS if column not in CLASS_LABEL_COLUMNS and column in metadata.columns]


def split_arrays(inputs: np.ndarray, labels_table: pd.DataFrame, split: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(inputs, y, sample_id)`` of one split; inputs and table rows must align one to one."""
    if len(inputs) != len(labels_table):
        raise ValueError(
            f"raw inputs have {len(inputs)} samples but the metadata table has {len(labels_table)} rows; "
            "they must describe the same samples in the same order."
        )
    rows = split_indices(labels_table, split)
    if rows.size == 0:
        raise ValueError(f"split {split!r} is empty; every split in {list(SPLITS)} needs samples.")
    return inputs[rows], labels_table["y"].to_numpy()[rows], labels_table["sample_id"].to_numpy()[rows]


def split_groups(metadata: pd.DataFrame, split: str) -> np.ndarray | None:
    """Group ids of ``split``'s rows in table order (-1 = unknown), or None when the table has no ``group`` column."""
    if "group" not in metadata.columns:
        return None
    return metadata["group"].to_numpy()[split_indices(metadata, split)]


def splits_with_groups(metadata: pd.DataFrame) -> dict[str, bool]:
    """``{split: whether it has group labels}`` by the one rule, :func:`neurontune.core.groups.has_group_labels`."""
    return {split: has_group_labels(split_groups(metadata, split)) for split in SPLITS}
