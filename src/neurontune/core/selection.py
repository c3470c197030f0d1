"""Model selection shared by NeuronTune and every baseline: one grid search, one table, one tie-break.

A *candidate* is a dict of hyperparameters; ``fit(candidate, fold)`` returns a
:class:`LinearHead` fitted on that fold's fitting data, and the fold's
:class:`SelectionSet` scores it. The criterion is the worst accuracy over a
*partition* of the selection samples:

- ``class`` (the default, label-free): worst-class accuracy;
- ``group`` (labelled baselines only): worst-group accuracy, from validation group labels;
- any other name the caller provides, e.g. label-free pseudo-groups.

With several folds (cross-fitting) a candidate's scores are averaged over folds.
Winner: the highest criterion; ties go to the higher mean accuracy, then to the
earlier candidate in grid order (grids list simpler candidates first).
"""

from __future__ import annotations

import itertools
import logging
import warnings
from collections import Counter
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np
from tqdm.auto import tqdm

from neurontune.core._validation import check_choice, check_classes_present, check_embeddings, check_labels, check_n_classes
from neurontune.core.groups import per_group_accuracy
from neurontune.core.head import LinearHead, head_predict

logger = logging.getLogger(__name__)

TIE_BREAKS = "highest {criterion}; ties: higher mean accuracy, then earlier in grid order"


def expand_grid(grid: dict[str, list]) -> list[dict]:
    """All combinations of a ``{name: [values]}`` grid, in a stable order (the last name varies fastest)."""
    if not grid:
        return [{}]
    for name, values in grid.items():
        if not isinstance(values, (list, tuple)) or len(values) == 0:
            raise ValueError(f"grid entry {name!r} must be a non-empty list of values; got {values!r}.")
    names = list(grid)
    return [dict(zip(names, values)) for values in itertools.product(*(grid[name] for name in names))]


@dataclass(frozen=True)
class SelectionSet:
    """Held-out data a candidate is scored on.

    Attributes
    ----------
    embeddings : array (N, M)
    y : int array (N,)
    partitions : {name: int array (N,)} extra partitions of the samples (``group``,
        pseudo-groups ...); ``class`` (= ``y``) is always available.
    """

    embeddings: np.ndarray
    y: np.ndarray
    partitions: dict[str, np.ndarray] = field(default_factory=dict)

    @classmethod
    def build(cls, embeddings, y, n_classes: int, **partitions) -> "SelectionSet":
        embeddings = check_embeddings(embeddings, "sel_embeddings")
        y = check_classes_present(check_labels(y, n_classes, "sel_y", n_samples=len(embeddings)), n_classes,
                                  "the selection set (sel_y)")
        checked = {}
        for name, ids in partitions.items():
            if ids is None:
                continue
            ids = np.asarray(ids)
            checked[name] = check_labels(ids, max(int(ids.max()) + 1 if ids.size else 0, 2), f"sel {name} ids",
                                         n_samples=len(y))
        return cls(embeddings, y, checked)

    def worst_accuracy(self, prediction: np.ndarray, partition: str) -> float:
        """Lowest accuracy over the populated cells of ``partition`` (``class`` = worst-class accuracy)."""
        ids = self.y if partition == "class" else self.partitions[partition]
        return float(np.nanmin(per_group_accuracy(self.y, prediction, ids, max(int(ids.max()) + 1, 2))))


@dataclass(frozen=True)
class GridSearch:
    """Result of :func:`search_grid`.

    Attributes
    ----------
    winner : int, index of the chosen candidate in ``table``
    table : one dict per candidate, in grid order: its values, ``describe`` columns,
        ``sel_mean_accuracy``, ``sel_worst_<partition>_accuracy`` for every partition
        (averaged over folds), ``criterion``, ``selection_rank``, ``selected``, ``reason``
    head : the winner's head fitted on fold 0
    held_out_prediction : int array, the winner's fold-0 head's predictions on fold 0's selection set — data that
        head was not fitted on (what :func:`neurontune.core.choice.choose_method` compares methods by)
    """

    winner: int
    table: list[dict]
    head: LinearHead
    held_out_prediction: np.ndarray | None = None

    @property
    def best(self) -> dict:
        return self.table[self.winner]


