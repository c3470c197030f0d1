"""Train the ERM model on class labels only, or import the user's classifier (never retrained)."""

from __future__ import annotations

import logging
from functools import partial

import numpy as np
import pandas as pd

from neurontune.data.tables import CLASS_LABEL_COLUMNS, content_digest, split_arrays, validate_metadata
from neurontune.models.backbones import build_model, model_checkpoint
from neurontune.models.devices import resolve_device
from neurontune.models.distributed import DistributedSettings, train_erm_distributed
from neurontune.models.imported import imported_checkpoint
from neurontune.models.training import train_erm
from neurontune.parameters import Optimisation
from neurontune.tracking.source_model import load_source_model

logger = logging.getLogger(__name__)

#: What each ``erm_training.modes.<mode>`` block sets.
OPTIMISATION_KEYS = tuple(Optimisation.model_fields)
#: Why an imported classifier has no early checkpoint, and what the error sets that need one use instead.
NO_EARLY_CHECKPOINT = ("no early checkpoint: the classifier was imported, not trained here, so the 'early' error sets "
                       "(and 'auto' for a fine-tuned source) fall back to cross-fitted training-split errors")


def provide_erm_model(raw_inputs: dict[str, np.ndarray], class_labels: pd.DataFrame, erm: dict,
                      benchmark: dict) -> tuple[dict, dict, dict]:
    """The ERM model: trained here (``erm["source"]`` is ``train``) or the user's classifier, imported."""
    if erm.get("source", "train") == "train":
        return train_erm_model(raw_inputs, class_labels, erm)
    return import_erm_model(raw_inputs, class_labels, erm, benchmark)


def import_erm_model(raw_inputs: dict[str, np.ndarray], class_labels: pd.DataFrame, erm: dict,
                     benchmark: dict) -> tuple[dict, dict, dict]:
    """The classifier named by ``erm["source"]``, split at its last linear layer and never retrained: its checkpoint
    (with the digest of the data), an empty training history, and the marker of the early checkpoint it lacks."""
    n_classes = int(benchmark["n_classes"])
    validate_metadata(class_labels, n_classes, CLASS_LABEL_COLUMNS, "class_labels")
    model = load_source_model(erm["source"], erm.get("imported") or {}, n_classes, benchmark.get("classes"), raw_inputs)
    digest = content_digest(raw_inputs["inputs"], class_labels[list(CLASS_LABEL_COLUMNS)])
    logger.info("imported %s: head %r, %d neurons; %s", erm["source"], model.config["head"],
                model.config["embedding_dim"], NO_EARLY_CHECKPOINT)
    return ({**imported_checkpoint(model), "data_digest": digest}, {},
            {"absent": True, "reason": NO_EARLY_CHECKPOINT, "data_digest": digest})


def train_erm_model(raw_inputs: dict[str, np.ndarray], class_labels: pd.DataFrame, erm: dict) -> tuple[dict, dict, dict]:
    """Train by ERM on class labels only; return the checkpoint (config + weights + the digest of the data it
    read), the per-epoch metric history, and the checkpoint of epoch ``early_checkpoint_epoch`` (whose errors
    on the training split are a label-free error set, see :mod:`neurontune.core.errors`)."""
    optimisation = mode_settings(erm)
    validate_metadata(class_labels, erm["model"]["n_classes"], CLASS_LABEL_COLUMNS, "class_labels")
    train_x, train_y, _ = split_arrays(raw_inputs["inputs"], class_labels, "train")
    val_x, val_y, _ = split_arrays(raw_inputs["inputs"], class_labels, "val")
    frozen = erm["mode"] == "linear_probe"
    early_epoch = min(erm["early_checkpoint_epoch"], optimisation["epochs"])
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
    """The optimisation block of ``erm["mode"]``, ``erm["modes"][mode]``: each mode has its own, so switching ``mode``
    alone switches the epochs, learning rate, weight decay and batch size with it. The run's parameters were
    checked against :class:`neurontune.parameters.ErmTraining` (the block exists and sets every key)."""
    return {key: erm["modes"][erm["mode"]][key] for key in OPTIMISATION_KEYS}
