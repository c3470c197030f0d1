"""A trained project state, shared by the registry, serving, lineage and team-server tests.

The real pipeline runs on the reduced ``ci`` environment in a temporary copy of the project
(its own git repository and SQLite MLflow store), three times:

1. the whole DAG packaging ERM's own head, with the gate failing on refusal: v1 is registered
   but refused — it cannot beat ERM, the implicit first champion — so the run fails and no
   version becomes champion;
2. ``--pipelines model_promotion`` packaging the method with the best test worst-group accuracy:
   v2 beats ERM and becomes ``@champion``;
3. the same again: the model is unchanged, so v2 is reused (nothing registered) and the gate
   answers ``already_champion``.

Separate from the suite's ``ci_project``, which other tests rerun stages in.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import PROJECT_ROOT, copy_project, patience, project_environment

MODEL_NAME = "neurontune-ci-colored_mnist"  # `--env ci` registers under a name of its own


@dataclass
class TrainedProject:
    path: Path
    first_run: subprocess.CompletedProcess
    second_run: subprocess.CompletedProcess
    third_run: subprocess.CompletedProcess
    champion_method: str

    @property
    def tracking_uri(self) -> str:
        return f"sqlite:///{self.path / 'mlflow.db'}"

    def env(self, **extra: str) -> dict[str, str]:
        return project_env(**{"MLFLOW_TRACKING_URI": self.tracking_uri, **extra})


def project_env(**extra: str) -> dict[str, str]:
    """``project_environment`` (no ``MLFLOW_*`` from this process) with a git identity, for the copies that commit."""
    env = project_environment(TRANSFORMERS_OFFLINE="1", GIT_AUTHOR_NAME="test", GIT_AUTHOR_EMAIL="test@localhost",
                              GIT_COMMITTER_NAME="test", GIT_COMMITTER_EMAIL="test@localhost", **extra)
    env.pop("PYTHONPATH", None)  # the copy's own src/ is what kedro puts on the path
    # console scripts the servers exec (uvicorn, gunicorn) live beside this interpreter
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    return env


# For the MLflow servers the tests start: no GenAI job runner (seven Huey worker processes per server that this
# project never uses and that cost the suite CPU time at every start)
SERVER_ENV = {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}


def console_env(**extra: str) -> dict[str, str]:
    """``project_env`` for the ``neurontune`` console: this checkout's code first (not another editable install)."""
    return {**project_env(**extra), "PYTHONPATH": str(PROJECT_ROOT / "src")}


def kedro_run(project: Path, *arguments: str, params: str = "", env: dict[str, str] | None = None, timeout: float = 300):
    """``kedro run --env ci`` (the suite's reduced configuration) in ``project``."""
    command = [sys.executable, "-m", "kedro", "run", "--env", "ci", *arguments] + (["--params", params] if params else [])
    return subprocess.run(command, cwd=project, env=env or project_env(), capture_output=True, text=True, timeout=patience(timeout))


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for_http(url: str, process: subprocess.Popen, timeout: float) -> None:
    """Poll ``url`` until it answers 200; fail if the process dies or ``timeout`` seconds pass."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with code {process.returncode} before answering {url}")
        try:
            with urllib.request.urlopen(url, timeout=patience(2)) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.5)
    raise TimeoutError(f"no answer from {url} within {timeout} s")


def stop(process: subprocess.Popen) -> None:
    """Terminate a server started in its own session (workers included); kill if it lingers."""
    if process.poll() is None:
        os.killpg(process.pid, 15)
        try:
            process.wait(timeout=patience(15))
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, 9)
            process.wait(timeout=patience(5))


@pytest.fixture(scope="session")
def trained_project(tmp_path_factory) -> TrainedProject:
    project = copy_project(tmp_path_factory.mktemp("trained"))
    env = project_env()
    subprocess.run(["git", "init", "-q"], cwd=project, check=True, env=env)
    subprocess.run(["git", "add", "-A"], cwd=project, check=True, env=env)
    subprocess.run(["git", "commit", "-qm", "snapshot"], cwd=project, check=True, env=env)
    first = kedro_run(project, params="model_promotion.packaging.method=erm,model_promotion.gate.fail_on_refusal=true",
                      env=env)
    assert (project / "data/ci/08_reporting/promotion_decision.json").exists(), first.stdout[-3000:] + first.stderr[-5000:]
    method = promotable_method(json.loads((project / "data/ci/08_reporting/metrics.json").read_text()))
    second = kedro_run(project, "--pipelines", "model_promotion", params=f"model_promotion.packaging.method={method}", env=env)
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-5000:]
    third = kedro_run(project, "--pipelines", "model_promotion",
                      params=f"model_promotion.packaging.method={method},model_promotion.gate.fail_on_refusal=true", env=env)
    return TrainedProject(project, first, second, third, method)


def promotable_method(metrics: dict, split: str = "test", min_delta: float = 0.005, max_drop: float = 0.01) -> str:
    """The evaluated method with the best worst-group accuracy among those the default gate lets past ERM
    (a NeuronTune variant when one passes, so the champion has mask evidence to explain)."""
    erm = metrics["erm"][split]
    from neurontune.methods import method_entries

    passing = {method: values[split]["worst_group_accuracy"] for method, values in method_entries(metrics).items()
               if method != "erm" and values[split]["worst_group_accuracy"] - erm["worst_group_accuracy"] >= min_delta
               and erm["mean_accuracy"] - values[split]["mean_accuracy"] <= max_drop}
    assert passing, f"no method beats ERM on the ci run's {split} split: {metrics}"
    variants = {method: wga for method, wga in passing.items() if method.startswith("neurontune")}
    return max(variants or passing, key=(variants or passing).get)
