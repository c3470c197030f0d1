import numpy as np
import pandas as pd
import pytest

from neurontune.data import build_benchmark_data
from neurontune.data.colored_mnist import build_colored_mnist, load_mnist_digits

CONFIG = {
    "name": "colored_mnist",
    "seed": 3,
    "split_sizes": {"train": 400, "val": 200, "test": 200},
    "train_correlation": 0.95,
    "val_correlation": 0.5,
    "test_correlation": 0.5,
    "colours": [[200, 30, 30], [30, 160, 30]],
}


@pytest.fixture(scope="module")
def built():
    return build_benchmark_data(CONFIG)


def test_real_mnist_digits_load_offline():
    images, digits = load_mnist_digits()
    assert images.shape == (5000, 28, 28) and images.dtype == np.uint8
    assert np.bincount(digits).tolist() == [500] * 10


def test_group_counts_match_requested_correlations(built):
    _, metadata = built
    for split, correlation in (("train", 0.95), ("val", 0.5), ("test", 0.5)):
        rows = metadata[metadata["split"] == split]
        aligned = np.mean(rows["a"] == rows["y"])
        assert aligned == pytest.approx(correlation, abs=0.01), split
    assert (metadata["group"] == 2 * metadata["y"] + metadata["a"]).all()


def test_background_colour_follows_the_attribute(built):
    images, metadata = built
    corner = images[:, :, 0, 0].astype(int)  # MNIST corners are background
    red = corner[:, 0] > corner[:, 1]
    assert np.array_equal(red, metadata["a"].to_numpy() == 0)


def test_same_seed_same_bytes_and_other_seed_differs(built):
    images, metadata = built
    again_images, again_metadata = build_benchmark_data(CONFIG)
    np.testing.assert_array_equal(images, again_images)
    pd.testing.assert_frame_equal(metadata, again_metadata)
    other_images, _ = build_benchmark_data({**CONFIG, "seed": 4})
    assert not np.array_equal(images, other_images)


def test_class_is_digit_below_five(built):
    _, metadata = built
    assert set(metadata["y"]) == {0, 1}
    assert metadata.groupby("split").size().to_dict() == {"test": 200, "train": 400, "val": 200}


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"split_sizes": {"train": 4000, "val": 1000, "test": 1000}}, "only 5000 digits are available"),
        ({"val_correlation": 1.5}, r"correlations\['val'\] must be in \[0, 1\]"),
        ({"colours": [[1, 2, 3]]}, "colours must be two RGB triples"),
        ({"split_sizes": {"train": 10, "val": 0, "test": 10}}, r"split_sizes\['val'\] must be a positive integer"),
    ],
)
def test_bad_configuration_is_named(change, match):
    with pytest.raises(ValueError, match=match):
        build_benchmark_data({**CONFIG, **change})


def test_unknown_benchmark_lists_available():
    with pytest.raises(ValueError, match=r"unknown benchmark 'nope'; available: \[.*'colored_mnist'"):
        build_benchmark_data({"name": "nope"})


def test_builder_rejects_misaligned_digits():
    with pytest.raises(ValueError, match="digit_images must have shape"):
        build_colored_mnist(np.zeros((3, 28, 28), np.uint8), np.zeros(2, int), CONFIG["split_sizes"],
                            {"train": 1, "val": 1, "test": 1}, CONFIG["colours"], 0)
