"""Who may promote: MLflow's basic-auth server on 127.0.0.1 with the project's auth policy (only promoters create
`neurontune-*` names), bootstrapped with `neurontune team-server`.

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

from .conftest import SERVER_ENV, console_env, free_port, patience, project_env, promotable_method, stop, wait_for_http


#: The promoter's runs use the default environment (it reads conf/local/credentials.yml): the production name.
MODEL_NAME = "neurontune-colored_mnist"


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
        # as docs/team_setup.md advises: one password hash per user and 5 minutes, not one per request
        auth_cache_ttl_seconds = 300
        authorization_function = neurontune.tracking.auth_policy:authenticate_request

        [neurontune]
        promoters = promoter
    """))
    admin_password = secrets.token_urlsafe(18)
    passwords = {"admin": admin_password, "promoter": secrets.token_urlsafe(18), "reader": secrets.token_urlsafe(18)}
    port = free_port()
    log = folder / "server.log"
    env = project_env(**SERVER_ENV, MLFLOW_AUTH_CONFIG_PATH=str(folder / "basic_auth.ini"), MLFLOW_AUTH_ADMIN_PASSWORD=admin_password,
                      MLFLOW_FLASK_SERVER_SECRET_KEY=secrets.token_hex(16))
    env["PYTHONPATH"] = console_env()["PYTHONPATH"]  # the server imports this checkout's auth policy
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
    mlflow.set_tracking_uri(server.uri)  # undone when the test ends (tests/conftest.py)
    with as_user(server, "reader"):
        with pytest.raises(NotPermittedError, match=r"not permitted: user 'reader' may not move @champion"):
            apply_decision(decision)
    with as_user(server, "admin"):
        assert str(client.get_model_version_by_alias(MODEL_NAME, "champion").version) == "2"
        assert client.get_model_version(MODEL_NAME, "1").tags == before


def test_no_password_in_runs_models_or_output(server, promoted, tmp_path):
    _, runs = promoted
    secrets_ = [server.passwords[name] for name in ("admin", "promoter", "reader")]
    haystack = [run.stdout + run.stderr for run in runs]
    # set_registry_uri also exports MLFLOW_REGISTRY_URI: tests/conftest.py undoes both when this test ends
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
    assert len(haystack) > 20
    for secret in secrets_:
        assert not any(secret in text for text in haystack)


def _texts(folder: Path) -> list[str]:
    return [path.read_bytes().decode(errors="replace") for path in folder.rglob("*") if path.is_file()]


# ---------------------------------------------------------------- issue 28: trust under pressure (cases 6, 12)


@pytest.fixture(scope="module")
def anonymous(promoted):
    """The promoter's project without its credentials file: who acts comes from the environment or the URI."""
    project, _ = promoted
    copy = project.parent / "no_credentials"
    shutil.copytree(project, copy, ignore=shutil.ignore_patterns("credentials.yml"))
    return copy


def with_password(server, user: str, password: str) -> str:
    return server.uri.replace("http://", f"http://{user}:{password}@")


def test_a_password_in_the_tracking_uri_is_never_printed(server, promoted, anonymous, capsys):
    """Case 6: ``MLFLOW_TRACKING_URI=http://promoter:PASSWORD@…`` printed the password and misreported "Name or service
    not known". Now the user info travels as credentials: a wrong password is named as such, a right one works, and
    neither is printed nor recorded."""
    wrong = secrets.token_urlsafe(12)
    refused = promotion_run(anonymous, {**server.env(), "MLFLOW_TRACKING_URI": with_password(server, "promoter", wrong)},
                            "model_promotion.packaging.method=erm")
    output = refused.stdout + refused.stderr
    assert refused.returncode != 0 and "refused user 'promoter' (HTTP 401)" in " ".join(output.split())
    assert wrong not in output and "Name or service not known" not in output and "Traceback" not in output

    password = server.passwords["promoter"]
    method = promotable_method(json.loads((anonymous / "data/ci/08_reporting/metrics.json").read_text()))
    accepted = promotion_run(anonymous, {**server.env(), "MLFLOW_TRACKING_URI": with_password(server, "promoter", password)},
                             f"model_promotion.packaging.method={method}")
    assert accepted.returncode == 0, accepted.stdout[-3000:] + accepted.stderr[-3000:]
    assert password not in accepted.stdout + accepted.stderr
    with as_user(server, "admin"):
        client = MlflowClient(server.uri, server.uri)
        latest = client.search_runs([client.get_experiment_by_name("neurontune").experiment_id], max_results=1,
                                    order_by=["attributes.start_time DESC"])[0]
    assert latest.info.status == "FINISHED"
    assert password not in json.dumps(latest.data.params) + json.dumps(latest.data.tags)

    with mock.patch.dict(os.environ, server.env()):  # no credentials in the environment: only the URI's
        code = main(["lineage", f"models:/{MODEL_NAME}@champion", "--tracking-uri", with_password(server, "reader", server.passwords["reader"]),
                     "--project-dir", str(anonymous)])
    printed = capsys.readouterr()
    assert code == 0, printed.err
    assert server.passwords["reader"] not in printed.out + printed.err


