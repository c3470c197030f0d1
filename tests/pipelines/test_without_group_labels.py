"""Groups optional everywhere (issue 24): the stages that read group labels, and every stage after them, run on data
whose metadata has no group columns at all, or groups on the test split only (-1 elsewhere).

The tiny colored_mnist run of ``tiny_run`` supplies everything up to the caches (nothing there reads groups:
tests/test_group_labels.py); ``baselines``, ``harm_guard`` and ``evaluation`` rerun on the changed metadata through the
shipped DAG, then ``model_promotion`` registers and gates the model in a fresh local MLflow registry.
"""

from __future__ import annotations

import json

import mlflow
import numpy as np
import pytest
from kedro.io import DataCatalog
from kedro.runner import SequentialRunner
from mlflow import MlflowClient

from neurontune.console import summarise
from neurontune.core.metrics import NOT_MEASURABLE, is_measured
from neurontune.methods import NOT_FITTED, load_registry, method_entries
from neurontune.pipeline_registry import register_pipelines
from neurontune.tracking.datasets import PromotionDecisionDataset, RegisteredModelDataset
from tests.pipelines.conftest import KeptMemoryDataset, parameter_feed, run_pipelines

RERUN = ("baselines", "harm_guard", "evaluation")
NOT_FITTED_REASON = "no validation group labels"
LABELLED = sorted(name for name, method in load_registry().items() if method.labels_used != "none")


def no_groups(metadata):
    return metadata.drop(columns=["a", "group"])


def groups_on_test_only(metadata):
    unknown = metadata["split"] != "test"
    return metadata.assign(a=metadata["a"].where(~unknown, -1), group=metadata["group"].where(~unknown, -1))


METADATA = {"no_groups": no_groups, "test_only": groups_on_test_only}


@pytest.fixture(scope="module")
def runs(tiny_run, parameters, tmp_path_factory):
    """``runs(kind)``: the rerun stages' outputs and the promotion decision with its registered version, for one kind
    of metadata (built once per module)."""
    built_runs = {}

    def build(kind: str) -> dict:
        if kind not in built_runs:
            metadata = METADATA[kind](tiny_run["raw_metadata"])
            manifest = {key: value for key, value in tiny_run["dataset_manifest"].items()
                        if key not in ("n_attributes", "n_groups", "group_counts")}  # what a manifest without groups holds
            rerun = {name for stage in RERUN for node in register_pipelines()[stage].nodes for name in node.outputs}
            inputs = {name: value for name, value in tiny_run.items() if name not in rerun}
            built = run_pipelines(RERUN, parameters, inputs={**inputs, "raw_metadata": metadata, "dataset_manifest": manifest})
            folder = tmp_path_factory.mktemp(kind)
            promoted = promote({**tiny_run, **built}, parameters, folder)
            built_runs[kind] = {**built, **promoted, "folder": folder, "kind": kind}
        return built_runs[kind]

    return build


@pytest.fixture(scope="module", params=list(METADATA))
def run(request, runs):
    return runs(request.param)


@pytest.fixture(scope="module")
def no_groups_run(runs):
    return runs("no_groups")


@pytest.fixture(scope="module")
def test_only_run(runs):
    return runs("test_only")


def promote(built: dict, parameters: dict, folder) -> dict:
    """The shipped model_promotion pipeline with its registry datasets, in a fresh SQLite store (the URIs set here
    are undone by tests/conftest.py)."""
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    pipeline = register_pipelines()["model_promotion"]
    feed = {**parameter_feed(parameters), **built}
    datasets = {name: KeptMemoryDataset(feed.get(name)) if name in feed else KeptMemoryDataset() for name in pipeline.datasets()}
    datasets["debiased_model"] = RegisteredModelDataset(str(folder / "registered_model.json"))
    datasets["promotion_decision"] = PromotionDecisionDataset(str(folder / "promotion_decision.json"))
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    with mlflow.start_run():
        SequentialRunner().run(pipeline, DataCatalog(datasets=datasets))
    decision = json.loads((folder / "promotion_decision.json").read_text())
    version = MlflowClient(uri, uri).get_model_version(decision["registered_model_name"], str(decision["challenger_version"]))
    return {"promotion_decision": decision, "version_tags": dict(version.tags), "version_description": version.description}


