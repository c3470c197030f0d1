"""DVC with its remote on a real S3 API (moto on 127.0.0.1): push, wipe cache and outputs, pull, same hashes."""

import hashlib
import shutil

import yaml

from tests.object_store import KEY, SECRET, object_store, s3_endpoint  # noqa: F401  (fixtures)
from tests.test_dvc import dvc, dvc_project  # noqa: F401  (the suite's DVC project, reduced `ci` stages)

STAGE = "data_versioning@ci"


def md5(path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def test_push_wipe_pull_through_an_s3_remote_restores_the_locked_hashes(dvc_project, object_store):
    project = dvc_project
    dvc(project, "remote", "add", "shared", f"s3://{object_store.bucket}/dvc")  # committed in .dvc/config
    dvc(project, "remote", "modify", "shared", "endpointurl", object_store.endpoint)
    dvc(project, "remote", "modify", "--local", "shared", "access_key_id", KEY)  # secrets: .dvc/config.local
    dvc(project, "remote", "modify", "--local", "shared", "secret_access_key", SECRET)
    assert SECRET not in (project / ".dvc" / "config").read_text()

    dvc(project, "repro", STAGE)
    stage = yaml.safe_load((project / "dvc.lock").read_text())["stages"][STAGE]
    locked = {out["path"]: out["md5"] for out in stage["outs"]}
    assert len(locked) == 3 and all(md5(project / path) == digest for path, digest in locked.items())

    dvc(project, "push", "--remote", "shared", STAGE)
    # DVC 3 stores each file content-addressed under files/md5/<first two hex digits>/<the rest>
    assert {f"dvc/files/md5/{digest[:2]}/{digest[2:]}" for digest in locked.values()} <= set(object_store.keys("dvc/"))

    for path in locked:
        (project / path).unlink()
    shutil.rmtree(project / ".dvc" / "cache")
    dvc(project, "pull", "--remote", "shared", STAGE)
    assert {path: md5(project / path) for path in locked} == locked
    assert "up to date" in dvc(project, "status", STAGE)
