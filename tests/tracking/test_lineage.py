"""`neurontune lineage`: every link of the chain resolves, the alias history is shown, and any
one-byte change to a file the run read or wrote is caught — against the digests the run recorded."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pandas as pd
import pytest

from neurontune.console import main
from neurontune.data.tables import CLASS_LABEL_COLUMNS, content_digest
from neurontune.io.datasets import NpzDataset

from .conftest import MODEL_NAME, console_env, patience


@pytest.fixture
def lineage(trained_project, capsys):
    """Run the console command in-process; return (exit code, parsed JSON or text)."""

    def run(uri: str, *options: str, project_dir=None):
        code = main(["lineage", uri, "--tracking-uri", trained_project.tracking_uri,
                     "--project-dir", str(project_dir or trained_project.path), *options])
        out = capsys.readouterr().out
        return code, json.loads(out) if "--json" in options else out

    return run


@pytest.fixture
def checkout(trained_project, tmp_path):
    """A copy of the trained project's data, to tamper with."""
    shutil.copytree(trained_project.path / "data", tmp_path / "data")
    return tmp_path


def test_each_link_resolves(trained_project, lineage):
    code, chain = lineage(f"models:/{MODEL_NAME}/1", "--json")
    assert code == 0
    assert chain["model"]["version"] == "1" and chain["model"]["aliases"] == []
    assert chain["run"]["status"] == "FAILED"  # the first run failed on purpose (fail_on_refusal)
    assert chain["run"]["run_name"] == "colored_mnist · val 0.5 · seed 0"
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=trained_project.path, capture_output=True, text=True).stdout.strip()
    assert chain["code"] == {"git_commit": head, "dirty": False, "resolves": True}
    assert chain["parameters"]["erm_training.modes.finetune.epochs"] == "3"  # the ci environment
    manifest = json.loads((trained_project.path / "data/ci/01_raw/dataset_manifest.json").read_text())
    data = chain["data"]
    assert data["digest"] == data["model_version_digest"] == data["manifest_digest"] == manifest["digest"]
    assert data["dataset_inputs"][0]["digest"] == manifest["digest"][:32]
    assert data["dvc"] == {"lock_file": None, "outs": []}  # no dvc.lock in this project: reported, not an error
    assert chain["erm_model"]["run_id"] == chain["run"]["run_id"] and chain["erm_model"]["artifact"].endswith("erm_model.pt")
    metrics = json.loads((trained_project.path / "data/ci/08_reporting/metrics.json").read_text())["erm"]["test"]
    assert chain["metrics"]["recorded_on_version"]["test"]["worst_group_accuracy"] == metrics["worst_group_accuracy"]
    assert chain["metrics"]["run"]["evaluation_metrics.erm.test.worst_group_accuracy"] == pytest.approx(metrics["worst_group_accuracy"])


def test_digests_cover_every_catalog_file_of_the_run(trained_project, lineage):
    _, chain = lineage(f"models:/{MODEL_NAME}/1", "--json")
    files = chain["data"]["files"]["files"]
    on_disk = {path.relative_to(trained_project.path).as_posix() for path in (trained_project.path / "data").rglob("*")
               if path.is_file() and path.name != ".gitkeep"}
    registry_records = {"data/ci/06_models/registered_model.json", "data/ci/08_reporting/promotion_decision.json"}
    assert set(files) == on_disk - registry_records
    assert files["data/ci/01_raw/inputs.npz"]["datasets"] == ["raw_inputs"]
    assert {files[path]["role"] for path in files} == {"output"}  # the whole DAG ran: every file was written
    assert files["data/ci/06_models/erm_model.pt"]["artifact_path"] == "models/erm_model.pt"


def test_champion_alias_history_in_text_and_json(trained_project, lineage):
    code, chain = lineage(f"models:/{MODEL_NAME}@champion", "--json")
    assert code == 0 and chain["model"]["version"] == "2"
    assert [(move["alias"], move["version"], move["decision"]) for move in chain["alias_history"]] == [
        ("challenger", "1", "registered"), ("challenger", "2", "registered"), ("champion", "2", "promoted")]
    _, text = lineage(f"models:/{MODEL_NAME}@champion")
    assert "history     3 alias moves" in text and "@champion → v2" in text


def test_backbone_run_found_across_runs(lineage):
    """v2 was registered by a promotion-only run; its backbone was trained in the first run."""
    code, chain = lineage(f"models:/{MODEL_NAME}/2", "--json")
    _, first = lineage(f"models:/{MODEL_NAME}/1", "--json")
    assert code == 0
    assert chain["run"]["run_id"] != first["run"]["run_id"]
    assert chain["erm_model"]["run_id"] == first["run"]["run_id"]
    assert not chain["erm_model"]["same_run_as_model"]


def test_text_output_and_verify_on_untouched_files(lineage):
    code, text = lineage(f"models:/{MODEL_NAME}@champion", "--verify")
    assert code == 0
    for link in ("model ", "run ", "code ", "parameters ", "data ", "files ", "erm model ", "metrics ", "history ",
                 "verify      OK"):
        assert link in text


