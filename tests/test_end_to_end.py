"""The whole DAG (`kedro run --env ci`) in a temporary copy: outputs, MLflow tracking, cache reuse."""

import json

import mlflow
import numpy as np
import pytest

from neurontune.methods import REPORT_SECTIONS, load_registry, method_entries
from tests.conftest import kedro

METHODS = set(load_registry())  # ERM, NeuronTune's variants and the baselines


@pytest.fixture(scope="module")
def run(ci_project):
    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{ci_project / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("neurontune")
    (latest,) = client.search_runs([experiment.experiment_id], order_by=["attributes.start_time DESC"], max_results=1)
    return client, latest


def test_metrics_json_has_every_method_split_and_metric(ci_project):
    metrics = json.loads((ci_project / "data" / "ci" / "08_reporting" / "metrics.json").read_text())
    assert set(method_entries(metrics)) == METHODS and set(metrics) - METHODS == set(REPORT_SECTIONS)
    for method in METHODS:
        assert set(metrics[method]) == {"train", "val", "test"}
        test = metrics[method]["test"]
        for key in ("worst_group_accuracy", "mean_accuracy", "mean_accuracy_train_weighted", "worst_class_accuracy"):
            assert 0.0 <= test[key] <= 1.0
        groups = [test[f"accuracy_group_{k}"] for k in range(4)]
        assert test["worst_group_accuracy"] == pytest.approx(min(groups))


def test_mlflow_run_has_params_metrics_artifacts_dataset_input_and_tags(run, ci_project):
    client, latest = run
    assert latest.data.params["erm_training.modes.finetune.epochs"] == "3"  # flattened parameters, ci override applied
    assert "evaluation_metrics.erm.test.worst_group_accuracy" in latest.data.metrics
    assert len(client.get_metric_history(latest.info.run_id, "erm_training_history.train_loss")) == 3
    artifacts = {a.path for folder in ("reporting", "models", "identification", "heads", "harm_guard", "mask_evidence")
                 for a in client.list_artifacts(latest.info.run_id, folder)}
    assert {"reporting/group_accuracy.png", "reporting/metrics.json", "models/erm_model.pt",
            "identification/neuron_scores.png", "heads/neurontune_head.npz", "harm_guard/harm_guard.json",
            "mask_evidence/neurontune_gallery.png", "reporting/neuron_aurocs.parquet"} <= artifacts
    assert "evaluation_metrics.mask_quality.neurontune.recall" in latest.data.metrics
    manifest = json.loads((ci_project / "data" / "ci" / "01_raw" / "dataset_manifest.json").read_text())
    (dataset_input,) = latest.inputs.dataset_inputs
    assert dataset_input.dataset.name == "colored_mnist"
    assert manifest["digest"].startswith(dataset_input.dataset.digest)
    tags = {tag.key: tag.value for tag in dataset_input.tags}
    assert json.loads(tags["group_counts"]) == manifest["group_counts"]
    assert latest.data.tags["data_digest"] == manifest["digest"]
    assert "git_commit" in latest.data.tags


def test_rerunning_neurontune_reuses_the_cache_and_is_deterministic(ci_project):
    data = ci_project / "data" / "ci"
    model, caches = data / "06_models" / "erm_model.pt", sorted((data / "04_feature").glob("*.npz"))
    before = {path: path.stat().st_mtime_ns for path in [model, *caches]}
    metrics_before = (data / "08_reporting" / "metrics.json").read_bytes()
    head_before = dict(np.load(data / "06_models" / "neurontune_regulation" / "neurontune_head.npz"))
    stages = "neuron_identification,neurontune_regulation,harm_guard,evaluation"
    result = kedro(ci_project, "run", "--env", "ci", "--pipelines", stages)
    assert "train_erm_model" not in result.stdout + result.stderr
    assert "cache_embeddings" not in result.stdout + result.stderr
    assert {path: path.stat().st_mtime_ns for path in before} == before
    # same seed and parameters: bit-identical mask, head and metrics
    assert (data / "08_reporting" / "metrics.json").read_bytes() == metrics_before
    head_after = dict(np.load(data / "06_models" / "neurontune_regulation" / "neurontune_head.npz"))
    for key, value in head_before.items():
        np.testing.assert_array_equal(head_after[key], value)
    # a changed NeuronTune parameter is picked up, still without retraining ERM
    kedro(ci_project, "run", "--env", "ci", "--pipelines", stages, "--params", "neurontune_regulation.tuning.grid.threshold=[0.25]")
    assert set(kedro_table(ci_project, "neurontune_regulation/neurontune_candidates")["threshold"]) == {0.25}
    assert {path: path.stat().st_mtime_ns for path in before} == before


def kedro_table(project, name):
    import pandas as pd

    return pd.read_parquet(project / "data" / "ci" / "08_reporting" / f"{name}.parquet")


def test_failed_run_leaves_previous_outputs_intact(ci_project):
    metrics = ci_project / "data" / "ci" / "08_reporting" / "metrics.json"
    before = metrics.read_bytes()
    result = kedro(ci_project, "run", "--env", "ci", "--pipelines", "neurontune_regulation,evaluation",
                   "--params", "neurontune_regulation.tuning.retrain.solver=adam", check=False)
    assert result.returncode != 0
    # rejected by the parameter schema before any node ran (rich wraps the message: compare without whitespace)
    assert "retrain.solver:mustbeoneof" in "".join((result.stdout + result.stderr).split())
    assert "got'adam'(setby--params)" in "".join((result.stdout + result.stderr).split())
    assert metrics.read_bytes() == before
    np.load(ci_project / "data" / "ci" / "06_models" / "neurontune_regulation" / "neurontune_head.npz")  # still a readable file
