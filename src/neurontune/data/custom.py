"""The user's own data (``data_versioning.name: custom``): a folder with one table, checked before anything is written.

``data_versioning.root`` holds the table (``data_versioning.table``, by default ``labels.csv`` or
``embeddings.npz``); ``modality`` says what it lists:

- ``image``: ``labels.csv`` (or ``.parquet``) with ``path,label,split``; paths absolute or relative to the
  folder. Inputs are the image paths (read batch by batch by the model's preprocessing).
- ``text``: ``labels.csv`` or ``.parquet`` with ``text,label,split``. Inputs are the texts.
- ``embeddings``: precomputed penultimate-layer features, so any modality can use identification and
  regulation. ``.npz`` with ``features`` (N, M) float, ``labels`` (N,), ``splits`` (N,), ``head_weight``
  (C, M), ``head_bias`` (C,) [, ``class_names`` (C,), ``group`` (N,), ``<attribute>`` (N,)]; or ``.parquet``
  with ``label``, ``split``, ``feature_0 … feature_{M-1}`` [, ``group``, ``<attribute>``] and the head in
  ``head.npz`` (``weight``, ``bias``) beside it. Inputs are the features.

``label`` holds class names from ``data_versioning.classes`` (whose order is the model's output order);
``split`` is ``train``, ``val`` or ``test``. Group labels are optional and read by evaluation only: a
``group`` column is taken as given; the column named by ``data_versioning.attribute`` gives
group = class × attribute (:func:`neurontune.core.groups.group_ids`). Blank cells mean "unknown" (-1),
so groups on the test split alone are enough. Without either, the metadata has no ``a`` / ``group`` column.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from neurontune.core.groups import group_ids
from neurontune.data.published import DatasetLayoutError, _check_images
from neurontune.data.tables import SPLITS

MODALITIES = ("image", "text", "embeddings")
DEFAULT_TABLES = {"image": "labels.csv", "text": "labels.csv", "embeddings": "embeddings.npz"}
REQUIRED_COLUMNS = {"image": ("path", "label", "split"), "text": ("text", "label", "split"),
                    "embeddings": ("label", "split")}
FEATURE_PREFIX = "feature_"
UNKNOWN = -1


def build_custom(config: dict) -> tuple[dict[str, np.ndarray], pd.DataFrame]:
    """``({"inputs": …[, "head_weight", "head_bias"]}, metadata)`` of the user's folder; every check first.

    ``config``: ``data_versioning`` (root, modality, table, classes, attribute).
    """
    modality = config.get("modality")
    if modality not in MODALITIES:
        raise DatasetLayoutError(f"custom: data_versioning.modality must be one of {list(MODALITIES)}; got {modality!r}.")
    root = Path(str(config.get("root") or "")).expanduser()
    if not config.get("root") or not root.is_dir():
        raise DatasetLayoutError(f"custom: the data folder {str(root)!r} does not exist; set data_versioning.root to the "
                                 "folder holding your table (docs/your_model.md has the layouts).")
    path = root / (config.get("table") or DEFAULT_TABLES[modality])
    classes = [str(name) for name in config["classes"]]
    if modality == "embeddings":
        table, arrays = _read_embeddings(path)
    else:
        table, arrays = _read_table(path), {}
    _require_columns(table, (*REQUIRED_COLUMNS[modality], *([config["attribute"]] if config.get("attribute") else [])), path)
    split = _splits(table["split"], path)
    y = _class_ids(table["label"], classes, path)
    metadata = pd.DataFrame({"sample_id": np.arange(len(table), dtype=np.int64), "split": split, "y": y})
    metadata = _with_groups(metadata, table, config.get("attribute"), len(classes), path)
    if modality == "image":
        inputs = _image_paths(table["path"], root, path)
    elif modality == "text":
        inputs = _texts(table["text"], path)
    else:
        inputs = _features(arrays, len(table), classes, path)
    return inputs, metadata


def _read_table(path: Path) -> pd.DataFrame:
    if not path.is_file():
        raise DatasetLayoutError(f"custom: expected the table {path.name} at {path}; set data_versioning.root to the "
                                 "folder holding it (or data_versioning.table to its name).")
    try:
        if path.suffix == ".parquet":
            return pd.read_parquet(path)
        if path.suffix in (".csv", ".tsv"):
            return pd.read_csv(path, sep="\t" if path.suffix == ".tsv" else ",", keep_default_na=False, na_values=[""])
    except Exception as error:  # noqa: BLE001 — any parse failure: name the file
        raise DatasetLayoutError(f"custom: cannot read {path}: {type(error).__name__}: {error}") from error
    raise DatasetLayoutError(f"custom: {path.name} must be a .csv, .tsv or .parquet table; got {path.suffix or 'no suffix'}.")


def _read_embeddings(path: Path) -> tuple[pd.DataFrame, dict[str, np.ndarray]]:
    """The embeddings table (label, split, optional group / attribute columns) and the arrays beside it."""
    if path.suffix == ".npz":
        if not path.is_file():
            raise DatasetLayoutError(f"custom: expected the embeddings file {path}; set data_versioning.root / table.")
        try:
            with np.load(path, allow_pickle=False) as loaded:
                arrays = {key: loaded[key] for key in loaded.files}
        except Exception as error:  # noqa: BLE001
            raise DatasetLayoutError(f"custom: cannot read {path}: {type(error).__name__}: {error}") from error
        missing = [key for key in ("features", "labels", "splits", "head_weight", "head_bias") if key not in arrays]
        if missing:
            raise DatasetLayoutError(f"custom: {path} lacks array(s) {missing}; expected features (N, M), labels (N,), "
                                     f"splits (N,), head_weight (C, M), head_bias (C,); found {sorted(arrays)}.")
        per_sample = {key: value for key, value in arrays.items() if value.ndim == 1 and len(value) == len(arrays["labels"])
                      and key not in ("head_bias", "class_names")}
        table = pd.DataFrame({("label" if key == "labels" else "split" if key == "splits" else key): value
                              for key, value in per_sample.items()})
        return table, arrays
    table = _read_table(path)
    features = [column for column in table.columns if str(column).startswith(FEATURE_PREFIX)]
    if not features:
        raise DatasetLayoutError(f"custom: {path} has no feature columns ({FEATURE_PREFIX}0 …); found {list(table.columns)}.")
    head = path.parent / "head.npz"
    if not head.is_file():
        raise DatasetLayoutError(f"custom: the head of {path.name} must be in {head} (arrays weight (C, M) and bias (C,)).")
    with np.load(head, allow_pickle=False) as loaded:
        if not {"weight", "bias"} <= set(loaded.files):
            raise DatasetLayoutError(f"custom: {head} must hold arrays 'weight' and 'bias'; found {loaded.files}.")
        arrays = {"head_weight": loaded["weight"], "head_bias": loaded["bias"],
                  **({"class_names": loaded["class_names"]} if "class_names" in loaded.files else {})}
    order = sorted(features, key=lambda column: int(str(column)[len(FEATURE_PREFIX):]))
    arrays["features"] = table[order].to_numpy(dtype=np.float32)
    return table.drop(columns=features), arrays


def _require_columns(table: pd.DataFrame, columns, path: Path) -> None:
    missing = [column for column in columns if column not in table.columns]
    if missing:
        raise DatasetLayoutError(f"custom: {path} lacks column(s) {missing}; expected {list(columns)} "
                                 f"(+ optional 'group'), found {list(table.columns)}.")
    if len(table) == 0:
        raise DatasetLayoutError(f"custom: {path} has no rows.")


def _splits(column: pd.Series, path: Path) -> np.ndarray:
    split = column.astype(str).str.strip().to_numpy()
    unknown = sorted(set(split) - set(SPLITS))
    if unknown:
        rows = np.flatnonzero(~np.isin(split, SPLITS))[:5].tolist()
        raise DatasetLayoutError(f"custom: {path} column 'split' has {unknown} (rows {rows}); expected {list(SPLITS)}.")
    empty = [name for name in SPLITS if not (split == name).any()]
    if empty:
        raise DatasetLayoutError(f"custom: {path} has no {empty} rows; every split in {list(SPLITS)} needs samples.")
    return split.astype(object)


def _class_ids(column: pd.Series, classes: list[str], path: Path) -> np.ndarray:
    """Class ids in the order of ``classes``; integer labels are ids only when no class name looks like one."""
    values = column.to_numpy()
    if np.issubdtype(values.dtype, np.integer) and not set(classes) >= {str(v) for v in np.unique(values)}:
        ids = values.astype(np.int64)
        bad = np.flatnonzero((ids < 0) | (ids >= len(classes)))
        if bad.size:
            raise DatasetLayoutError(f"custom: {path} column 'label' has ids {np.unique(ids[bad])[:5].tolist()} outside "
                                     f"[0, {len(classes)}) (rows {bad[:5].tolist()}); the declared classes are {classes}.")
        return ids
    names = pd.Series(values).astype(str).str.strip()
    lookup = {name: k for k, name in enumerate(classes)}
    ids = names.map(lookup)
    bad = np.flatnonzero(ids.isna().to_numpy())
    if bad.size:
        raise DatasetLayoutError(f"custom: {path} column 'label' has {sorted(set(names.iloc[bad]))[:5]} (rows "
                                 f"{bad[:5].tolist()}), outside the declared classes {classes} (data_versioning.classes).")
    return ids.to_numpy(dtype=np.int64)


def _with_groups(metadata: pd.DataFrame, table: pd.DataFrame, attribute: str | None, n_classes: int, path: Path) -> pd.DataFrame:
    """``metadata`` plus ``a`` (attribute code) and ``group`` when the table gives them; -1 where unknown."""
    if attribute:
        known = table[attribute].notna().to_numpy()
        values = table[attribute].astype(str).to_numpy()
        levels = sorted(set(values[known]))
        if len(levels) < 2:
            raise DatasetLayoutError(f"custom: attribute column {attribute!r} of {path} has {len(levels)} value(s) "
                                     f"{levels}; an attribute needs at least 2.")
        codes = {level: k for k, level in enumerate(levels)}
        a = np.full(len(table), UNKNOWN, dtype=np.int64)
        a[known] = [codes[value] for value in values[known]]
        group = np.full(len(table), UNKNOWN, dtype=np.int64)
        group[known] = group_ids(metadata["y"].to_numpy()[known], a[known], n_classes, len(levels))
        return metadata.assign(a=a, group=group)
    if "group" in table.columns:
        column = pd.to_numeric(table["group"], errors="coerce")
        bad = np.flatnonzero((table["group"].notna() & (column.isna() | (column < 0) | (column % 1 != 0))).to_numpy())
        if bad.size:
            raise DatasetLayoutError(f"custom: {path} column 'group' must hold integers >= 0 or blanks (unknown); rows "
                                     f"{bad[:5].tolist()} have {table['group'].iloc[bad[:5]].tolist()}.")
        return metadata.assign(group=column.fillna(UNKNOWN).to_numpy(dtype=np.int64))
    return metadata


def _image_paths(column: pd.Series, root: Path, path: Path) -> dict[str, np.ndarray]:
    if column.isna().any():
        raise DatasetLayoutError(f"custom: {path} column 'path' is blank in rows {np.flatnonzero(column.isna())[:5].tolist()}.")
    paths = np.array([str(p if Path(p).is_absolute() else root / p) for p in column.astype(str)])
    missing = [p for p in paths if not Path(p).is_file()]
    if missing:
        raise DatasetLayoutError(f"custom: {len(missing)} of {len(paths)} images listed in {path.name} do not exist, "
                                 f"e.g. {missing[0]}; paths are absolute or relative to {root}.")
    _check_images("custom", paths)
    return {"inputs": paths}


def _texts(column: pd.Series, path: Path) -> dict[str, np.ndarray]:
    blank = np.flatnonzero(column.isna().to_numpy())
    if blank.size:
        raise DatasetLayoutError(f"custom: {path} column 'text' is empty in rows {blank[:5].tolist()}.")
    return {"inputs": column.astype(str).to_numpy().astype(str)}


def _features(arrays: dict, n_rows: int, classes: list[str], path: Path) -> dict[str, np.ndarray]:
    features, weight, bias = (np.asarray(arrays[key]) for key in ("features", "head_weight", "head_bias"))
    if features.ndim != 2 or features.shape[0] != n_rows or features.dtype.kind not in "fiu":
        raise DatasetLayoutError(f"custom: {path} features must be a numeric ({n_rows}, M) array; got {features.dtype} "
                                 f"{features.shape}.")
    bad = np.flatnonzero(~np.isfinite(features).all(axis=1))
    if bad.size:
        raise DatasetLayoutError(f"custom: {path} features have NaN/inf in {bad.size} rows (first {bad[:5].tolist()}).")
    if weight.shape != (len(classes), features.shape[1]) or bias.shape != (len(classes),):
        raise DatasetLayoutError(f"custom: {path} head must be weight ({len(classes)}, {features.shape[1]}) and bias "
                                 f"({len(classes)},) for {len(classes)} classes and {features.shape[1]} features; got "
                                 f"{weight.shape} and {bias.shape}.")
    if "class_names" in arrays and [str(name) for name in arrays["class_names"]] != classes:
        raise DatasetLayoutError(f"custom: {path} names the head's outputs {[str(n) for n in arrays['class_names']]} but "
                                 f"data_versioning.classes is {classes}; list the classes in the order of the head's rows.")
    return {"inputs": features.astype(np.float32), "head_weight": weight.astype(np.float32),
            "head_bias": bias.astype(np.float32)}
