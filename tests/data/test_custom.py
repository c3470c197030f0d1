"""The user's folder: images, texts and precomputed embeddings; optional groups; every bad input stops naming it."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from neurontune.data.custom import build_custom
from neurontune.data.published import DatasetLayoutError
from neurontune.pipelines.data_versioning.nodes import build_benchmark, describe_dataset
from tests.user_artifacts import write_embeddings

CLASSES = ["cat", "dog"]
SPLITS = ["train", "train", "val", "val", "test", "test"]


def config(root, **extra) -> dict:
    return {"name": "custom", "root": str(root), "modality": "image", "table": None, "classes": CLASSES,
            "n_classes": 2, "attribute": None, "source": "tests", "seed": 0, **extra}


@pytest.fixture
def image_folder(tmp_path):
    (tmp_path / "images").mkdir()
    for k in range(6):
        Image.fromarray(np.full((8, 8, 3), 30 * k, dtype=np.uint8)).save(tmp_path / "images" / f"{k}.png")
    labels = pd.DataFrame({"path": [f"images/{k}.png" for k in range(6)], "label": CLASSES * 3, "split": SPLITS})
    labels.loc[0, "path"] = str(tmp_path / "images" / "0.png")  # absolute paths are fine too
    labels.to_csv(tmp_path / "labels.csv", index=False)
    return tmp_path


def rewrite(folder, change) -> None:
    labels = pd.read_csv(folder / "labels.csv")
    change(labels)
    labels.to_csv(folder / "labels.csv", index=False)


def test_an_image_folder_without_groups_gives_paths_and_class_labels_only(image_folder):
    raw, metadata = build_benchmark(config(image_folder))
    assert list(metadata.columns) == ["sample_id", "split", "y"]
    assert metadata["y"].tolist() == [0, 1] * 3 and metadata["split"].tolist() == SPLITS
    assert raw["inputs"][1] == str(image_folder / "images" / "1.png")
    manifest = describe_dataset(raw, metadata, config(image_folder))
    assert manifest["group_counts"] == {} and "n_groups" not in manifest and "n_attributes" not in manifest


def test_groups_on_the_test_split_only_are_minus_one_elsewhere_and_counted_where_known(image_folder):
    rewrite(image_folder, lambda t: t.__setitem__("group", [None, None, None, None, 0, 3]))
    raw, metadata = build_benchmark(config(image_folder))
    assert metadata["group"].tolist() == [-1, -1, -1, -1, 0, 3] and "a" not in metadata
    manifest = describe_dataset(raw, metadata, config(image_folder))
    assert manifest["group_counts"] == {"test": {"group=0": 1, "group=3": 1}} and manifest["n_groups"] == 4


def test_an_attribute_column_gives_group_ids_class_times_attribute(image_folder):
    rewrite(image_folder, lambda t: t.__setitem__("background", ["water", "land", "land", None, "water", "land"]))
    _, metadata = build_custom(config(image_folder, attribute="background"))
    assert metadata["a"].tolist() == [1, 0, 0, -1, 1, 0]  # levels in sorted order: land = 0, water = 1
    assert metadata["group"].tolist() == [1, 2, 0, -1, 1, 2]


@pytest.mark.parametrize("change, message", [
    (lambda t: t.drop(columns="split", inplace=True), r"lacks column\(s\) \['split'\]"),
    (lambda t: t.__setitem__("label", ["cat", "dog", "cat", "cow", "cat", "dog"]),
     r"'label' has \['cow'\] \(rows \[3\]\), outside the declared classes \['cat', 'dog'\]"),
    (lambda t: t.__setitem__("split", ["train", "train", "val", "valid", "test", "test"]),
     r"column 'split' has \['valid'\] \(rows \[3\]\)"),
    (lambda t: t.__setitem__("split", ["train", "train", "val", "val", "train", "train"]), r"no \['test'\] rows"),
    (lambda t: t.__setitem__("path", ["images/0.png"] * 5 + ["images/missing.png"]), r"1 of 6 images .* do not exist"),
    (lambda t: t.__setitem__("group", [0, 1, "x", 2, 3, 0]), r"column 'group' must hold integers >= 0"),
])
def test_each_bad_input_stops_naming_it(image_folder, change, message):
    rewrite(image_folder, change)
    with pytest.raises(DatasetLayoutError, match=message):
        build_custom(config(image_folder))


def test_an_unreadable_image_and_a_missing_table_are_named(image_folder):
    (image_folder / "images" / "2.png").write_bytes(b"not an image")
    with pytest.raises(DatasetLayoutError, match=r"cannot be read, e\.g\. .*2\.png"):
        build_custom(config(image_folder))
    with pytest.raises(DatasetLayoutError, match="expected the table other.csv"):
        build_custom(config(image_folder, table="other.csv"))
    with pytest.raises(DatasetLayoutError, match="does not exist"):
        build_custom(config(image_folder / "nowhere"))


def test_a_text_table_in_parquet(tmp_path):
    pd.DataFrame({"text": ["good", "bad", "fine", "awful", "great", "poor"], "label": CLASSES * 3,
                  "split": SPLITS}).to_parquet(tmp_path / "labels.parquet")
    raw, metadata = build_custom(config(tmp_path, modality="text", table="labels.parquet"))
    assert raw["inputs"].dtype.kind == "U" and raw["inputs"][3] == "awful" and metadata["y"].tolist() == [0, 1] * 3
    pd.DataFrame({"text": ["good", None, "fine", "awful", "great", "poor"], "label": CLASSES * 3,
                  "split": SPLITS}).to_parquet(tmp_path / "labels.parquet")
    with pytest.raises(DatasetLayoutError, match=r"column 'text' is empty in rows \[1\]"):
        build_custom(config(tmp_path, modality="text", table="labels.parquet"))


def test_precomputed_embeddings_in_npz_carry_their_head(tmp_path):
    arrays = write_embeddings(tmp_path / "embeddings.npz", groups="group")
    raw, metadata = build_custom(config(tmp_path, modality="embeddings"))
    np.testing.assert_array_equal(raw["inputs"], arrays["features"])
    np.testing.assert_array_equal(raw["head_weight"], arrays["head_weight"])
    np.testing.assert_array_equal(metadata["group"], arrays["group"])
    assert metadata["y"].tolist() == [CLASSES.index(name) for name in arrays["labels"]]


def test_precomputed_embeddings_whose_head_orders_classes_differently_are_refused(tmp_path):
    arrays = write_embeddings(tmp_path / "embeddings.npz")
    np.savez(tmp_path / "embeddings.npz", **{**arrays, "class_names": np.array(CLASSES[::-1])})
    with pytest.raises(DatasetLayoutError, match=r"names the head's outputs \['dog', 'cat'\]"):
        build_custom(config(tmp_path, modality="embeddings"))
    np.savez(tmp_path / "embeddings.npz", **{**arrays, "head_weight": arrays["head_weight"][:, :3]})
    with pytest.raises(DatasetLayoutError, match=r"head must be weight \(2, 12\)"):
        build_custom(config(tmp_path, modality="embeddings"))
    np.savez(tmp_path / "embeddings.npz", **{key: value for key, value in arrays.items() if key != "head_bias"})
    with pytest.raises(DatasetLayoutError, match=r"lacks array\(s\) \['head_bias'\]"):
        build_custom(config(tmp_path, modality="embeddings"))


def test_precomputed_embeddings_in_parquet_with_the_head_beside_them(tmp_path):
    arrays = write_embeddings(tmp_path / "unused.npz", groups="none")
    table = pd.DataFrame(arrays["features"], columns=[f"feature_{k}" for k in range(arrays["features"].shape[1])])
    table.insert(0, "label", arrays["labels"])
    table.insert(1, "split", arrays["splits"])
    table.to_parquet(tmp_path / "embeddings.parquet")
    np.savez(tmp_path / "head.npz", weight=arrays["head_weight"], bias=arrays["head_bias"])
    raw, metadata = build_custom(config(tmp_path, modality="embeddings", table="embeddings.parquet"))
    np.testing.assert_array_equal(raw["inputs"], arrays["features"])
    assert list(metadata.columns) == ["sample_id", "split", "y"]
