"""Batched forward passes shared by ERM training and embedding extraction."""

from __future__ import annotations

from typing import Iterator

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm


def iterate_batches(model: nn.Module, raw_inputs: np.ndarray, batch_size: int, device: torch.device,
                    order: np.ndarray | None = None, description: str | None = None) -> Iterator[tuple[np.ndarray, torch.Tensor]]:
    """Yield ``(indices, model_input_on_device)``; only one batch is materialised at a time.

    Without ``order`` batches are contiguous slices (views, no copy of the raw inputs).
    """
    n_samples = len(raw_inputs) if order is None else len(order)
    starts = range(0, n_samples, batch_size)
    for start in tqdm(starts, desc=description, leave=False, disable=description is None, unit="batch"):
        if order is None:
            indices = slice(start, min(start + batch_size, n_samples))
        else:
            indices = order[start : start + batch_size]
        yield indices, model.preprocess(raw_inputs[indices]).to(device, non_blocking=True)


@torch.inference_mode()
def embed_and_predict(model: nn.Module, raw_inputs: np.ndarray, batch_size: int, device: torch.device,
                      description: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Embeddings (N, M) and logits (N, C) of ``model`` in eval mode, batch by batch."""
    model.eval()
    embeddings, logits = [], []
    autocast = torch.autocast(device_type="cuda", dtype=torch.float16, enabled=device.type == "cuda")
    for _, batch in iterate_batches(model, raw_inputs, batch_size, device, description=description):
        with autocast:
            embedding = model.embed(batch)
            logit = model.head(embedding)
        embeddings.append(embedding.float().cpu().numpy())
        logits.append(logit.float().cpu().numpy())
    return np.concatenate(embeddings), np.concatenate(logits)
