"""``make serve``, ``make ui`` and ``make viz`` work without an activated environment and print their URL.

They run on the trained project copy (see ``conftest.py``) with the repository's Makefile, PATH
reduced to the system's folders (so MLflow must find ``uvicorn`` through the Makefile), and the
install step skipped (``-o``): the environment running the tests is the one the targets use.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import PROJECT_ROOT

from .conftest import MODEL_NAME, free_port, patience, project_env, stop, wait_for_http

VENV = Path(sys.executable).parent.parent
MAKE = shutil.which("make")
pytestmark = pytest.mark.skipif(MAKE is None or not (VENV / "bin" / "mlflow").exists(),
                                reason="needs `make` and a virtualenv holding mlflow (what `make install` builds)")


def make(project: Path, target: str, *variables: str, **env: str) -> tuple[list[str], dict[str, str]]:
    environment = {key: value for key, value in project_env(**env).items() if not key.startswith("MAKE")}
    environment["PATH"] = "/usr/local/bin:/usr/bin:/bin"  # nothing activated
    return [MAKE, "--no-print-directory", "-f", str(PROJECT_ROOT / "Makefile"), "-C", str(project),
            "-o", str(VENV / ".installed"), target, f"VENV={VENV}", *variables], environment


def start(project: Path, target: str, log: Path, *variables: str) -> subprocess.Popen:
    command, environment = make(project, target, *variables)
    return subprocess.Popen(command, env=environment, stdout=log.open("w"), stderr=subprocess.STDOUT,
                            start_new_session=True)


def free_registered_port() -> int:
    """A free loopback port below 49152: kedro-viz refuses the ephemeral range ``free_port`` draws from."""
    ports = (free_port() for _ in range(100))
    return next((port for port in ports if port < 49152), None) or pytest.skip("no free port below 49152")


def printed_url(log: Path) -> str:
    match = re.search(r"http://127\.0\.0\.1:\d+", log.read_text())
    assert match, f"no URL printed:\n{log.read_text()[-2000:]}"
    return match.group(0)


def test_make_serve_answers_a_prediction(trained_project, tmp_path):
    log, port = tmp_path / "serve.log", free_port()
    process = start(trained_project.path, "serve", log, f"PORT={port}", f"MODEL={MODEL_NAME}")  # --env ci's own name
    try:
        wait_for_http(f"http://127.0.0.1:{port}/ping", process, timeout=patience(180))
        assert printed_url(log) == f"http://127.0.0.1:{port}"
        with np.load(trained_project.path / "data/ci/01_raw/inputs.npz") as arrays:
            images = arrays["inputs"][:2]
        request = urllib.request.Request(f"http://127.0.0.1:{port}/invocations",
                                         data=json.dumps({"inputs": images.tolist()}).encode(),
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=patience(60)) as response:
            predictions = json.loads(response.read())["predictions"]
        assert len(predictions) == 2 and {"prediction", "probability_0", "probability_1"} <= set(predictions[0])
    except Exception as error:
        raise AssertionError(f"{error}\n{log.read_text()[-4000:]}") from error
    finally:
        stop(process)


def test_make_serve_without_champion_says_run_make_run_first(trained_project, tmp_path):
    command, environment = make(trained_project.path, "serve", f"PORT={free_port()}",
                                MLFLOW_TRACKING_URI=f"sqlite:///{tmp_path / 'empty.db'}")
    result = subprocess.run(command, env=environment, capture_output=True, text=True, timeout=patience(120))
    assert result.returncode != 0
    assert "no neurontune-colored_mnist@champion" in result.stdout and "run `make run` first" in result.stdout


@pytest.mark.parametrize(("target", "page"), [("ui", "/health"), ("viz", "/api/main")])
def test_make_ui_and_viz_serve_on_loopback(trained_project, tmp_path, target, page):
    log, port = tmp_path / f"{target}.log", free_registered_port()
    process = start(trained_project.path, target, log, f"PORT={port}")
    try:
        wait_for_http(f"http://127.0.0.1:{port}{page}", process, timeout=patience(180))
        assert printed_url(log) == f"http://127.0.0.1:{port}"
    except Exception as error:
        raise AssertionError(f"{error}\n{log.read_text()[-4000:]}") from error
    finally:
        stop(process)
