"""Every `kedro run` registers the debiased model as @challenger; the gate moves @champion (or refuses)."""

from __future__ import annotations

import getpass
import json
import re
import subprocess
import sys
import textwrap

import pytest
from mlflow.tracking import MlflowClient

from neurontune.exit_codes import REFUSED

from .conftest import MODEL_NAME, patience


@pytest.fixture(scope="module")
def client(trained_project):
    return MlflowClient(tracking_uri=trained_project.tracking_uri, registry_uri=trained_project.tracking_uri)


def test_first_run_cannot_beat_erm_so_nothing_becomes_champion(trained_project, client):
    """ERM is the implicit first champion: packaging ERM's own head gains nothing and is refused."""
    assert trained_project.first_run.returncode == REFUSED, "fail_on_refusal=true must fail the run with status 3"
    output = trained_project.first_run.stdout + trained_project.first_run.stderr
    assert "PromotionRefused" in output and "ERM is the reference" in output
    first = client.get_model_version(MODEL_NAME, "1")
    assert first.tags["promotion.status"] == "refused" and first.tags["promotion.compared_with"] == "erm"
    assert "no champion yet" in first.tags["promotion.reason"] and "min_delta" in first.tags["promotion.reason"]
    assert float(first.tags["promotion.worst_group_accuracy_gain"]) == 0.0
    assert [move["alias"] for move in json.loads(first.tags["audit.alias_moves"])] == ["challenger"]
    assert "refused" in first.description and "erm" in first.description


def test_second_run_beats_erm_and_becomes_champion(trained_project, client):
    second = client.get_model_version(MODEL_NAME, "2")
    assert str(client.get_model_version_by_alias(MODEL_NAME, "champion").version) == "2"
    assert second.tags["promotion.status"] == "promoted" and second.tags["method"] == trained_project.champion_method
    metrics = json.loads((trained_project.path / "data/ci/08_reporting/metrics.json").read_text())
    assert float(second.tags["promotion.erm_worst_group_accuracy"]) == metrics["erm"]["test"]["worst_group_accuracy"]
    assert float(second.tags["promotion.worst_group_accuracy_gain"]) >= 0.005
    run = client.get_run(second.run_id)
    assert run.data.tags["promotion.status"] == "promoted" and run.data.tags["promotion.champion_version"] == "none"
    assert second.description.startswith(f"{trained_project.champion_method}: ") and "promoted" in second.description


def test_every_alias_move_is_audited(trained_project, client):
    moves = json.loads(client.get_model_version(MODEL_NAME, "2").tags["audit.alias_moves"])
    assert [(move["alias"], move["from_version"], move["decision"]) for move in moves] == [
        ("challenger", "1", "registered"), ("champion", None, "promoted")]
    run = client.get_run(client.get_model_version(MODEL_NAME, "2").run_id)
    for move in moves:
        assert move["by"] == getpass.getuser() and move["at"].endswith("Z")
        assert move["run_id"] == run.info.run_id and move["git_commit"] == run.data.tags["git_commit"]


def test_unchanged_model_is_reused_not_registered_again(trained_project, client):
    assert trained_project.third_run.returncode == 0, trained_project.third_run.stderr[-3000:]
    output = trained_project.third_run.stdout + trained_project.third_run.stderr
    # rich wraps the log line where the model name's length puts the break (and adds the source column there)
    assert re.search(r"reusing\s+it,\s+(\S+\.py:\d+\s+)?nothing\s+registered", output), output[-3000:]
    assert sorted(str(v.version) for v in client.search_model_versions(f"name = '{MODEL_NAME}'")) == ["1", "2"]
    decision = json.loads((trained_project.path / "data/ci/08_reporting/promotion_decision.json").read_text())
    assert decision["status"] == "already_champion" and decision["challenger_version"] == 2
    assert decision["registration"].startswith("reused v2")
    # the decision that promoted v2 stays on it
    assert client.get_model_version(MODEL_NAME, "2").tags["promotion.status"] == "promoted"


