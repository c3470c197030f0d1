import numpy as np
import pytest

from neurontune.data import build_benchmark_data
from neurontune.data.colored_mnist import load_mnist_digits
from neurontune.data.photos import load_photo
from neurontune.data.waterbirds_like import build_waterbirds_like

SIZES = {"train": 120, "val": 60, "test": 60}
CORRELATIONS = {"train": 0.9, "val": 0.5, "test": 0.5}
RED, BLUE = np.full((80, 90, 3), (200, 0, 0), np.uint8), np.full((70, 70, 3), (0, 0, 200), np.uint8)


@pytest.fixture(scope="module")
def digits():
    return load_mnist_digits()


def build(digits, **changes):
    arguments = dict(class_digits=[[0, 1], [7, 8]], split_sizes=SIZES, correlations=CORRELATIONS, image_size=32,
                     digit_size=16, digit_colours=[[255, 255, 0]], seed=1)
    return build_waterbirds_like(*digits, [[RED], [BLUE]], **{**arguments, **changes})


def test_real_sample_photos_load_offline_as_rgb():
    for name in ("skimage:grass", "skimage:gravel", "skimage:moon", "skimage:brick", "sklearn:china.jpg", "skimage:rocket"):
        photo = load_photo(name)
        assert photo.dtype == np.uint8 and photo.ndim == 3 and photo.shape[2] == 3 and min(photo.shape[:2]) >= 400, name
    with pytest.raises(ValueError, match="must start with one of"):
        load_photo("flickr:bird.jpg")


def test_classes_groups_and_backgrounds_follow_the_configuration(digits):
    images, metadata = build(digits)
    assert images.shape == (240, 3, 32, 32) and images.dtype == np.uint8
    assert set(metadata.loc[metadata["y"] == 0, "digit"]) <= {0, 1} and set(metadata.loc[metadata["y"] == 1, "digit"]) <= {7, 8}
    for split, correlation in CORRELATIONS.items():
        rows = metadata[metadata["split"] == split]
        for label in (0, 1):
            in_class = rows[rows["y"] == label]
            assert np.mean(in_class["a"] == label) == pytest.approx(correlation, abs=1 / len(in_class)), (split, label)
    # background kind = attribute: with one red (natural) and one blue (man-made) photo, the
    # majority colour of each image tells its attribute; the yellow digit covers less than half
    blue_share = (images[:, 2] > images[:, 0]).mean(axis=(1, 2))
    assert np.array_equal(blue_share > 0.5, metadata["a"].to_numpy() == 1)
    assert (metadata["group"] == 2 * metadata["y"] + metadata["a"]).all()


def test_same_seed_same_images_and_errors_name_the_argument(digits):
    assert np.array_equal(build(digits)[0], build(digits)[0])
    with pytest.raises(ValueError, match="only 2000 digits of classes"):
        build(digits, split_sizes={"train": 2000, "val": 10, "test": 10})
    with pytest.raises(ValueError, match="must be at least image_size=100"):
        build(digits, image_size=100, digit_size=20)
    with pytest.raises(ValueError, match="class_digits must be two disjoint lists"):
        build(digits, class_digits=[[0, 1], [1, 7]])


def test_registered_builder_reads_the_real_photos():
    config = {"name": "waterbirds_like", "seed": 0, "split_sizes": {"train": 8, "val": 4, "test": 4},
              "train_correlation": 0.95, "val_correlation": 0.5, "test_correlation": 0.5, "class_digits": [[0, 1], [7, 8]],
              "backgrounds": {"natural": ["skimage:grass"], "man_made": ["skimage:brick"]}, "photo_size": 96,
              "image_size": 64, "digit_size": 40, "digit_colours": [[255, 255, 255]]}
    images, metadata = build_benchmark_data(config)
    assert images.shape == (16, 3, 64, 64) and len(metadata) == 16
