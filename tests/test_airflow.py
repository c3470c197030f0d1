"""Apache Airflow 3 runs the DAG that kedro-airflow generates, against S3 and a team MLflow server.

Everything is real and on 127.0.0.1: moto's S3 API, `mlflow server` with its artifacts in the bucket,
and `airflow dags test`, whose tasks are `kedro run --nodes …` in the project's environment. The first
try of the evaluation task finds the object store unreachable; Airflow retries it, the retry reads
what upstream tasks stored, and the run's metrics equal a local `kedro run --env ci`.

Airflow lives in its own virtualenv (`make airflow-test` creates it and runs this test).
"""

import json
import os
import sqlite3
import subprocess
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from tests.conftest import BIN, PROJECT_ROOT, copy_project, patience, project_environment
from tests.object_store import mlflow_server, object_store, s3_endpoint  # noqa: F401  (fixtures)
from tests.test_airflow_dag import dag_tasks, generate_dag
from tests.tracking.conftest import MODEL_NAME, free_port

pytestmark = pytest.mark.slow
AIRFLOW = Path(os.environ.get("NEURONTUNE_AIRFLOW", PROJECT_ROOT / ".airflow-venv" / "bin" / "airflow"))
DAG_ID = "neurontune_ci"
FAILING_NODE = "compute_group_metrics"  # evaluation: reads the heads and embeddings upstream tasks stored


def flaky_kedro(path: Path, failing_task: str) -> Path:
    """``kedro`` whose first try of ``failing_task`` points at an S3 endpoint where nothing listens."""
    path.write_text(f"""#!/bin/sh
if [ "$AIRFLOW_CTX_TASK_ID" = "{failing_task}" ] && [ "$AIRFLOW_CTX_TRY_NUMBER" = "1" ]; then
    export AWS_ENDPOINT_URL=http://127.0.0.1:{free_port()}
fi
exec {BIN / "kedro"} "$@"
""")
    path.chmod(0o755)
    return path


def test_airflow_runs_the_dag_on_object_storage_and_a_retry_resumes_from_stored_data(ci_project, object_store,
                                                                                      tmp_path):
    if not AIRFLOW.exists():
        pytest.skip(f"no Airflow at {AIRFLOW}: `make airflow-test` installs it and runs this test")
    project = copy_project(tmp_path / "project")
    dags = tmp_path / "dags"
    nodes, _ = dag_tasks(generate_dag(project, dags, retry_delay_seconds="2"))
    failing_task = next(task for task, group in nodes.items() if FAILING_NODE in group)

    base = {key: value for key, value in project_environment().items() if not key.startswith(("AIRFLOW", "PYTHONPATH"))}
    home = tmp_path / "airflow_home"
    with mlflow_server(object_store, tmp_path, base) as tracking_uri:
        env = {**base, **object_store.env(), "MLFLOW_TRACKING_URI": tracking_uri,
               "NEURONTUNE_DATA_ROOT": f"s3://{object_store.bucket}/airflow",
               "NEURONTUNE_KEDRO": str(flaky_kedro(tmp_path / "kedro", failing_task)),
               "AIRFLOW_HOME": str(home), "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
               "AIRFLOW__CORE__LOAD_EXAMPLES": "False"}
        subprocess.run([str(AIRFLOW), "db", "migrate"], env=env, cwd=tmp_path, check=True, capture_output=True)
        run = subprocess.run([str(AIRFLOW), "dags", "test", DAG_ID], env=env, cwd=tmp_path, capture_output=True,
                             text=True, timeout=patience(1800))
        output = run.stdout + run.stderr
        (tmp_path / "airflow.log").write_text(output)
        assert run.returncode == 0, output[-5000:]

        with sqlite3.connect(home / "airflow.db") as database:
            dag_runs = database.execute("SELECT state FROM dag_run WHERE dag_id = ?", (DAG_ID,)).fetchall()
            states = database.execute("SELECT task_id, state, try_number FROM task_instance WHERE dag_id = ?",
                                      (DAG_ID,)).fetchall()
        assert dag_runs == [("success",)] and {task for task, _, _ in states} == set(nodes)
        assert {state for _, state, _ in states} == {"success"}
        # the unreachable bucket failed the first try; the retry ran only that task, from the stored datasets
        tries = {task: number for task, _, number in states}
        assert tries.pop(failing_task) == 2 and set(tries.values()) == {1}
        assert "Could not connect to the endpoint URL" in output

        in_bucket = json.loads(object_store.read("airflow/ci/08_reporting/metrics.json"))
        assert in_bucket == json.loads((ci_project / "data" / "ci" / "08_reporting" / "metrics.json").read_text())
        assert [path for path in (project / "data").rglob("*") if path.is_file()] == []

        client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
        challenger = client.get_model_version_by_alias(MODEL_NAME, "challenger")
        model_id = challenger.source.removeprefix("models:/")
        assert any(key.endswith(f"/models/{model_id}/artifacts/MLmodel") for key in object_store.keys("mlflow/"))
        experiment = client.get_run(challenger.run_id).info.experiment_id
        runs = client.search_runs([experiment], filter_string=f"tags.`airflow.dag_id` = '{DAG_ID}'", max_results=1000)
        assert {run.data.tags["airflow.task_id"] for run in runs} == {task for task, _, _ in states}
        assert len({run.data.tags["airflow.dag_run_id"] for run in runs}) == 1, "one DAG run's MLflow runs share its id"
