"""DVC with its remote on a real S3 API (moto on 127.0.0.1): push, wipe cache and outputs, pull, same hashes."""

import hashlib
import shutil
import subprocess

import yaml

from tests.conftest import PROJECT_ROOT, copy_project
from tests.object_store import KEY, SECRET, object_store, s3_endpoint  # noqa: F401  (fixtures)
from tests.test_dvc import dvc


def md5(path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def test_push_wipe_pull_through_an_s3_remote_restores_the_locked_hashes(object_store, tmp_path):
    project = copy_project(tmp_path / "project")
    shutil.copytree(PROJECT_ROOT / ".dvc", project / ".dvc", ignore=shutil.ignore_patterns("tmp", "cache", "config.local"))
    subprocess.run(["git", "init", "-q"], cwd=project, check=True)
    dvc(project, "remote", "add", "-d", "shared", f"s3://{object_store.bucket}/dvc")  # committed in .dvc/config
    dvc(project, "remote", "modify", "shared", "endpointurl", object_store.endpoint)
    dvc(project, "remote", "modify", "--local", "shared", "access_key_id", KEY)  # secrets: .dvc/config.local
    dvc(project, "remote", "modify", "--local", "shared", "secret_access_key", SECRET)
    assert SECRET not in (project / ".dvc" / "config").read_text()

    dvc(project, "repro", "data_versioning")
    outs = yaml.safe_load((project / "dvc.lock").read_text())["stages"]["data_versioning"]["outs"]
    locked = {out["path"]: out["md5"] for out in outs}
    assert len(locked) == 3 and all(md5(project / path) == digest for path, digest in locked.items())

    dvc(project, "push", "data_versioning")
    # DVC 3 stores each file content-addressed under files/md5/<first two hex digits>/<the rest>
    stored = set(object_store.keys("dvc/"))
    assert {f"dvc/files/md5/{digest[:2]}/{digest[2:]}" for digest in locked.values()} <= stored

    for path in locked:
        (project / path).unlink()
    shutil.rmtree(project / ".dvc" / "cache")
    dvc(project, "pull", "data_versioning")
    assert {path: md5(project / path) for path in locked} == locked
    assert "up to date" in dvc(project, "status", "data_versioning")