def numbers_named_wga(report, path=()):
    """Every (path, value) of a metrics report whose key is a worst-group accuracy (or its delta) holding a number."""
    found = []
    for key, value in report.items():
        if isinstance(value, dict):
            found += numbers_named_wga(value, (*path, key))
        elif ("worst_group_accuracy" in key or key.startswith("accuracy_group_")) and is_measured(value):
            found.append(((*path, key), value))
    return found


def test_the_labelled_baselines_are_recorded_as_not_fitted(run):
    for name in LABELLED:
        assert str(run[f"baselines.{name}_head"][NOT_FITTED]) == NOT_FITTED_REASON
        assert set(run[f"baselines.{name}_head"]) == {NOT_FITTED}
        assert run[f"baselines.{name}_candidates"][NOT_FITTED].tolist() == [NOT_FITTED_REASON]
        assert run["metrics"][name] == {split: {NOT_FITTED: NOT_FITTED_REASON} for split in ("train", "val", "test")}
        assert run["metrics"]["harm"][name] == {NOT_FITTED: NOT_FITTED_REASON}
        assert run["harm_guard"]["methods"][name][NOT_FITTED] == NOT_FITTED_REASON
    assert LABELLED and not (set(run["method_predictions"]["method"]) & set(LABELLED))


def test_group_free_predictions_do_not_move(run, tiny_run):
    """The rerun group-free baselines and every other method predict exactly as with groups."""
    ours = run["method_predictions"].reset_index(drop=True)
    theirs = tiny_run["method_predictions"][~tiny_run["method_predictions"]["method"].isin(LABELLED)].reset_index(drop=True)
    assert ours.equals(theirs)


def test_class_and_pseudo_group_accuracies_are_reported_for_every_method_before_and_after(run):
    metrics = run["metrics"]
    for method, splits in method_entries(metrics).items():
        if method in LABELLED:
            continue
        for split, row in splits.items():
            assert {"accuracy_class_0", "accuracy_class_1", "worst_class_accuracy", "mean_accuracy",
                    "worst_pseudo_group_accuracy"} <= set(row), (method, split)
            assert row["worst_class_accuracy"] == min(row["accuracy_class_0"], row["accuracy_class_1"])
    erm = metrics["erm"]["test"]
    # ERM's own error set: it is wrong on every sample there, by definition, and right on every other one
    assert [erm[key] for key in sorted(erm) if key.startswith("accuracy_pseudo_group_")] == [1.0, 0.0, 1.0, 0.0]
    # after: the retrained heads get some of ERM's errors right (and the numbers are their own, not ERM's)
    fixed = {method: splits["test"].get("accuracy_pseudo_group_1", 0.0) + splits["test"].get("accuracy_pseudo_group_3", 0.0)
             for method, splits in method_entries(metrics).items() if method not in LABELLED}
    assert fixed["erm"] == 0.0 and max(fixed.values()) > 0.0, fixed


def test_no_worst_group_number_where_the_split_has_no_groups_and_the_reason_is_stated(run):
    metrics = run["metrics"]
    unlabelled = ("train", "val", "test") if run["kind"] == "no_groups" else ("train", "val")
    for method, splits in method_entries(metrics).items():
        for split in unlabelled:
            if method not in LABELLED:
                assert splits[split]["worst_group_accuracy"] == NOT_MEASURABLE
                assert not any(key.startswith("accuracy_group_") for key in splits[split])
    found = [(path, value) for path, value in numbers_named_wga(metrics) if not set(path) & {"test", "validity"}]
    assert found == [], found
    assert not [key for key in run["evaluation_metrics"] if ".train." in key and "worst_group" in key]
    assert not [key for key in run["evaluation_metrics"] if ".val." in key and "worst_group" in key]
    for name, quality in metrics["mask_quality"].items():
        assert (quality["precision"] == NOT_MEASURABLE) == (run["kind"] == "no_groups"), name
        assert quality["n_masked"] == metrics[name]["test"]["n_masked"]


