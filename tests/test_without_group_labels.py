"""Groups optional, through the real catalog (files, MLflow artifacts, the registry): ``kedro run --env ci`` of every
stage that reads group labels or comes after them, on the suite's ``ci`` data with the group columns dropped.

Marked slow: ``tests/pipelines/test_without_group_labels.py`` checks the same behaviour on an in-memory catalog in
the default suite; this run adds what only files and MLflow can show (string notes in ``metrics.json``, a not-fitted
head in an ``.npz``, its candidate table in Parquet, the version's tags).
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest

from neurontune.console import summarise
from neurontune.core.metrics import NOT_MEASURABLE
from neurontune.data.tables import content_digest
from tests.conftest import copy_project, kedro

pytestmark = pytest.mark.slow

STAGES = "baselines,harm_guard,evaluation,model_promotion"


@pytest.fixture(scope="module")
def unlabelled_run(ci_project, tmp_path_factory):
    """The ci run's data up to the caches, its metadata without ``a``/``group``, the later stages rerun."""
    project = copy_project(tmp_path_factory.mktemp("no_groups"))
    shutil.copytree(ci_project / "data" / "ci", project / "data" / "ci")
    raw = project / "data" / "ci" / "01_raw"
    metadata = pd.read_parquet(raw / "metadata.parquet").drop(columns=["a", "group"])
    metadata.to_parquet(raw / "metadata.parquet", index=False)
    manifest = json.loads((raw / "dataset_manifest.json").read_text())
    manifest = {key: value for key, value in manifest.items() if key not in ("n_attributes", "n_groups", "group_counts")}
    with np.load(raw / "inputs.npz") as inputs:
        manifest["digest"] = content_digest(inputs["inputs"], metadata)
    (raw / "dataset_manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    result = kedro(project, "run", "--env", "ci", "--pipelines", STAGES)
    return project, result


def test_the_run_completes_and_every_report_says_what_it_cannot_measure(unlabelled_run):
    project, result = unlabelled_run
    reporting = project / "data" / "ci" / "08_reporting"
    metrics = json.loads((reporting / "metrics.json").read_text())
    assert metrics["erm"]["test"]["worst_group_accuracy"] == NOT_MEASURABLE
    assert metrics["validity"]["test"]["separates_methods"] == NOT_MEASURABLE
    assert metrics["mask_quality"]["neurontune"]["precision"] == NOT_MEASURABLE
    assert metrics["dfr"]["test"] == {"not_fitted": "no validation group labels"}
    with np.load(project / "data" / "ci" / "06_models" / "baselines" / "dfr_head.npz", allow_pickle=False) as head:
        assert head.files == ["not_fitted"] and str(head["not_fitted"]) == "no validation group labels"
    table = pd.read_parquet(reporting / "baselines" / "group_balanced_oracle_candidates.parquet")
    assert table["not_fitted"].tolist() == ["no validation group labels"]
    decision = json.loads((reporting / "promotion_decision.json").read_text())
    assert decision["metric"] == "worst_class_accuracy" and "worst-class accuracy" in decision["reason"]
    text = summarise(reporting / "metrics.json")
    assert f"worst-group accuracy (WGA) {NOT_MEASURABLE}" in text and "not fitted: no validation group labels" in text


def test_mlflow_holds_no_worst_group_number_and_the_version_names_the_gate_metric(unlabelled_run):
    import mlflow

    project, _ = unlabelled_run
    uri = f"sqlite:///{project / 'mlflow.db'}"
    client = mlflow.MlflowClient(uri, uri)
    run = client.search_runs([client.get_experiment_by_name("neurontune").experiment_id])[0]
    assert [key for key in run.data.metrics if "worst_group" in key or "accuracy_group_" in key] == []
    assert "evaluation_metrics.erm.test.worst_class_accuracy" in run.data.metrics
    version = client.get_model_version("neurontune-colored_mnist", "1")
    assert version.tags["promotion.metric"] == "worst_class_accuracy"
    assert version.tags["eval.test.worst_group_accuracy"] == NOT_MEASURABLE