def test_version_records_evaluated_numbers_and_lineage_tags(trained_project, client):
    metrics = json.loads((trained_project.path / "data/ci/08_reporting/metrics.json").read_text())
    for version, method in (("1", "erm"), ("2", trained_project.champion_method)):
        tags = client.get_model_version(MODEL_NAME, version).tags
        for split in ("val", "test"):
            assert float(tags[f"eval.{split}.worst_group_accuracy"]) == metrics[method][split]["worst_group_accuracy"]
            assert float(tags[f"eval.{split}.mean_accuracy"]) == metrics[method][split]["mean_accuracy"]
    version = client.get_model_version(MODEL_NAME, "1")
    run = client.get_run(version.run_id)
    assert version.tags["git_commit"] == run.data.tags["git_commit"]
    assert version.tags["data_digest"] == run.data.tags["data_digest"]
    assert version.tags["erm_checkpoint_digest"] == run.data.tags["erm_checkpoint_digest"]
    assert len(version.tags["model_digest"]) == 64


def test_runs_are_named_and_tagged(trained_project, client):
    run = client.get_run(client.get_model_version(MODEL_NAME, "1").run_id)
    assert run.info.run_name == "colored_mnist · val 0.5 · seed 0"
    assert run.data.tags["benchmark"] == "colored_mnist" and "MNIST" in run.data.tags["dataset"]


def test_model_has_signature_and_input_example(trained_project):
    script = textwrap.dedent(f"""
        import json, mlflow
        from mlflow.models import Model
        info = mlflow.models.get_model_info("models:/{MODEL_NAME}@champion")
        local = mlflow.artifacts.download_artifacts("models:/{MODEL_NAME}@champion")
        model = Model.load(local)
        example = model.load_input_example(local)
        print(json.dumps({{"inputs": info.signature.inputs.to_dict(), "outputs": info.signature.outputs.to_dict(),
                          "example": [list(example.shape), str(example.dtype)]}}))
    """)
    result = subprocess.run([sys.executable, "-c", script], env=trained_project.env(), capture_output=True, text=True,
                            cwd=trained_project.path, timeout=patience(120))
    assert result.returncode == 0, result.stderr[-3000:]
    described = json.loads(result.stdout.strip().splitlines()[-1])
    assert described["inputs"] == [{"type": "tensor", "tensor-spec": {"dtype": "uint8", "shape": [-1, 3, 28, 28]}}]
    assert [column["name"] for column in described["outputs"]] == ["prediction", "probability_0", "probability_1"]
    assert described["example"] == [[2, 3, 28, 28], "uint8"]


def test_fresh_process_predicts_what_evaluation_scored(trained_project):
    script = textwrap.dedent(f"""
        import json, mlflow, numpy as np, pandas as pd
        model = mlflow.pyfunc.load_model("models:/{MODEL_NAME}@champion")
        with np.load("data/ci/01_raw/inputs.npz") as arrays:
            inputs = arrays["inputs"]
        metadata = pd.read_parquet("data/ci/01_raw/metadata.parquet")
        test = (metadata["split"] == "test").to_numpy()
        output = model.predict(inputs[test])
        scored = pd.read_parquet("data/ci/07_model_output/method_predictions.parquet")
        scored = scored[(scored["method"] == "{trained_project.champion_method}") & (scored["split"] == "test")]
        print(json.dumps({{
            "same_ids": bool((scored["sample_id"].to_numpy() == metadata["sample_id"].to_numpy()[test]).all()),
            "agree": float((scored["y_pred"].to_numpy() == output["prediction"].to_numpy()).mean()),
            "n": int(len(output)),
            "prob_sum": float(np.abs(output[["probability_0", "probability_1"]].sum(axis=1) - 1).max()),
        }}))
    """)
    result = subprocess.run([sys.executable, "-c", script], env=trained_project.env(), capture_output=True, text=True,
                            cwd=trained_project.path, timeout=patience(120))
    assert result.returncode == 0, result.stderr[-3000:]
    checked = json.loads(result.stdout.strip().splitlines()[-1])
    assert checked["same_ids"] and checked["n"] == 400  # the ci environment's test split
    assert checked["agree"] == 1.0
    assert checked["prob_sum"] < 1e-9


def test_ci_runs_register_under_a_name_of_their_own(client):
    """Issue 28: ``--env ci`` registered its tiny model as ``neurontune-colored_mnist`` and moved that name's
    @challenger. It registers ``neurontune-ci-colored_mnist`` now; the production name is never touched."""
    assert MODEL_NAME == "neurontune-ci-colored_mnist"
    assert [model.name for model in client.search_registered_models()] == [MODEL_NAME]
