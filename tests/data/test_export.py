"""The embeddings export: one npz with x_/y_/g_ per split and the ERM head."""

import numpy as np
import pandas as pd
import pytest

from neurontune import console
from neurontune.data.export import embedding_export
from neurontune.io.datasets import NpzDataset, ParquetTableDataset
from tests.conftest import PROJECT_ROOT


@pytest.fixture(scope="module")
def tiny_run():
    """Cached embeddings of 12 samples (ids shuffled against the metadata order), metadata and an ERM head."""
    rng = np.random.default_rng(0)
    metadata = pd.DataFrame({"sample_id": np.arange(12), "split": ["train"] * 6 + ["val"] * 3 + ["test"] * 3,
                             "y": rng.integers(0, 2, 12), "a": rng.integers(0, 2, 12)})
    metadata["group"] = 2 * metadata["y"] + metadata["a"]
    head = {"weight": rng.normal(size=(2, 5)), "bias": rng.normal(size=2), "keep": np.ones(5)}
    run = {"raw_metadata": metadata, "erm_head": head}
    for split in ("train", "val", "test"):
        ids = rng.permutation(metadata.loc[metadata["split"] == split, "sample_id"].to_numpy())
        x = rng.random((len(ids), 5)).astype(np.float32)
        run[f"embeddings_{split}"] = {"embeddings": x, "logits": x.astype(np.float64) @ head["weight"].T + head["bias"],
                                      "y": metadata.set_index("sample_id").loc[ids, "y"].to_numpy(), "sample_id": ids}
    return run


@pytest.fixture(scope="module")
def exported(tiny_run):
    caches = {split: tiny_run[f"embeddings_{split}"] for split in ("train", "val", "test")}
    return embedding_export(caches, tiny_run["raw_metadata"], tiny_run["erm_head"])


def test_keys_and_shapes(exported, tiny_run):
    width = tiny_run["embeddings_train"]["embeddings"].shape[1]
    for split in ("train", "val", "test"):
        n = len(tiny_run[f"embeddings_{split}"]["y"])
        assert exported[f"x_{split}"].shape == (n, width)
        assert exported[f"y_{split}"].shape == exported[f"g_{split}"].shape == (n,)
    assert exported["w0"].shape == (2, width) and exported["b0"].shape == (2,)


def test_group_ids_match_the_metadata_and_the_head_reproduces_erm(exported, tiny_run):
    table = tiny_run["raw_metadata"].set_index("sample_id")
    np.testing.assert_array_equal(exported["g_test"], table.loc[exported["sample_id_test"], "group"].to_numpy())
    logits = exported["x_test"].astype(np.float64) @ exported["w0"].T + exported["b0"]
    np.testing.assert_array_equal(logits.argmax(1), tiny_run["embeddings_test"]["logits"].argmax(1))


def test_a_stale_cache_is_refused(tiny_run):
    caches = {split: dict(tiny_run[f"embeddings_{split}"]) for split in ("train", "val", "test")}
    caches["val"]["y"] = 1 - caches["val"]["y"]
    with pytest.raises(ValueError, match="stale"):
        embedding_export(caches, tiny_run["raw_metadata"], tiny_run["erm_head"])


def test_console_command_writes_the_file(tiny_run, tmp_path, monkeypatch):
    import shutil

    shutil.copytree(PROJECT_ROOT / "conf", tmp_path / "conf", ignore=shutil.ignore_patterns("local"))
    (tmp_path / "conf" / "local").mkdir()
    for split in ("train", "val", "test"):
        NpzDataset(str(tmp_path / f"data/colored_mnist/04_feature/embeddings_{split}.npz")).save(tiny_run[f"embeddings_{split}"])
    NpzDataset(str(tmp_path / "data/colored_mnist/04_feature/erm_head.npz")).save(tiny_run["erm_head"])
    ParquetTableDataset(str(tmp_path / "data/colored_mnist/01_raw/metadata.parquet")).save(tiny_run["raw_metadata"])
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert console.main(["export-embeddings", "--output", "out/export.npz"]) == 0
    with np.load(tmp_path / "out" / "export.npz") as arrays:
        assert {"x_train", "x_val", "x_test", "y_test", "g_val", "w0", "b0"} <= set(arrays.files)


def test_data_without_group_labels_exports_without_group_arrays(tiny_run):
    caches = {split: tiny_run[f"embeddings_{split}"] for split in ("train", "val", "test")}
    arrays = embedding_export(caches, tiny_run["raw_metadata"].drop(columns=["a", "group"]), tiny_run["erm_head"])
    assert not [key for key in arrays if key[:2] in ("g_", "a_")]
    np.testing.assert_array_equal(arrays["y_test"], tiny_run["embeddings_test"]["y"])
