"""Shared test fixtures: the project root, and a reduced (`--env ci`) kedro run in a temporary copy."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

if os.environ.get("MUTANT_UNDER_TEST"):  # `make mutation`: mutmut forks one child per mutant from this process
    import threading

    from tqdm import tqdm

    # tqdm's default write lock is a multiprocessing semaphore, shared by every forked child: a child killed
    # while holding it (mutmut's timeout) leaves every later child waiting forever. A per-process lock, and
    # no monitor thread (which takes that lock) to be copied mid-acquire into a fork.
    tqdm.set_lock(threading.RLock())
    tqdm.monitor_interval = 0

PROJECT_ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
COPIED = ["conf", "notebooks", "src", "pyproject.toml", ".telemetry", "dvc.yaml", ".dvcignore", "requirements.txt"]


def _mlflow_globals() -> tuple:
    """MLflow's process-wide settings: the tracking and registry URIs and active experiment it keeps in module
    globals, and every ``MLFLOW_*`` variable (``set_tracking_uri`` / ``set_registry_uri`` export theirs)."""
    environment = {key: value for key, value in os.environ.items() if key.startswith("MLFLOW_")}
    if "mlflow" not in sys.modules:
        return None, None, None, environment
    from mlflow.tracking import _model_registry, _tracking_service, fluent

    return (_tracking_service.utils._tracking_uri, _model_registry.utils._registry_uri, fluent._active_experiment_id,
            environment)


def _restore_mlflow_globals(saved: tuple) -> None:
    tracking_uri, registry_uri, experiment_id, environment = saved
    for key in [key for key in os.environ if key.startswith("MLFLOW_")]:
        del os.environ[key]
    os.environ.update(environment)
    if "mlflow" in sys.modules:
        from mlflow.tracking import _model_registry, _tracking_service, fluent

        _tracking_service.utils._tracking_uri = tracking_uri
        _model_registry.utils._registry_uri = registry_uri
        fluent._active_experiment_id = experiment_id


@pytest.fixture(autouse=True, scope="module")
def _mlflow_settings_per_module():
    """What a module (its module-scoped fixtures included) points MLflow at ends with the module."""
    saved = _mlflow_globals()
    yield
    _restore_mlflow_globals(saved)


@pytest.fixture(autouse=True)
def _mlflow_settings_per_test(_mlflow_settings_per_module):
    """What a test points MLflow at ends with the test: a later test of this worker must never log to (or register
    in) a server an earlier test started and has stopped."""
    saved = _mlflow_globals()
    yield
    _restore_mlflow_globals(saved)


def patience(seconds: float) -> float:
    """A wall-clock limit that only guards against a hang, scaled to this machine: by its load per core now (a
    busy shared runner is slower) and by ``NEURONTUNE_TEST_TIME_SCALE`` (default 1, e.g. 3 on a slow runner)."""
    load_per_core = os.getloadavg()[0] / (os.cpu_count() or 1)
    return seconds * max(1.0, load_per_core) * float(os.environ.get("NEURONTUNE_TEST_TIME_SCALE", "1"))


def project_environment(**extra) -> dict:
    """This process's environment for a project subprocess, without any ``MLFLOW_*`` setting: a test that pointed
    MLflow at its own server (``mlflow.set_tracking_uri`` exports the URI) must not send a later run there."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("MLFLOW_")}
    return {**env, "KEDRO_DISABLE_TELEMETRY": "true", "HF_HUB_OFFLINE": "1", **extra}


def copy_project(destination: Path) -> Path:
    """A fresh copy of the project (code, configuration, notebooks) with no data."""
    for name in COPIED:
        source = PROJECT_ROOT / name
        if source.is_dir():
            shutil.copytree(source, destination / name, ignore=shutil.ignore_patterns("local", ".ipynb_checkpoints", "__pycache__", "*.egg-info"))
        elif source.exists():
            shutil.copy2(source, destination / name)
    (destination / "conf" / "local").mkdir(exist_ok=True)
    (destination / "data").mkdir(exist_ok=True)  # each environment's tree, data/<env>/…, is made by its datasets
    return destination


def kedro(project: Path, *arguments: str, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run([str(BIN / "kedro"), *arguments], cwd=project, env=project_environment(),
                            capture_output=True, text=True)
    if check and result.returncode != 0:
        raise AssertionError(f"kedro {' '.join(arguments)} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return result


@pytest.fixture(scope="session")
def ci_project(tmp_path_factory) -> Path:
    """The whole DAG run once with `--env ci` in a temporary copy of the project."""
    project = copy_project(tmp_path_factory.mktemp("project"))
    kedro(project, "run", "--env", "ci")
    return project
