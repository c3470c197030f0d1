"""Plain ERM training: cross-entropy on class labels, checkpoint by validation average accuracy.

Only class labels reach this module; there is no argument through which an
attribute annotation could enter.
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


#: ``finetune`` trains backbone and head (what the paper does); ``linear_probe`` freezes a
#: pretrained backbone, embeds once and trains only the head (minutes on a CPU).
TRAINING_MODES = ("finetune", "linear_probe")


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
    mode: str = "finetune",
    group=None,
    snapshot_epoch: int | None = None,
) -> tuple[nn.Module, list[dict]]:
    """Train ``build_model(config)`` by ERM and return the best-validation-accuracy model and the history.

    ``mode`` is ``finetune`` (every weight trains; mixed precision on CUDA) or
    ``linear_probe`` (a pretrained backbone stays frozen in eval mode; its embeddings
    are extracted once, batch by batch, and only the head trains on them).
    ``group`` (a :class:`neurontune.models.distributed.ProcessGroup`, set inside a
    distributed worker; ``finetune`` only) trains this rank's share of every batch with
    DistributedDataParallel. ``snapshot_epoch``: keep the whole model's weights after that epoch (an early
    checkpoint), on the CPU, in that epoch's history entry under ``snapshot``.

    Returns
    -------
    model : nn.Module in eval mode, on CPU, with the weights of the best epoch
    history : one dict per epoch: epoch, train_loss, train_accuracy, val_accuracy
    """
    if epochs < 1 or batch_size < 1:
        raise ValueError(f"epochs and batch_size must be positive; got {epochs} and {batch_size}.")
    if mode not in TRAINING_MODES:
        raise ValueError(f"mode must be one of {list(TRAINING_MODES)}; got {mode!r}.")
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(seed)  # weight initialisation only; the global state is restored on exit
        model = build_model(config).to(device)
    snapshot = None if snapshot_epoch is None else (snapshot_epoch, model)
    if mode == "linear_probe":
        if not hasattr(model, "weights_digest"):
            raise ValueError(f"mode 'linear_probe' needs a pretrained backbone; {config['architecture']!r} starts from random weights.")
        model.requires_grad_(False).eval()
        model.head.requires_grad_(True)
        train_features = embed_and_predict(model, train_inputs, batch_size, device, "embedding train")[0]
        val_features = embed_and_predict(model, val_inputs, batch_size, device, "embedding val")[0]
        history = fit_linear_probe(model.head, train_features, val_features, train_labels, val_labels, epochs=epochs,
                                   learning_rate=learning_rate, weight_decay=weight_decay, batch_size=batch_size,
                                   seed=seed, device=device, group=group, snapshot=snapshot)
        return model.cpu().eval(), history
    step_size = batch_size if group is None else batch_size // group.world_size
    val_rows = slice(0, len(val_labels)) if group is None else group.shard(len(val_labels), batch_size)

    def batches(order, description):
        model.train()
        return iterate_batches(model, train_inputs, step_size, device, order, description)

    def predict_val():
        if val_rows.start == val_rows.stop:  # a rank with no validation batch
            return np.empty((0, model.head.out_features), dtype=np.float32)
        return embed_and_predict(model, val_inputs[val_rows], batch_size, device)[1]

    val_labels = val_labels[val_rows]
    history = _fit(model, batches, predict_val, train_labels, val_labels, epochs=epochs, learning_rate=learning_rate,
                   weight_decay=weight_decay, rng=np.random.default_rng(seed), device=device, group=group,
                   batch_size=batch_size, snapshot=snapshot)
    return model.cpu().eval(), history


def fit_linear_probe(head: nn.Module, train_features: np.ndarray, val_features: np.ndarray, train_labels, val_labels, *,
                     epochs: int, learning_rate: float, weight_decay: float, batch_size: int, seed: int,
                     device: torch.device, group=None, snapshot=None) -> list[dict]:
    """Train ``head`` on fixed features (a frozen backbone's embeddings) by ERM's epoch loop, in place; the
    linear probe of :func:`train_erm`, also used by benchmarks that extract the features once for many seeds.
    Returns the per-epoch history (the head ends with its best validation epoch's weights)."""
    train_x, val_x = torch.from_numpy(train_features), torch.from_numpy(val_features)

    def batches(order, description):
        for start in range(0, len(order), batch_size):
            indices = order[start : start + batch_size]
            yield indices, train_x[indices].to(device)

    def predict_val():
        with torch.inference_mode():
            return head(val_x.to(device)).float().cpu().numpy()

    return _fit(head, batches, predict_val, train_labels, val_labels, epochs=epochs, learning_rate=learning_rate,
                weight_decay=weight_decay, rng=np.random.default_rng(seed), device=device, group=group,
                batch_size=batch_size, snapshot=snapshot)


def _fit(trainable, batches, predict_val, train_labels, val_labels, *, epochs, learning_rate, weight_decay, rng, device,
         group=None, batch_size=None, snapshot=None):
    """The epoch loop shared by both modes; restores ``trainable``'s best-validation-accuracy weights.
    ``snapshot`` = ``(epoch, model)``: that epoch's history entry keeps a CPU copy of ``model``'s weights.

    With ``group`` each rank trains its slice of every global batch through DDP and the
    epoch's figures are summed over ranks (see :mod:`neurontune.models.distributed`).
    """
    forward = trainable if group is None else group.wrap(trainable)
    optimizer = torch.optim.AdamW(trainable.parameters(), lr=learning_rate, weight_decay=weight_decay)
    half = torch.bfloat16 if device.type == "cuda" and torch.cuda.is_bf16_supported() else torch.float16
    autocast = torch.autocast(device_type="cuda", dtype=half, enabled=device.type == "cuda")
    scaler = torch.amp.GradScaler("cuda", enabled=device.type == "cuda" and half == torch.float16)
    labels = torch.as_tensor(train_labels, dtype=torch.long)
    history, best_accuracy, best_state = [], -1.0, None
    for epoch in tqdm(range(1, epochs + 1), desc="ERM epochs", unit="epoch"):
        total_loss, total_correct, order = 0.0, 0, rng.permutation(len(train_labels))
        if group is not None:
            order = group.local_order(order, batch_size)
        for indices, batch in batches(order, f"epoch {epoch}"):
            target = labels[indices].to(device)
            with autocast:
                logits = forward(batch).float()
            loss = nn.functional.cross_entropy(logits, target)
            if not torch.isfinite(loss):
                raise FloatingPointError(
                    f"ERM loss became {loss.item()} in epoch {epoch}; lower the learning rate (erm_training.modes.<mode>.learning_rate) "
                    "or check the inputs for NaN/inf values."
                )
            optimizer.zero_grad()
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            total_loss += loss.item() * len(indices)
            total_correct += int((logits.argmax(1) == target).sum())
        if group is None:
            val_accuracy = float(np.mean(predict_val().argmax(1) == val_labels))
            n_trained = len(train_labels)
        else:  # every rank gets the same totals, hence the same best epoch
            val_correct = int(np.sum(predict_val().argmax(1) == val_labels))  # this rank's validation shard
            total_loss, total_correct, val_correct, n_trained, n_val = group.sum(
                [total_loss, total_correct, val_correct, len(order), len(val_labels)])
            val_accuracy = float(val_correct / n_val)
        history.append({
            "epoch": epoch,
            "train_loss": total_loss / n_trained,
            "train_accuracy": total_correct / n_trained,
            "val_accuracy": val_accuracy,
        })
        logger.info("ERM epoch %d: %s", epoch, history[-1])
        if snapshot is not None and epoch == snapshot[0]:
            history[-1]["snapshot"] = {name: tensor.detach().cpu().clone() for name, tensor in snapshot[1].state_dict().items()}
        if val_accuracy > best_accuracy:
            best_accuracy, best_state = val_accuracy, copy.deepcopy(trainable.state_dict())
    trainable.load_state_dict(best_state)
    return history
