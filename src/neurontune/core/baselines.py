"""Last-layer baselines a user would pick instead of NeuronTune, as pure array functions.

Every baseline has the same calling convention, so the pipeline can call any of them
from one configuration entry (see ``conf/base/parameters_baselines.yml``): the node builds one
:class:`BaselineInputs` and :func:`call_baseline` passes the function the fields its signature names,
then its options (grids included) from the configuration::

    fit = baseline(tune_embeddings, tune_y, sel_embeddings, sel_y, n_classes, *, <fields it reads>, <its options>)

- ``tune_*``: the data the head is fitted on (the training split or the identification
  half of validation, per the method's configuration); ``sel_*``: the held-out
  selection half of validation; ``n_classes``: the number of classes;
- the other fields of :class:`BaselineInputs` it may read: the ERM head and the ERM model's
  logits of both sets, the early checkpoint's logits where the run has an early checkpoint,
  ``seed``, and — only the explicitly labelled baselines — ``tune_groups``, ``sel_groups``,
  ``n_groups`` (validation group labels); a function taking ``**retrain_options`` also
  receives the shared retraining settings of :func:`~neurontune.core.head.retrain_head`.

A keyword's default lives in the function's signature; the configuration sets only what a
method changes.

Each returns a :class:`BaselineFit`: a :class:`LinearHead` in the raw embedding
space (so evaluation scores it like NeuronTune's heads) and the candidate table of
the shared selection routine (:func:`neurontune.core.selection.search_grid`).
Shared concepts come from :mod:`neurontune.core.groups` (balancing, per-group
accuracy) and :mod:`neurontune.core.head` (the retraining solver).
"""

from __future__ import annotations

import inspect
import logging
import math
from dataclasses import dataclass, fields

import numpy as np
from sklearn.linear_model import LogisticRegression

from neurontune.core._validation import check_embeddings, check_head, check_labels, check_n_classes, check_same_width
from neurontune.core.groups import balanced_sample_weights, balanced_subset_indices
from neurontune.core.head import RETRAIN_SETTINGS, LinearHead, head_logits, head_predict, retrain_head
from neurontune.core.selection import SelectionSet, expand_grid, search_grid

logger = logging.getLogger(__name__)

DFR_C_GRID = (1.0, 0.7, 0.3, 0.1, 0.07, 0.03, 0.01)


@dataclass(frozen=True)
class BaselineFit:
    """A fitted baseline.

    Attributes
    ----------
    head : LinearHead over the raw embeddings
    candidates : the candidate table of :func:`~neurontune.core.selection.search_grid`
        (one dict per candidate: its values, selection-set scores, ``selection_rank``,
        ``selected``, ``reason``)
    held_out_prediction : int array (N_s,), the selected candidate's predictions on the selection half from its head
        fitted on the tuning data alone (never the refit): how a label-free choice among methods compares them
    """

    head: LinearHead
    candidates: list[dict]
    held_out_prediction: np.ndarray | None = None


@dataclass(frozen=True)
class BaselineInputs:
    """Everything a baseline may ask for, built once by the pipeline; a function names the fields it reads.

    Attributes
    ----------
    tune_embeddings : array (N_t, M); tune_y : int array (N_t,) — the data its head is fitted on
    sel_embeddings : array (N_s, M); sel_y : int array (N_s,) — the selection half of validation
    n_classes : int
    erm_head : LinearHead, the ERM model's head
    tune_erm_logits, sel_erm_logits : arrays (N, C), the ERM model's logits
    tune_early_logits, sel_early_logits : arrays (N, C) of the early ERM checkpoint, or None (no early checkpoint)
    tune_groups, sel_groups : int arrays, n_groups : int — validation group labels, given only to the baselines
        whose configuration declares ``labels_used: val_groups`` (None for every other)
    seed : int
    """

    tune_embeddings: np.ndarray
    tune_y: np.ndarray
    sel_embeddings: np.ndarray
    sel_y: np.ndarray
    n_classes: int
    erm_head: LinearHead
    tune_erm_logits: np.ndarray
    sel_erm_logits: np.ndarray
    tune_early_logits: np.ndarray | None = None
    sel_early_logits: np.ndarray | None = None
    tune_groups: np.ndarray | None = None
    sel_groups: np.ndarray | None = None
    n_groups: int | None = None
    seed: int = 0

    #: The fields that carry group labels.
    GROUP_FIELDS = ("tune_groups", "sel_groups", "n_groups")

    @classmethod
    def field_names(cls) -> tuple[str, ...]:
        """What a baseline function may ask for (every other keyword of it is an option)."""
        return tuple(field.name for field in fields(cls))