@pytest.mark.parametrize("relative", ["data/ci/01_raw/inputs.npz", "data/ci/04_feature/embeddings_val.npz",
                                      "data/ci/06_models/erm_model.pt", "data/ci/08_reporting/metrics.json"],
                         ids=["raw_input", "cache", "checkpoint", "metrics"])
def test_verify_names_a_one_byte_change(lineage, checkout, relative):
    code, _ = lineage(f"models:/{MODEL_NAME}/1", "--verify", project_dir=checkout)
    assert code == 0
    target = checkout / relative
    content = bytearray(target.read_bytes())
    content[len(content) // 2] ^= 1  # one bit of one byte
    target.write_bytes(bytes(content))
    code, chain = lineage(f"models:/{MODEL_NAME}/1", "--json", "--verify", project_dir=checkout)
    assert code == 1
    assert [check["path"] for check in chain["verification"]["checks"] if not check["ok"]] == [relative]
    _, text = lineage(f"models:/{MODEL_NAME}/1", "--verify", project_dir=checkout)
    assert f"MISMATCH {relative}" in text


def test_data_and_its_manifest_replaced_together_fail_verify(lineage, checkout):
    """A consistent forgery: new inputs and a manifest whose digests describe them. --verify trusts only the
    digests the run recorded, so both files are named, whatever the manifest on disk now claims."""
    raw = checkout / "data/ci/01_raw"
    inputs = NpzDataset(str(raw / "inputs.npz")).load()
    inputs["inputs"] = inputs["inputs"].copy()
    inputs["inputs"].flat[0] = inputs["inputs"].flat[0] + 1
    NpzDataset(str(raw / "inputs.npz")).save(inputs)
    metadata = pd.read_parquet(raw / "metadata.parquet")
    manifest = json.loads((raw / "dataset_manifest.json").read_text())
    manifest["digest"] = content_digest(inputs["inputs"], metadata)
    manifest["class_label_digest"] = content_digest(inputs["inputs"], metadata[list(CLASS_LABEL_COLUMNS)])
    (raw / "dataset_manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    code, chain = lineage(f"models:/{MODEL_NAME}/1", "--json", "--verify", project_dir=checkout)
    assert code == 1
    assert sorted(check["path"] for check in chain["verification"]["checks"] if not check["ok"]) == [
        "data/ci/01_raw/dataset_manifest.json", "data/ci/01_raw/inputs.npz"]


def test_missing_file_fails_verify(lineage, checkout):
    (checkout / "data/ci/01_raw/metadata.parquet").unlink()
    code, chain = lineage(f"models:/{MODEL_NAME}/1", "--json", "--verify", project_dir=checkout)
    assert code == 1
    failed = [check for check in chain["verification"]["checks"] if not check["ok"]]
    assert [check["path"] for check in failed] == ["data/ci/01_raw/metadata.parquet"] and "missing" in failed[0]["note"]


def test_dvc_lock_is_a_separate_informational_check(lineage, checkout):
    """A dvc.lock written on another machine differs; that does not fail the audit of this model."""
    (checkout / "dvc.lock").write_text(
        "schema: '2.0'\nstages:\n  data_versioning:\n    cmd: kedro run --pipelines data_versioning\n    outs:\n"
        "    - path: data/ci/01_raw/inputs.npz\n      hash: md5\n      md5: 0123456789abcdef0123456789abcdef\n"
    )
    code, chain = lineage(f"models:/{MODEL_NAME}/1", "--json", "--verify", "--check-dvc-lock", project_dir=checkout)
    assert code == 0 and chain["verification"]["ok"]
    assert not chain["dvc_lock"]["ok"] and chain["dvc_lock"]["checks"][0]["path"] == "data/ci/01_raw/inputs.npz"
    _, text = lineage(f"models:/{MODEL_NAME}/1", "--verify", "--check-dvc-lock", project_dir=checkout)
    assert "dvc.lock    (informational, does not decide the exit code" in text and "differs  data/ci/01_raw/inputs.npz" in text


@pytest.mark.parametrize(("uri", "message"), [
    (f"models:/{MODEL_NAME}@nonexistent", "does not resolve"),
    (f"models:/{MODEL_NAME}/99", "does not resolve"),
    ("models:/no-such-model/1", "does not resolve"),
    ("runs:/abc/model", "must look like models:/NAME@ALIAS"),
], ids=["alias", "version", "name", "bad_uri"])
def test_unresolvable_uri_is_one_clean_line(trained_project, uri, message):
    result = subprocess.run([sys.executable, "-m", "neurontune.console", "lineage", uri, "--tracking-uri",
                             trained_project.tracking_uri], cwd=trained_project.path, env=console_env(),
                            capture_output=True, text=True, timeout=patience(120))
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and message in result.stderr, result.stderr
    assert "Traceback" not in result.stderr


def test_outside_a_project_no_store_is_created(tmp_path):
    result = subprocess.run([sys.executable, "-m", "neurontune.console", "lineage", f"models:/{MODEL_NAME}@champion"],
                            cwd=tmp_path, env=console_env(), capture_output=True, text=True, timeout=patience(120))
    assert result.returncode == 2 and "no MLflow store at" in result.stderr
    assert list(tmp_path.iterdir()) == []
