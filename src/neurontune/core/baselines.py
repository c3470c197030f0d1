"""Last-layer baselines a user would pick instead of NeuronTune, as pure array functions.

Every baseline starts from the same cached embeddings, returns a :class:`LinearHead`
in the raw embedding space (so evaluation scores it like NeuronTune's heads) and
declares the annotations it consumed in ``labels_used``:

- ``none``: class labels only;
- ``val_groups``: group labels of the validation split;
- ``train_groups``: group labels of the training split.

Shared concepts come from :mod:`neurontune.core.groups` (balancing, per-group
accuracy), :mod:`neurontune.core.head` (the retraining solver) and
:mod:`neurontune.core.metrics` (worst-class accuracy).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Callable

import numpy as np
from sklearn.linear_model import LogisticRegression

from neurontune.core._validation import check_embeddings, check_head, check_labels, check_n_classes, check_same_width
from neurontune.core.groups import balanced_sample_weights, balanced_subset_indices, per_group_accuracy
from neurontune.core.head import LinearHead, head_logits, head_predict, retrain_head
from neurontune.core.metrics import mean_accuracy, worst_class_accuracy
from neurontune.core.selection import expand_grid

logger = logging.getLogger(__name__)

LABEL_KINDS = ("none", "val_groups", "train_groups")

#: The annotations each evaluated method consumes (group labels beyond class labels).
LABELS_USED = {
    "erm": "none",
    "class_balanced_retrain": "none",
    "neurontune": "none",
    "neurontune_dagger": "none",
    "dfr": "val_groups",
    "dfr_groupfree": "none",
    "jtt_last_layer": "none",
    "afr": "none",
    "group_balanced_oracle": "val_groups",
}


@dataclass(frozen=True)
class BaselineFit:
    """A fitted baseline.

    Attributes
    ----------
    head : LinearHead over the raw embeddings
    labels_used : one of :data:`LABEL_KINDS`
    candidates : one dict per hyperparameter candidate: its values, the selection-set
        scores, ``selection_rank`` and ``selected``.
    """

    head: LinearHead
    labels_used: str
    candidates: list[dict]


# --------------------------------------------------------------------------- DFR


def dfr(
    tune_embeddings, tune_y, tune_groups, sel_embeddings, sel_y, sel_groups, n_classes: int, n_groups: int, *,
    c_grid=(1.0, 0.7, 0.3, 0.1, 0.07, 0.03, 0.01), n_refits: int = 20, refit_on_all: bool = True, seed: int = 0,
) -> BaselineFit:
    """Deep Feature Reweighting (Kirichenko et al. 2022) as published; uses validation group labels.

    For each ``C``: ``n_refits`` l1 logistic regressions (liblinear, standardised
    embeddings), each on a fresh group-balanced subset of the tuning half
    (every group subsampled to the rarest group's size), coefficients averaged;
    ``C`` with the best worst-group accuracy on the selection half wins. The
    final head repeats the averaged refits with that ``C`` on both halves
    (``refit_on_all``, the published protocol) or on the tuning half only.

    Parameters
    ----------
    tune_embeddings : array (N_t, M); tune_y, tune_groups : int arrays (N_t,)
    sel_embeddings : array (N_s, M); sel_y, sel_groups : int arrays (N_s,)
    n_classes, n_groups : int
    c_grid : inverse l1 strengths (the reference code's grid by default)
    n_refits : balanced subsets averaged per fit (20 in the paper)
    refit_on_all : refit the winner on tune ∪ sel
    seed : seeds the subsets; every ``C`` sees the same subsets

    Returns
    -------
    BaselineFit with ``labels_used="val_groups"``.
    """
    data = _check_split_pair(tune_embeddings, tune_y, sel_embeddings, sel_y, n_classes)
    tune_groups = check_labels(tune_groups, n_groups, "tune_groups", n_samples=len(data[0]))
    sel_groups = check_labels(sel_groups, n_groups, "sel_groups", n_samples=len(data[2]))
    return _fit_dfr(*data, tune_groups, sel_groups, n_groups, n_classes, c_grid, n_refits, refit_on_all, seed,
                    criterion="sel_worst_group_accuracy", sel_groups=sel_groups, labels_used="val_groups")


def dfr_groupfree(
    tune_embeddings, tune_y, sel_embeddings, sel_y, n_classes: int, *,
    c_grid=(1.0, 0.7, 0.3, 0.1, 0.07, 0.03, 0.01), n_refits: int = 20, refit_on_all: bool = True, seed: int = 0,
) -> BaselineFit:
    """DFR without group labels: class-balanced subsets, ``C`` chosen by worst-class accuracy.

    Same parameters as :func:`dfr` minus the group arrays; ``labels_used="none"``.
    """
    tune_x, tune_y, sel_x, sel_y = _check_split_pair(tune_embeddings, tune_y, sel_embeddings, sel_y, n_classes)
    return _fit_dfr(tune_x, tune_y, sel_x, sel_y, tune_y, sel_y, n_classes, n_classes, c_grid, n_refits, refit_on_all,
                    seed, criterion="sel_worst_class_accuracy", sel_groups=None, labels_used="none")


def _fit_dfr(tune_x, tune_y, sel_x, sel_y, tune_balance, sel_balance, n_balance, n_classes, c_grid, n_refits,
             refit_on_all, seed, *, criterion, sel_groups, labels_used) -> BaselineFit:
    if not isinstance(n_refits, (int, np.integer)) or n_refits < 1:
        raise ValueError(f"n_refits must be a positive integer; got {n_refits!r}.")
    if len(c_grid) == 0 or any(not float(c) > 0 for c in c_grid):
        raise ValueError(f"c_grid must be a non-empty list of positive numbers; got {list(c_grid)!r}.")

    def fit(candidate: dict) -> LinearHead:
        return _averaged_l1_head(tune_x, tune_y, tune_balance, n_balance, n_classes, candidate["C"], n_refits, seed)

    best, table = _grid_search([{"C": float(c)} for c in c_grid], fit, sel_x, sel_y, n_classes, criterion,
                               sel_groups, n_balance if sel_groups is not None else None)
    if refit_on_all:
        best = _averaged_l1_head(np.concatenate([tune_x, sel_x]), np.concatenate([tune_y, sel_y]),
                                 np.concatenate([tune_balance, sel_balance]), n_balance, n_classes,
                                 _winner(table)["C"], n_refits, seed)
    return BaselineFit(best, labels_used, table)


def _averaged_l1_head(x, y, balance_labels, n_balance, n_classes, c, n_refits, seed) -> LinearHead:
    """Mean of ``n_refits`` l1 logistic regressions on balanced subsets, mapped back to raw embeddings."""
    rng = np.random.default_rng(seed)
    mean = x.mean(axis=0)
    scale = x.std(axis=0)
    scale[scale == 0] = 1.0  # constant neurons: StandardScaler's convention
    z = (x - mean) / scale
    weights, biases = [], []
    for _ in range(n_refits):
        rows = balanced_subset_indices(balance_labels, n_balance, rng)
        present = np.unique(y[rows])
        if present.size < n_classes:
            raise ValueError(f"a balanced subset holds classes {present.tolist()} only; every one of the {n_classes} "
                             "classes needs samples in the tuning data.")
        weight, bias = _l1_logistic(z[rows], y[rows], n_classes, c, int(rng.integers(2**31 - 1)))
        weights.append(weight)
        biases.append(bias)
    weight = np.mean(weights, axis=0) / scale
    bias = np.mean(biases, axis=0) - weight @ mean
    return LinearHead.from_arrays(weight, bias)


def _l1_logistic(z, y, n_classes, c, random_state) -> tuple[np.ndarray, np.ndarray]:
    """liblinear l1 logistic regression; one-vs-rest rows for more than two classes, as the reference code."""
    targets = [y] if n_classes == 2 else [(y == k).astype(np.int64) for k in range(n_classes)]
    rows = []
    for target in targets:
        model = LogisticRegression(C=c, l1_ratio=1.0, solver="liblinear", random_state=random_state).fit(z, target)
        rows.append((model.coef_[0], model.intercept_[0]))
    if n_classes == 2:  # logits (-s/2, s/2) reproduce the binary model's probabilities
        (w, b), = rows
        return np.stack([-w / 2, w / 2]), np.array([-b / 2, b / 2])
    return np.stack([w for w, _ in rows]), np.array([b for _, b in rows])


# ------------------------------------------------------------------ retrained heads


def jtt_last_layer(
    train_embeddings, train_y, erm_head: LinearHead, sel_embeddings, sel_y, n_classes: int, *,
    upweights=(1.0, 5.0, 20.0, 50.0, 100.0), weight_decays=(1e-4, 1e-3, 1e-2), balance_classes: bool = False,
    init_from_erm: bool = True, **retrain_options,
) -> BaselineFit:
    """Just Train Twice (Liu et al. 2021) on the last layer; no group labels.

    Error set = training points the ERM head misclassifies; they are upsampled
    ``λ`` times (as weight ``λ``, the same objective in expectation) and the head
    is retrained. ``λ`` and the weight decay are chosen by worst-class accuracy
    on the selection set (the paper used validation worst-group accuracy).

    Parameters
    ----------
    train_embeddings : array (N, M); train_y : int array (N,)
    erm_head : LinearHead, the ERM model's head (defines the error set)
    sel_embeddings : array (N_s, M); sel_y : int array (N_s,)
    n_classes : int
    upweights : λ grid; weight_decays : L2 grid
    balance_classes : also class-balance (off in the paper)
    init_from_erm : start retraining from ``erm_head``
    retrain_options : other :func:`retrain_head` arguments (solver, epochs, seed, device, ...)

    Returns
    -------
    BaselineFit with ``labels_used="none"``; candidates report ``n_errors``.
    """
    train_x, train_y, sel_x, sel_y = _check_split_pair(train_embeddings, train_y, sel_embeddings, sel_y, n_classes)
    check_head(erm_head.weight, erm_head.bias, n_neurons=train_x.shape[1])
    errors = head_predict(train_x, erm_head) != train_y
    if not errors.any():
        logger.warning("jtt_last_layer: the ERM head makes no error on the %d tuning points; every λ retrains the "
                       "same unweighted head.", len(train_y))

    def fit(candidate: dict) -> LinearHead:
        weights = np.where(errors, float(candidate["upweight"]), 1.0)
        return retrain_head(train_x, train_y, n_classes, sample_weight=weights, balance_classes=balance_classes,
                            init=erm_head if init_from_erm else None, weight_decay=candidate["weight_decay"],
                            **retrain_options)

    grid = expand_grid({"upweight": list(upweights), "weight_decay": list(weight_decays)})
    best, table = _grid_search(grid, fit, sel_x, sel_y, n_classes, "sel_worst_class_accuracy")
    for row in table:
        row["n_errors"] = int(errors.sum())
    return BaselineFit(best, "none", table)


def afr(
    train_embeddings, train_y, erm_head: LinearHead, sel_embeddings, sel_y, n_classes: int, *,
    gammas=(0.0, 1.0, 2.0, 4.0, 8.0, 16.0), anchor_strengths=(1e-3, 1e-2, 1e-1), weight_decay: float = 0.0,
    **retrain_options,
) -> BaselineFit:
    """Automatic Feature Reweighting (Qiu et al. 2023); no group labels.

    Each tuning point gets weight ``exp(-γ p_true)``, ``p_true`` the ERM head's
    softmax probability of its true class, normalised so every class has the same
    total weight; the head is retrained from the ERM head with an L2 pull
    ``anchor_strength / 2 * ||θ - θ_ERM||²``. ``γ`` and the pull are chosen by
    worst-class accuracy on the selection set (the paper: validation worst-group).

    Parameters
    ----------
    train_embeddings : array (N, M); train_y : int array (N,)
    erm_head : LinearHead (weights the points, initialises and anchors the head)
    sel_embeddings : array (N_s, M); sel_y : int array (N_s,)
    n_classes : int
    gammas, anchor_strengths : grids
    weight_decay : plain L2 on the weight (0 in the paper)
    retrain_options : other :func:`retrain_head` arguments

    Returns
    -------
    BaselineFit with ``labels_used="none"``.
    """
    train_x, train_y, sel_x, sel_y = _check_split_pair(train_embeddings, train_y, sel_embeddings, sel_y, n_classes)
    check_head(erm_head.weight, erm_head.bias, n_neurons=train_x.shape[1])
    logits = head_logits(train_x, erm_head)
    logits -= logits.max(axis=1, keepdims=True)
    probabilities = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    p_true = probabilities[np.arange(len(train_y)), train_y]

    def fit(candidate: dict) -> LinearHead:
        return retrain_head(train_x, train_y, n_classes, sample_weight=np.exp(-candidate["gamma"] * p_true),
                            balance_classes=True, init=erm_head, anchor_strength=candidate["anchor_strength"],
                            weight_decay=weight_decay, **retrain_options)

    grid = expand_grid({"gamma": list(gammas), "anchor_strength": list(anchor_strengths)})
    best, table = _grid_search(grid, fit, sel_x, sel_y, n_classes, "sel_worst_class_accuracy")
    return BaselineFit(best, "none", table)


def group_balanced_oracle(
    tune_embeddings, tune_y, tune_groups, sel_embeddings, sel_y, sel_groups, n_classes: int, n_groups: int, *,
    weight_decays=(1e-4, 1e-3, 1e-2), init: LinearHead | None = None, **retrain_options,
) -> BaselineFit:
    """Head retrained on group-balanced validation data; the upper reference for last-layer methods.

    Every group of the tuning half gets the same total weight; the weight decay is
    chosen by worst-group accuracy on the selection half. Uses validation group labels.

    Parameters
    ----------
    tune_embeddings : array (N_t, M); tune_y, tune_groups : int arrays (N_t,)
    sel_embeddings : array (N_s, M); sel_y, sel_groups : int arrays (N_s,)
    n_classes, n_groups : int
    weight_decays : L2 grid
    init : starting head (usually ERM's), optional
    retrain_options : other :func:`retrain_head` arguments

    Returns
    -------
    BaselineFit with ``labels_used="val_groups"``.
    """
    tune_x, tune_y, sel_x, sel_y = _check_split_pair(tune_embeddings, tune_y, sel_embeddings, sel_y, n_classes)
    tune_groups = check_labels(tune_groups, n_groups, "tune_groups", n_samples=len(tune_x))
    sel_groups = check_labels(sel_groups, n_groups, "sel_groups", n_samples=len(sel_x))
    group_weights = balanced_sample_weights(tune_groups, n_groups)

    def fit(candidate: dict) -> LinearHead:
        return retrain_head(tune_x, tune_y, n_classes, sample_weight=group_weights, balance_classes=False, init=init,
                            weight_decay=candidate["weight_decay"], **retrain_options)

    grid = expand_grid({"weight_decay": list(weight_decays)})
    best, table = _grid_search(grid, fit, sel_x, sel_y, n_classes, "sel_worst_group_accuracy", sel_groups, n_groups)
    return BaselineFit(best, "val_groups", table)


# ------------------------------------------------------------------------ helpers


def _check_split_pair(tune_embeddings, tune_y, sel_embeddings, sel_y, n_classes):
    n_classes = check_n_classes(n_classes)
    tune_x = check_embeddings(tune_embeddings, "tune_embeddings").astype(np.float64)
    sel_x = check_embeddings(sel_embeddings, "sel_embeddings").astype(np.float64)
    check_same_width({"tune_embeddings": tune_x.shape[1], "sel_embeddings": sel_x.shape[1]})
    tune_y = check_labels(tune_y, n_classes, "tune_y", n_samples=len(tune_x))
    sel_y = check_labels(sel_y, n_classes, "sel_y", n_samples=len(sel_x))
    return tune_x, tune_y, sel_x, sel_y


def _grid_search(grid: list[dict], fit: Callable[[dict], LinearHead], sel_x, sel_y, n_classes, criterion,
                 sel_groups=None, n_groups=None) -> tuple[LinearHead, list[dict]]:
    """Fit every candidate; the winner maximises ``criterion`` on the selection set (ties: mean accuracy, order)."""
    heads, table = [], []
    for candidate in grid:
        head = fit(candidate)
        prediction = head_predict(sel_x, head)
        row = {**candidate, "sel_worst_class_accuracy": worst_class_accuracy(sel_y, prediction, n_classes),
               "sel_mean_accuracy": mean_accuracy(sel_y, prediction)}
        if sel_groups is not None:
            row["sel_worst_group_accuracy"] = float(np.nanmin(per_group_accuracy(sel_y, prediction, sel_groups, n_groups)))
        heads.append(head)
        table.append(row)
    order = sorted(range(len(table)), key=lambda k: (-table[k][criterion], -table[k]["sel_mean_accuracy"], k))
    for rank, k in enumerate(order):
        table[k]["selection_rank"] = rank + 1
        table[k]["selected"] = rank == 0
        table[k]["criterion"] = criterion
    return heads[order[0]], table


def _winner(table: list[dict]) -> dict:
    return next(row for row in table if row["selected"])
