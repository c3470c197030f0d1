"""Resolving the user's MLflow model: aliases, versions and run URIs; class names it declares; errors that say where."""

from __future__ import annotations

import mlflow
import numpy as np
import pytest
import torch

from neurontune.models.imported import SourceModelError
from neurontune.tracking.source_model import describe_mlflow_source, load_source_model
from tests.models.test_imported import SIZE, probe, tiny

IMPORTED = {"weights": None, "head": None, "preprocessing": {"image_size": SIZE}}


@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    """``my-classifier`` v1 (pickle) with alias ``production`` and class names in its metadata, in a fresh store."""
    uri = f"sqlite:///{tmp_path_factory.mktemp('store') / 'mlflow.db'}"
    mlflow.set_tracking_uri(uri)  # both undone when the module ends (tests/conftest.py)
    mlflow.set_registry_uri(uri)
    with mlflow.start_run() as run:
        info = mlflow.pytorch.log_model(tiny(), name="model", serialization_format="pickle",
                                        registered_model_name="my-classifier", metadata={"classes": ["cat", "dog"]})
    mlflow.MlflowClient().set_registered_model_alias("my-classifier", "production", info.registered_model_version)
    return {"uri": uri, "run_id": run.info.run_id}


def test_uris_resolve_to_name_version_and_run(registry):
    by_alias = describe_mlflow_source("models:/my-classifier@production")
    assert (by_alias["name"], by_alias["version"], by_alias["run_id"]) == ("my-classifier", "1", registry["run_id"])
    assert describe_mlflow_source("models:/my-classifier/1")["version"] == "1"
    assert describe_mlflow_source(f"runs:/{registry['run_id']}/model")["run_id"] == registry["run_id"]
    with pytest.raises(SourceModelError, match=r"models:/my-classifier@staging.*does not resolve in the registry"):
        describe_mlflow_source("models:/my-classifier@staging")


def test_a_registered_pickle_model_is_imported_with_its_lineage(registry):
    model = load_source_model("models:/my-classifier@production", IMPORTED, 2, ["cat", "dog"])
    torch.testing.assert_close(model(probe()), tiny()(probe()))
    source = model.config["source"]
    assert source["serialization"] == "pickle" and source["version"] == "1" and len(source["weights_digest"]) == 64


def test_declared_class_names_must_match_the_data(registry):
    with pytest.raises(SourceModelError, match=r"names its outputs \['cat', 'dog'\] but data_versioning.classes is"):
        load_source_model("models:/my-classifier/1", IMPORTED, 2, ["dog", "cat"])


def test_a_precomputed_source_needs_a_head_with_the_data():
    with pytest.raises(SourceModelError, match="hold no head"):
        load_source_model("precomputed", IMPORTED, 2, None, {"inputs": np.zeros((2, 3), np.float32)})
