"""The suite's own guard: what one test points MLflow at (a server it started and stopped) never reaches a later test
of the same worker. CI once failed when a test's registry URI leaked into the next module's store fixture."""

import os

import mlflow

from tests.conftest import _mlflow_globals, _restore_mlflow_globals


def test_registry_and_tracking_uris_set_in_a_test_are_undone(tmp_path):
    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    saved = _mlflow_globals()
    mlflow.set_tracking_uri("http://127.0.0.1:9")
    mlflow.set_registry_uri("http://127.0.0.1:9")
    os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] = "0"
    _restore_mlflow_globals(saved)
    assert os.environ.get("MLFLOW_REGISTRY_URI") == saved[3].get("MLFLOW_REGISTRY_URI")
    assert os.environ.get("MLFLOW_HTTP_REQUEST_MAX_RETRIES") == saved[3].get("MLFLOW_HTTP_REQUEST_MAX_RETRIES")
    assert "127.0.0.1:9" not in mlflow.get_registry_uri() and "127.0.0.1:9" not in mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(store)  # and a store set afterwards is used for the registry as well
    assert mlflow.get_registry_uri() == store
