"""Every `kedro run` registers the debiased model as @challenger; the gate moves @champion (or refuses)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest
from mlflow.tracking import MlflowClient

from .conftest import MODEL_NAME


@pytest.fixture(scope="module")
def client(trained_project):
    return MlflowClient(tracking_uri=trained_project.tracking_uri, registry_uri=trained_project.tracking_uri)


def test_first_run_registers_champion_and_second_is_refused(trained_project, client):
    assert trained_project.second_run.returncode != 0, "fail_on_refusal=true must fail the run"
    assert "PromotionRefused" in trained_project.second_run.stdout + trained_project.second_run.stderr
    assert str(client.get_model_version_by_alias(MODEL_NAME, "champion").version) == "1"
    assert str(client.get_model_version_by_alias(MODEL_NAME, "challenger").version) == "2"


def test_decisions_are_recorded_on_versions_and_runs(trained_project, client):
    first, second = (client.get_model_version(MODEL_NAME, version) for version in ("1", "2"))
    assert first.tags["promotion.status"] == "promoted"
    assert "no champion yet" in first.tags["promotion.reason"]
    assert second.tags["promotion.status"] == "refused"
    assert "min_delta" in second.tags["promotion.reason"]
    # the same model re-registered: zero gain, zero drop, and the numbers say so
    assert float(second.tags["promotion.worst_group_accuracy_gain"]) == 0.0
    assert float(second.tags["promotion.champion_worst_group_accuracy"]) == float(
        second.tags["promotion.challenger_worst_group_accuracy"])
    run = client.get_run(second.run_id)
    assert run.data.tags["promotion.status"] == "refused"
    assert run.data.tags["promotion.champion_version"] == "1"
    decision = json.loads((trained_project.path / "data/ci/08_reporting/promotion_decision.json").read_text())
    assert decision["status"] == "refused" and decision["challenger_version"] == 2


def test_version_records_evaluated_numbers_and_lineage_tags(trained_project, client):
    metrics = json.loads((trained_project.path / "data/ci/08_reporting/metrics.json").read_text())["neurontune"]
    version = client.get_model_version(MODEL_NAME, "1")
    for split in ("val", "test"):
        assert float(version.tags[f"eval.{split}.worst_group_accuracy"]) == metrics[split]["worst_group_accuracy"]
        assert float(version.tags[f"eval.{split}.mean_accuracy"]) == metrics[split]["mean_accuracy"]
    run = client.get_run(version.run_id)
    assert version.tags["git_commit"] == run.data.tags["git_commit"]
    assert version.tags["data_digest"] == run.data.tags["data_digest"]
    assert version.tags["erm_checkpoint_digest"] == run.data.tags["erm_checkpoint_digest"]


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
                            cwd=trained_project.path, timeout=120)
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
        scored = scored[(scored["method"] == "neurontune") & (scored["split"] == "test")]
        print(json.dumps({{
            "same_ids": bool((scored["sample_id"].to_numpy() == metadata["sample_id"].to_numpy()[test]).all()),
            "agree": float((scored["y_pred"].to_numpy() == output["prediction"].to_numpy()).mean()),
            "n": int(len(output)),
            "prob_sum": float(np.abs(output[["probability_0", "probability_1"]].sum(axis=1) - 1).max()),
        }}))
    """)
    result = subprocess.run([sys.executable, "-c", script], env=trained_project.env(), capture_output=True, text=True,
                            cwd=trained_project.path, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    checked = json.loads(result.stdout.strip().splitlines()[-1])
    assert checked["same_ids"] and checked["n"] == 400  # the ci environment's test split
    assert checked["agree"] == 1.0
    assert checked["prob_sum"] < 1e-9
