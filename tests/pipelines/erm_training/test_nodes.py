import numpy as np
import pytest
from kedro.config import OmegaConfigLoader

from neurontune.models.backbones import model_from_checkpoint
from neurontune.pipeline_registry import register_pipelines
from neurontune.pipelines.erm_training.nodes import OPTIMISATION_KEYS, mode_settings
from neurontune.settings import CONFIG_LOADER_ARGS
from tests.conftest import PROJECT_ROOT


def test_checkpoint_rebuilds_the_model_and_records_the_class_label_data(tiny_run):
    checkpoint = tiny_run["erm_model"]
    assert checkpoint["data_digest"] == tiny_run["dataset_manifest"]["class_label_digest"]
    model = model_from_checkpoint(checkpoint)
    assert model.config == checkpoint["config"]


def test_history_is_one_metric_entry_per_epoch(tiny_run):
    history = tiny_run["erm_training_history"]
    assert set(history) == {"train_loss", "train_accuracy", "val_accuracy"}
    assert [entry["step"] for entry in history["train_loss"]] == [1, 2]
    assert all(np.isfinite(entry["value"]) for entry in history["train_loss"])


def test_erm_reads_neither_group_labels_nor_the_manifest():
    (node,) = register_pipelines()["erm_training"].nodes
    # params:data_versioning: the classes an imported model's outputs must match (settings, never group labels)
    assert set(node.inputs) == {"raw_inputs", "class_labels", "params:erm_training", "params:data_versioning"}
    assert set(node.outputs) == {"erm_model", "erm_training_history", "erm_early_model"}

FINETUNE = {"epochs": 3, "learning_rate": 1e-4, "weight_decay": 1e-4, "batch_size": 32}
PROBE = {"epochs": 30, "learning_rate": 3e-3, "weight_decay": 0.0, "batch_size": 128}


def erm_parameters(env: str, mode: str | None = None) -> dict:
    """``erm_training`` as ``kedro run --env ENV [--params erm_training.mode=MODE]`` would see it."""
    runtime = {"erm_training": {"mode": mode}} if mode else None  # the nested form kedro's CLI makes of --params
    loader = OmegaConfigLoader(str(PROJECT_ROOT / "conf"), env=env, runtime_params=runtime, **CONFIG_LOADER_ARGS)
    return loader["parameters"]["erm_training"]


def test_the_mode_picks_its_own_optimisation_block():
    erm = {"mode": "finetune", "modes": {"finetune": FINETUNE, "linear_probe": PROBE}}
    assert mode_settings(erm) == FINETUNE
    assert mode_settings({**erm, "mode": "linear_probe"}) == PROBE


@pytest.mark.parametrize("env", ["waterbirds_like", "tweets_negation", "waterbirds", "celeba", "multinli", "civilcomments"])
def test_switching_the_mode_alone_switches_the_settings_on_every_pretrained_benchmark(env):
    settings = {mode: mode_settings(erm_parameters(env, mode))
                for mode in ("finetune", "linear_probe")}
    assert set(settings["finetune"]) == set(settings["linear_probe"]) == set(OPTIMISATION_KEYS)
    assert settings["finetune"] != settings["linear_probe"]
    # fine-tuning a pretrained backbone takes a small step; training a fresh head a large one
    assert settings["finetune"]["learning_rate"] < settings["linear_probe"]["learning_rate"]


def test_the_small_cnn_environments_have_only_the_finetune_block():
    assert mode_settings(erm_parameters("base"))["epochs"] == 15
    assert mode_settings(erm_parameters("ci"))["epochs"] == 3  # ci overrides one key of the block, keeps the rest
    assert set(erm_parameters("ci")["modes"]) == {"finetune"}  # a missing block: tests/test_parameters.py