def test_a_readers_kedro_run_that_reaches_a_write_is_one_clear_error(server, anonymous):
    """Case 12: a reader's ``kedro run`` passed the read check and died in a raw 403 traceback at its first write."""
    result = promotion_run(anonymous, server.env("reader"), "model_promotion.packaging.method=erm")
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "not permitted: the MLflow server refused user 'reader' a write (HTTP 403" in " ".join(output.split())
    assert "Traceback" not in output


# ---------------------------------------------------------------- issue 28: registry permissions that hold (7, 8)


def bootstrap_again(server, *models: str) -> subprocess.CompletedProcess:
    users = Path(server.log).parent / "users.yml"
    arguments = [argument for model in models for argument in ("--model", model)]
    return subprocess.run([sys.executable, "-m", "neurontune.console", "team-server", "bootstrap", "--tracking-uri",
                           server.uri, "--users", str(users), *arguments],
                          env={**server.env("admin"), "PYTHONPATH": console_env()["PYTHONPATH"]}, capture_output=True,
                          text=True, timeout=patience(120))


def test_only_the_promoter_creates_project_names_and_bootstrap_repairs_a_takeover(server, promoted):
    """Case 7: a reader created ``neurontune-futurebench`` first; bootstrapping said "exists" and left the reader with
    MANAGE. Now the server refuses the reader's create, and bootstrap revokes a grant taken before, saying so."""
    from mlflow.server.auth.client import AuthServiceClient

    client = MlflowClient(server.uri, server.uri)
    with as_user(server, "reader"):
        with pytest.raises(Exception, match="names starting with 'neurontune-' are the promoter role's"):
            client.create_registered_model("neurontune-futurebench")
        client.create_registered_model("scratch-reader-model")  # outside the prefix: allowed
    with as_user(server, "admin"):  # a takeover made before the policy: the reader holds MANAGE on a project name
        client.create_registered_model("neurontune-takenbench")
        AuthServiceClient(server.uri).grant_user_permission("reader", "registered_model", "neurontune-takenbench", "MANAGE")
    result = bootstrap_again(server, MODEL_NAME)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "REPAIRED: reader held MANAGE on registered_model neurontune-takenbench but is not a promoter: revoked" in result.stdout
    assert "promoter: MANAGE on registered_model neurontune-takenbench" in result.stdout
    with as_user(server, "admin"):
        admin = AuthServiceClient(server.uri)
        assert admin.get_user_permission("reader", "registered_model", "neurontune-takenbench").permission == "READ"
        assert admin.get_user_permission("promoter", "registered_model", "neurontune-takenbench").permission == "MANAGE"


def test_the_audit_trail_survives_a_promoter_a_manage_grant_and_a_deleted_version(server, promoted, capsys):
    """Case 8: the trail was a version tag — a promoter could overwrite it, a MANAGE user moved @champion unrecorded,
    deleting a version removed its moves. Now it is an append-only experiment the lineage reads."""
    from mlflow.server.auth.client import AuthServiceClient

    project, _ = promoted
    client = MlflowClient(server.uri, server.uri)
    with as_user(server, "promoter"):  # the promoter appends, but can neither edit nor delete an entry
        audit = client.get_experiment_by_name("neurontune-audit")
        entry = client.search_runs([audit.experiment_id], max_results=1)[0]
        with pytest.raises(Exception):
            client.log_param(entry.info.run_id, "by", "somebody-else")
        with pytest.raises(Exception, match="403|PERMISSION_DENIED|Permission denied"):
            client.delete_run(entry.info.run_id)
    with as_user(server, "admin"):
        AuthServiceClient(server.uri).grant_user_permission("reader", "registered_model", MODEL_NAME, "MANAGE")
    try:
        with as_user(server, "reader"):  # MANAGE on the model moves @champion outside the gate
            client.set_registered_model_alias(MODEL_NAME, "champion", "1")
    finally:
        with as_user(server, "admin"):
            AuthServiceClient(server.uri).revoke_user_permission("reader", "registered_model", MODEL_NAME)
    with as_user(server, "admin"):
        client.delete_model_version(MODEL_NAME, "2")  # its recorded moves stay in the trail
        code = main(["lineage", f"models:/{MODEL_NAME}/1", "--tracking-uri", server.uri, "--project-dir", str(project), "--json"])
    history = json.loads(capsys.readouterr().out)["alias_history"]
    assert code == 0
    assert ("champion", "2", "promoter", "promoted") in [(m["alias"], m["version"], m["by"], m["decision"]) for m in history]
    assert history[-1]["alias"] == "champion" and history[-1]["version"] == "1"
    assert history[-1]["decision"] == "moved outside the gate"
