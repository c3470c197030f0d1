"""Loaders for the published benchmarks, read from a local directory in the layout their users already have.

Nothing is downloaded. Each builder takes the ``data_versioning`` parameters and
reads ``config["root"]``:

- ``waterbirds``: ``metadata.csv`` (img_id, img_filename, y, split, place) beside the
  image folders, as in ``waterbird_complete95_forest2water2``. a = place (water).
- ``celeba``: the same ``metadata.csv`` columns (y = Blond_Hair, place = Male), images under
  ``img_align_celeba/``.
- ``multinli``: group DRO's ``metadata_random.csv`` (gold_label, sentence2_has_negation, split)
  and ``glue_data/MNLI/cached_{train,dev,dev…-mm}`` BERT features; inputs are the token
  arrays (N, 3, 128), so only a bert-base-uncased vocabulary fits them.
- ``civilcomments``: WILDS ``civilcomments_v1.0/all_data_with_identities.csv``; y = toxicity ≥ 0.5,
  a = any of the 8 identities ≥ 0.5 (the 4 training groups), plus one ``identity_<name>``
  column per identity for WILDS's 16 overlapping (label × identity) evaluation groups.

Image benchmarks return file paths (read batch by batch by the image backbones), so
``raw_inputs`` stays small; their digest covers the paths and labels, not the pixels.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from neurontune.data.tables import build_metadata, integer_values

SPLIT_CODES = {0: "train", 1: "val", 2: "test"}
#: Columns of the published tables that are class, attribute or id codes: never cast silently (split codes are
#: checked against SPLIT_CODES; CivilComments names its splits).
INTEGER_COLUMNS = frozenset({"img_id", "y", "place", "gold_label", "sentence2_has_negation"})
CIVILCOMMENTS_IDENTITIES = ("male", "female", "LGBTQ", "christian", "muslim", "other_religions", "black", "white")
MULTINLI_FEATURE_FILES = (
    "cached_train_bert-base-uncased_128_mnli",
    "cached_dev_bert-base-uncased_128_mnli",
    "cached_dev_bert-base-uncased_128_mnli-mm",
)


class DatasetLayoutError(FileNotFoundError):
    """A published benchmark's directory is missing or not in the expected layout."""


def build_waterbirds(config: dict) -> tuple[np.ndarray, pd.DataFrame]:
    """Waterbirds from ``config["root"]`` (the extracted ``waterbird_complete95_forest2water2`` folder)."""
    return _metadata_image_benchmark("waterbirds", config["root"], config.get("image_dir", ""))


def build_celeba(config: dict) -> tuple[np.ndarray, pd.DataFrame]:
    """CelebA from ``config["root"]``: ``metadata.csv`` and ``img_align_celeba/``."""
    return _metadata_image_benchmark("celeba", config["root"], config.get("image_dir", "img_align_celeba"))


def _metadata_image_benchmark(name: str, root: str, image_dir: str) -> tuple[np.ndarray, pd.DataFrame]:
    root = _existing_directory(name, root)
    table = _read_csv(name, root / "metadata.csv", ("img_id", "img_filename", "y", "split", "place"))
    paths = np.array([str(root / image_dir / filename) for filename in table["img_filename"]])
    missing = [path for path in paths if not Path(path).is_file()]
    if missing:
        raise DatasetLayoutError(
            f"{name}: {len(missing)} of {len(paths)} images listed in metadata.csv are missing under {root / image_dir}, "
            f"e.g. {missing[0]}; the images must sit at <root>/{image_dir + '/' if image_dir else ''}<img_filename>."
        )
    _check_images(name, paths)
    metadata = _metadata(table["img_id"], _split_names(name, table["split"]), table["y"], table["place"])
    return paths, metadata


def _check_images(name: str, paths: np.ndarray) -> None:
    """Every image file is non-empty and has a readable image header: a zero-byte or foreign file fails here,
    naming it, rather than in ERM training. (The pixels are decoded when read; a truncated file is named then.)"""
    from PIL import Image
    from tqdm.auto import tqdm

    bad = []
    for path in tqdm(paths, desc=f"{name}: checking images", disable=len(paths) < 5000):
        if Path(path).stat().st_size == 0:
            bad.append(f"{path} (zero bytes)")
            continue
        try:
            with Image.open(path) as image:
                image.verify()
        except (OSError, SyntaxError, ValueError) as error:  # PIL's UnidentifiedImageError is an OSError
            bad.append(f"{path} ({type(error).__name__}: {error})")
    if bad:
        raise DatasetLayoutError(f"{name}: {len(bad)} of {len(paths)} images listed in metadata.csv cannot be read, "
                                 f"e.g. {bad[0]}; replace or remove them (and their metadata.csv rows).")


