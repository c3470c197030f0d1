"""Honest run states: Ctrl-C / SIGTERM end the MLflow run KILLED (never FINISHED), and a run left
RUNNING by a SIGKILLed process is found and marked by `neurontune runs --clean-stale`."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from neurontune.console import main
from neurontune.tracking.runs import INTERRUPTED_TAG, PID_TAG, STALE_TAG

from .conftest import patience, project_env


@pytest.fixture
def project(ci_project, tmp_path) -> Path:
    """A trained copy of the suite's project with an empty MLflow store."""
    copy = tmp_path / "project"
    shutil.copytree(ci_project, copy, ignore=shutil.ignore_patterns("mlflow.db", "mlruns"))
    return copy


def start_long_run(project: Path):
    """``kedro run --env ci --pipelines erm_training`` with many epochs; returns (process, run id) once training runs."""
    log = open(project / "kedro.log", "w")
    process = subprocess.Popen(
        [sys.executable, "-m", "kedro", "run", "--env", "ci", "--pipelines", "erm_training",
         "--params", "erm_training.modes.finetune.epochs=500"],
        cwd=project, env=project_env(), stdout=log, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + patience(180)
    # the store is read only once the node runs: opening it while kedro-mlflow creates it races its migrations
    while time.monotonic() < deadline and process.poll() is None and "Running node" not in (project / "kedro.log").read_text():
        time.sleep(0.5)
    time.sleep(2)
    runs = MlflowClient(f"sqlite:///{project / 'mlflow.db'}").search_runs(
        ["0", "1"], f"attributes.status = 'RUNNING' and tags.`{PID_TAG}` = '{process.pid}'")
    if process.poll() is not None or not runs:
        process.kill()
        raise AssertionError(f"the run never started: {(project / 'kedro.log').read_text()[-3000:]}")
    return process, runs[0].info.run_id


@pytest.mark.parametrize("number", [signal.SIGINT, signal.SIGTERM], ids=["sigint", "sigterm"])
def test_interrupted_run_ends_killed(project, number):
    process, run_id = start_long_run(project)
    process.send_signal(number)
    process.wait(timeout=patience(120))
    output = (project / "kedro.log").read_text()
    assert process.returncode != 0, output[-2000:]
    run = MlflowClient(f"sqlite:///{project / 'mlflow.db'}").get_run(run_id)
    assert run.info.status == "KILLED", output[-2000:]
    assert run.data.tags[INTERRUPTED_TAG] == signal.Signals(number).name


def test_killed_process_leaves_a_stale_run_that_is_cleaned(project, capsys):
    process, run_id = start_long_run(project)
    process.kill()
    process.wait(timeout=patience(30))
    uri = f"sqlite:///{project / 'mlflow.db'}"
    client = MlflowClient(uri)
    assert client.get_run(run_id).info.status == "RUNNING"  # what SIGKILL leaves behind
    assert main(["runs", "--tracking-uri", uri]) == 0
    listed = capsys.readouterr().out
    assert run_id in listed and "1 stale run(s)" in listed
    assert client.get_run(run_id).info.status == "RUNNING"  # listing changes nothing
    assert main(["runs", "--clean-stale", "--tracking-uri", uri]) == 0
    assert "marked 1 stale run(s) KILLED" in capsys.readouterr().out
    run = client.get_run(run_id)
    assert run.info.status == "KILLED" and f"pid {process.pid} gone" in run.data.tags[STALE_TAG]
    assert main(["runs", "--clean-stale", "--tracking-uri", uri]) == 0
    assert "marked 0 stale run(s)" in capsys.readouterr().out
