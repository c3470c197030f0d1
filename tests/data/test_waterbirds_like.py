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
    assert (digits[1][metadata["source_id"]] == metadata["digit"]).all()
    # background kind = attribute: with one red (natural) and one blue (man-made) photo, the
    # majority colour of each image tells its attribute; the yellow digit covers less than half
    blue_share = (images[:, 2] > images[:, 0]).mean(axis=(1, 2))
    assert np.array_equal(blue_share > 0.5, metadata["a"].to_numpy() == 1)
    assert (metadata["group"] == 2 * metadata["y"] + metadata["a"]).all()


@pytest.mark.parametrize("sizes, correlations", [
    ({"train": 600, "val": 300, "test": 300}, {"train": 0.98, "val": 0.5, "test": 0.5}),
    ({"train": 201, "val": 99, "test": 100}, {"train": 0.9, "val": 0.95, "test": 0.5}),
])
def test_every_split_is_class_balanced_with_the_exact_correlation_per_class(digits, sizes, correlations):
    _, metadata = build(digits, class_digits=[[0], [1]], split_sizes=sizes, correlations=correlations,
                        max_renders_per_digit=2)
    for split, size in sizes.items():
        rows = metadata[metadata["split"] == split]
        assert len(rows) == size and (rows["y"] == 1).sum() == size // 2, split
        for label in (0, 1):
            in_class = rows[rows["y"] == label]
            assert (in_class["a"] == label).sum() == round(correlations[split] * len(in_class)), (split, label)


def test_reused_digits_never_cross_splits(digits):
    # 500 zeros and 500 ones ship: 1,200 images need each source digit twice, within one split only
    sizes = {"train": 600, "val": 300, "test": 300}
    images, metadata = build(digits, class_digits=[[0], [1]], split_sizes=sizes, max_renders_per_digit=2)
    sources = {split: set(metadata.loc[metadata["split"] == split, "source_id"]) for split in sizes}
    assert not (sources["train"] & sources["val"] or sources["train"] & sources["test"] or sources["val"] & sources["test"])
    assert [len(sources[split]) for split in sizes] == [500, 250, 250]  # every digit, shared out in proportion
    uses = metadata["source_id"].value_counts()
    assert uses.max() == 2
    twice = metadata.index[metadata["source_id"] == uses.index[0]]
    assert not np.array_equal(images[twice[0]], images[twice[1]])  # another crop, place and colour


def test_same_seed_same_images_and_the_validation_regime_leaves_train_and_test_unchanged(digits):
    images, metadata = build(digits)
    again, metadata_again = build(digits)
    assert np.array_equal(images, again) and metadata.equals(metadata_again)
    assert not np.array_equal(images, build(digits, seed=2)[0])
    correlated, correlated_metadata = build(digits, correlations={**CORRELATIONS, "val": 0.95})
    for split in ("train", "test"):
        rows = (metadata["split"] == split).to_numpy()
        assert np.array_equal(images[rows], correlated[rows]), split
        assert metadata[rows].equals(correlated_metadata[rows]), split
    val = (metadata["split"] == "val").to_numpy()
    assert not np.array_equal(metadata["a"][val], correlated_metadata["a"][val])


@pytest.mark.parametrize("changes, message", [
    ({"split_sizes": {"train": 2000, "val": 10, "test": 10}}, r"class 0 \(digits \[0, 1\]\) has 1000 source digits, too few"),
    ({"class_digits": [[0], [1]], "split_sizes": {"train": 600, "val": 300, "test": 300}},
     r"max_renders_per_digit=1 \(split 'train' runs short\); lower split_sizes or raise max_renders_per_digit"),
    ({"max_renders_per_digit": 0}, "max_renders_per_digit must be a positive integer; got 0"),
    ({"image_size": 100, "digit_size": 20}, "must be at least image_size=100"),
    ({"digit_size": 40}, r"digit_size must be in \(0, image_size=32\]; got 40"),
    ({"class_digits": [[0, 1], [1, 7]]}, "class_digits must be two non-empty, disjoint lists"),
    ({"class_digits": [[0], []]}, "class_digits must be two non-empty, disjoint lists"),
    ({"class_digits": [[0], [11]]}, r"class_digits names digit\(s\) \[11\]"),
    ({"digit_colours": [[255, 0]]}, "digit_colours must be a non-empty list of RGB triples"),
    ({"correlations": {**CORRELATIONS, "val": 1.5}}, r"correlations\['val'\] must be in \[0, 1\]"),
])
def test_bad_settings_fail_naming_the_argument(digits, changes, message):
    with pytest.raises(ValueError, match=message):
        build(digits, **changes)


def test_registered_builder_reads_the_real_photos():
    config = {"name": "waterbirds_like", "seed": 0, "split_sizes": {"train": 8, "val": 4, "test": 4},
              "train_correlation": 0.95, "val_correlation": 0.5, "test_correlation": 0.5, "class_digits": [[0], [1]],
              "backgrounds": {"natural": ["skimage:grass"], "man_made": ["skimage:brick"]}, "photo_size": 192,
              "image_size": 128, "digit_size": 64, "digit_colours": [[255, 255, 255]], "max_renders_per_digit": 2}
    images, metadata = build_benchmark_data(config)
    assert images.shape == (16, 3, 128, 128) and len(metadata) == 16
