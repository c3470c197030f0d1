"""Each real modality end to end on a tiny slice, with the bundled pretrained weights and the env's own configuration."""

import warnings

import pytest
from kedro.config import OmegaConfigLoader

from neurontune.pipelines.data_versioning.nodes import build_benchmark, describe_dataset
from neurontune.pipelines.embedding_caching.nodes import cache_embeddings
from neurontune.pipelines.erm_training.nodes import train_erm_model
from neurontune.pipelines.evaluation.nodes import compute_group_metrics, predict_with_heads
from neurontune.pipelines.neuron_identification.nodes import score_identification_neurons, split_validation
from neurontune.pipelines.neurontune_regulation.nodes import regulate_head
from neurontune.settings import CONFIG_LOADER_ARGS
from tests.conftest import PROJECT_ROOT


def environment_parameters(env: str) -> dict:
    """The parameters ``kedro run --env ENV`` would see."""
    loader = OmegaConfigLoader(str(PROJECT_ROOT / "conf"), env=env, **CONFIG_LOADER_ARGS)
    return loader["parameters"]


@pytest.mark.parametrize("env, sizes", [
    ("waterbirds_like", {"train": 48, "val": 32, "test": 16}),
    ("tweets_negation", {"train": 48, "val": 32, "test": 16}),
])
def test_modality_runs_end_to_end(env, sizes):
    params = environment_parameters(env)
    params["data_versioning"]["split_sizes"] = sizes
    if env == "waterbirds_like":  # two of the six photos keep it quick; tests/data loads all six
        params["data_versioning"]["backgrounds"] = {"natural": ["skimage:grass"], "man_made": ["skimage:brick"]}
    params["erm_training"]["device"] = "cpu"
    params["erm_training"]["modes"]["linear_probe"].update(epochs=3, batch_size=16)
    tuning = params["neurontune_regulation"]["tuning"]
    tuning["grid"] = {"threshold": tuning["grid"]["threshold"][:2], "rule": ["any"], "weight_decay": [0.01]}
    raw_inputs, raw_metadata = build_benchmark(params["data_versioning"])
    manifest = describe_dataset(raw_inputs, raw_metadata, params["data_versioning"])
    class_labels = raw_metadata[["sample_id", "split", "y"]]
    checkpoint, _ = train_erm_model(raw_inputs, class_labels, manifest, params["erm_training"])
    assert set(checkpoint["state_dict"]) == {"head.weight", "head.bias"}  # frozen backbone: head + weights digest
    train, val, test, erm_head = cache_embeddings(raw_inputs, class_labels, checkpoint, {"device": "cpu", "batch_size": 16})
    validation_split = split_validation(val, params["neuron_identification"]["selection_split"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a tiny slice may leave a class without errors to score
        score_identification_neurons(val, validation_split)
        heads = {"erm": erm_head}
        for method in ("neurontune", "neurontune_dagger"):
            variant = params["neurontune_regulation"]["variants"][method]
            heads[method], _ = regulate_head(train, val, validation_split, erm_head, variant, tuning)
    predictions = predict_with_heads(train, val, test, **heads)
    metrics = compute_group_metrics(predictions, raw_metadata)
    assert set(metrics) == set(heads) and 0.0 <= metrics["neurontune"]["test"]["worst_group_accuracy"] <= 1.0


@pytest.mark.parametrize("env, architecture", [("waterbirds", "resnet50"), ("celeba", "resnet50"),
                                               ("multinli", "bert_base_uncased"), ("civilcomments", "bert_base_uncased")])
def test_published_environments_name_their_loader_and_backbone(env, architecture):
    params = environment_parameters(env)
    assert params["data_versioning"]["name"] == env and params["data_versioning"]["root"]
    assert params["erm_training"]["model"]["architecture"] == architecture
    assert params["erm_training"]["model"]["n_classes"] == params["data_versioning"]["n_classes"]
