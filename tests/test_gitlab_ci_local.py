"""The GitLab CI template's jobs, run by gitlab-ci-local (shell executor) against an MLflow server and an S3 server
(moto), both on 127.0.0.1: a merge request's job moves nothing, a challenger that beats the champion moves
``@champion``, one that does not fails the job with the "refused" status and leaves the alias where it was.

The repository is a copy of the project with the template as its ``.gitlab-ci.yml``, a DVC remote in the bucket
(committed in ``.dvc/config``, without credentials) and the reduced ``ci`` environment (``BENCHMARK=ci``). The
credentials reach the jobs only as environment variables, as CI secrets do. ``.venv`` is this interpreter's
environment, stamped as built from the pins (``steps.sh stamp``), so ``steps.sh install`` is the cache hit.
Skipped only where gitlab-ci-local is not installed; ``.ci/run`` installs it (and rsync).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from mlflow.tracking import MlflowClient

from neurontune.exit_codes import REFUSED
from tests.conftest import PROJECT_ROOT, copy_project, patience
from tests.object_store import SECRET, mlflow_server, object_store, s3_endpoint  # noqa: F401  (fixtures)
from tests.test_dvc import dvc, make_dvc_project
from tests.tracking.conftest import MODEL_NAME, project_env, promotable_method

GITLAB_CI_LOCAL = shutil.which("gitlab-ci-local")
pytestmark = [pytest.mark.slow, pytest.mark.skipif(GITLAB_CI_LOCAL is None, reason="gitlab-ci-local is not installed "
                                "(npm install -g gitlab-ci-local@4.70.1; .ci/run installs it)")]
REPORTING = Path("data/ci/08_reporting")
#: gitlab-ci-local's lines: ` PASS  <job>` (or WARN, FAIL) in the pipeline's summary, and at the end of a job that
#: failed `<job> finished in 1.2 s  FAIL <exit code>` (WARN when its job allows that code to fail)
VERDICT = re.compile(r"^\s*(?P<verdict>PASS|WARN|FAIL)\s+(?P<job>neurontune-\w+)\b", re.M)
EXIT_CODE = re.compile(r"^(?P<job>neurontune-\w+)\s+finished in .*?\b(?P<verdict>WARN|FAIL)\s+(?P<code>\d+)", re.M)


def git(repository: Path, *arguments: str) -> None:
    subprocess.run(["git", *arguments], cwd=repository, check=True, env=project_env(), capture_output=True)


def ci_repository(directory: Path, bucket: str, endpoint: str) -> Path:
    """The project as a team's repository on its default branch, with the GitLab template and a DVC remote on S3."""
    repository = make_dvc_project(copy_project(directory))
    shutil.copytree(PROJECT_ROOT / "templates", repository / "templates")
    shutil.copy2(PROJECT_ROOT / ".gitignore", repository / ".gitignore")
    shutil.copy2(PROJECT_ROOT / "templates" / "ci" / "gitlab-ci.yml", repository / ".gitlab-ci.yml")
    dvc(repository, "remote", "add", "--default", "shared", f"s3://{bucket}/dvc")
    dvc(repository, "remote", "modify", "shared", "endpointurl", endpoint)
    git(repository, "symbolic-ref", "HEAD", "refs/heads/main")
    git(repository, "add", "-A")
    git(repository, "commit", "-qm", "NeuronTune with the GitLab CI template")
    # the cached .venv: this interpreter's scripts, stamped as built from these pins in this folder
    scripts = repository / ".venv" / "bin"
    scripts.mkdir(parents=True)
    for name in ("python", "python3", "kedro", "dvc", "neurontune"):
        (scripts / name).symlink_to(Path(sys.executable).parent / name)
    stamp = subprocess.run(["bash", "templates/ci/steps.sh", "stamp"], cwd=repository, capture_output=True, text=True,
                           check=True).stdout
    (repository / ".venv" / ".ci-stamp").write_text(stamp)
    return repository


def run_pipeline(repository: Path, env: dict[str, str], *variables: str) -> tuple[dict[str, tuple[str, int]], str]:
    """Run the pipeline gitlab-ci-local selects for ``variables``; return ``{job: (verdict, exit code)}`` and the log."""
    options = [option for variable in ("BENCHMARK=ci", *variables) for option in ("--variable", variable)]
    result = subprocess.run([GITLAB_CI_LOCAL, "--force-shell-executor", "--no-color", "--home", str(repository.parent),
                             *options], cwd=repository, env=env, capture_output=True, text=True,
                            timeout=patience(900))
    output = result.stdout + result.stderr
    jobs = {match["job"]: (match["verdict"], 0) for match in VERDICT.finditer(output)}
    jobs.update({match["job"]: (match["verdict"], int(match["code"])) for match in EXIT_CODE.finditer(output)})
    assert jobs, output[-6000:]
    return jobs, output


