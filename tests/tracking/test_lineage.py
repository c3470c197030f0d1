"""`neurontune lineage`: every link of the chain resolves, and tampered data is caught."""

from __future__ import annotations

import json
import shutil
import subprocess

import mlflow
import pandas as pd
import pytest

from neurontune.console import main

from .conftest import MODEL_NAME


@pytest.fixture
def lineage(trained_project, capsys):
    """Run the console command in-process; return (exit code, parsed JSON or text)."""
    previous = mlflow.get_tracking_uri()

    def run(uri: str, *options: str, project_dir=None):
        code = main(["lineage", uri, "--tracking-uri", trained_project.tracking_uri,
                     "--project-dir", str(project_dir or trained_project.path), *options])
        out = capsys.readouterr().out
        return code, json.loads(out) if "--json" in options else out

    yield run
    mlflow.set_tracking_uri(previous)


def test_each_link_resolves(trained_project, lineage):
    code, chain = lineage(f"models:/{MODEL_NAME}@champion", "--json")
    assert code == 0
    record = json.loads((trained_project.path / "data/06_models/registered_model.json").read_text())
    # the first run registered v1, the second run v2: the record on disk is v2's
    assert chain["model"]["version"] == "1" and "champion" in chain["model"]["aliases"]
    assert chain["run"]["status"] == "FINISHED"
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=trained_project.path, capture_output=True, text=True).stdout.strip()
    assert chain["code"] == {"git_commit": head, "dirty": False, "resolves": True}
    assert chain["parameters"]["erm_training.modes.finetune.epochs"] == "3"  # the ci environment
    manifest = json.loads((trained_project.path / "data/01_raw/dataset_manifest.json").read_text())
    data = chain["data"]
    assert data["digest"] == data["model_version_digest"] == data["manifest_digest"] == manifest["digest"]
    assert data["dataset_inputs"][0]["digest"] == manifest["digest"][:32]
    assert data["dvc"] == {"lock_file": None, "outs": []}  # no dvc.lock in this project: reported, not an error
    assert chain["erm_model"]["run_id"] == chain["run"]["run_id"] and chain["erm_model"]["artifact"].endswith("erm_model.pt")
    metrics = json.loads((trained_project.path / "data/08_reporting/metrics.json").read_text())["neurontune"]["test"]
    assert chain["metrics"]["recorded_on_version"]["test"]["worst_group_accuracy"] == metrics["worst_group_accuracy"]
    assert chain["metrics"]["run"]["evaluation_metrics.neurontune.test.worst_group_accuracy"] == pytest.approx(metrics["worst_group_accuracy"])
    assert record["version"] == "2"


def test_backbone_run_found_across_runs(lineage):
    """v2 was registered by a promotion-only run; its backbone was trained in the first run."""
    code, chain = lineage(f"models:/{MODEL_NAME}/2", "--json")
    _, first = lineage(f"models:/{MODEL_NAME}/1", "--json")
    assert code == 0
    assert chain["run"]["run_id"] != first["run"]["run_id"]
    assert chain["erm_model"]["run_id"] == first["run"]["run_id"]
    assert not chain["erm_model"]["same_run_as_model"]


def test_text_output_and_verify_on_untouched_data(lineage):
    code, text = lineage(f"models:/{MODEL_NAME}@champion", "--verify")
    assert code == 0
    for link in ("model ", "run ", "code ", "parameters ", "data ", "dvc ", "erm model ", "metrics ", "verify      OK"):
        assert link in text


def test_verify_catches_tampered_data(trained_project, lineage, tmp_path):
    copy = tmp_path / "checkout"
    shutil.copytree(trained_project.path / "data" / "01_raw", copy / "data" / "01_raw")
    metadata = pd.read_parquet(copy / "data/01_raw/metadata.parquet")
    metadata.loc[0, "y"] = 1 - metadata.loc[0, "y"]  # one flipped label
    metadata.to_parquet(copy / "data/01_raw/metadata.parquet", index=False)
    code, chain = lineage(f"models:/{MODEL_NAME}@champion", "--json", "--verify", project_dir=copy)
    assert code == 1
    checks = {check["check"]: check for check in chain["verification"]["checks"]}
    assert not checks["content_digest"]["ok"]
    assert checks["manifest"]["ok"]  # the manifest file was not touched; the recomputed digest exposes the change


def test_dvc_lock_hashes_are_reported_and_checked(trained_project, lineage, tmp_path):
    copy = tmp_path / "checkout"
    shutil.copytree(trained_project.path / "data" / "01_raw", copy / "data" / "01_raw")
    inputs_md5 = _md5(copy / "data/01_raw/inputs.npz")
    (copy / "dvc.lock").write_text(
        "schema: '2.0'\nstages:\n  data_versioning:\n    cmd: kedro run --pipelines data_versioning\n    outs:\n"
        f"    - path: data/01_raw/inputs.npz\n      hash: md5\n      md5: {inputs_md5}\n"
    )
    code, chain = lineage(f"models:/{MODEL_NAME}@champion", "--json", "--verify", project_dir=copy)
    assert code == 0
    assert chain["data"]["dvc"]["outs"] == [{"stage": "data_versioning", "path": "data/01_raw/inputs.npz", "md5": inputs_md5}]
    with open(copy / "data/01_raw/inputs.npz", "ab") as handle:
        handle.write(b"\0")
    code, chain = lineage(f"models:/{MODEL_NAME}@champion", "--json", "--verify", project_dir=copy)
    assert code == 1
    assert [check["ok"] for check in chain["verification"]["checks"] if check["check"].startswith("dvc")] == [False]


def test_unknown_model_is_a_clear_error(lineage, capsys):
    with pytest.raises(SystemExit) as exit_info:
        lineage(f"models:/{MODEL_NAME}@nonexistent")
    assert exit_info.value.code == 2
    assert "does not resolve" in capsys.readouterr().err


def _md5(path):
    import hashlib

    return hashlib.md5(path.read_bytes()).hexdigest()