def build_multinli(config: dict) -> tuple[np.ndarray, pd.DataFrame]:
    """MultiNLI as distributed with group DRO: 3 classes × negation in the hypothesis = 6 groups."""
    root = _existing_directory("multinli", config["root"])
    table = _read_csv("multinli", root / "metadata_random.csv", ("gold_label", "sentence2_has_negation", "split"))
    features = [feature for name in MULTINLI_FEATURE_FILES for feature in _load_glue_features(root / "glue_data" / "MNLI" / name)]
    if len(features) != len(table):
        raise DatasetLayoutError(
            f"multinli: the cached feature files hold {len(features)} examples but metadata_random.csv has {len(table)} rows; "
            "they must come from the same group DRO release."
        )
    tokens = np.stack([
        np.stack([_field(f, "input_ids"), _field(f, "input_mask", "attention_mask"), _field(f, "segment_ids", "token_type_ids")])
        for f in features
    ]).astype(np.int32)
    y, a = table["gold_label"].to_numpy(), table["sentence2_has_negation"].to_numpy()
    metadata = _metadata(np.arange(len(table)), _split_names("multinli", table["split"]), y, a)
    return tokens, metadata


def build_civilcomments(config: dict) -> tuple[np.ndarray, pd.DataFrame]:
    """CivilComments-WILDS: texts, 4 training groups (toxic × any identity), one column per identity."""
    root = _existing_directory("civilcomments", config["root"])
    folder = root if (root / "all_data_with_identities.csv").is_file() else root / "civilcomments_v1.0"
    table = _read_csv("civilcomments", folder / "all_data_with_identities.csv",
                      ("comment_text", "split", "toxicity", *CIVILCOMMENTS_IDENTITIES))
    identities = (table[list(CIVILCOMMENTS_IDENTITIES)].fillna(0).to_numpy() >= 0.5).astype(np.int64)
    y = (table["toxicity"].to_numpy() >= 0.5).astype(np.int64)
    split = table["split"].astype(str).to_numpy()
    unknown = sorted(set(split) - set(SPLIT_CODES.values()))
    if unknown:
        raise DatasetLayoutError(f"civilcomments: column 'split' has {unknown}; expected train/val/test (the WILDS layout).")
    metadata = _metadata(np.arange(len(table)), split, y, identities.max(axis=1))
    for k, identity in enumerate(CIVILCOMMENTS_IDENTITIES):
        metadata[f"identity_{identity}"] = identities[:, k]
    return table["comment_text"].fillna("").astype(str).to_numpy().astype(str), metadata


def _metadata(sample_id, split, y, a) -> pd.DataFrame:
    return build_metadata(split, y, a, sample_id=sample_id)


def _existing_directory(name: str, root) -> Path:
    if root in (None, ""):
        raise DatasetLayoutError(f"{name}: no data directory configured; set data_versioning.root (see docs/benchmarks_real.md).")
    path = Path(str(root)).expanduser()
    if not path.is_dir():
        raise DatasetLayoutError(
            f"{name}: data directory {path} does not exist; set data_versioning.root to the folder holding the "
            f"{name} files (layout in docs/benchmarks_real.md). Nothing is downloaded."
        )
    return path


def _read_csv(name: str, path: Path, columns: tuple[str, ...]) -> pd.DataFrame:
    if not path.is_file():
        raise DatasetLayoutError(f"{name}: expected {path.name} at {path}; is data_versioning.root the right folder?")
    table = pd.read_csv(path)
    missing = [column for column in columns if column not in table.columns]
    if missing:
        raise DatasetLayoutError(f"{name}: {path} lacks column(s) {missing}; expected {list(columns)}, found {list(table.columns)}.")
    for column in set(columns) & INTEGER_COLUMNS:
        try:
            integer_values(table[column], column, source=f"{name}: {path}")
        except ValueError as error:
            raise DatasetLayoutError(str(error)) from None
    return table


def _split_names(name: str, codes: pd.Series) -> np.ndarray:
    unknown = sorted(set(codes.unique()) - set(SPLIT_CODES))
    if unknown:
        raise DatasetLayoutError(f"{name}: column 'split' has code(s) {unknown}; expected 0 = train, 1 = val, 2 = test.")
    return codes.map(SPLIT_CODES).to_numpy()


class InputFeatures:
    """Stand-in for ``utils_glue.InputFeatures`` so group DRO's feature pickles load with ``weights_only=True``."""


InputFeatures.__module__, InputFeatures.__qualname__ = "utils_glue", "InputFeatures"


def _load_glue_features(path: Path) -> list:
    import torch

    if not path.is_file():
        raise DatasetLayoutError(f"multinli: expected the BERT feature file {path} (glue_data/MNLI/ in group DRO's release).")
    with torch.serialization.safe_globals([InputFeatures]):  # only this class may be rebuilt: no arbitrary pickles
        return torch.load(path, map_location="cpu", weights_only=True)


def _field(feature, *names: str) -> np.ndarray:
    for name in names:
        if hasattr(feature, name):
            return np.asarray(getattr(feature, name))
    raise DatasetLayoutError(f"multinli: a cached feature lacks {names[0]!r}; expected group DRO's BERT features.")
