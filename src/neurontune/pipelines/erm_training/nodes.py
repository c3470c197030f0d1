"""Train the ERM model on class labels only."""

from __future__ import annotations

from functools import partial

import numpy as np
import pandas as pd

from neurontune.data.tables import CLASS_LABEL_COLUMNS, split_arrays, validate_metadata
from neurontune.models.backbones import model_checkpoint
from neurontune.models.devices import resolve_device
from neurontune.models.distributed import DistributedSettings, train_erm_distributed
from neurontune.models.training import train_erm


def train_erm_model(
    raw_inputs: dict[str, np.ndarray], class_labels: pd.DataFrame, dataset_manifest: dict, erm: dict
) -> tuple[dict, dict]:
    """Train by ERM; return the checkpoint (config + weights + data digest) and the per-epoch metric history."""
    validate_metadata(class_labels, erm["model"]["n_classes"], CLASS_LABEL_COLUMNS, "class_labels")
    train_x, train_y, _ = split_arrays(raw_inputs["inputs"], class_labels, "train")
    val_x, val_y, _ = split_arrays(raw_inputs["inputs"], class_labels, "val")
    settings = DistributedSettings.from_config(erm.get("distributed"))
    train = partial(train_erm_distributed, settings) if settings.enabled else train_erm
    model, history = train(
        erm["model"], train_x, train_y, val_x, val_y,
        epochs=erm["epochs"], learning_rate=erm["learning_rate"], weight_decay=erm["weight_decay"],
        batch_size=erm["batch_size"], seed=erm["seed"], device=resolve_device(erm["device"]), mode=erm["mode"],
    )
    checkpoint = {**model_checkpoint(model, frozen_backbone=erm["mode"] == "linear_probe"),
                  "data_digest": dataset_manifest["digest"]}
    metric_history = {
        key: [{"value": row[key], "step": row["epoch"]} for row in history]
        for key in ("train_loss", "train_accuracy", "val_accuracy")
    }
    return checkpoint, metric_history
