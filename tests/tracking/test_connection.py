"""An unreachable tracking server fails fast with one clear message (MLflow alone retries ~4 minutes)."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from neurontune.exit_codes import UNREACHABLE
from neurontune.tracking.connection import HTTP_DEFAULTS, TrackingServerError, apply_http_defaults, check_tracking_server

from .conftest import console_env, free_port, patience, project_env


def test_http_defaults_never_override_the_user():
    environ = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "5"}
    applied = apply_http_defaults(environ)
    assert environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] == "5" and "MLFLOW_HTTP_REQUEST_MAX_RETRIES" not in applied
    assert environ["MLFLOW_HTTP_REQUEST_TIMEOUT"] == HTTP_DEFAULTS["MLFLOW_HTTP_REQUEST_TIMEOUT"]


def test_closed_port_is_one_clear_error():
    uri = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(TrackingServerError, match="cannot reach the MLflow tracking server .*Connection refused"):
        check_tracking_server(uri, "neurontune")
    check_tracking_server("sqlite:///nowhere.db", "neurontune")  # local stores are not contacted


def test_kedro_run_against_a_closed_port_fails_fast(ci_project):
    uri = f"http://127.0.0.1:{free_port()}"
    started = time.monotonic()
    result = subprocess.run([sys.executable, "-m", "kedro", "run", "--env", "ci", "--pipelines", "model_promotion"],
                            cwd=ci_project, env=project_env(MLFLOW_TRACKING_URI=uri), capture_output=True, text=True,
                            timeout=patience(300))
    elapsed = time.monotonic() - started
    assert result.returncode == UNREACHABLE, result.stderr[-2000:]
    assert f"cannot reach the MLflow tracking server {uri}" in " ".join((result.stdout + result.stderr).split())
    # a generous bound (the pre-fix behaviour took ~240 s of retries); the measured time is in the report
    assert elapsed < 90, elapsed


def test_lineage_against_a_closed_port_is_one_line(tmp_path):
    uri = f"http://127.0.0.1:{free_port()}"
    result = subprocess.run([sys.executable, "-m", "neurontune.console", "lineage", "models:/m@champion",
                             "--tracking-uri", uri], cwd=tmp_path, env=console_env(),
                            capture_output=True, text=True, timeout=patience(120))
    assert result.returncode == UNREACHABLE and result.stderr.count("\n") == 1 and "cannot reach" in result.stderr
