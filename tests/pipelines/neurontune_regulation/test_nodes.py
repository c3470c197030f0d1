import numpy as np
import pytest

from neurontune.methods import load_registry
from neurontune.pipeline_registry import register_pipelines
from neurontune.pipelines.neurontune_regulation.nodes import _folds, regulate_head

VARIANTS = [name for name, method in load_registry().items() if method.kind == "neurontune"]


def outputs(tiny_run, name):
    return (tiny_run[f"neurontune_regulation.{name}_head"], tiny_run[f"neurontune_regulation.{name}_candidates"])


def test_one_node_per_registered_variant_reading_the_identification_scores():
    nodes = register_pipelines()["neurontune_regulation"].nodes
    assert sorted(node.name for node in nodes) == sorted(f"neurontune_regulation.regulate_{name}" for name in VARIANTS)
    assert all("neuron_scores" in node.inputs for node in nodes)


def test_each_variant_returns_a_head_and_its_candidate_table(tiny_run):
    for name in VARIANTS:
        head, table = outputs(tiny_run, name)
        assert set(head) == {"weight", "bias", "keep", "mask"}
        assert head["weight"].shape == (2, 64)
        assert table["selected"].sum() == 1, name


def test_ablations_mask_nothing_and_search_only_regularisation(tiny_run):
    for name in ("class_balanced_retrain", "class_balanced_retrain_val"):
        head, table = outputs(tiny_run, name)
        assert not head["mask"].any() and np.all(head["keep"] == 1)
        assert "threshold" not in table.columns


def test_neurontune_searches_the_configured_grid(tiny_run, parameters):
    _, table = outputs(tiny_run, "neurontune")
    grid = parameters["neurontune_regulation"]["tuning"]["grid"]
    assert set(table["rule"]) == set(grid["rule"]) and set(table["threshold"]) == set(grid["threshold"])


def test_tuning_rows_come_from_the_declared_set(tiny_run):
    train, val, split = tiny_run["embeddings_train"], tiny_run["embeddings_val"], tiny_run["validation_split"]
    args = (train, val, split, tiny_run["neuron_scores"])
    (fold,), (selection,), refit = _folds(*args, "val_ide", None, 2)
    np.testing.assert_array_equal(fold["tune_embeddings"], val["embeddings"][split["ide"]])
    np.testing.assert_array_equal(selection.embeddings, val["embeddings"][split["sel"]])
    assert refit is None
    (fold,), _, _ = _folds(*args, "train", None, 2)
    np.testing.assert_array_equal(fold["tune_embeddings"], train["embeddings"])
    folds, selections, refit = _folds(*args, "val_crossfit", None, 2)
    np.testing.assert_array_equal(folds[1]["tune_embeddings"], val["embeddings"][split["sel"]])
    np.testing.assert_array_equal(selections[1].embeddings, val["embeddings"][split["ide"]])
    assert len(refit["tune_y"]) == len(val["y"])


def test_unknown_tuning_set_is_named(tiny_run, parameters):
    inputs = [tiny_run[name] for name in ("embeddings_train", "embeddings_val", "validation_split", "erm_head",
                                          "neuron_scores")]
    with pytest.raises(ValueError, match=r"tune_set must be one of \['train', 'val_ide', 'val_crossfit'\]; got 'test'"):
        regulate_head(*inputs, {"tune_set": "test", "use_mask": True}, parameters["neurontune_regulation"]["tuning"])
