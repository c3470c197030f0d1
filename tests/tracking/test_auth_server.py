"""Who may promote: MLflow's basic-auth server on 127.0.0.1, bootstrapped with `neurontune team-server`.

One server for the module: the admin's password comes from the environment
(MLFLOW_AUTH_ADMIN_PASSWORD), the users from a file outside any repository. The `promoter`
account runs `kedro run --pipelines model_promotion` twice in a trained copy of the suite's
project (v1 refused against ERM, v2 promoted), with its credentials in
conf/local/credentials.yml; a `reader` can load the champion and audit it but not move it; an
unauthenticated client is refused; no password appears in anything logged.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
import textwrap
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from unittest import mock

import mlflow
import pytest
from mlflow.tracking import MlflowClient

from neurontune.console import main
from neurontune.tracking.connection import NotPermittedError
from neurontune.tracking.registry import apply_decision

from .conftest import MODEL_NAME, SERVER_ENV, console_env, free_port, patience, project_env, promotable_method, stop, wait_for_http


@dataclass
class AuthServer:
    uri: str
    admin_password: str
    passwords: dict[str, str]
    log: Path

    def env(self, user: str | None = None, **extra) -> dict[str, str]:
        credentials = {} if user is None else {"MLFLOW_TRACKING_USERNAME": user,
                                               "MLFLOW_TRACKING_PASSWORD": self.passwords[user]}
        return project_env(MLFLOW_TRACKING_URI=self.uri, **credentials, **extra)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    folder = tmp_path_factory.mktemp("auth_server")
    (folder / "basic_auth.ini").write_text(textwrap.dedent(f"""\
        [mlflow]
        default_permission = READ
        database_uri = sqlite:///{folder / 'auth.db'}
        admin_username = admin
        authorization_function = mlflow.server.auth:authenticate_request_basic_auth
    """))
    admin_password = secrets.token_urlsafe(18)
    passwords = {"admin": admin_password, "promoter": secrets.token_urlsafe(18), "reader": secrets.token_urlsafe(18)}
    port = free_port()
    log = folder / "server.log"
    env = project_env(**SERVER_ENV, MLFLOW_AUTH_CONFIG_PATH=str(folder / "basic_auth.ini"), MLFLOW_AUTH_ADMIN_PASSWORD=admin_password,
                      MLFLOW_FLASK_SERVER_SECRET_KEY=secrets.token_hex(16))
    with open(log, "w") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "mlflow", "server", "--app-name", "basic-auth", "--host", "127.0.0.1",
             "--port", str(port), "--workers", "1", "--backend-store-uri", f"sqlite:///{folder / 'backend.db'}",
             "--artifacts-destination", str(folder / "artifacts")],
            cwd=folder, env=env, stdout=output, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        uri = f"http://127.0.0.1:{port}"
        wait_for_http(f"{uri}/health", process, timeout=patience(180))
        users = folder / "users.yml"  # outside any git work tree, as the command requires
        users.write_text(json.dumps({name: {"role": name, "password": passwords[name]} for name in ("promoter", "reader")}))
        state = AuthServer(uri, admin_password, passwords, log)
        bootstrap = subprocess.run(
            [sys.executable, "-m", "neurontune.console", "team-server", "bootstrap", "--tracking-uri", uri,
             "--users", str(users), "--model", MODEL_NAME],
            env={**state.env("admin"), "PYTHONPATH": console_env()["PYTHONPATH"]}, capture_output=True, text=True, timeout=patience(120))
        assert bootstrap.returncode == 0, bootstrap.stderr[-3000:]
        assert f"promoter: MANAGE on registered_model {MODEL_NAME}" in bootstrap.stdout
        yield state
    except Exception:
        print(log.read_text()[-4000:])
        raise
    finally:
        stop(process)


@pytest.fixture(scope="module")
def promoted(server, ci_project, tmp_path_factory):
    """The promoter's two model_promotion runs (credentials in conf/local/credentials.yml, none in the environment)."""
    project = tmp_path_factory.mktemp("promoter") / "project"
    shutil.copytree(ci_project, project, ignore=shutil.ignore_patterns("mlflow.db", "mlruns"))
    # the default environment reads conf/local (the credentials); give it the ci run's data tree
    shutil.copytree(project / "data" / "ci", project / "data" / "colored_mnist")
    (project / "conf/local/credentials.yml").write_text(json.dumps({"mlflow_credentials": {
        "MLFLOW_TRACKING_USERNAME": "promoter", "MLFLOW_TRACKING_PASSWORD": server.passwords["promoter"]}}))
    method = promotable_method(json.loads((project / "data/ci/08_reporting/metrics.json").read_text()))
    runs = [promotion_run(project, server.env(), f"model_promotion.packaging.method={chosen}") for chosen in ("erm", method)]
    for run in runs:
        assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    return project, runs


def promotion_run(project: Path, env: dict, params: str) -> subprocess.CompletedProcess:
    """``kedro run --pipelines model_promotion`` in the default environment, which reads conf/local."""
    return subprocess.run([sys.executable, "-m", "kedro", "run", "--pipelines", "model_promotion", "--params", params],
                          cwd=project, env=env, capture_output=True, text=True, timeout=patience(300))


def as_user(server, user: str):
    """MLflow reads credentials from the environment at each request."""
    return mock.patch.dict(os.environ, server.env(user))


