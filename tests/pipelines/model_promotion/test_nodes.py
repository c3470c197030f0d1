"""model_promotion nodes on literal inputs (the registry itself is exercised in tests/tracking)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from neurontune.models.backbones import build_model
from neurontune.pipelines.model_promotion.nodes import (
    decide_on_challenger,
    enforce_promotion_gate,
    package_debiased_model,
)
from neurontune.pipelines.model_promotion.pipeline import create_pipeline
from neurontune.tracking.promotion import PromotionRefused

GATE = {"split": "test", "min_delta": 0.01, "max_mean_acc_drop": 0.01, "require_same_data": True, "fail_on_refusal": False}
PACKAGING = {"method": "neurontune", "registered_model_name": "neurontune-{benchmark}", "input_example_size": 2,
             "requirements": ["numpy"], "serving": {"device": "cpu"}}


def record(version, wga, mean, digest="d"):
    return {"version": str(version), "data_digest": digest,
            "metrics": {"test": {"worst_group_accuracy": wga, "mean_accuracy": mean}}}


def test_package_collects_the_chosen_head_and_lineage():
    torch.manual_seed(0)
    model = build_model({"architecture": "small_cnn", "n_classes": 2, "in_channels": 3, "embedding_dim": 4, "width": 2})
    checkpoint = {"config": model.config, "state_dict": model.state_dict(), "data_digest": "abc"}
    heads = {"neurontune_head": {"weight": np.ones((2, 4))}, "erm_head": {"weight": np.zeros((2, 4))}}
    metrics = {"neurontune": {"test": {"worst_group_accuracy": 0.7}}, "erm": {}}
    bundle = package_debiased_model(checkpoint, {"inputs": np.zeros((10, 3, 8, 8), np.uint8)}, metrics,
                                    {"digest": "abc", "class_label_digest": "abc"}, "colored_mnist", PACKAGING, GATE, **heads)
    assert bundle["registered_model_name"] == "neurontune-colored_mnist"
    assert bundle["head"].keys() == heads["neurontune_head"].keys()
    assert bundle["head"]["weight"] is heads["neurontune_head"]["weight"]
    assert bundle["input_example"].shape == (2, 3, 8, 8)
    assert bundle["evaluation"] == metrics["neurontune"] and bundle["data_digest"] == "abc"
    assert bundle["dry_run"] is False
    rehearsal = package_debiased_model(checkpoint, {"inputs": np.zeros((10, 3, 8, 8), np.uint8)}, metrics,
                                       {"digest": "abc", "class_label_digest": "abc"}, "colored_mnist", PACKAGING,
                                       {**GATE, "dry_run": True}, **heads)
    assert rehearsal["dry_run"] is True  # the registry dataset then registers nothing (tests/tracking/test_dry_run.py)
    with pytest.raises(ValueError, match="must be an evaluated method"):
        package_debiased_model(checkpoint, {"inputs": np.zeros((1, 3, 8, 8), np.uint8)}, metrics, {"digest": "abc", "class_label_digest": "abc"},
                               "colored_mnist", {**PACKAGING, "method": "jtt"}, GATE, **heads)


def test_package_rejects_a_bad_gate_before_anything_is_registered():
    """The packaging node's output is what registers the model: a bad gate must stop it first."""
    checkpoint = {"config": {}, "state_dict": {}, "data_digest": "abc"}
    metrics = {"neurontune": {"test": {"worst_group_accuracy": 0.7}}}
    for bad, message in (({**GATE, "min_delta": "abc"}, "min_delta"), ({**GATE, "split": "val"}, "split"),
                         ({**GATE, "treshold": 1}, "gate.treshold: unknown key")):
        with pytest.raises(ValueError, match=message):
            package_debiased_model(checkpoint, {"inputs": np.zeros((1, 3, 8, 8), np.uint8)}, metrics, {"digest": "abc", "class_label_digest": "abc"},
                                   "colored_mnist", PACKAGING, bad, neurontune_head={})


ERM_METRICS = {"erm": {"test": {"worst_group_accuracy": 0.85, "mean_accuracy": 0.9}}}


def test_decide_reads_the_gate_split_from_both_versions():
    state = {"registered_model_name": "m", "challenger": record(2, 0.9, 0.9), "champion": record(1, 0.8, 0.9)}
    decision = decide_on_challenger(state, GATE, ERM_METRICS)
    assert decision["status"] == "promoted" and decision["split"] == "test" and decision["registered_model_name"] == "m"
    assert decision["registration"] == "registered v2"
    missing = decide_on_challenger({**state, "challenger": {**record(2, 0, 0), "metrics": {}}}, GATE, ERM_METRICS)
    assert missing["status"] == "refused"
    reused = decide_on_challenger({**state, "reused": True}, GATE, ERM_METRICS)
    assert reused["registration"].startswith("reused v2: same content digest")
    assert not decision["dry_run"] and not reused["dry_run"]
    rehearsed = decide_on_challenger({**state, "reused": True, "dry_run": True}, GATE, ERM_METRICS)
    assert rehearsed["dry_run"] and rehearsed["registration"] == (
        "dry run: would have reused v2: same content digest as that earlier version, nothing to register")