class MissingBaselineInput(ValueError):
    """A baseline asks for an input this run does not have (group labels, an early checkpoint)."""


def baseline_data_arguments(function) -> dict[str, bool]:
    """The :class:`BaselineInputs` fields ``function`` names, each with whether it is required (has no default)."""
    names = BaselineInputs.field_names()
    return {name: parameter.default is inspect.Parameter.empty
            for name, parameter in inspect.signature(function).parameters.items() if name in names}


def call_baseline(function, inputs: BaselineInputs, options: dict | None = None, retrain: dict | None = None) -> BaselineFit:
    """Call a baseline with the fields of ``inputs`` its signature names, then ``options``; a function taking
    ``**retrain_options`` also gets the ``retrain`` settings that ``options`` does not set.

    Raises :class:`MissingBaselineInput` naming the field when a required one is None in ``inputs``.
    """
    options = dict(options or {})
    parameters = inspect.signature(function).parameters
    arguments = {}
    for name, required in baseline_data_arguments(function).items():
        value = getattr(inputs, name)
        if value is None and required:
            raise MissingBaselineInput(f"{function.__name__} needs {name}, which this run does not have "
                                       f"({_why_missing(name)}).")
        if value is not None:
            arguments[name] = value
    if any(parameter.kind is inspect.Parameter.VAR_KEYWORD for parameter in parameters.values()):
        arguments.update({key: value for key, value in (retrain or {}).items()
                          if key in RETRAIN_SETTINGS and key not in options and key not in arguments})
    return function(**arguments, **options)


def _why_missing(name: str) -> str:
    if name in BaselineInputs.GROUP_FIELDS:
        return "validation group labels are given only to a baseline declared with labels_used: val_groups, and only "\
               "when validation has them"
    return "the ERM model has no early checkpoint" if "early" in name else "not provided"


# --------------------------------------------------------------------------- DFR


