"""Step 4 of NeuronTune: suppress the selected neurons and retrain the linear head."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from neurontune.core._chunked import check_chunk_size, check_row_source, iter_row_chunks
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

SOLVERS = ("sgd", "lbfgs", "lbfgs_chunked")


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
    sample_weight=None,
    balance_classes: bool = True,
    anchor_strength: float = 0.0,
    solver: str = "sgd",
    epochs: int = 20,
    learning_rate: float = 0.01,
    momentum: float = 0.9,
    weight_decay: float = 1e-4,
    batch_size: int = 128,
    seed: int = 0,
    device: str | torch.device = "cpu",
    chunk_size: int = 65536,
) -> LinearHead:
    """Retrain a linear head on class-balanced, suppressed embeddings with cross-entropy.

    The baselines reuse this solver: ``sample_weight`` reweights samples (within
    each class when ``balance_classes``), ``anchor_strength`` adds AFR's L2 pull
    ``anchor_strength / 2 * ||θ - θ_init||²`` toward ``init``.

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
    sample_weight : array of float, shape (N,), optional
        Non-negative per-sample weights (e.g. JTT's upweighted errors, AFR's
        ``exp(-γ p_true)``, group-balancing weights). None = uniform.
    balance_classes : bool
        True (NeuronTune): every class gets the same total weight, ``sample_weight``
        redistributing it within a class. False: ``sample_weight`` alone.
    anchor_strength : float
        L2 pull of weight and bias toward ``init`` (requires ``init``); 0 = none.
    solver : {"sgd", "lbfgs", "lbfgs_chunked"}
        ``sgd``: SGD with momentum on class-balanced mini-batches (the authors'
        framework). ``lbfgs``: full-batch class-weighted L2 logistic regression,
        the same objective solved deterministically. ``lbfgs_chunked``: the same
        L-BFGS, its loss and gradient summed over blocks of ``chunk_size`` rows, so
        ``embeddings`` may be an ``np.memmap`` larger than memory (one read of it
        per function evaluation); equal to ``lbfgs`` up to float rounding.
    epochs, learning_rate, momentum, weight_decay, batch_size
        Optimisation settings (``weight_decay`` is the L2 strength on the weight).
    seed : int
        Seeds the batch sampler of ``sgd``; results are identical for a seed.
    device : str or torch.device
    chunk_size : int
        Rows per block for ``lbfgs_chunked``.

    Returns
    -------
    LinearHead
    """
    check_choice(solver, SOLVERS, "solver")
    chunked = solver == "lbfgs_chunked"
    embeddings = check_row_source(embeddings, "embeddings") if chunked else check_embeddings(embeddings, "embeddings")
    n_classes = check_n_classes(n_classes)
    y = check_labels(y, n_classes, "y", n_samples=embeddings.shape[0])
    n_neurons = embeddings.shape[1]
    mask = np.zeros(n_neurons, dtype=bool) if mask is None else check_mask(mask, n_classes, n_neurons)
    keep = keep_from_mask(mask, suppression_scale)
    if init is not None:
        check_head(init.weight, init.bias, n_neurons=n_neurons)
        if init.n_classes != n_classes:
            raise ValueError(f"init head has {init.n_classes} classes; expected {n_classes}.")
    if anchor_strength < 0 or (anchor_strength > 0 and init is None):
        raise ValueError(f"anchor_strength must be >= 0 and needs an init head to pull toward; got {anchor_strength!r} "
                         f"with init={'None' if init is None else 'a head'}.")
    weights = _training_weights(y, n_classes, sample_weight, balance_classes)
    for name, value in {"epochs": epochs, "batch_size": batch_size}.items():
        if not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"{name} must be a positive integer; got {value!r}.")
    if learning_rate <= 0 or weight_decay < 0:
        raise ValueError(f"learning_rate must be > 0 and weight_decay >= 0; got {learning_rate} and {weight_decay}.")
    if chunked:
        weight, bias = _solve_lbfgs_chunked(
            embeddings, torch.as_tensor(y, device=device), torch.as_tensor(keep, dtype=torch.float32, device=device),
            torch.as_tensor(weights, dtype=torch.float32, device=device), n_classes, init,
            anchor_strength=float(anchor_strength), epochs=epochs, weight_decay=weight_decay,
            chunk_size=check_chunk_size(chunk_size), device=device,
        )
        return LinearHead.from_arrays(weight, bias, keep)
    solve = _solve_sgd if solver == "sgd" else _solve_lbfgs
    weight, bias = solve(
        torch.as_tensor(embeddings, dtype=torch.float32, device=device),
        torch.as_tensor(y, device=device),
        torch.as_tensor(keep, dtype=torch.float32, device=device),
        torch.as_tensor(weights, dtype=torch.float32, device=device),
        n_classes,
        init,
        anchor_strength=float(anchor_strength),
        epochs=epochs,
        learning_rate=learning_rate,
        momentum=momentum,
        weight_decay=weight_decay,
        batch_size=batch_size,
        seed=seed,
    )
    return LinearHead.from_arrays(weight, bias, keep)


def _training_weights(y, n_classes, sample_weight, balance_classes) -> np.ndarray:
    """Per-sample weights summing to N: class-balanced (and reweighted within class) or ``sample_weight`` alone."""
    if balance_classes:
        return balanced_sample_weights(y, n_classes, sample_weight)
    if sample_weight is None:
        return np.ones(y.shape[0])
    sample_weight = np.asarray(sample_weight, dtype=np.float64)
    if sample_weight.shape != y.shape or not np.all(np.isfinite(sample_weight)) or np.any(sample_weight < 0) or not sample_weight.sum() > 0:
        raise ValueError(f"sample_weight must be finite, non-negative, not all zero and of shape {y.shape}; "
                         f"got shape {sample_weight.shape}.")
    return sample_weight * (y.shape[0] / sample_weight.sum())


def _anchor_penalty(weight, bias, init, anchor_strength):
    if anchor_strength == 0:
        return 0.0
    weight0 = torch.as_tensor(init.weight, dtype=weight.dtype, device=weight.device)
    bias0 = torch.as_tensor(init.bias, dtype=bias.dtype, device=bias.device)
    return 0.5 * anchor_strength * ((weight - weight0).pow(2).sum() + (bias - bias0).pow(2).sum())


def _initial_parameters(n_classes, n_neurons, init, device):
    if init is None:
        weight = torch.zeros(n_classes, n_neurons, device=device)
        bias = torch.zeros(n_classes, device=device)
    else:
        weight = torch.as_tensor(init.weight, dtype=torch.float32, device=device).clone()
        bias = torch.as_tensor(init.bias, dtype=torch.float32, device=device).clone()
    return weight.requires_grad_(True), bias.requires_grad_(True)


def _solve_sgd(x, y, keep, sample_weights, n_classes, init, *, anchor_strength, epochs, learning_rate, momentum, weight_decay, batch_size, seed):
    weight, bias = _initial_parameters(n_classes, x.shape[1], init, x.device)
    optimizer = torch.optim.SGD(
        [{"params": [weight], "weight_decay": weight_decay}, {"params": [bias], "weight_decay": 0.0}],
        lr=learning_rate,
        momentum=momentum,
    )
    sampling = sample_weights.detach().cpu().double()
    generator = torch.Generator().manual_seed(int(seed))
    for _ in range(epochs):
        order = torch.multinomial(sampling, x.shape[0], replacement=True, generator=generator).to(x.device)
        for batch in order.split(batch_size):
            loss = torch.nn.functional.cross_entropy(x[batch] @ (weight * keep).T + bias, y[batch])
            loss = loss + _anchor_penalty(weight, bias, init, anchor_strength)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    return weight.detach().cpu().numpy(), bias.detach().cpu().numpy()


def _solve_lbfgs(x, y, keep, sample_weights, n_classes, init, *, anchor_strength, epochs, learning_rate, momentum, weight_decay, batch_size, seed):
    weight, bias = _initial_parameters(n_classes, x.shape[1], init, x.device)
    class_weight = sample_weights
    optimizer = torch.optim.LBFGS([weight, bias], lr=1.0, max_iter=20 * epochs, line_search_fn="strong_wolfe")

    def closure():
        optimizer.zero_grad()
        losses = torch.nn.functional.cross_entropy(x @ (weight * keep).T + bias, y, reduction="none")
        loss = (losses * class_weight).mean() + 0.5 * weight_decay * (weight * keep).pow(2).sum()
        loss = loss + _anchor_penalty(weight, bias, init, anchor_strength)
        loss.backward()
        return loss

    optimizer.step(closure)
    return weight.detach().cpu().numpy(), bias.detach().cpu().numpy()


def _solve_lbfgs_chunked(source, y, keep, sample_weights, n_classes, init, *, anchor_strength, epochs, weight_decay,
                         chunk_size, device):
    """:func:`_solve_lbfgs` with the data term summed block by block: each closure reads ``source`` once."""
    weight, bias = _initial_parameters(n_classes, source.shape[1], init, device)
    optimizer = torch.optim.LBFGS([weight, bias], lr=1.0, max_iter=20 * epochs, line_search_fn="strong_wolfe")
    n_samples, checked = source.shape[0], False

    def closure():
        nonlocal checked
        optimizer.zero_grad()
        total = torch.zeros((), dtype=torch.float64, device=device)
        for start, block in iter_row_chunks(source, chunk_size):
            x = torch.from_numpy(block).to(device=device, dtype=torch.float32)
            if not checked and not torch.isfinite(x).all():
                bad = int(x.numel() - torch.isfinite(x).sum())
                raise ValueError(f"embeddings contains {bad} NaN/inf values in rows {start}..{start + len(block) - 1}; "
                                 "embeddings must be finite.")
            rows = slice(start, start + len(block))
            losses = torch.nn.functional.cross_entropy(x @ (weight * keep).T + bias, y[rows], reduction="none")
            part = (losses * sample_weights[rows]).sum() / n_samples
            part.backward()
            total += part.detach()
        checked = True
        penalty = 0.5 * weight_decay * (weight * keep).pow(2).sum() + _anchor_penalty(weight, bias, init, anchor_strength)
        penalty.backward()
        return (total + penalty.detach()).float()

    optimizer.step(closure)
    return weight.detach().cpu().numpy(), bias.detach().cpu().numpy()
