import numpy as np
import pytest

from neurontune.core.choice import HELD_OUT_PREDICTION
from neurontune.methods import load_registry
from neurontune.pipeline_registry import register_pipelines
from neurontune.methods import complete_variant as _with_levers
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
        assert set(head) == {"weight", "bias", "keep", "mask", HELD_OUT_PREDICTION}
        assert head[HELD_OUT_PREDICTION].shape == tiny_run["validation_split"]["sel"].shape  # the selection half
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
    args = (train, val, split, tiny_run["neuron_scores"], tiny_run["error_sets"])

    def variant(tune_set, **levers):
        return _with_levers({"tune_set": tune_set, "use_mask": True, **levers})

    (fold,), (selection,), refit = _folds(*args, variant("val_ide"), None, 2)
    np.testing.assert_array_equal(fold["tune_embeddings"], val["embeddings"][split["ide"]])
    np.testing.assert_array_equal(selection.embeddings, val["embeddings"][split["sel"]])
    assert refit is None
    (fold,), _, _ = _folds(*args, variant("train"), None, 2)
    np.testing.assert_array_equal(fold["tune_embeddings"], train["embeddings"])
    folds, selections, refit = _folds(*args, variant("val_crossfit"), None, 2)
    np.testing.assert_array_equal(folds[1]["tune_embeddings"], val["embeddings"][split["sel"]])
    np.testing.assert_array_equal(selections[1].embeddings, val["embeddings"][split["ide"]])
    assert len(refit["tune_y"]) == len(val["y"])


def test_unknown_tuning_set_is_named(tiny_run, parameters):
    inputs = [tiny_run[name] for name in ("embeddings_train", "embeddings_val", "validation_split", "erm_head",
                                          "neuron_scores", "error_sets")]
    tuning = parameters["neurontune_regulation"]["tuning"]
    with pytest.raises(ValueError, match=r"tune_set must be one of \['train', 'val_ide', 'val_crossfit'\]; got 'test'"):
        regulate_head(*inputs, {**_with_levers({"tune_set": "train", "use_mask": True}), "tune_set": "test"}, tuning)


def test_plus_identifies_on_train_and_selects_by_pseudo_groups(tiny_run):
    train, val, split = tiny_run["embeddings_train"], tiny_run["embeddings_val"], tiny_run["validation_split"]
    plus = _with_levers({"tune_set": "train", "use_mask": True, "identify_on": "train", "errors": "auto",
                         "statistic": "scaled", "criterion": "pseudo_group", "balance": "pseudo_group"})
    (fold,), (selection,), _ = _folds(train, val, split, tiny_run["neuron_scores"], tiny_run["error_sets"], plus, None, 2)
    np.testing.assert_array_equal(fold["ide_embeddings"], train["embeddings"])
    early_wrong = tiny_run["error_sets"]["train_auto"] == 1
    np.testing.assert_array_equal(fold["tune_groups"], 2 * train["y"] + early_wrong)
    val_wrong = tiny_run["error_sets"]["val_auto"][split["sel"]] == 1
    np.testing.assert_array_equal(selection.partitions["pseudo_group"], 2 * val["y"][split["sel"]] + val_wrong)
    _, table = outputs(tiny_run, "neurontune_plus")
    assert (table["criterion"] == "sel_worst_pseudo_group_accuracy").all()
