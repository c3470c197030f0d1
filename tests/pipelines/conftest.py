"""A tiny colored_mnist and everything downstream of it, computed once for the node tests."""

import warnings

import pytest
import yaml

from neurontune.pipelines.data_versioning.nodes import build_benchmark, describe_dataset
from neurontune.pipelines.embedding_caching.nodes import cache_embeddings
from neurontune.pipelines.erm_training.nodes import train_erm_model
from neurontune.pipelines.neuron_identification.nodes import score_identification_neurons, split_validation
from tests.conftest import PROJECT_ROOT


def base_parameters(name):
    return yaml.safe_load((PROJECT_ROOT / "conf" / "base" / f"parameters_{name}.yml").read_text())[name]


@pytest.fixture(scope="session")
def parameters():
    names = ["data_versioning", "erm_training", "embedding_caching", "neuron_identification", "neurontune_regulation"]
    params = {name: base_parameters(name) for name in names}
    params["data_versioning"]["split_sizes"] = {"train": 240, "val": 160, "test": 120}
    params["erm_training"]["device"] = "cpu"
    params["erm_training"]["modes"]["finetune"]["epochs"] = 2
    params["embedding_caching"]["device"] = "cpu"
    params["neurontune_regulation"]["tuning"]["grid"] = {"threshold": [0.0], "rule": ["any", "per_class"], "weight_decay": [0.001]}
    return params


@pytest.fixture(scope="session")
def tiny_run(parameters):
    raw_inputs, raw_metadata = build_benchmark(parameters["data_versioning"])
    manifest = describe_dataset(raw_inputs, raw_metadata, parameters["data_versioning"])
    class_labels = raw_metadata[["sample_id", "split", "y"]]
    checkpoint, history = train_erm_model(raw_inputs, class_labels, manifest, parameters["erm_training"])
    train, val, test, erm_head = cache_embeddings(raw_inputs, class_labels, checkpoint, parameters["embedding_caching"])
    validation_split = split_validation(val, parameters["neuron_identification"]["selection_split"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        scores = score_identification_neurons(val, validation_split)
    return {"raw_inputs": raw_inputs, "raw_metadata": raw_metadata, "manifest": manifest, "class_labels": class_labels,
            "checkpoint": checkpoint, "history": history, "embeddings_train": train, "embeddings_val": val,
            "embeddings_test": test, "erm_head": erm_head, "validation_split": validation_split, "neuron_scores": scores}
