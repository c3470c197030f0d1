"""Step 4 of NeuronTune: suppress the selected neurons and retrain the linear head."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from neurontune.core._validation import (
    check_choice,
    check_embeddings,
    check_fraction,
    check_head,
    check_labels,
    check_mask,
    check_n_classes,
)
from neurontune.core.groups import balanced_sample_weights

SOLVERS = ("sgd", "lbfgs")


@dataclass(frozen=True)
class LinearHead:
    """A linear classifier over (optionally suppressed) embeddings.

    ``logits = (weight * keep) @ v + bias``. ``keep`` is 1 for a kept neuron and
    the suppression scale (0 = full suppression) for a biased one; shape (M,)
    or (C, M) for a per-class mask.
    """

    weight: np.ndarray  # (C, M)
    bias: np.ndarray  # (C,)
    keep: np.ndarray  # (M,) or (C, M)

    @classmethod
    def from_arrays(cls, weight, bias, keep=None) -> "LinearHead":
        weight, bias = check_head(weight, bias)
        keep = np.ones(weight.shape[1]) if keep is None else np.asarray(keep, dtype=np.float64)
        if keep.shape not in ((weight.shape[1],), weight.shape):
            raise ValueError(f"keep must have shape ({weight.shape[1]},) or {weight.shape}; got {keep.shape}.")
        return cls(weight=weight.astype(np.float64), bias=bias.astype(np.float64), keep=keep)

    @property
    def n_classes(self) -> int:
        return self.weight.shape[0]

    @property
    def effective_weight(self) -> np.ndarray:
        return self.weight * self.keep

    @property
    def n_suppressed(self) -> int:
        """Neurons suppressed in at least one class row."""
        keep = self.keep if self.keep.ndim == 1 else self.keep.min(axis=0)
        return int(np.sum(keep < 1))

    def to_dict(self) -> dict[str, np.ndarray]:
        return {"weight": self.weight, "bias": self.bias, "keep": self.keep}


def keep_from_mask(mask, suppression_scale: float = 0.0) -> np.ndarray:
    """Turn a boolean biased-neuron mask into the multiplicative ``keep`` factors.

    ``suppression_scale`` = 0 zeroes biased neurons (the paper's default, which
    beat partial scaling in its ablation); values in (0, 1] scale them instead.
    """
    mask = np.asarray(mask)
    if mask.dtype != bool:
        raise TypeError(f"mask must be boolean (True = suppress); got dtype {mask.dtype}.")
    scale = check_fraction(suppression_scale, "suppression_scale")
    return np.where(mask, scale, 1.0)


def head_logits(embeddings, head: LinearHead) -> np.ndarray:
    """Logits, shape (N, C), of ``head`` on ``embeddings`` (N, M)."""
    embeddings = check_embeddings(embeddings, "embeddings")
    check_head(head.weight, head.bias, n_neurons=embeddings.shape[1])
    return embeddings.astype(np.float64) @ head.effective_weight.T + head.bias


def head_predict(embeddings, head: LinearHead) -> np.ndarray:
    """Predicted class ids, shape (N,)."""
    return np.argmax(head_logits(embeddings, head), axis=1)


def retrain_head(
    embeddings,
    y,
    n_classes: int,
    mask=None,
    *,
    suppression_scale: float = 0.0,
    init: LinearHead | None = None,
    solver: str = "sgd",
    epochs: int = 20,
    learning_rate: float = 0.01,
    momentum: float = 0.9,
    weight_decay: float = 1e-4,
    batch_size: int = 128,
    seed: int = 0,
    device: str | torch.device = "cpu",
) -> LinearHead:
    """Retrain a linear head on class-balanced, suppressed embeddings with cross-entropy.

    Parameters
    ----------
    embeddings : array, shape (N, M)
        Embeddings of the tuning set ``D_tune``.
    y : array of int, shape (N,)
        Class labels (no group labels: balancing is by class).
    n_classes : int
    mask : array of bool, shape (M,) or (C, M), optional
        Neurons to suppress; None retrains without suppression.
    suppression_scale : float
        Factor applied to suppressed neurons (0 = zeroed).
    init : LinearHead, optional
        Starting point (usually the ERM head); zeros when None.
    solver : {"sgd", "lbfgs"}
        ``sgd``: SGD with momentum on class-balanced mini-batches (the authors'
        framework). ``lbfgs``: full-batch class-weighted L2 logistic regression,
        the same objective solved deterministically.
    epochs, learning_rate, momentum, weight_decay, batch_size
        Optimisation settings (``weight_decay`` is the L2 strength on the weight).
    seed : int
        Seeds the batch sampler of ``sgd``; results are identical for a seed.
    device : str or torch.device

    Returns
    -------
    LinearHead
    """
    embeddings = check_embeddings(embeddings, "embeddings")
    n_classes = check_n_classes(n_classes)
    y = check_labels(y, n_classes, "y", n_samples=embeddings.shape[0])
    check_choice(solver, SOLVERS, "solver")
    n_neurons = embeddings.shape[1]
    mask = np.zeros(n_neurons, dtype=bool) if mask is None else check_mask(mask, n_classes, n_neurons)
    keep = keep_from_mask(mask, suppression_scale)
    if init is not None:
        check_head(init.weight, init.bias, n_neurons=n_neurons)
        if init.n_classes != n_classes:
            raise ValueError(f"init head has {init.n_classes} classes; expected {n_classes}.")
    for name, value in {"epochs": epochs, "batch_size": batch_size}.items():
        if not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"{name} must be a positive integer; got {value!r}.")
    if learning_rate <= 0 or weight_decay < 0:
        raise ValueError(f"learning_rate must be > 0 and weight_decay >= 0; got {learning_rate} and {weight_decay}.")
    solve = _solve_sgd if solver == "sgd" else _solve_lbfgs
    weight, bias = solve(
        torch.as_tensor(embeddings, dtype=torch.float32, device=device),
        torch.as_tensor(y, device=device),
        torch.as_tensor(keep, dtype=torch.float32, device=device),
        n_classes,
        init,
        epochs=epochs,
        learning_rate=learning_rate,
        momentum=momentum,
        weight_decay=weight_decay,
        batch_size=batch_size,
        seed=seed,
    )
    return LinearHead.from_arrays(weight, bias, keep)


def _initial_parameters(n_classes, n_neurons, init, device):
    if init is None:
        weight = torch.zeros(n_classes, n_neurons, device=device)
        bias = torch.zeros(n_classes, device=device)
    else:
        weight = torch.as_tensor(init.weight, dtype=torch.float32, device=device).clone()
        bias = torch.as_tensor(init.bias, dtype=torch.float32, device=device).clone()
    return weight.requires_grad_(True), bias.requires_grad_(True)


def _solve_sgd(x, y, keep, n_classes, init, *, epochs, learning_rate, momentum, weight_decay, batch_size, seed):
    weight, bias = _initial_parameters(n_classes, x.shape[1], init, x.device)
    optimizer = torch.optim.SGD(
        [{"params": [weight], "weight_decay": weight_decay}, {"params": [bias], "weight_decay": 0.0}],
        lr=learning_rate,
        momentum=momentum,
    )
    sampling = torch.as_tensor(balanced_sample_weights(y.cpu().numpy(), n_classes))
    generator = torch.Generator().manual_seed(int(seed))
    for _ in range(epochs):
        order = torch.multinomial(sampling, x.shape[0], replacement=True, generator=generator).to(x.device)
        for batch in order.split(batch_size):
            loss = torch.nn.functional.cross_entropy(x[batch] @ (weight * keep).T + bias, y[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    return weight.detach().cpu().numpy(), bias.detach().cpu().numpy()


def _solve_lbfgs(x, y, keep, n_classes, init, *, epochs, learning_rate, momentum, weight_decay, batch_size, seed):
    weight, bias = _initial_parameters(n_classes, x.shape[1], init, x.device)
    class_weight = torch.as_tensor(balanced_sample_weights(y.cpu().numpy(), n_classes), dtype=torch.float32, device=x.device)
    optimizer = torch.optim.LBFGS([weight, bias], lr=1.0, max_iter=20 * epochs, line_search_fn="strong_wolfe")

    def closure():
        optimizer.zero_grad()
        losses = torch.nn.functional.cross_entropy(x @ (weight * keep).T + bias, y, reduction="none")
        loss = (losses * class_weight).mean() + 0.5 * weight_decay * (weight * keep).pow(2).sum()
        loss.backward()
        return loss

    optimizer.step(closure)
    return weight.detach().cpu().numpy(), bias.detach().cpu().numpy()
