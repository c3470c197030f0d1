"""Step 4 of NeuronTune: suppress the selected neurons and retrain the linear head."""

from __future__ import annotations

import inspect
from dataclasses import dataclass

import numpy as np
import torch
from scipy.optimize import minimize
from threadpoolctl import threadpool_limits

from neurontune.core._chunked import check_chunk_size, check_finite_block, check_row_source, iter_row_chunks
from neurontune.core._validation import (
    check_choice,
    check_classes_present,
    check_embeddings,
    check_fraction,
    check_head,
    check_labels,
    check_mask,
    check_n_classes,
)
from neurontune.core.groups import balanced_sample_weights

SOLVERS = ("lbfgs", "sgd", "lbfgs_chunked")


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
    def suppressed(self) -> np.ndarray:
        """Bool (M,): neurons suppressed in at least one class row."""
        return (self.keep if self.keep.ndim == 1 else self.keep.min(axis=0)) < 1

    @property
    def n_suppressed(self) -> int:
        """Neurons suppressed in at least one class row."""
        return int(self.suppressed.sum())

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
    weight_decay: float = 1e-4,
    solver: str = "lbfgs",
    max_iter: int = 400,
    epochs: int = 20,
    learning_rate: float = 0.01,
    momentum: float = 0.9,
    batch_size: int = 128,
    seed: int = 0,
    device: str | torch.device = "cpu",
    chunk_size: int = 65536,
) -> LinearHead:
    """Retrain a linear head on class-balanced, suppressed embeddings with cross-entropy.

    Objective: ``mean_n(w_n · CE(x_n (W ⊙ keep)ᵀ + b, y_n)) + weight_decay / 2 · ||W ⊙ keep||²``
    (+ ``anchor_strength / 2 · ||θ − θ_init||²``, AFR's pull toward ``init``). The baselines
    reuse this solver: ``sample_weight`` reweights samples (within each class when
    ``balance_classes``).

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
    weight_decay : float
        L2 strength on the (suppressed) weight.
    solver : {"lbfgs", "sgd", "lbfgs_chunked"}
        ``lbfgs`` (default): the full-batch objective above solved to convergence with
        SciPy's L-BFGS-B in float64 on the CPU (deterministic, no learning rate).
        ``sgd``: the authors' framework, SGD with momentum on class-balanced
        mini-batches, in torch on ``device``. ``lbfgs_chunked``: the same L-BFGS-B with the
        loss and gradient summed over blocks of ``chunk_size`` rows, so ``embeddings`` may be
        an ``np.memmap`` larger than memory (one read of it per function evaluation); equal
        to ``lbfgs`` up to float rounding.
    max_iter : int
        ``lbfgs`` and ``lbfgs_chunked``: iteration limit.
    chunk_size : int
        Rows per block for ``lbfgs_chunked``.
    epochs, learning_rate, momentum, batch_size, seed, device
        ``sgd`` only: passes over ``D_tune``, step size, momentum, batch size, the batch
        sampler's seed (results are identical for a seed) and the torch device.

    Returns
    -------
    LinearHead
    """
    chunked = solver == "lbfgs_chunked"
    embeddings = check_row_source(embeddings, "embeddings") if chunked else check_embeddings(embeddings, "embeddings")
    n_classes = check_n_classes(n_classes)
    y = check_classes_present(check_labels(y, n_classes, "y", n_samples=embeddings.shape[0]), n_classes,
                              "the tuning data (y)")
    check_choice(solver, SOLVERS, "solver")
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
    for name, value in {"max_iter": max_iter, "epochs": epochs, "batch_size": batch_size}.items():
        if not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"{name} must be a positive integer; got {value!r}.")
    if not learning_rate > 0 or not weight_decay >= 0:
        raise ValueError(f"learning_rate must be > 0 and weight_decay >= 0; got {learning_rate} and {weight_decay}.")
    weight0, bias0 = (np.zeros((n_classes, n_neurons)), np.zeros(n_classes)) if init is None else (init.weight, init.bias)
    if solver in ("lbfgs", "lbfgs_chunked"):
        whole = None if chunked else [(0, embeddings.astype(np.float64))]  # converted once, not per evaluation
        blocks = _row_blocks(embeddings, check_chunk_size(chunk_size)) if chunked else lambda: whole
        weight, bias = _solve_lbfgs(blocks, y, keep, weights, weight0, bias0, weight_decay=float(weight_decay),
                                    anchor_strength=float(anchor_strength), max_iter=int(max_iter))
    else:
        weight, bias = _solve_sgd(embeddings, y, keep, weights, weight0, bias0, weight_decay=float(weight_decay),
                                  anchor_strength=float(anchor_strength), epochs=epochs, learning_rate=learning_rate,
                                  momentum=momentum, batch_size=batch_size, seed=seed, device=device)
    return LinearHead.from_arrays(weight, bias, keep)


