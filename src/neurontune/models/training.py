"""Plain ERM training: cross-entropy on class labels, checkpoint by validation average accuracy.

Only class labels reach this module; there is no argument through which a
group or attribute label could enter.
"""

from __future__ import annotations

import copy
import logging

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from neurontune.models.backbones import build_model
from neurontune.models.batching import embed_and_predict, iterate_batches

logger = logging.getLogger(__name__)


def train_erm(
    config: dict,
    train_inputs: np.ndarray,
    train_labels: np.ndarray,
    val_inputs: np.ndarray,
    val_labels: np.ndarray,
    *,
    epochs: int,
    learning_rate: float,
    weight_decay: float,
    batch_size: int,
    seed: int,
    device: torch.device,
) -> tuple[nn.Module, list[dict]]:
    """Train ``build_model(config)`` by ERM and return the best-validation-accuracy model and the history.

    Returns
    -------
    model : nn.Module in eval mode, on CPU, with the weights of the best epoch
    history : one dict per epoch: epoch, train_loss, train_accuracy, val_accuracy
    """
    if epochs < 1 or batch_size < 1:
        raise ValueError(f"epochs and batch_size must be positive; got {epochs} and {batch_size}.")
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(seed)  # weight initialisation only; the global state is restored on exit
        model = build_model(config).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=learning_rate, weight_decay=weight_decay)
    labels = torch.as_tensor(train_labels, dtype=torch.long)
    rng = np.random.default_rng(seed)
    history, best_accuracy, best_state = [], -1.0, None
    for epoch in tqdm(range(1, epochs + 1), desc="ERM epochs", unit="epoch"):
        model.train()
        total_loss, total_correct = 0.0, 0
        order = rng.permutation(len(train_labels))
        for indices, batch in iterate_batches(model, train_inputs, batch_size, device, order, f"epoch {epoch}"):
            target = labels[indices].to(device)
            logits = model(batch)
            loss = nn.functional.cross_entropy(logits, target)
            if not torch.isfinite(loss):
                raise FloatingPointError(
                    f"ERM loss became {loss.item()} in epoch {epoch}; lower erm_training.learning_rate "
                    "or check the inputs for NaN/inf values."
                )
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total_loss += loss.item() * len(indices)
            total_correct += int((logits.argmax(1) == target).sum())
        _, val_logits = embed_and_predict(model, val_inputs, batch_size, device)
        val_accuracy = float(np.mean(val_logits.argmax(1) == val_labels))
        history.append({
            "epoch": epoch,
            "train_loss": total_loss / len(train_labels),
            "train_accuracy": total_correct / len(train_labels),
            "val_accuracy": val_accuracy,
        })
        logger.info("ERM epoch %d: %s", epoch, history[-1])
        if val_accuracy > best_accuracy:
            best_accuracy, best_state = val_accuracy, copy.deepcopy(model.state_dict())
    model.load_state_dict(best_state)
    return model.cpu().eval(), history
