"""Each published-benchmark loader on a tiny fixture in exactly its distributed layout."""

import sys
import types

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from neurontune.data import build_benchmark_data
from neurontune.data.published import CIVILCOMMENTS_IDENTITIES, MULTINLI_FEATURE_FILES, DatasetLayoutError


def write_metadata_image_layout(root, image_dir=""):
    """metadata.csv (img_id, img_filename, y, split, place, place_filename) and the JPEGs it names."""
    rows = []
    for k, (y, split, place) in enumerate([(0, 0, 0), (1, 0, 1), (1, 1, 0), (0, 2, 1), (1, 2, 1)]):
        filename = f"{k:03d}.Bird/img_{k}.jpg" if not image_dir else f"{k:06d}.jpg"
        path = root / image_dir / filename
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.full((40, 30, 3), 40 * k, np.uint8)).save(path)
        rows.append({"img_id": k + 1, "img_filename": filename, "y": y, "split": split, "place": place,
                     "place_filename": f"/x/{k}.jpg"})
    pd.DataFrame(rows).to_csv(root / "metadata.csv", index=False)
    return pd.DataFrame(rows)


@pytest.mark.parametrize("name, image_dir", [("waterbirds", ""), ("celeba", "img_align_celeba")])
def test_metadata_image_benchmarks(tmp_path, name, image_dir):
    table = write_metadata_image_layout(tmp_path, image_dir)
    paths, metadata = build_benchmark_data({"name": name, "root": str(tmp_path), "image_dir": image_dir})
    assert paths.dtype.kind == "U" and all(p.endswith(f) for p, f in zip(paths, table["img_filename"]))
    assert metadata["split"].tolist() == ["train", "train", "val", "test", "test"]
    assert metadata["a"].tolist() == table["place"].tolist() and metadata["sample_id"].tolist() == table["img_id"].tolist()
    assert (metadata["group"] == 2 * metadata["y"] + metadata["a"]).all()


def test_layout_errors_name_what_is_missing(tmp_path):
    with pytest.raises(DatasetLayoutError, match=r"waterbirds: data directory .*nowhere does not exist; set data_versioning.root"):
        build_benchmark_data({"name": "waterbirds", "root": str(tmp_path / "nowhere")})
    with pytest.raises(DatasetLayoutError, match="expected metadata.csv at"):
        build_benchmark_data({"name": "waterbirds", "root": str(tmp_path)})
    write_metadata_image_layout(tmp_path)
    (tmp_path / "001.Bird" / "img_1.jpg").unlink()
    with pytest.raises(DatasetLayoutError, match=r"1 of 5 images listed in metadata.csv are missing"):
        build_benchmark_data({"name": "waterbirds", "root": str(tmp_path)})
    pd.read_csv(tmp_path / "metadata.csv").drop(columns="place").to_csv(tmp_path / "metadata.csv", index=False)
    with pytest.raises(DatasetLayoutError, match=r"lacks column\(s\) \['place'\]"):
        build_benchmark_data({"name": "celeba", "root": str(tmp_path)})


def write_multinli_layout(root, n_per_file=(3, 2, 2)):
    """group DRO's release: metadata_random.csv and three pickled lists of utils_glue.InputFeatures."""
    module = types.ModuleType("utils_glue")

    class InputFeatures:
        def __init__(self, input_ids, input_mask, segment_ids, label_id):
            self.input_ids, self.input_mask, self.segment_ids, self.label_id = input_ids, input_mask, segment_ids, label_id

    InputFeatures.__module__, InputFeatures.__qualname__ = "utils_glue", "InputFeatures"
    module.InputFeatures = InputFeatures
    sys.modules["utils_glue"] = module  # only while pickling, as group DRO's own code had it
    try:
        folder = root / "glue_data" / "MNLI"
        folder.mkdir(parents=True)
        k = 0
        for name, count in zip(MULTINLI_FEATURE_FILES, n_per_file):
            features = [InputFeatures([101, 7 + k + i, 102, 0], [1, 1, 1, 0], [0, 0, 1, 0], (k + i) % 3) for i in range(count)]
            torch.save(features, folder / name)
            k += count
    finally:
        del sys.modules["utils_glue"]
    total = sum(n_per_file)
    pd.DataFrame({"gold_label": np.arange(total) % 3, "sentence2_has_negation": np.arange(total) % 2,
                  "split": [0] * n_per_file[0] + [1] * n_per_file[1] + [2] * n_per_file[2]}).to_csv(root / "metadata_random.csv")


def test_multinli_group_dro_layout(tmp_path):
    write_multinli_layout(tmp_path)
    tokens, metadata = build_benchmark_data({"name": "multinli", "root": str(tmp_path)})
    assert tokens.shape == (7, 3, 4) and np.issubdtype(tokens.dtype, np.integer)
    assert tokens[:, 0, 1].tolist() == list(range(7, 14))  # files concatenated train, dev, dev-mm
    assert metadata["group"].tolist() == [2 * (k % 3) + k % 2 for k in range(7)]
    assert metadata["split"].value_counts().to_dict() == {"train": 3, "val": 2, "test": 2}


def test_multinli_mismatch_and_missing_feature_file(tmp_path):
    write_multinli_layout(tmp_path)
    metadata = pd.read_csv(tmp_path / "metadata_random.csv", index_col=0)
    metadata.iloc[:5].to_csv(tmp_path / "metadata_random.csv")
    with pytest.raises(DatasetLayoutError, match="feature files hold 7 examples but metadata_random.csv has 5 rows"):
        build_benchmark_data({"name": "multinli", "root": str(tmp_path)})
    (tmp_path / "glue_data" / "MNLI" / MULTINLI_FEATURE_FILES[2]).unlink()
    with pytest.raises(DatasetLayoutError, match="expected the BERT feature file"):
        build_benchmark_data({"name": "multinli", "root": str(tmp_path)})


def write_civilcomments_layout(root):
    folder = root / "civilcomments_v1.0"
    folder.mkdir()
    rng = np.random.default_rng(0)
    table = pd.DataFrame({"id": range(12), "comment_text": [f"comment {k}" for k in range(12)],
                          "split": ["train"] * 6 + ["val"] * 3 + ["test"] * 3, "toxicity": rng.random(12)})
    for identity in CIVILCOMMENTS_IDENTITIES:
        table[identity] = rng.choice([0.0, 0.2, 0.6, 1.0, np.nan], 12)
    table.to_csv(folder / "all_data_with_identities.csv")
    return table


def test_civilcomments_wilds_layout(tmp_path):
    table = write_civilcomments_layout(tmp_path)
    texts, metadata = build_benchmark_data({"name": "civilcomments", "root": str(tmp_path)})
    assert texts.tolist() == table["comment_text"].tolist()
    assert metadata["y"].tolist() == (table["toxicity"] >= 0.5).astype(int).tolist()
    identities = (table[list(CIVILCOMMENTS_IDENTITIES)].fillna(0) >= 0.5).astype(int)
    assert metadata["a"].tolist() == identities.max(axis=1).tolist()
    for identity in CIVILCOMMENTS_IDENTITIES:
        assert metadata[f"identity_{identity}"].tolist() == identities[identity].tolist()
    table.assign(split="dev").to_csv(tmp_path / "civilcomments_v1.0" / "all_data_with_identities.csv")
    with pytest.raises(DatasetLayoutError, match=r"column 'split' has \['dev'\]"):
        build_benchmark_data({"name": "civilcomments", "root": str(tmp_path)})
