"""The baselines pipeline: one node per method, group labels wired only into the labelled ones."""

import pandas as pd
import pytest

from neurontune.core.baselines import LABELS_USED
from neurontune.pipeline_registry import register_pipelines
from neurontune.pipelines.baselines.nodes import fit_baseline
from neurontune.pipelines.baselines.pipeline import BASELINES, create_pipeline
from neurontune.pipelines.evaluation.nodes import declare_labels_used
from neurontune.pipelines.evaluation.pipeline import EVALUATED_METHODS
from tests.pipelines.conftest import base_parameters

#: Small grids: the node code path, not the search, is under test here.
REDUCED = {
    "dfr": {"c_grid": [1.0, 0.1], "n_refits": 2},
    "dfr_groupfree": {"c_grid": [1.0], "n_refits": 2},
    "jtt_last_layer": {"upweights": [5.0], "weight_decays": [0.001]},
    "afr": {"gammas": [2.0], "anchor_strengths": [0.01]},
    "group_balanced_oracle": {"weight_decays": [0.001]},
}


@pytest.fixture(scope="module")
def baseline_parameters():
    params = base_parameters("baselines")
    for method, reduced in REDUCED.items():
        params["methods"][method].update(reduced)
    params["settings"]["retrain"]["epochs"] = 5
    return params


@pytest.fixture(scope="module")
def fitted(tiny_run, baseline_parameters):
    results = {}
    for method in BASELINES:
        labelled = LABELS_USED[method] != "none"
        results[method] = fit_baseline(
            method, tiny_run["embeddings_train"], tiny_run["embeddings_val"], tiny_run["validation_split"],
            tiny_run["erm_head"], baseline_parameters["methods"][method], baseline_parameters["settings"],
            raw_metadata=tiny_run["raw_metadata"] if labelled else None)
    return results


def test_every_baseline_writes_a_head_evaluation_can_score(fitted, tiny_run):
    width = tiny_run["embeddings_val"]["embeddings"].shape[1]
    for method, (head, table) in fitted.items():
        assert set(head) == {"weight", "bias", "keep"}
        assert head["weight"].shape == (2, width) and head["bias"].shape == (2,)
        assert isinstance(table, pd.DataFrame) and table["selected"].sum() == 1
        assert (table["labels_used"] == LABELS_USED[method]).all()


def test_group_labels_enter_only_the_labelled_baseline_nodes():
    for node in create_pipeline().nodes:
        method = node.name.removeprefix("fit_")
        assert ("raw_metadata" in node.inputs) == (LABELS_USED[method] != "none"), node.name
        assert "class_labels" not in node.inputs


def test_miswired_group_labels_are_refused(tiny_run, baseline_parameters):
    args = (tiny_run["embeddings_train"], tiny_run["embeddings_val"], tiny_run["validation_split"], tiny_run["erm_head"])
    with pytest.raises(ValueError, match="given the group labels"):
        fit_baseline("afr", *args, baseline_parameters["methods"]["afr"], baseline_parameters["settings"], raw_metadata=tiny_run["raw_metadata"])
    with pytest.raises(ValueError, match="not given the group labels"):
        fit_baseline("dfr", *args, baseline_parameters["methods"]["dfr"], baseline_parameters["settings"])


def test_default_dag_fits_baselines_before_evaluation_scores_them():
    default = register_pipelines()["__default__"]
    names = [node.name for node in default.nodes]  # topologically sorted
    for method in BASELINES:
        assert method in EVALUATED_METHODS
        assert names.index(f"fit_{method}") < names.index("predict_with_heads")


def test_labels_used_declaration_covers_every_evaluated_method():
    declared = declare_labels_used({method: {} for method in EVALUATED_METHODS})
    assert declared["dfr"] == "val_groups" and declared["neurontune"] == "none"
    with pytest.raises(ValueError, match="no labels-used declaration"):
        declare_labels_used({"mystery_method": {}})


def test_the_tuning_set_option_is_checked(tiny_run, baseline_parameters):
    options = {**baseline_parameters["methods"]["afr"], "tune_set": "test"}
    with pytest.raises(ValueError, match="tune_set"):
        fit_baseline("afr", tiny_run["embeddings_train"], tiny_run["embeddings_val"], tiny_run["validation_split"],
                     tiny_run["erm_head"], options, baseline_parameters["settings"])
    assert baseline_parameters["methods"]["afr"]["tune_set"] == "train"  # the node never mutates its baseline_parameters