def dfr(
    tune_embeddings, tune_y, sel_embeddings, sel_y, n_classes: int, *, tune_groups, sel_groups, n_groups: int,
    c_grid=DFR_C_GRID, n_refits: int = 20, refit_on_all: bool = True, seed: int = 0,
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
    """
    tune_x, tune_y, sel_x, sel_y = _check_split_pair(tune_embeddings, tune_y, sel_embeddings, sel_y, n_classes)
    tune_groups, sel_groups = _check_groups(tune_groups, sel_groups, n_groups, len(tune_x), len(sel_x))
    _check_dfr_options(c_grid, n_refits)
    selection = SelectionSet.build(sel_x, sel_y, n_classes, group=sel_groups)

    def fit(candidate: dict, data=(tune_x, tune_y, tune_groups)) -> LinearHead:
        x, y, groups = data
        return _averaged_l1_head(x, y, groups, n_groups, n_classes, candidate["C"], n_refits, seed)

    search = search_grid([{"C": float(c)} for c in c_grid], lambda c, fold: fit(c), [selection], criterion="group")
    head = search.head
    if refit_on_all:
        head = fit(search.best, (np.concatenate([tune_x, sel_x]), np.concatenate([tune_y, sel_y]),
                                 np.concatenate([tune_groups, sel_groups])))
    return BaselineFit(head, search.table, search.held_out_prediction)


def dfr_groupfree(
    tune_embeddings, tune_y, sel_embeddings, sel_y, n_classes: int, *,
    c_grid=DFR_C_GRID, n_refits: int = 20, refit_on_all: bool = True, seed: int = 0,
) -> BaselineFit:
    """DFR without group labels: class-balanced subsets, ``C`` chosen by worst-class accuracy.

    Same parameters as :func:`dfr` minus the group arrays.
    """
    tune_x, tune_y, sel_x, sel_y = _check_split_pair(tune_embeddings, tune_y, sel_embeddings, sel_y, n_classes)
    _check_dfr_options(c_grid, n_refits)
    selection = SelectionSet.build(sel_x, sel_y, n_classes)

    def fit(candidate: dict, data=(tune_x, tune_y)) -> LinearHead:
        x, y = data
        return _averaged_l1_head(x, y, y, n_classes, n_classes, candidate["C"], n_refits, seed)

    search = search_grid([{"C": float(c)} for c in c_grid], lambda c, fold: fit(c), [selection], criterion="class")
    head = search.head
    if refit_on_all:
        head = fit(search.best, (np.concatenate([tune_x, sel_x]), np.concatenate([tune_y, sel_y])))
    return BaselineFit(head, search.table, search.held_out_prediction)


def _check_dfr_options(c_grid, n_refits) -> None:
    if not isinstance(n_refits, (int, np.integer)) or n_refits < 1:
        raise ValueError(f"n_refits must be a positive integer; got {n_refits!r}.")
    if len(c_grid) == 0 or any(not float(c) > 0 for c in c_grid):
        raise ValueError(f"c_grid must be a non-empty list of positive numbers; got {list(c_grid)!r}.")

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
    tune_embeddings, tune_y, sel_embeddings, sel_y, n_classes: int, *, erm_head: LinearHead,
    upweights=(1.0, 5.0, 20.0, 50.0, 100.0), weight_decays=(1e-4, 1e-3, 1e-2), balance_classes: bool = False,
    init_from_erm: bool = True, **retrain_options,
) -> BaselineFit:
    """Just Train Twice (Liu et al. 2021) on the last layer; no group labels.

    Error set = tuning points the ERM head misclassifies; they are upsampled
    ``λ`` times (as weight ``λ``, the same objective in expectation) and the head
    is retrained. ``λ`` and the weight decay are chosen by worst-class accuracy
    on the selection set (the paper used validation worst-group accuracy).

    Parameters
    ----------
    tune_embeddings : array (N, M); tune_y : int array (N,)
    sel_embeddings : array (N_s, M); sel_y : int array (N_s,)
    n_classes : int
    erm_head : LinearHead, the ERM model's head (defines the error set)
    upweights : λ grid; weight_decays : L2 grid
    balance_classes : also class-balance (off in the paper)
    init_from_erm : start retraining from ``erm_head``
    retrain_options : other :func:`retrain_head` arguments (solver, max_iter, seed, device, ...)

    Returns
    -------
    BaselineFit; candidates report ``n_errors``.
    """
    train_x, train_y, sel_x, sel_y = _check_split_pair(tune_embeddings, tune_y, sel_embeddings, sel_y, n_classes)
    check_head(erm_head.weight, erm_head.bias, n_neurons=train_x.shape[1])
    errors = head_predict(train_x, erm_head) != train_y
    if not errors.any():
        logger.warning("jtt_last_layer: the ERM head makes no error on the %d tuning points; every λ retrains the "
                       "same unweighted head.", len(train_y))

    def fit(candidate: dict, fold: int) -> LinearHead:
        weights = np.where(errors, float(candidate["upweight"]), 1.0)
        return retrain_head(train_x, train_y, n_classes, sample_weight=weights, balance_classes=balance_classes,
                            init=erm_head if init_from_erm else None, weight_decay=candidate["weight_decay"],
                            **retrain_options)

    grid = expand_grid({"upweight": list(upweights), "weight_decay": list(weight_decays)})
    search = search_grid(grid, fit, [SelectionSet.build(sel_x, sel_y, n_classes)],
                         describe=lambda head: {"n_errors": int(errors.sum())})
    return BaselineFit(search.head, search.table, search.held_out_prediction)


def afr(
    tune_embeddings, tune_y, sel_embeddings, sel_y, n_classes: int, *, erm_head: LinearHead,
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
    tune_embeddings : array (N, M); tune_y : int array (N,)
    sel_embeddings : array (N_s, M); sel_y : int array (N_s,)
    n_classes : int
    erm_head : LinearHead (weights the points, initialises and anchors the head)
    gammas, anchor_strengths : grids
    weight_decay : plain L2 on the weight (0 in the paper)
    retrain_options : other :func:`retrain_head` arguments
    """
    train_x, train_y, sel_x, sel_y = _check_split_pair(tune_embeddings, tune_y, sel_embeddings, sel_y, n_classes)
    check_head(erm_head.weight, erm_head.bias, n_neurons=train_x.shape[1])
    logits = head_logits(train_x, erm_head)
    logits -= logits.max(axis=1, keepdims=True)
    probabilities = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    p_true = probabilities[np.arange(len(train_y)), train_y]

    def fit(candidate: dict, fold: int) -> LinearHead:
        return retrain_head(train_x, train_y, n_classes, sample_weight=np.exp(-candidate["gamma"] * p_true),
                            balance_classes=True, init=erm_head, anchor_strength=candidate["anchor_strength"],
                            weight_decay=weight_decay, **retrain_options)

    grid = expand_grid({"gamma": list(gammas), "anchor_strength": list(anchor_strengths)})
    search = search_grid(grid, fit, [SelectionSet.build(sel_x, sel_y, n_classes)])
    return BaselineFit(search.head, search.table, search.held_out_prediction)


def self_disagreement(
    tune_embeddings, tune_y, sel_embeddings, sel_y, n_classes: int, *, erm_head: LinearHead, tune_erm_logits,
    tune_early_logits, sel_groups=None, n_groups: int | None = None, num_data=(20, 100, 500),
    learning_rates=(1e-4, 1e-3, 1e-2), steps: int = 250, batch_size: int = 64, momentum: float = 0.9,
    weight_decay: float = 1e-4, seed: int = 0, device="cpu",
) -> BaselineFit:
    """SELF, early-stop disagreement (LaBonte, Muthukumar & Kumar, NeurIPS 2023): retrain the last layer on the
    points where an early ERM checkpoint and the final model disagree most.

    Disagreement of a tuning point = KL(p_final ‖ p_early) of the two models' softmaxes. For each ``num_data``
    the most-disagreeing points are kept (a class with none gets its single most-disagreeing point, so class
    balance is defined), and the head is fine-tuned from the ERM head on them with class-balanced SGD for
    ``steps`` steps at each learning rate. The configuration with the best worst-class accuracy on the
    selection set wins — or, given ``sel_groups`` (the reference code's protocol, which uses validation
    group labels for selection only), the best worst-group accuracy.

    Parameters
    ----------
    tune_embeddings : array (N, M); tune_y : int array (N,) — one half of validation in the paper
    sel_embeddings : array (N_s, M); sel_y : int array (N_s,) — the other half
    n_classes : int
    erm_head : LinearHead, the starting point of fine-tuning
    tune_erm_logits, tune_early_logits : arrays (N, C), the final and the early ERM model on the tuning points
    sel_groups, n_groups : validation group labels of the selection set (``self_val_groups``); None = label-free
    num_data : sizes of the disagreement set (the paper's grid); learning_rates : SGD learning rates
    steps : SGD steps; batch_size : points per step (at most the set's size); momentum, weight_decay : SGD's
    seed, device : of the sampler and the SGD

    Returns
    -------
    BaselineFit; candidates report ``n_points`` (the set's size) and ``min_disagreement`` (its smallest score).
    """
    tune_x, tune_y, sel_x, sel_y = _check_split_pair(tune_embeddings, tune_y, sel_embeddings, sel_y, n_classes)
    check_head(erm_head.weight, erm_head.bias, n_neurons=tune_x.shape[1])
    disagreement = _disagreement(tune_erm_logits, tune_early_logits, len(tune_x), n_classes)
    if not isinstance(steps, (int, np.integer)) or steps < 1:
        raise ValueError(f"steps must be a positive integer; got {steps!r}.")
    if len(num_data) == 0 or any(not isinstance(n, (int, np.integer)) or n < 1 for n in num_data):
        raise ValueError(f"num_data must be a non-empty list of positive integers; got {list(num_data)!r}.")
    partitions, criterion = {}, "class"
    if sel_groups is not None:
        partitions["group"] = check_labels(sel_groups, n_groups, "sel_groups", n_samples=len(sel_x))
        criterion = "group"
    order = np.argsort(-disagreement, kind="stable")

    def points(size: int) -> np.ndarray:
        chosen = order[:size]
        missing = [label for label in range(n_classes) if not np.any(tune_y[chosen] == label)]
        extra = [order[tune_y[order] == label][:1] for label in missing]
        return np.sort(np.concatenate([chosen, *extra]))

    def fit(candidate: dict, fold: int) -> LinearHead:
        rows = points(candidate["num_data"])
        batch = min(int(batch_size), len(rows))
        epochs = math.ceil(steps / math.ceil(len(rows) / batch))  # retrain_head's SGD steps over its epochs
        return retrain_head(tune_x[rows], tune_y[rows], n_classes, init=erm_head, balance_classes=True,
                            weight_decay=weight_decay, solver="sgd", epochs=epochs, learning_rate=candidate["learning_rate"],
                            momentum=momentum, batch_size=batch, seed=seed, device=device)

    grid = expand_grid({"num_data": [int(n) for n in num_data], "learning_rate": [float(lr) for lr in learning_rates]})
    search = search_grid(grid, fit, [SelectionSet.build(sel_x, sel_y, n_classes, **partitions)], criterion=criterion)
    for row in search.table:
        rows = points(row["num_data"])
        row.update(n_points=int(len(rows)), min_disagreement=float(disagreement[rows].min()))
    return BaselineFit(search.head, search.table, search.held_out_prediction)


def _disagreement(final_logits, early_logits, n_samples: int, n_classes: int) -> np.ndarray:
    """KL(p_final ‖ p_early) per sample, from the two models' logits (N, C)."""
    logs = []
    for name, logits in (("tune_erm_logits", final_logits), ("tune_early_logits", early_logits)):
        logits = np.asarray(logits, dtype=np.float64)
        if logits.shape != (n_samples, n_classes) or not np.all(np.isfinite(logits)):
            raise ValueError(f"{name} must be finite logits of shape ({n_samples}, {n_classes}); got shape "
                             f"{logits.shape}.")
        shifted = logits - logits.max(axis=1, keepdims=True)
        logs.append(shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True)))
    final, early = logs
    return np.sum(np.exp(final) * (final - early), axis=1)