def test_first_challenger_is_judged_against_erm():
    state = {"registered_model_name": "m", "challenger": record(1, 0.9, 0.9), "champion": None}
    assert decide_on_challenger(state, GATE, ERM_METRICS)["status"] == "promoted"
    refused = decide_on_challenger(state, GATE, {"erm": {"test": {"worst_group_accuracy": 0.895, "mean_accuracy": 0.9}}})
    assert refused["status"] == "refused" and refused["compared_with"] == "erm" and refused["champion_version"] is None
    assert refused["erm_worst_group_accuracy"] == 0.895 and "ERM" in refused["reason"]
    with pytest.raises(ValueError, match="no erm.test"):
        decide_on_challenger(state, GATE, {"neurontune": {}})


def test_enforce_fails_only_on_refusal_when_asked():
    refused = {"registered_model_name": "m", "challenger_version": 2, "status": "refused", "reason": "too small"}
    enforce_promotion_gate(refused, fail_on_refusal=False)
    enforce_promotion_gate({**refused, "status": "already_champion"}, fail_on_refusal=True)
    with pytest.raises(PromotionRefused, match="m v2 was refused promotion: too small"):
        enforce_promotion_gate(refused, fail_on_refusal=True)


def test_pipeline_wires_registration_before_the_gate():
    pipeline = create_pipeline()
    assert [node.name for node in pipeline.nodes] == ["package_debiased_model", "decide_on_challenger",
                                                      "enforce_promotion_gate"]
    assert {"erm_model", "metrics", "neurontune_regulation.neurontune_head", "params:model_promotion.packaging",
            "params:model_promotion.gate"} <= pipeline.inputs()
    package = next(node for node in pipeline.nodes if node.name == "package_debiased_model")
    assert "params:model_promotion.gate" in package.inputs  # validated before the registering save


def test_nodes_load_no_mlflow_and_the_gate_no_framework():
    import subprocess
    import sys

    script = (
        "import sys\n"
        "frameworks = lambda: sorted(m for m in ('mlflow', 'kedro', 'dvc') if m in sys.modules)\n"
        "import neurontune.tracking.promotion, neurontune.models.predictor\n"
        "print(frameworks())\n"
        "import neurontune.pipelines.model_promotion.nodes\n"
        "print(frameworks())\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    # the gate and the predictor load no framework; the nodes load Kedro (their package's pipeline.py), never MLflow
    assert result.stdout.split("\n")[:2] == ["[]", "['kedro']"]


# Groups optional (issue 24): the gate's metric follows the gate split's group labels, and says so.

NOTE = "not measurable: no group labels"


def unlabelled_record(version, worst_class, mean):
    return {"version": str(version), "data_digest": "d", "metrics": {"test": {
        "worst_group_accuracy": NOTE, "worst_class_accuracy": worst_class, "mean_accuracy": mean}}}


def test_without_group_labels_the_gate_decides_by_worst_class_accuracy():
    state = {"registered_model_name": "m", "challenger": unlabelled_record(1, 0.80, 0.9), "champion": None}
    erm = {"erm": {"test": {"worst_group_accuracy": NOTE, "worst_class_accuracy": 0.70, "mean_accuracy": 0.9}}}
    decision = decide_on_challenger(state, GATE, erm)
    assert decision["status"] == "promoted" and decision["metric"] == "worst_class_accuracy"
    assert decision["worst_class_accuracy_gain"] == pytest.approx(0.10) and "worst-class accuracy gain +0.1000" in decision["reason"]
    with pytest.raises(ValueError, match="gate.metric is worst_group_accuracy, but test has no worst-group accuracy"):
        decide_on_challenger(state, {**GATE, "metric": "worst_group_accuracy"}, erm)


def test_groups_on_the_gate_split_alone_are_enough_for_the_worst_group_gate():
    """A labelled audit set: groups on test only, validation and training without (their WGA is a note)."""
    audit = {split: {"worst_group_accuracy": NOTE, "worst_class_accuracy": 0.7, "mean_accuracy": 0.9} for split in ("train", "val")}
    erm = {"erm": {**audit, "test": {"worst_group_accuracy": 0.50, "worst_class_accuracy": 0.7, "mean_accuracy": 0.9}}}
    state = {"registered_model_name": "m", "challenger": record(1, 0.60, 0.9), "champion": None}
    decision = decide_on_challenger(state, GATE, erm)
    assert decision["metric"] == "worst_group_accuracy" and decision["worst_group_accuracy_gain"] == pytest.approx(0.10)


def test_package_refuses_a_method_that_was_not_fitted_or_an_unmeasurable_gate():
    checkpoint = {"config": {}, "state_dict": {}, "data_digest": "abc"}
    inputs, manifest = {"inputs": np.zeros((1, 3, 8, 8), np.uint8)}, {"digest": "abc", "class_label_digest": "abc"}
    unfitted = {"dfr": {split: {"not_fitted": "no validation group labels"} for split in ("val", "test")}}
    with pytest.raises(ValueError, match=r"packaging.method is 'dfr', which was not fitted \(no validation group labels\)"):
        package_debiased_model(checkpoint, inputs, unfitted, manifest, "b", {**PACKAGING, "method": "dfr"}, GATE, dfr_head={})
    metrics = {"neurontune": {"test": {"worst_group_accuracy": NOTE, "worst_class_accuracy": 0.7}}}
    with pytest.raises(ValueError, match="gate.metric is worst_group_accuracy, but test has no worst-group accuracy"):
        package_debiased_model(checkpoint, inputs, metrics, manifest, "b", PACKAGING, {**GATE, "metric": "worst_group_accuracy"},
                               neurontune_head={})