def test_without_any_groups_nothing_is_a_worst_group_number(no_groups_run):
    run = no_groups_run
    metrics = run["metrics"]
    assert numbers_named_wga(metrics) == []
    assert not [key for key in run["evaluation_metrics"] if "worst_group" in key or "accuracy_group_" in key]
    assert list(run["neuron_aurocs"].columns) == ["neuron", *(f"masked_{name}" for name in metrics["mask_quality"])]
    assert metrics["validity"]["test"]["separates_methods"] == NOT_MEASURABLE
    assert metrics["validity"]["test"]["headroom"] == NOT_MEASURABLE
    harm = metrics["harm"]["neurontune"]
    assert harm["test"]["delta_worst_group_accuracy"] == NOT_MEASURABLE and harm["worse_than_erm_by"] == "worst_class_accuracy"
    assert is_measured(harm["test"]["delta_worst_class_accuracy"])
    assert run["group_accuracy_chart"].axes[0].get_title() == f"Per-class accuracy on test\n(worst-group accuracy {NOT_MEASURABLE})"
    table = summary(run)
    assert f"worst-group accuracy (WGA) {NOT_MEASURABLE}" in table and f"benchmark validity on test: {NOT_MEASURABLE}" in table
    assert f"{'dfr':<28}not fitted: {NOT_FITTED_REASON}" in table.splitlines()
    assert "WGA " not in table.splitlines()[3]  # the header: no WGA column


def test_with_groups_on_test_only_wga_is_reported_on_test(test_only_run):
    run = test_only_run
    metrics = run["metrics"]
    for method, splits in method_entries(metrics).items():
        if method not in LABELLED:
            test = splits["test"]
            assert is_measured(test["worst_group_accuracy"]) and {f"accuracy_group_{k}" for k in range(4)} <= set(test)
            assert test["mean_accuracy_train_weighted"] == "not measurable: no group labels on the training split"
    card = metrics["validity"]["test"]
    assert card["erm_worst_group_accuracy"] == metrics["erm"]["test"]["worst_group_accuracy"]
    assert card["headroom"] == f"not measurable: group_balanced_oracle not fitted ({NOT_FITTED_REASON})"
    assert metrics["harm"]["neurontune"]["worse_than_erm_by"] == "worst_group_accuracy"
    assert is_measured(metrics["mask_quality"]["neurontune"]["n_attribute_neurons"])  # the attribute, read on test
    assert "attribute_auroc" in run["neuron_aurocs"]
    assert "WGA" in summary(run).splitlines()[3]


def test_the_gate_names_the_metric_it_decided_on(run):
    decision, tags = run["promotion_decision"], run["version_tags"]
    metric = "worst_class_accuracy" if run["kind"] == "no_groups" else "worst_group_accuracy"
    label = metric.replace("_", "-", 1).replace("_", " ")
    assert decision["metric"] == metric and tags["promotion.metric"] == metric
    assert decision["compared_with"] == "erm" and label in decision["reason"]
    assert decision[f"erm_{metric}"] == run["metrics"]["erm"]["test"][metric]
    shipped = run["metrics"]["method_choice"]["chosen"]  # packaging.method: auto, chosen without group labels
    assert tags["method"] == shipped == tags["choice.method"]
    assert decision[f"challenger_{metric}"] == run["metrics"][shipped]["test"][metric]
    assert float(tags[f"eval.test.{metric}"]) == run["metrics"][shipped]["test"][metric]
    if run["kind"] == "no_groups":
        assert "challenger_worst_group_accuracy" not in decision
        assert tags["eval.test.worst_group_accuracy"] == NOT_MEASURABLE
        assert f"test WGA {NOT_MEASURABLE}, worst-class" in run["version_description"]


def summary(run) -> str:
    path = run["folder"] / "metrics.json"
    path.write_text(json.dumps(run["metrics"]))
    return summarise(path)


def test_the_not_measurable_notes_survive_the_json_report(run):
    """metrics.json keeps every note as text, and the labelled baselines' heads save as plain arrays."""
    assert NOT_MEASURABLE in json.dumps(run["metrics"])
    np.savez(run["folder"] / "dfr_head.npz", **run["baselines.dfr_head"])
    with np.load(run["folder"] / "dfr_head.npz", allow_pickle=False) as saved:
        assert str(saved[NOT_FITTED]) == NOT_FITTED_REASON
