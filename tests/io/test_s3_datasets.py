"""The catalog's file datasets on a real S3 API (moto's server on 127.0.0.1)."""

import json

import fsspec
import numpy as np
import pandas as pd
import pytest
import torch
from kedro.io import DatasetError

from neurontune.io.datasets import (
    FigureDataset,
    JsonDataset,
    NpzDataset,
    ParquetTableDataset,
    TorchCheckpointDataset,
    apply_storage_options,
)
from tests.object_store import object_store, s3_endpoint  # noqa: F401  (fixtures)


def test_every_dataset_round_trips_through_the_bucket(object_store):
    url = f"s3://{object_store.bucket}/run"
    options = object_store.storage_options()
    NpzDataset(f"{url}/a.npz", credentials=options).save({"x": np.arange(3)})
    ParquetTableDataset(f"{url}/m.parquet", credentials=options).save(pd.DataFrame({"y": [0, 1], "a": [1, 0]}))
    JsonDataset(f"{url}/metrics.json", credentials=options).save({"wga": 0.5})
    TorchCheckpointDataset(f"{url}/m.pt", credentials=options).save({"config": {}, "state_dict": {"w": torch.ones(2)}})

    assert NpzDataset(f"{url}/a.npz", credentials=options).load()["x"].tolist() == [0, 1, 2]
    assert list(ParquetTableDataset(f"{url}/m.parquet", columns=["y"], credentials=options).load().columns) == ["y"]
    assert JsonDataset(f"{url}/metrics.json", credentials=options).load() == {"wga": 0.5}
    assert TorchCheckpointDataset(f"{url}/m.pt", credentials=options).load()["state_dict"]["w"].tolist() == [1.0, 1.0]
    assert json.loads(object_store.read("run/metrics.json")) == {"wga": 0.5}
    assert object_store.keys() == ["run/a.npz", "run/m.parquet", "run/m.pt", "run/metrics.json"]


def test_a_failed_save_uploads_nothing_and_keeps_the_previous_object(object_store):
    dataset = JsonDataset(f"s3://{object_store.bucket}/metrics.json", credentials=object_store.storage_options())
    dataset.save({"wga": 0.5})
    with pytest.raises(DatasetError, match="not JSON serializable"):
        dataset.save({"bad": object()})  # not JSON-serialisable: fails before the upload
    assert json.loads(object_store.read("metrics.json")) == {"wga": 0.5}
    assert object_store.keys() == ["metrics.json"]


def test_missing_objects_are_named_and_existence_sees_other_writers(object_store):
    location = f"s3://{object_store.bucket}/04_feature/nothing.npz"
    reader = NpzDataset(location, credentials=object_store.storage_options())
    assert not reader.exists()
    with pytest.raises(DatasetError, match=r"s3://.*/04_feature/nothing\.npz does not exist"):
        reader.load()
    object_store.client().put_object(Bucket=object_store.bucket, Key="04_feature/nothing.npz", Body=b"not a zip")
    assert reader.exists()  # written by another process after this dataset listed the prefix
    with pytest.raises(DatasetError, match=r"could not read s3://.*nothing\.npz"):
        reader.load()


def test_the_staged_copy_is_what_mlflow_logs(object_store):
    """kedro-mlflow's artifact wrapper logs ``_get_save_path()`` after a save: a local file, same name and bytes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, _ = plt.subplots()
    location = f"s3://{object_store.bucket}/08_reporting/chart.png"
    dataset = FigureDataset(location, credentials=object_store.storage_options())
    dataset.save(figure)
    staged = dataset._get_save_path()
    assert staged.name == "chart.png" and staged.read_bytes() == object_store.read("08_reporting/chart.png")
    assert staged.read_bytes().startswith(b"\x89PNG")


def test_credentials_yml_options_reach_datasets_without_credentials(object_store, monkeypatch):
    monkeypatch.setattr(fsspec.config, "conf", {})
    for name in ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(name, raising=False)
    apply_storage_options({"s3": object_store.storage_options()})
    JsonDataset(f"s3://{object_store.bucket}/x.json").save([1, 2])
    assert json.loads(object_store.read("x.json")) == [1, 2]


def test_malformed_object_store_options_are_refused():
    with pytest.raises(DatasetError, match=r"map a protocol to its storage options"):
        apply_storage_options({"key": "AKIA", "secret": "x"})
