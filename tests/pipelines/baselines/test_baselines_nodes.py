"""The baselines pipeline: one node per registry entry, group labels wired only into the labelled ones."""

import pandas as pd
import pytest

from neurontune.core.choice import HELD_OUT_PREDICTION
from neurontune.methods import load_registry
from neurontune.pipeline_registry import register_pipelines
from neurontune.methods import resolve_function
from neurontune.pipelines.baselines.nodes import fit_baseline
from neurontune.pipelines.evaluation.nodes import declare_labels_used

REGISTRY = load_registry()
BASELINES = [name for name, method in REGISTRY.items() if method.kind == "baseline"]


def test_every_baseline_writes_a_head_evaluation_can_score(tiny_run):
    width = tiny_run["embeddings_val"]["embeddings"].shape[1]
    for name in BASELINES:
        head, table = tiny_run[f"baselines.{name}_head"], tiny_run[f"baselines.{name}_candidates"]
        assert set(head) == {"weight", "bias", "keep", HELD_OUT_PREDICTION}
        assert head[HELD_OUT_PREDICTION].shape == tiny_run["validation_split"]["sel"].shape  # the selection half
        assert head["weight"].shape == (2, width) and head["bias"].shape == (2,)
        assert isinstance(table, pd.DataFrame) and table["selected"].sum() == 1
        assert (table["labels_used"] == REGISTRY[name].labels_used).all()


def test_group_labels_enter_only_the_labelled_baseline_nodes():
    for node in register_pipelines()["baselines"].nodes:
        name = node.name.removeprefix("baselines.fit_")
        assert ("raw_metadata" in node.inputs) == (REGISTRY[name].labels_used != "none"), node.name
        assert "class_labels" not in node.inputs


def test_miswired_group_labels_are_refused(tiny_run, parameters):
    settings, methods = parameters["baselines"]["settings"], parameters["baselines"]["methods"]
    data = {name: tiny_run[name] for name in ("embeddings_train", "embeddings_val", "validation_split", "erm_head")}
    with pytest.raises(ValueError, match="given the group labels"):
        fit_baseline("afr", methods["afr"], settings, **data, raw_metadata=tiny_run["raw_metadata"])
    with pytest.raises(ValueError, match="not given the group labels"):
        fit_baseline("dfr", methods["dfr"], settings, **data)


def test_unknown_functions_are_named():
    # unknown options are rejected before the run (tests/test_parameters.py)
    with pytest.raises(ValueError, match="baseline function 'nope' not found"):
        resolve_function("nope")


def test_default_dag_fits_baselines_before_evaluation_scores_them():
    default = register_pipelines()["__default__"]
    names = [node.name for node in default.nodes]  # topologically sorted
    for name in BASELINES:
        assert names.index(f"baselines.fit_{name}") < names.index("predict_with_heads")


def test_labels_used_declaration_covers_every_evaluated_method(tiny_run):
    declared = tiny_run["method_labels_used"]
    assert declared == {name: method.labels_used for name, method in REGISTRY.items()}
    with pytest.raises(ValueError, match="no labels-used declaration"):
        declare_labels_used({"mystery_method": {}}, {"erm": "none"})


def test_a_labelled_baseline_without_validation_groups_is_recorded_as_not_fitted(tiny_run, parameters, caplog):
    """No group column, or groups on the test split only: the run goes on, and the result says why it is empty."""
    settings, methods = parameters["baselines"]["settings"], parameters["baselines"]["methods"]
    data = {name: tiny_run[name] for name in ("embeddings_train", "embeddings_val", "validation_split", "erm_head")}
    metadata = tiny_run["raw_metadata"]
    test_only = metadata.assign(group=metadata["group"].where(metadata["split"] == "test", -1))
    for labels in (metadata.drop(columns=["a", "group"]), test_only):
        head, table = fit_baseline("dfr", methods["dfr"], settings, **data, raw_metadata=labels)
        assert set(head) == {"not_fitted"} and str(head["not_fitted"]) == "no validation group labels"
        assert table.to_dict("records") == [{"method": "dfr", "labels_used": "val_groups", "selected": False,
                                              "not_fitted": "no validation group labels"}]
    assert "dfr not fitted: no validation group labels" in caplog.text