def search_grid(
    candidates: Sequence[dict],
    fit: Callable[[dict, int], LinearHead],
    selection_sets: Sequence[SelectionSet],
    *,
    criterion: str = "class",
    describe: Callable[[LinearHead], dict] | None = None,
    progress: str | None = None,
) -> GridSearch:
    """Fit every candidate on every fold, score it on that fold's selection set, pick the winner.

    Parameters
    ----------
    candidates : list of dicts, in grid order
    fit : ``fit(candidate, fold) -> LinearHead``
    selection_sets : one :class:`SelectionSet` per fold
    criterion : partition whose worst accuracy decides (``class``, ``group``, ...)
    describe : extra table columns from the fold-0 head (e.g. ``n_masked``)
    progress : label of a progress bar; None = no bar

    Returns
    -------
    GridSearch
    """
    if len(candidates) == 0:
        raise ValueError("the grid is empty; give at least one candidate.")
    if len(selection_sets) == 0:
        raise ValueError("selection_sets is empty; give one selection set per fold.")
    partitions = ["class", *sorted(set.intersection(*(set(s.partitions) for s in selection_sets)))]
    check_choice(criterion, partitions, "criterion")
    table, first_heads, first_predictions = [], [], []
    for candidate in tqdm(candidates, desc=progress, unit="candidate", leave=False, disable=progress is None):
        scores = {name: [] for name in ["mean", *partitions]}
        for fold, selection in enumerate(selection_sets):
            head = fit(candidate, fold)
            if fold == 0:
                first_heads.append(head)
            prediction = head_predict(selection.embeddings, head)
            if fold == 0:
                first_predictions.append(prediction)
            scores["mean"].append(float(np.mean(prediction == selection.y)))
            for name in partitions:
                scores[name].append(selection.worst_accuracy(prediction, name))
        row = {**candidate, **(describe(first_heads[-1]) if describe else {}),
               "sel_mean_accuracy": float(np.mean(scores["mean"]))}
        row.update({f"sel_worst_{name}_accuracy": float(np.mean(scores[name])) for name in partitions})
        table.append(row)
    key = f"sel_worst_{criterion}_accuracy"
    order = sorted(range(len(table)), key=lambda k: (-table[k][key], -table[k]["sel_mean_accuracy"], k))
    winner = order[0]
    for rank, k in enumerate(order):
        table[k].update(criterion=key, selection_rank=rank + 1, selected=k == winner,
                        reason=_reason(table[winner], table[k], k == winner, key))
    return GridSearch(winner, table, first_heads[winner], first_predictions[winner])


def _reason(best: dict, row: dict, is_winner: bool, criterion: str) -> str:
    label = criterion.removeprefix("sel_").replace("_", " ")
    if is_winner:
        return TIE_BREAKS.format(criterion=label)
    for key, name in ((criterion, label), ("sel_mean_accuracy", "mean accuracy")):
        if row[key] != best[key]:
            return f"lower {name} ({row[key]:.4f} vs {best[key]:.4f})"
    return "tied with the winner; later in grid order"


def select_neurontune(
    grid: dict[str, list],
    fixed: dict,
    folds: Sequence[dict],
    selection_sets: Sequence[SelectionSet],
    *,
    criterion: str = "class",
    refit: dict | None = None,
    progress: str | None = "NeuronTune grid",
):
    """Grid-search :class:`~neurontune.core.estimator.NeuronTune` with :func:`search_grid`.

    Parameters
    ----------
    grid : {parameter: [values]} over NeuronTune's parameters (threshold, rule, weight_decay ...)
    fixed : parameters shared by every candidate (must include ``n_classes``)
    folds : one dict of :meth:`NeuronTune.fit` arguments per fold (``scores`` may carry the
        precomputed round-1 scores of that fold's identification set)
    selection_sets : one :class:`SelectionSet` per fold
    criterion : see :func:`search_grid`
    refit : fit arguments for a final refit of the winner (cross-fitting: all the data);
        None returns the winner fitted on fold 0

    Returns
    -------
    best : the fitted winner (a :class:`NeuronTune`); ``best.held_out_prediction_`` = the winner's fold-0 predictions
        on fold 0's selection set (:attr:`GridSearch.held_out_prediction`), also after a refit
    table : the candidate table of :func:`search_grid` (with ``n_masked``)
    """
    from neurontune.core.estimator import NeuronTune

    check_n_classes(fixed.get("n_classes"))
    if len(folds) != len(selection_sets):
        raise ValueError(f"got {len(folds)} folds but {len(selection_sets)} selection sets; they must pair up.")
    fitted: dict[tuple, NeuronTune] = {}
    chosen: dict[int, NeuronTune] = {}

    def fit(candidate: dict, fold: int) -> LinearHead:
        estimator = NeuronTune(**{**fixed, **candidate})
        # candidates whose (λ, rule) give the same mask and retraining settings give the same head
        key = estimator.fit_key(folds[fold].get("scores"))
        key = None if key is None else (fold, key)
        if key not in fitted or key is None:
            estimator.fit(**folds[fold])
            if key is not None:
                fitted[key] = estimator
        estimator = fitted.get(key, estimator)
        if fold == 0:
            chosen[len(chosen)] = estimator
        return estimator.head_

    candidates = expand_grid(grid)
    with warnings.catch_warnings(record=True) as caught:  # one summary line, not one warning per candidate
        warnings.simplefilter("always")
        search = search_grid(candidates, fit, selection_sets, criterion=criterion, progress=progress,
                             describe=lambda head: {"n_masked": int(head.n_suppressed)})
    for message, count in Counter(str(warning.message) for warning in caught).items():
        logger.warning("%d fit(s) of the grid: %s", count, message)
    best = chosen[search.winner]
    if refit is not None:
        best = NeuronTune(**{**fixed, **candidates[search.winner]}).fit(**refit)
    best.held_out_prediction_ = search.held_out_prediction
    logger.info("selected %s (%s)", {key: search.best[key] for key in grid}, search.best["reason"])
    return best, search.table
