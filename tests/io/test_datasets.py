import io
import json

import numpy as np
import pandas as pd
import pytest
import torch
from kedro.io import DatasetError

from neurontune.io.datasets import JsonDataset, NpzDataset, ParquetTableDataset, TorchCheckpointDataset


def test_npz_round_trip_without_pickle(tmp_path):
    dataset = NpzDataset(str(tmp_path / "a.npz"))
    dataset.save({"x": np.arange(3), "s": np.array(["tweet", "text"])})
    loaded = dataset.load()
    assert loaded["x"].tolist() == [0, 1, 2] and loaded["s"].tolist() == ["tweet", "text"]


def test_parquet_columns_hide_the_rest(tmp_path):
    path = str(tmp_path / "m.parquet")
    ParquetTableDataset(path).save(pd.DataFrame({"y": [0], "a": [1]}))
    assert list(ParquetTableDataset(path, columns=["y"]).load().columns) == ["y"]


def test_failed_save_leaves_previous_output_intact(tmp_path):
    path = tmp_path / "metrics.json"
    dataset = JsonDataset(str(path))
    dataset.save({"wga": 0.5})
    with pytest.raises(DatasetError):
        dataset.save({"bad": object()})  # not JSON-serialisable: fails mid-write
    assert json.loads(path.read_text()) == {"wga": 0.5}
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.json"]  # no temp file left behind


@pytest.mark.parametrize(("dataset_type", "old", "new"), [
    (JsonDataset, {"wga": 0.5}, {"wga": 0.75, "notes": "x" * 4096}),
    (NpzDataset, {"x": np.arange(3)}, {"x": np.arange(4096)}),
    (ParquetTableDataset, pd.DataFrame({"y": [0, 1]}), pd.DataFrame({"y": np.arange(4096)})),
    (TorchCheckpointDataset, {"config": {}, "state_dict": {"w": torch.zeros(2)}},
     {"config": {}, "state_dict": {"w": torch.ones(4096)}}),
], ids=["json", "npz", "parquet", "checkpoint"])
def test_a_writer_failing_midway_leaves_the_old_file_byte_identical(tmp_path, monkeypatch, dataset_type, old, new):
    path = tmp_path / "output.bin"
    dataset = dataset_type(str(path))
    dataset.save(old)
    before = path.read_bytes()
    write = dataset._write

    def write_half_then_fail(data, handle):  # a full disk or a killed worker: bytes out, then an error
        buffer = io.BytesIO()
        write(data, buffer)
        handle.write(buffer.getvalue()[: len(buffer.getvalue()) // 2])
        handle.flush()
        raise OSError("no space left on device")

    monkeypatch.setattr(dataset, "_write", write_half_then_fail)
    with pytest.raises(DatasetError, match="no space left on device"):
        dataset.save(new)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["output.bin"]  # no temporary file left behind


def test_missing_and_unreadable_files_are_named(tmp_path):
    with pytest.raises(DatasetError, match=r"nothing\.npz does not exist"):
        NpzDataset(str(tmp_path / "nothing.npz")).load()
    broken = tmp_path / "broken.npz"
    broken.write_bytes(b"not a zip")
    with pytest.raises(DatasetError, match=r"could not read .*broken\.npz"):
        NpzDataset(str(broken)).load()


def test_checkpoint_loads_weights_only(tmp_path):
    dataset = TorchCheckpointDataset(str(tmp_path / "m.pt"))
    dataset.save({"config": {"architecture": "small_cnn"}, "state_dict": {"w": torch.ones(2)}})
    assert dataset.load()["state_dict"]["w"].tolist() == [1.0, 1.0]


def test_identical_checkpoints_are_identical_bytes(tmp_path):
    checkpoint = {"config": {"architecture": "small_cnn"}, "state_dict": {"w": torch.arange(4.0)}}
    paths = [tmp_path / "a.pt", tmp_path / "b.pt"]
    for path in paths:
        TorchCheckpointDataset(str(path)).save(checkpoint)
    assert paths[0].read_bytes() == paths[1].read_bytes()  # DVC hashes must not change on a rerun