def group_balanced_oracle(
    tune_embeddings, tune_y, sel_embeddings, sel_y, n_classes: int, *, tune_groups, sel_groups, n_groups: int,
    weight_decays=(1e-4, 1e-3, 1e-2), c_grid=DFR_C_GRID, n_refits: int = 20, erm_head: LinearHead | None = None,
    init_from_erm: bool = True, seed: int = 0, **retrain_options,
) -> BaselineFit:
    """The best last-layer head group labels can buy here: the upper reference for last-layer methods.

    Uses *all* validation samples with their group labels, cross-fitted: every
    candidate is fitted on one half and scored (worst-group accuracy) on the other,
    both ways round; the candidate with the best average wins and is refit on both
    halves together. Candidates are the strongest group-balanced solvers we have:
    a group-balanced L2 logistic head (``solver: l2``, one per weight decay) and
    DFR's averaged l1 regression on group-balanced subsets (``solver: dfr_l1``, one
    per ``C``).

    Parameters
    ----------
    tune_embeddings, sel_embeddings : the two validation halves (N_t, M), (N_s, M)
    tune_y, sel_y, tune_groups, sel_groups : their class and group labels
    n_classes, n_groups : int
    weight_decays : L2 grid of the group-balanced L2 head
    c_grid, n_refits : DFR's grid and number of averaged refits
    erm_head, init_from_erm : start the L2 head from the ERM head (the optimum does not depend on it)
    seed : seeds DFR's subsets
    retrain_options : other :func:`retrain_head` arguments
    """
    tune_x, tune_y, sel_x, sel_y = _check_split_pair(tune_embeddings, tune_y, sel_embeddings, sel_y, n_classes)
    tune_groups, sel_groups = _check_groups(tune_groups, sel_groups, n_groups, len(tune_x), len(sel_x))
    _check_dfr_options(c_grid or (1.0,), n_refits)
    halves = [(tune_x, tune_y, tune_groups), (sel_x, sel_y, sel_groups)]
    init = erm_head if init_from_erm else None

    def fit_on(candidate: dict, x, y, groups) -> LinearHead:
        if candidate["solver"] == "dfr_l1":
            return _averaged_l1_head(x, y, groups, n_groups, n_classes, candidate["C"], n_refits, seed)
        return retrain_head(x, y, n_classes, sample_weight=balanced_sample_weights(groups, n_groups),
                            balance_classes=False, init=init, weight_decay=candidate["weight_decay"], **retrain_options)

    grid = ([{"solver": "l2", "weight_decay": float(wd), "C": float("nan")} for wd in weight_decays]
            + [{"solver": "dfr_l1", "weight_decay": float("nan"), "C": float(c)} for c in c_grid])
    selections = [SelectionSet.build(x, y, n_classes, group=g) for x, y, g in reversed(halves)]
    search = search_grid(grid, lambda candidate, fold: fit_on(candidate, *halves[fold]), selections, criterion="group")
    everything = [np.concatenate(parts) for parts in zip(*halves)]
    return BaselineFit(fit_on(search.best, *everything), search.table, search.held_out_prediction)


# ------------------------------------------------------------------------ helpers


def _check_split_pair(tune_embeddings, tune_y, sel_embeddings, sel_y, n_classes):
    n_classes = check_n_classes(n_classes)
    tune_x = check_embeddings(tune_embeddings, "tune_embeddings").astype(np.float64)
    sel_x = check_embeddings(sel_embeddings, "sel_embeddings").astype(np.float64)
    check_same_width({"tune_embeddings": tune_x.shape[1], "sel_embeddings": sel_x.shape[1]})
    tune_y = check_labels(tune_y, n_classes, "tune_y", n_samples=len(tune_x))
    sel_y = check_labels(sel_y, n_classes, "sel_y", n_samples=len(sel_x))
    return tune_x, tune_y, sel_x, sel_y


def _check_groups(tune_groups, sel_groups, n_groups, n_tune, n_sel):
    tune_groups = check_labels(tune_groups, n_groups, "tune_groups", n_samples=n_tune)
    sel_groups = check_labels(sel_groups, n_groups, "sel_groups", n_samples=n_sel)
    return tune_groups, sel_groups
