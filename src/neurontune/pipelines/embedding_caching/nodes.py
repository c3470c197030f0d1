"""Cache penultimate-layer embeddings, ERM logits and the ERM head for every split."""

from __future__ import annotations

import numpy as np
import pandas as pd

from neurontune.data.tables import CLASS_LABEL_COLUMNS, SPLITS, split_arrays, validate_metadata
from neurontune.models.backbones import model_from_checkpoint
from neurontune.models.batching import embed_and_predict
from neurontune.models.devices import resolve_device
from neurontune.models.distributed import DistributedSettings, embed_splits_distributed


def cache_embeddings(
    raw_inputs: dict[str, np.ndarray], class_labels: pd.DataFrame, erm_model: dict, caching: dict,
    distributed: dict | None = None,
) -> tuple[dict, dict, dict, dict]:
    """Embeddings, logits, labels and sample ids per split, plus the ERM head as arrays.

    With ``distributed`` workers (``erm_training.distributed``) each split is sharded over them and merged in sample order.
    """
    model = model_from_checkpoint(erm_model)
    validate_metadata(class_labels, model.config["n_classes"], CLASS_LABEL_COLUMNS, "class_labels")
    device = resolve_device(caching["device"])
    splits = {split: split_arrays(raw_inputs["inputs"], class_labels, split) for split in SPLITS}
    settings = DistributedSettings.from_config(distributed)
    if settings.enabled:
        inputs = {split: arrays[0] for split, arrays in splits.items()}
        embedded = embed_splits_distributed(settings, erm_model, inputs, caching["batch_size"], device)
    else:
        model.to(device)
        embedded = {split: embed_and_predict(model, arrays[0], caching["batch_size"], device, f"embedding {split}")
                    for split, arrays in splits.items()}
    cached = [{"embeddings": embedded[split][0], "logits": embedded[split][1], "y": splits[split][1],
               "sample_id": splits[split][2]} for split in SPLITS]
    head = {
        "weight": model.head.weight.detach().cpu().numpy(),
        "bias": model.head.bias.detach().cpu().numpy(),
        "keep": np.ones(model.head.in_features),
    }
    return (*cached, head)
