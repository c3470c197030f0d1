"""Each real modality through the real DAG on a tiny slice, with the bundled pretrained weights and the env's
own configuration; the published benchmarks' environments name their loader and backbone."""

import pytest

from tests.pipelines.conftest import TINY_STAGES, environment_parameters, run_pipelines


@pytest.mark.parametrize("env", ["waterbirds_like", "tweets_negation"])
def test_modality_runs_end_to_end(env):
    params = environment_parameters(env)
    params["data_versioning"]["split_sizes"] = {"train": 48, "val": 32, "test": 16}
    if env == "waterbirds_like":  # two of the photos keep it quick; tests/data loads them all
        params["data_versioning"]["backgrounds"] = {"natural": ["skimage:grass"], "man_made": ["skimage:brick"]}
    params["erm_training"]["device"] = "cpu"
    params["erm_training"]["modes"][params["erm_training"]["mode"]].update(epochs=3, batch_size=16)
    params["embedding_caching"].update(device="cpu", batch_size=16)
    tuning = params["neurontune_regulation"]["tuning"]
    tuning["grid"] = {"threshold": tuning["grid"]["threshold"][:2], "rule": ["any"], "weight_decay": [0.01]}
    for entry in params["baselines"]["methods"].values():  # the smallest grids: the wiring is under test
        entry["options"] = {key: value[:1] if isinstance(value, list) else value for key, value in entry["options"].items()}
        if "n_refits" in entry["options"]:
            entry["options"]["n_refits"] = 1
    built = run_pipelines(TINY_STAGES[:1], params)
    built["class_labels"] = built["raw_metadata"][["sample_id", "split", "y"]]
    run = run_pipelines(TINY_STAGES[1:], params, inputs=built)
    assert set(run["erm_model"]["state_dict"]) == {"head.weight", "head.bias"}  # frozen backbone: head + weights digest
    metrics = run["metrics"]
    assert 0.0 <= metrics["neurontune"]["test"]["worst_group_accuracy"] <= 1.0
    assert set(metrics["validity"]["test"]) >= {"erm_worst_group_accuracy", "oracle_worst_group_accuracy", "headroom"}


@pytest.mark.parametrize("env, architecture", [("waterbirds", "resnet50"), ("celeba", "resnet50"),
                                               ("multinli", "bert_base_uncased"), ("civilcomments", "bert_base_uncased")])
def test_published_environments_name_their_loader_and_backbone(env, architecture):
    params = environment_parameters(env)
    assert params["data_versioning"]["name"] == env and params["data_versioning"]["root"]
    assert params["erm_training"]["model"]["architecture"] == architecture
    assert params["erm_training"]["model"]["n_classes"] == params["data_versioning"]["n_classes"]
