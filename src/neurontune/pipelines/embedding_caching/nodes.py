"""Cache penultimate-layer embeddings, ERM logits and the ERM head for every split."""

from __future__ import annotations

import numpy as np
import pandas as pd

from neurontune.data.tables import CLASS_LABEL_COLUMNS, SPLITS, split_arrays, validate_metadata
from neurontune.models.backbones import model_from_checkpoint
from neurontune.models.batching import embed_and_predict
from neurontune.models.devices import resolve_device


def cache_embeddings(
    raw_inputs: dict[str, np.ndarray], class_labels: pd.DataFrame, erm_model: dict, erm_early_model: dict, caching: dict
) -> tuple[dict, dict, dict, dict]:
    """Embeddings, logits, labels and sample ids per split, the early checkpoint's logits (``early_logits``),
    plus the ERM head as arrays."""
    model = model_from_checkpoint(erm_model)
    validate_metadata(class_labels, model.config["n_classes"], CLASS_LABEL_COLUMNS, "class_labels")
    device = resolve_device(caching["device"])
    model.to(device)
    early = model_from_checkpoint(erm_early_model)
    frozen = "frozen_backbone_digest" in erm_early_model  # linear probe: the same backbone, only the head differs
    cached = []
    for split in SPLITS:
        inputs, labels, sample_ids = split_arrays(raw_inputs["inputs"], class_labels, split)
        embeddings, logits = embed_and_predict(model, inputs, caching["batch_size"], device, f"embedding {split}")
        cached.append({"embeddings": embeddings, "logits": logits, "y": labels, "sample_id": sample_ids,
                       "early_logits": _early_logits(early, frozen, inputs, embeddings, caching["batch_size"], device, split)})
    head = {
        "weight": model.head.weight.detach().cpu().numpy(),
        "bias": model.head.bias.detach().cpu().numpy(),
        "keep": np.ones(model.head.in_features),
    }
    return (*cached, head)


def _early_logits(early, frozen, inputs, embeddings, batch_size, device, split) -> np.ndarray:
    """The early checkpoint's logits: its head on the cached embeddings when the backbone was frozen (the same
    features), else one more pass of the early network."""
    if frozen:
        head = early.head
        return (embeddings @ head.weight.detach().cpu().numpy().T + head.bias.detach().cpu().numpy()).astype(np.float32)
    early.to(device)
    return embed_and_predict(early, inputs, batch_size, device, f"early checkpoint on {split}")[1]
