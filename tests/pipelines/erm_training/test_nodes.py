import numpy as np

from neurontune.models.backbones import model_from_checkpoint


def test_checkpoint_rebuilds_the_model_and_records_the_data(tiny_run):
    checkpoint = tiny_run["checkpoint"]
    assert checkpoint["data_digest"] == tiny_run["manifest"]["digest"]
    model = model_from_checkpoint(checkpoint)
    assert model.config == checkpoint["config"]


def test_history_is_one_metric_entry_per_epoch(tiny_run):
    history = tiny_run["history"]
    assert set(history) == {"train_loss", "train_accuracy", "val_accuracy"}
    assert [entry["step"] for entry in history["train_loss"]] == [1, 2]
    assert all(np.isfinite(entry["value"]) for entry in history["train_loss"])
