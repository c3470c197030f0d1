import warnings

import numpy as np
import pytest

from neurontune.pipelines.neurontune_regulation.nodes import regulate_head


@pytest.fixture(scope="module")
def regulated(tiny_run, parameters):
    tuning = parameters["neurontune_regulation"]["tuning"]
    variants = parameters["neurontune_regulation"]["variants"]
    inputs = [tiny_run[name] for name in ("embeddings_train", "embeddings_val", "validation_split", "erm_head")]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return {method: regulate_head(*inputs, variant, tuning) for method, variant in variants.items()}


def test_each_variant_returns_a_head_and_its_candidate_table(regulated):
    for method, (head, table) in regulated.items():
        assert set(head) == {"weight", "bias", "keep", "mask"}
        assert head["weight"].shape == (2, 64)
        assert table["selected"].sum() == 1, method


def test_ablation_masks_nothing_and_searches_only_regularisation(regulated):
    head, table = regulated["class_balanced_retrain"]
    assert not head["mask"].any() and np.all(head["keep"] == 1)
    assert "threshold" not in table.columns


def test_neurontune_searches_rules(regulated):
    _, table = regulated["neurontune"]
    assert set(table["rule"]) == {"any", "per_class"}


def test_unknown_tuning_set_is_named(tiny_run, parameters):
    inputs = [tiny_run[name] for name in ("embeddings_train", "embeddings_val", "validation_split", "erm_head")]
    with pytest.raises(ValueError, match=r"tune_set must be one of \['train', 'val_ide'\]; got 'test'"):
        regulate_head(*inputs, {"tune_set": "test", "use_mask": True}, parameters["neurontune_regulation"]["tuning"])
