"""The whole `ci` run with its data root on S3 (moto on 127.0.0.1): everything in the bucket, nothing in data/."""

import json
import subprocess

import yaml

from tests.conftest import BIN, copy_project, patience, project_environment
from tests.object_store import object_store, s3_endpoint  # noqa: F401  (fixtures)


def test_a_run_with_the_data_root_on_s3_writes_every_dataset_to_the_bucket_only(ci_project, object_store, tmp_path):
    project = copy_project(tmp_path / "project")
    # endpoint and keys from the run environment's credentials.yml (git-ignored), none from the process
    # environment; `--env ci` reads conf/base and conf/ci (conf/local only for the default environment)
    credentials = {"object_store": {"s3": object_store.storage_options()}}
    (project / "conf" / "ci" / "credentials.yml").write_text(yaml.safe_dump(credentials))
    env = project_environment(NEURONTUNE_DATA_ROOT=f"s3://{object_store.bucket}/runs")
    env = {key: value for key, value in env.items() if not key.startswith("AWS_")}
    result = subprocess.run([str(BIN / "kedro"), "run", "--env", "ci"], cwd=project, env=env, capture_output=True,
                            text=True, timeout=patience(900))
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]

    assert [path for path in (project / "data").rglob("*") if path.is_file()] == []
    local = ci_project / "data" / "ci"  # the same configuration run on local disk
    written_locally = sorted(path.relative_to(local).as_posix() for path in local.rglob("*") if path.is_file())
    assert object_store.keys("runs/ci/") == [f"runs/ci/{path}" for path in written_locally]
    in_bucket = json.loads(object_store.read("runs/ci/08_reporting/metrics.json"))
    assert in_bucket == json.loads((local / "08_reporting" / "metrics.json").read_text())
