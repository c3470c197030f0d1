import numpy as np

from neurontune.models.backbones import model_from_checkpoint
from neurontune.pipeline_registry import register_pipelines


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
    assert set(node.inputs) == {"raw_inputs", "class_labels", "params:erm_training"}
    assert set(node.outputs) == {"erm_model", "erm_training_history", "erm_early_model"}