def aliases(client: MlflowClient) -> dict[str, str]:
    return {alias: str(version) for alias, version in client.get_registered_model(MODEL_NAME).aliases.items()}


def test_gitlab_template_jobs_gate_the_champion(tmp_path, object_store):  # noqa: F811  (fixture)
    repository = ci_repository(tmp_path / "repository", object_store.bucket, object_store.endpoint)
    server_dir = tmp_path / "server"
    server_dir.mkdir()
    with mlflow_server(object_store, server_dir, project_env()) as uri:
        # what a runner's job environment holds: the CI secrets, and this checkout's code first
        env = {**project_env(MLFLOW_TRACKING_URI=uri, **object_store.env()), "PYTHONPATH": str(repository / "src")}
        client = MlflowClient(tracking_uri=uri, registry_uri=uri)

        # 1. a merge request: the whole pipeline, the gate as a dry run; ERM's own head would be refused
        jobs, log = run_pipeline(repository, env, "CI_PIPELINE_SOURCE=merge_request_event",
                                 "KEDRO_PARAMS=model_promotion.packaging.method=erm")
        assert jobs == {"neurontune-review": ("WARN", REFUSED)}, log[-6000:]  # allowed to fail with 3 only
        decision = json.loads((repository / REPORTING / "promotion_decision.json").read_text())
        assert decision["dry_run"] and decision["status"] == "refused", decision
        assert client.search_registered_models() == [], "the dry run registered a model"
        artifacts = repository / ".gitlab-ci-local" / "artifacts" / "neurontune-review"
        summary = (artifacts / "ci-summary.md").read_text()
        assert "dry run" in summary and "would refuse" in summary
        assert (artifacts / REPORTING / "metrics.json").is_file() and (artifacts / "dvc.lock").is_file()
        assert list((artifacts / REPORTING / "mask_evidence").glob("*_gallery.png")), "no evidence gallery kept"
        assert any(key.startswith("dvc/files/md5/") for key in object_store.keys("dvc/")), "dvc push uploaded nothing"

        # the next job starts from the DVC remote: the outputs recorded in dvc.lock and the cache are gone (all but
        # metrics.json, which DVC does not cache: a team commits it to git)
        locked = yaml.safe_load((repository / "dvc.lock").read_text())["stages"]
        outputs = [repository / out["path"] for stage in locked.values() for out in stage.get("outs", [])
                   if not out["path"].endswith("metrics.json")]
        for path in outputs:
            shutil.rmtree(path) if path.is_dir() else path.unlink()
        shutil.rmtree(repository / ".dvc" / "cache")
        method = promotable_method(json.loads((repository / REPORTING / "metrics.json").read_text()))
        only_the_gate = "KEDRO_RUN_ARGS=--pipelines model_promotion"

        # 2. the default branch: a challenger that beats the champion (ERM, as there is none yet) moves @champion
        jobs, log = run_pipeline(repository, env, only_the_gate, f"KEDRO_PARAMS=model_promotion.packaging.method={method}")
        assert jobs == {"neurontune-main": ("PASS", 0)}, log[-6000:]
        assert all(path.exists() for path in outputs), "dvc pull did not restore the outputs"
        assert aliases(client) == {"challenger": "1", "champion": "1"}

        # 3. one that does not beat the champion fails the job with the "refused" status; @champion stays
        jobs, log = run_pipeline(repository, env, only_the_gate, "KEDRO_PARAMS=model_promotion.packaging.method=erm")
        assert jobs == {"neurontune-main": ("FAIL", REFUSED)}, log[-6000:]
        assert aliases(client) == {"challenger": "2", "champion": "1"}
        decision = json.loads((repository / REPORTING / "promotion_decision.json").read_text())
        assert decision["status"] == "refused" and decision["compared_with"] == "champion v1", decision
        summary = (repository / ".gitlab-ci-local" / "artifacts" / "neurontune-main" / "ci-summary.md").read_text()
        assert "**Gate:** refused v2" in summary and f"models:/{MODEL_NAME}/2" in summary

    # the secrets stayed in the environment: not in the repository, its artifacts or any job's log
    written = [path for path in repository.rglob("*") if path.is_file() and ".venv" not in path.parts]
    assert not [path for path in written if SECRET.encode() in path.read_bytes()]
    assert SECRET not in log