#: The retraining settings and their defaults, read from :func:`retrain_head`'s signature: the one place they are
#: set (the estimator, the configuration schema and the YAML take them from here).
RETRAIN_SETTINGS = ("weight_decay", "solver", "max_iter", "epochs", "learning_rate", "momentum", "batch_size", "seed",
                    "device")
RETRAIN_DEFAULTS = {name: parameter.default for name, parameter in inspect.signature(retrain_head).parameters.items()
                    if name in RETRAIN_SETTINGS}


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


def _row_blocks(source, chunk_size: int):
    """A callable yielding ``(start, float64 block)`` over ``source``, checking finiteness on the first pass."""
    checked = False

    def blocks():
        nonlocal checked
        for start, block in iter_row_chunks(source, chunk_size):
            if not checked:
                check_finite_block(block, "embeddings", start)
            yield start, np.asarray(block, dtype=np.float64)
        checked = True

    return blocks


def _solve_lbfgs(blocks, y, keep, sample_weights, weight0, bias0, *, weight_decay, anchor_strength, max_iter):
    """L-BFGS-B on the exact objective with its analytic gradient (float64); the data term is summed over the row
    blocks ``blocks()`` yields (one block: the whole array in memory)."""
    n_classes, n_neurons = weight0.shape
    scaled = sample_weights / len(y)

    def objective(theta):
        weight, bias = theta[: n_classes * n_neurons].reshape(n_classes, n_neurons), theta[n_classes * n_neurons :]
        effective = weight * keep
        loss = 0.5 * weight_decay * np.sum(effective**2)
        grad_weight = weight_decay * effective * keep
        grad_bias = np.zeros(n_classes)
        for start, x in blocks():
            rows = slice(start, start + len(x))
            labels, weights = y[rows], scaled[rows]
            logits = x @ effective.T + bias
            logits -= logits.max(axis=1, keepdims=True)
            log_norm = np.log(np.exp(logits).sum(axis=1))
            index = np.arange(len(x))
            loss += weights @ (log_norm - logits[index, labels])
            residual = np.exp(logits - log_norm[:, None])
            residual[index, labels] -= 1.0
            residual *= weights[:, None]
            grad_weight += (residual.T @ x) * keep
            grad_bias += residual.sum(axis=0)
        if anchor_strength:
            loss += 0.5 * anchor_strength * (np.sum((weight - weight0) ** 2) + np.sum((bias - bias0) ** 2))
            grad_weight += anchor_strength * (weight - weight0)
            grad_bias += anchor_strength * (bias - bias0)
        return loss, np.concatenate([grad_weight.ravel(), grad_bias])

    # one BLAS thread: these problems are tiny, and OpenBLAS threads spinning on a busy machine
    # made L-BFGS-B ~20x slower here
    with threadpool_limits(limits=1, user_api="blas"):
        result = minimize(objective, np.concatenate([weight0.ravel(), bias0]), jac=True, method="L-BFGS-B",
                          options={"maxiter": max_iter, "gtol": 1e-7, "ftol": 1e-12})
    return result.x[: n_classes * n_neurons].reshape(n_classes, n_neurons), result.x[n_classes * n_neurons :]


def _solve_sgd(x, y, keep, sample_weights, weight0, bias0, *, weight_decay, anchor_strength, epochs, learning_rate,
               momentum, batch_size, seed, device):
    x = torch.as_tensor(x, dtype=torch.float32, device=device)
    y = torch.as_tensor(y, device=device)
    keep = torch.as_tensor(keep, dtype=torch.float32, device=device)
    weight = torch.as_tensor(weight0, dtype=torch.float32, device=device).clone().requires_grad_(True)
    bias = torch.as_tensor(bias0, dtype=torch.float32, device=device).clone().requires_grad_(True)
    anchor = (torch.as_tensor(weight0, dtype=torch.float32, device=device),
              torch.as_tensor(bias0, dtype=torch.float32, device=device))
    optimizer = torch.optim.SGD(
        [{"params": [weight], "weight_decay": weight_decay}, {"params": [bias], "weight_decay": 0.0}],
        lr=learning_rate,
        momentum=momentum,
    )
    sampling = torch.as_tensor(sample_weights, dtype=torch.float64)
    generator = torch.Generator().manual_seed(int(seed))
    for _ in range(epochs):
        order = torch.multinomial(sampling, x.shape[0], replacement=True, generator=generator).to(x.device)
        for batch in order.split(batch_size):
            loss = torch.nn.functional.cross_entropy(x[batch] @ (weight * keep).T + bias, y[batch])
            if anchor_strength:
                loss = loss + 0.5 * anchor_strength * ((weight - anchor[0]).pow(2).sum() + (bias - anchor[1]).pow(2).sum())
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    return weight.detach().cpu().numpy(), bias.detach().cpu().numpy()
