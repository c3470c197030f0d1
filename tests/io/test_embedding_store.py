"""The memory-mapped embedding store, its catalog environment and the export through it."""

import numpy as np
import pandas as pd
import pytest
from kedro.config import OmegaConfigLoader
from kedro.io import DataCatalog, DatasetError

from neurontune.console import export_embeddings
from neurontune.io.datasets import NpzDataset, ParquetTableDataset
from neurontune.io.embedding_store import NpyStoreDataset
from neurontune.settings import CONFIG_LOADER_ARGS
from tests.conftest import copy_project


def cache(n=50, width=6, seed=0):
    rng = np.random.default_rng(seed)
    return {"embeddings": rng.random((n, width)) * 3, "logits": rng.normal(size=(n, 2)).astype(np.float32),
            "y": rng.integers(0, 2, n), "sample_id": np.arange(n) + 1000}


def test_round_trip_memory_maps_and_casts_only_the_named_arrays(tmp_path):
    data = cache()
    dataset = NpyStoreDataset(str(tmp_path / "embeddings_val"), dtypes={"embeddings": "float16"})
    dataset.save(data)
    loaded = dataset.load()
    assert sorted(loaded) == sorted(data) and sorted(p.name for p in (tmp_path / "embeddings_val").iterdir()) == [
        "embeddings.npy", "logits.npy", "sample_id.npy", "y.npy"]
    assert all(isinstance(array, np.memmap) and not array.flags.writeable for array in loaded.values())
    assert loaded["embeddings"].dtype == np.float16
    np.testing.assert_array_equal(loaded["embeddings"], data["embeddings"].astype(np.float16))
    for key in ("logits", "y", "sample_id"):
        assert loaded[key].dtype == data[key].dtype
        np.testing.assert_array_equal(loaded[key], data[key])
    in_memory = NpyStoreDataset(str(tmp_path / "embeddings_val"), mmap=False).load()
    assert not isinstance(in_memory["y"], np.memmap)


def test_saving_a_memory_mapped_array_writes_the_same_values(tmp_path):
    source = NpyStoreDataset(str(tmp_path / "a"))
    source.save(cache(n=200))
    copy = NpyStoreDataset(str(tmp_path / "b"), dtypes={"embeddings": "float16"})
    copy.save(source.load())
    np.testing.assert_array_equal(copy.load()["embeddings"], source.load()["embeddings"].astype(np.float16))


def test_values_beyond_float16_are_refused_and_the_previous_output_stays(tmp_path):
    dataset = NpyStoreDataset(str(tmp_path / "embeddings_train"), dtypes={"embeddings": "float16"})
    dataset.save(cache())
    bad = cache(seed=1)
    bad["embeddings"][3, 2] = 1e6
    with pytest.raises(DatasetError, match=r"embeddings: 1 values from row 0 exceed the float16 range"):
        dataset.save(bad)
    np.testing.assert_array_equal(dataset.load()["y"], cache()["y"])
    assert [p.name for p in tmp_path.iterdir()] == ["embeddings_train"]  # no temporary directory left behind


@pytest.mark.parametrize(("data", "match"), [
    ({}, "expected a non-empty dict of arrays"),
    ({"bad key": np.zeros(2)}, "keys must be identifiers"),
    ({"y": np.zeros(2)}, r"dtypes names \['embeddings'\], which the data do not have"),
])
def test_bad_data_are_refused_before_anything_is_written(tmp_path, data, match):
    with pytest.raises(DatasetError, match=match):
        NpyStoreDataset(str(tmp_path / "store"), dtypes={"embeddings": "float16"}).save(data)
    assert not (tmp_path / "store").exists()


def test_a_missing_store_is_named(tmp_path):
    with pytest.raises(DatasetError, match=r"nothing does not exist \(expected a directory of \.npy files\)"):
        NpyStoreDataset(str(tmp_path / "nothing")).load()


def test_the_streaming_environment_stores_the_cache_and_export_embeddings_reads_it(tmp_path, monkeypatch):
    project = copy_project(tmp_path)
    monkeypatch.chdir(project)
    loader = OmegaConfigLoader(conf_source=str(project / "conf"), env="streaming", **CONFIG_LOADER_ARGS)
    catalog = DataCatalog.from_config(loader["catalog"])
    caches = {split: cache(n=n, seed=k) for k, (split, n) in enumerate([("train", 40), ("val", 30), ("test", 20)])}
    for k, (split, data) in enumerate(caches.items()):
        data["sample_id"] = data["sample_id"] + 100 * k
        catalog.save(f"embeddings_{split}", data)
    metadata = pd.concat([pd.DataFrame({"sample_id": data["sample_id"], "split": split, "y": data["y"]})
                          for split, data in caches.items()], ignore_index=True)
    metadata["a"], metadata["group"] = 0, 2 * metadata["y"]
    ParquetTableDataset(str(project / "data/streaming/01_raw/metadata.parquet")).save(metadata)
    NpzDataset(str(project / "data/streaming/04_feature/erm_head.npz")).save({"weight": np.ones((2, 6)), "bias": np.zeros(2)})

    assert (project / "data/streaming/04_feature/embeddings_val/embeddings.npy").exists()
    assert isinstance(catalog.load("embeddings_val")["embeddings"], np.memmap)
    _, arrays = export_embeddings(project / "export.npz", env="streaming")
    for split, data in caches.items():
        np.testing.assert_array_equal(arrays[f"x_{split}"], data["embeddings"].astype(np.float16).astype(np.float32))
        np.testing.assert_array_equal(arrays[f"sample_id_{split}"], data["sample_id"])
