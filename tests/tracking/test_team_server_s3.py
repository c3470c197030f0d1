"""The team server with its artifacts on S3 (moto on 127.0.0.1): `mlflow server --artifacts-destination s3://…`.

Only the server holds bucket credentials (and MLFLOW_S3_ENDPOINT_URL); the project and the process that
loads the model back talk to the server alone.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap

import yaml
from mlflow.tracking import MlflowClient

from tests.object_store import mlflow_server, object_store, s3_endpoint  # noqa: F401  (fixtures)

from .conftest import MODEL_NAME, kedro_run, patience


def test_registered_model_files_land_in_the_bucket_and_load_back(trained_project, object_store, tmp_path):
    project = tmp_path / "project"
    shutil.copytree(trained_project.path, project, ignore=shutil.ignore_patterns("mlflow.db", "mlruns"))
    server_dir = tmp_path / "server"
    server_dir.mkdir()
    with mlflow_server(object_store, server_dir, trained_project.env()) as uri:
        # clients get no bucket credentials: artifacts go through the server
        env = {key: value for key, value in trained_project.env(MLFLOW_TRACKING_URI=uri).items()
               if not key.startswith("AWS_")}
        result = kedro_run(project, "--pipelines", "model_promotion", env=env,
                           params=f"model_promotion.packaging.method={trained_project.champion_method}")
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]

        client = MlflowClient(tracking_uri=uri, registry_uri=uri)
        challenger = client.get_model_version_by_alias(MODEL_NAME, "challenger")
        model_id = challenger.source.removeprefix("models:/")  # MLflow 3: the version's LoggedModel, m-…
        files = [key for key in object_store.keys("mlflow/") if f"/models/{model_id}/artifacts/" in key]
        assert any(key.endswith("/MLmodel") for key in files), object_store.keys("mlflow/")
        assert not (server_dir / "mlartifacts").exists() and not (project / "mlruns").exists()
        stored = yaml.safe_load(object_store.read(next(key for key in files if key.endswith("/MLmodel"))))

        script = textwrap.dedent(f"""
            import json, mlflow, numpy as np
            model = mlflow.pyfunc.load_model("models:/{MODEL_NAME}@challenger")
            with np.load("data/ci/01_raw/inputs.npz") as arrays:
                output = model.predict(arrays["inputs"][:5])
            print(json.dumps({{"model_uuid": model.metadata.model_uuid, "prediction": output["prediction"].tolist()}}))
        """)
        loaded = subprocess.run([sys.executable, "-c", script], cwd=project, env=env, capture_output=True, text=True,
                                timeout=patience(120))
        assert loaded.returncode == 0, loaded.stderr[-3000:]
        answer = json.loads(loaded.stdout.strip().splitlines()[-1])
        assert answer["model_uuid"] == stored["model_uuid"], "the model loaded back is the one in the bucket"
        assert len(answer["prediction"]) == 5
