"""Train the ERM model on class labels only."""

from __future__ import annotations

from functools import partial

import numpy as np
import pandas as pd

from neurontune.data.tables import CLASS_LABEL_COLUMNS, content_digest, split_arrays, validate_metadata
from neurontune.models.backbones import build_model, model_checkpoint
from neurontune.models.devices import resolve_device
from neurontune.models.distributed import DistributedSettings, train_erm_distributed
from neurontune.models.training import TRAINING_MODES, train_erm

#: What each ``erm_training.modes.<mode>`` block must set.
OPTIMISATION_KEYS = ("epochs", "learning_rate", "weight_decay", "batch_size")
WHERE = "conf/<env>/parameters_erm_training.yml"


def train_erm_model(raw_inputs: dict[str, np.ndarray], class_labels: pd.DataFrame, erm: dict) -> tuple[dict, dict, dict]:
    """Train by ERM on class labels only; return the checkpoint (config + weights + the digest of the data it
    read), the per-epoch metric history, and the checkpoint of epoch ``early_checkpoint_epoch`` (whose errors
    on the training split are a label-free error set, see :mod:`neurontune.core.errors`)."""
    optimisation = mode_settings(erm)
    validate_metadata(class_labels, erm["model"]["n_classes"], CLASS_LABEL_COLUMNS, "class_labels")
    train_x, train_y, _ = split_arrays(raw_inputs["inputs"], class_labels, "train")
    val_x, val_y, _ = split_arrays(raw_inputs["inputs"], class_labels, "val")
    frozen = erm["mode"] == "linear_probe"
    early_epoch = min(int(erm["early_checkpoint_epoch"]), int(optimisation["epochs"]))
    if early_epoch < 1:
        raise ValueError(f"erm_training.early_checkpoint_epoch must be >= 1; got {erm['early_checkpoint_epoch']!r}.")
    settings = DistributedSettings.from_config(erm.get("distributed"))
    train = partial(train_erm_distributed, settings) if settings.enabled else train_erm
    model, history = train(erm["model"], train_x, train_y, val_x, val_y, **optimisation, seed=erm["seed"],
                           device=resolve_device(erm["device"]), mode=erm["mode"], snapshot_epoch=early_epoch)
    early = build_model(erm["model"])
    early.load_state_dict(history[early_epoch - 1].pop("snapshot"))
    digest = content_digest(raw_inputs["inputs"], class_labels[list(CLASS_LABEL_COLUMNS)])
    checkpoint = {**model_checkpoint(model, frozen_backbone=frozen), "data_digest": digest}
    early_checkpoint = {**model_checkpoint(early, frozen_backbone=frozen), "epoch": early_epoch, "data_digest": digest}
    metric_history = {
        key: [{"value": row[key], "step": row["epoch"]} for row in history]
        for key in ("train_loss", "train_accuracy", "val_accuracy")
    }
    return checkpoint, metric_history, early_checkpoint


def mode_settings(erm: dict) -> dict:
    """The optimisation block of ``erm["mode"]``: ``erm["modes"][mode]`` with every key of :data:`OPTIMISATION_KEYS`.

    Each mode has its own block so that switching ``mode`` alone switches the epochs,
    learning rate, weight decay and batch size with it. Settings left at the top level
    (the layout before per-mode blocks) are refused rather than silently ignored.
    """
    mode = erm.get("mode")
    if mode not in TRAINING_MODES:
        raise ValueError(f"erm_training.mode must be one of {list(TRAINING_MODES)}; got {mode!r} (set it in {WHERE}).")
    stale = [key for key in OPTIMISATION_KEYS if key in erm]
    if stale:
        raise ValueError(
            f"erm_training.{stale[0]} is no longer read: optimisation settings live per mode, as "
            f"erm_training.modes.{mode}.{stale[0]} (and likewise {stale}); move them in {WHERE} or your --params."
        )
    block = (erm.get("modes") or {}).get(mode)
    if not isinstance(block, dict):
        raise ValueError(
            f"erm_training.modes.{mode} is missing: erm_training.mode is {mode!r}, so {WHERE} needs a block "
            f"erm_training.modes.{mode} with {list(OPTIMISATION_KEYS)}; found blocks {sorted(erm.get('modes') or {})}."
        )
    missing = [key for key in OPTIMISATION_KEYS if block.get(key) is None]
    unknown = sorted(set(block) - set(OPTIMISATION_KEYS))
    if missing or unknown:
        raise ValueError(f"erm_training.modes.{mode} is missing {missing} and has unknown key(s) {unknown} (in {WHERE}); "
                         f"it takes exactly {list(OPTIMISATION_KEYS)}.")
    return {key: block[key] for key in OPTIMISATION_KEYS}