def test_unauthenticated_client_is_refused(server, promoted):
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(f"{server.uri}/api/2.0/mlflow/experiments/search?max_results=1", timeout=patience(10))
    assert refused.value.code == 401
    project, _ = promoted
    anonymous = project.parent / "anonymous"
    shutil.copytree(project, anonymous, ignore=shutil.ignore_patterns("credentials.yml"))
    result = promotion_run(anonymous, server.env(), "model_promotion.packaging.method=erm")
    assert result.returncode != 0
    message = " ".join((result.stdout + result.stderr).split())
    assert "requires authentication (HTTP 401)" in message
    assert "MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD are not set" in message


def test_promoter_registers_and_moves_champion(server, promoted):
    with as_user(server, "admin"):
        client = MlflowClient(server.uri, server.uri)
        first, second = (client.get_model_version(MODEL_NAME, version) for version in ("1", "2"))
        assert str(client.get_model_version_by_alias(MODEL_NAME, "champion").version) == "2"
    assert first.tags["promotion.status"] == "refused" and first.tags["promotion.compared_with"] == "erm"
    assert second.tags["promotion.status"] == "promoted"
    moves = json.loads(second.tags["audit.alias_moves"])
    assert [(move["alias"], move["by"]) for move in moves] == [("challenger", "promoter"), ("champion", "promoter")]


def test_reader_loads_champion_and_audits_it(server, promoted, capsys):
    project, _ = promoted
    script = textwrap.dedent(f"""
        import json, mlflow, numpy as np
        model = mlflow.pyfunc.load_model("models:/{MODEL_NAME}@champion")
        with np.load("data/ci/01_raw/inputs.npz") as arrays:
            print(json.dumps(model.predict(arrays["inputs"][:3])["prediction"].tolist()))
    """)
    loaded = subprocess.run([sys.executable, "-c", script], cwd=project, env=server.env("reader"), capture_output=True,
                            text=True, timeout=patience(180))
    assert loaded.returncode == 0, loaded.stderr[-3000:]
    assert len(json.loads(loaded.stdout.strip().splitlines()[-1])) == 3
    with as_user(server, "reader"):
        code = main(["lineage", f"models:/{MODEL_NAME}@champion", "--tracking-uri", server.uri,
                     "--project-dir", str(project), "--verify", "--json"])
    chain = json.loads(capsys.readouterr().out)
    assert code == 0 and chain["verification"]["ok"]
    assert [(move["alias"], move["version"], move["by"]) for move in chain["alias_history"]][-1] == ("champion", "2", "promoter")


def test_reader_cannot_move_champion_and_changes_nothing(server, promoted):
    client = MlflowClient(server.uri, server.uri)
    with as_user(server, "admin"):
        before = client.get_model_version(MODEL_NAME, "1").tags
    decision = {"registered_model_name": MODEL_NAME, "challenger_version": 1, "champion_version": 2, "promote": True,
                "status": "promoted", "reason": "a reader tries to move the champion"}
    previous = mlflow.get_tracking_uri()
    try:
        mlflow.set_tracking_uri(server.uri)
        with as_user(server, "reader"):
            with pytest.raises(NotPermittedError, match=r"not permitted: user 'reader' may not move @champion"):
                apply_decision(decision)
    finally:
        mlflow.set_tracking_uri(previous)
    with as_user(server, "admin"):
        assert str(client.get_model_version_by_alias(MODEL_NAME, "champion").version) == "2"
        assert client.get_model_version(MODEL_NAME, "1").tags == before


def test_no_password_in_runs_models_or_output(server, promoted, tmp_path, monkeypatch):
    _, runs = promoted
    secrets_ = [server.passwords[name] for name in ("admin", "promoter", "reader")]
    haystack = [run.stdout + run.stderr for run in runs]
    # set_registry_uri also exports MLFLOW_REGISTRY_URI: restore both, or later tests read this server's registry
    monkeypatch.setattr(mlflow.tracking._model_registry.utils, "_registry_uri", None)
    monkeypatch.delenv("MLFLOW_REGISTRY_URI", raising=False)
    previous = mlflow.get_tracking_uri()
    try:
        mlflow.set_tracking_uri(server.uri)
        mlflow.set_registry_uri(server.uri)
        with as_user(server, "admin"):
            client = MlflowClient(server.uri, server.uri)
            experiment = client.get_experiment_by_name("neurontune")
            logged = client.search_runs([experiment.experiment_id])
            assert len(logged) == 2
            for run in logged:
                haystack += [json.dumps(run.data.params), json.dumps(run.data.tags), json.dumps(run.data.metrics)]
                folder = tmp_path / run.info.run_id
                client.download_artifacts(run.info.run_id, "", str(folder))
                haystack += _texts(folder)
            for version in client.search_model_versions(f"name = '{MODEL_NAME}'"):
                haystack += [json.dumps(version.tags), version.description or ""]
                haystack += _texts(Path(mlflow.artifacts.download_artifacts(artifact_uri=version.source,
                                                                             dst_path=str(tmp_path / version.version))))
    finally:
        mlflow.set_tracking_uri(previous)
    assert len(haystack) > 20
    for secret in secrets_:
        assert not any(secret in text for text in haystack)


def _texts(folder: Path) -> list[str]:
    return [path.read_bytes().decode(errors="replace") for path in folder.rglob("*") if path.is_file()]
