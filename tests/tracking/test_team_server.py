"""The same project against a shared MLflow server (SQLite backend, local artifact root standing in
for a database and an object store): only MLFLOW_TRACKING_URI changes."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap

from mlflow.tracking import MlflowClient

from .conftest import MODEL_NAME, SERVER_ENV, free_port, kedro_run, patience, stop, wait_for_http


def test_registry_and_promotion_against_a_tracking_server(trained_project, tmp_path):
    project = tmp_path / "project"
    shutil.copytree(trained_project.path, project, ignore=shutil.ignore_patterns("mlflow.db", "mlruns"))
    server_dir = tmp_path / "server"
    server_dir.mkdir()
    port = free_port()
    uri = f"http://127.0.0.1:{port}"
    log = open(server_dir / "server.log", "w+")
    process = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
         "--backend-store-uri", f"sqlite:///{server_dir / 'backend.db'}",
         "--artifacts-destination", str(server_dir / "artifacts")],
        cwd=server_dir, env=trained_project.env(**SERVER_ENV), stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    try:
        wait_for_http(f"{uri}/health", process, timeout=patience(120))
        env = trained_project.env(MLFLOW_TRACKING_URI=uri)
        result = kedro_run(project, "--pipelines", "model_promotion", env=env,
                           params=f"model_promotion.packaging.method={trained_project.champion_method}")
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]

        client = MlflowClient(tracking_uri=uri, registry_uri=uri)
        champion = client.get_model_version_by_alias(MODEL_NAME, "champion")
        assert str(champion.version) == "1" and champion.tags["promotion.status"] == "promoted"
        assert client.get_run(champion.run_id).data.tags["promotion.status"] == "promoted"
        assert any((server_dir / "artifacts").rglob("MLmodel")), "artifacts must live in the server's artifact store"
        assert not (project / "mlflow.db").exists() and not (project / "mlruns").exists()

        script = textwrap.dedent(f"""
            import json, mlflow, numpy as np
            model = mlflow.pyfunc.load_model("models:/{MODEL_NAME}@champion")
            with np.load("data/ci/01_raw/inputs.npz") as arrays:
                output = model.predict(arrays["inputs"][:5])
            print(json.dumps(output["prediction"].tolist()))
        """)
        loaded = subprocess.run([sys.executable, "-c", script], cwd=project, env=env, capture_output=True, text=True,
                                timeout=patience(120))
        assert loaded.returncode == 0, loaded.stderr[-3000:]
        assert len(json.loads(loaded.stdout.strip().splitlines()[-1])) == 5
    except Exception:
        log.seek(0)
        print(log.read()[-4000:])
        raise
    finally:
        stop(process)
        log.close()
    assert process.poll() is not None, "the server must be shut down"
