"""Cache penultimate-layer embeddings, ERM logits (and the early checkpoint's) and the ERM head for every split."""

from __future__ import annotations

import numpy as np
import pandas as pd

from neurontune.data.tables import CLASS_LABEL_COLUMNS, SPLITS, split_arrays, validate_metadata
from neurontune.models.backbones import model_from_checkpoint
from neurontune.models.batching import embed_and_predict
from neurontune.models.devices import resolve_device
from neurontune.models.distributed import DistributedSettings, embed_splits_distributed


def cache_embeddings(
    raw_inputs: dict[str, np.ndarray], class_labels: pd.DataFrame, erm_model: dict, erm_early_model: dict,
    caching: dict, distributed: dict | None = None,
) -> tuple[dict, dict, dict, dict]:
    """Embeddings, logits, labels and sample ids per split, the early checkpoint's logits (``early_logits``; none
    for an imported classifier, which has no early checkpoint), plus the ERM head as arrays.

    With ``distributed`` workers (``erm_training.distributed``) each split is sharded over them and merged in
    sample order.
    """
    model = model_from_checkpoint(erm_model)
    validate_metadata(class_labels, model.config["n_classes"], CLASS_LABEL_COLUMNS, "class_labels")
    device = resolve_device(caching["device"])
    splits = {split: split_arrays(raw_inputs["inputs"], class_labels, split) for split in SPLITS}
    inputs = {split: arrays[0] for split, arrays in splits.items()}
    embedded = _embed(erm_model, model, inputs, caching["batch_size"], device, distributed, "embedding")
    if erm_early_model.get("absent"):  # an imported classifier: identification falls back to cross-fitted errors
        early_logits = None
    elif "frozen_backbone_digest" in erm_early_model:  # linear probe: the same features, only the head differs
        early_head = model_from_checkpoint(erm_early_model).head
        weight, bias = (p.detach().cpu().numpy() for p in (early_head.weight, early_head.bias))
        early_logits = {split: (embedded[split][0] @ weight.T + bias).astype(np.float32) for split in SPLITS}
    else:  # a fine-tuned backbone: one more pass of the early network
        early_model = model_from_checkpoint(erm_early_model)
        early = _embed(erm_early_model, early_model, inputs, caching["batch_size"], device, distributed, "early checkpoint")
        early_logits = {split: early[split][1] for split in SPLITS}
    cached = [{"embeddings": embedded[split][0], "logits": embedded[split][1], "y": splits[split][1],
               "sample_id": splits[split][2], **({} if early_logits is None else {"early_logits": early_logits[split]})}
              for split in SPLITS]
    head = {
        "weight": model.head.weight.detach().cpu().numpy(),
        "bias": model.head.bias.detach().cpu().numpy(),
        "keep": np.ones(model.head.in_features),
    }
    return (*cached, head)


def _embed(checkpoint: dict, model, inputs: dict, batch_size: int, device, distributed: dict | None, what: str) -> dict:
    """``{split: (embeddings, logits)}`` in one process or sharded over the configured workers."""
    settings = DistributedSettings.from_config(distributed)
    if settings.enabled:
        return embed_splits_distributed(settings, checkpoint, inputs, batch_size, device)
    model.to(device)
    return {split: embed_and_predict(model, split_inputs, batch_size, device, f"{what} {split}")
            for split, split_inputs in inputs.items()}
