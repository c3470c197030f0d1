"""waterbirds_like: real MNIST digits pasted, in colour, on crops of real photographs.

Class = digit in ``class_digits[0]`` (y=0) or ``class_digits[1]`` (y=1); spurious
attribute ``a`` = background kind: 0 = natural (grass, gravel, moon), 1 = man-made
(brick, a temple, a rocket). In each split ``P(a = y)`` equals that split's
correlation, per class and exactly. Digit colour and position are random and
independent of class and background, so only the background carries a shortcut.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from PIL import Image

from neurontune.data.colored_mnist import load_mnist_digits
from neurontune.data.photos import load_photo, resize_shorter_side
from neurontune.data.sampling import assign_attributes, check_split_settings, split_column
from neurontune.data.tables import SPLITS, build_metadata


def build_waterbirds_like(
    digit_images: np.ndarray,
    digits: np.ndarray,
    backgrounds: list[list[np.ndarray]],
    *,
    class_digits: list[list[int]],
    split_sizes: dict[str, int],
    correlations: dict[str, float],
    image_size: int,
    digit_size: int,
    digit_colours: list[list[int]],
    seed: int,
) -> tuple[np.ndarray, pd.DataFrame]:
    """Paste digits on background crops and assign splits.

    Parameters
    ----------
    digit_images : uint8 (N, 28, 28); digits : int (N,)
    backgrounds : two lists of RGB uint8 photos (H, W, 3): natural (a=0), man-made (a=1);
        each photo must be at least ``image_size`` on its shorter side
    class_digits : the digits of class 0 and of class 1
    split_sizes, correlations : per split; correlation = P(a = y)
    image_size : side of the square output image; digit_size : side of the pasted digit
    digit_colours : RGB triples the digit colour is drawn from
    seed : int

    Returns
    -------
    images : uint8 (n, 3, image_size, image_size)
    metadata : DataFrame with sample_id, split, y, a, group, digit
    """
    _check_arguments(digit_images, digits, backgrounds, class_digits, split_sizes, correlations, image_size, digit_size)
    rng = np.random.default_rng(seed)
    label_of = {int(d): label for label, members in enumerate(class_digits) for d in members}
    candidates = np.flatnonzero(np.isin(digits, list(label_of)))
    order = rng.permutation(candidates)[: sum(int(split_sizes[s]) for s in SPLITS)]
    labels = np.array([label_of[int(d)] for d in digits[order]], dtype=np.int64)
    split = split_column(split_sizes)
    attribute = assign_attributes(labels, split, correlations, rng)
    colours = np.asarray(digit_colours, dtype=np.float32)
    images = np.stack([
        _compose(digit_images[index], backgrounds[kind], colours[rng.integers(len(colours))], image_size, digit_size, rng)
        for index, kind in zip(order, attribute)
    ])
    metadata = build_metadata(split, labels, attribute, digit=digits[order])
    return images, metadata


def _compose(digit, photos, colour, image_size, digit_size, rng) -> np.ndarray:
    """One (3, S, S) image: a random crop of a random photo of the kind, flipped at random, with the digit on top."""
    photo = photos[rng.integers(len(photos))]
    top = rng.integers(photo.shape[0] - image_size + 1)
    left = rng.integers(photo.shape[1] - image_size + 1)
    canvas = photo[top : top + image_size, left : left + image_size].astype(np.float32)
    if rng.random() < 0.5:
        canvas = canvas[:, ::-1]
    ink = np.asarray(Image.fromarray(digit).resize((digit_size, digit_size), Image.BILINEAR), dtype=np.float32) / 255.0
    row, column = rng.integers(image_size - digit_size + 1, size=2)
    patch = canvas[row : row + digit_size, column : column + digit_size]
    canvas[row : row + digit_size, column : column + digit_size] = patch * (1 - ink[..., None]) + colour * ink[..., None]
    return np.round(canvas).astype(np.uint8).transpose(2, 0, 1)


def _check_arguments(digit_images, digits, backgrounds, class_digits, split_sizes, correlations, image_size, digit_size):
    if digit_images.ndim != 3 or digit_images.shape[0] != len(digits):
        raise ValueError(f"digit_images must have shape (N, H, W) with N = len(digits); got {digit_images.shape}.")
    if len(class_digits) != 2 or set(class_digits[0]) & set(class_digits[1]):
        raise ValueError(f"class_digits must be two disjoint lists of digits; got {class_digits!r}.")
    if len(backgrounds) != 2 or not all(backgrounds):
        raise ValueError("backgrounds must be two non-empty lists of photos: natural (a=0) and man-made (a=1).")
    if not 0 < digit_size <= image_size:
        raise ValueError(f"digit_size must be in (0, image_size={image_size}]; got {digit_size}.")
    smallest = min(min(photo.shape[:2]) for kind in backgrounds for photo in kind)
    if smallest < image_size:
        raise ValueError(f"every background photo must be at least image_size={image_size} pixels; one has {smallest}.")
    check_split_settings(split_sizes, correlations)
    available = int(np.isin(digits, [d for members in class_digits for d in members]).sum())
    total = sum(int(split_sizes[s]) for s in SPLITS)
    if total > available:
        raise ValueError(f"split sizes add up to {total} but only {available} digits of classes {class_digits} exist.")


def build_from_config(config: dict) -> tuple[np.ndarray, pd.DataFrame]:
    """Build from the ``data_versioning`` parameters (see ``conf/waterbirds_like``)."""
    digit_images, digits = load_mnist_digits()
    backgrounds = [
        [resize_shorter_side(load_photo(name), int(config["photo_size"])) for name in config["backgrounds"][kind]]
        for kind in ("natural", "man_made")
    ]
    return build_waterbirds_like(
        digit_images, digits, backgrounds,
        class_digits=config["class_digits"], split_sizes=config["split_sizes"],
        correlations={split: config[f"{split}_correlation"] for split in SPLITS},
        image_size=int(config["image_size"]), digit_size=int(config["digit_size"]),
        digit_colours=config["digit_colours"], seed=int(config["seed"]),
    )
