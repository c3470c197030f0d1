"""Step 5: choose hyperparameters from class labels only, by worst-class accuracy on ``D_sel``."""

from __future__ import annotations

import itertools
import logging

import numpy as np
from tqdm.auto import tqdm

from neurontune.core._validation import check_embeddings, check_labels
from neurontune.core.estimator import NeuronTune
from neurontune.core.metrics import mean_accuracy, worst_class_accuracy

logger = logging.getLogger(__name__)


def expand_grid(grid: dict[str, list]) -> list[dict]:
    """All combinations of a ``{name: [values]}`` grid, in a stable order."""
    if not grid:
        return [{}]
    for name, values in grid.items():
        if not isinstance(values, (list, tuple)) or len(values) == 0:
            raise ValueError(f"grid entry {name!r} must be a non-empty list of values; got {values!r}.")
    names = list(grid)
    return [dict(zip(names, values)) for values in itertools.product(*(grid[name] for name in names))]


def select_neurontune(
    grid: dict[str, list],
    fixed: dict,
    fit_data: dict,
    sel_embeddings,
    sel_y,
) -> tuple[NeuronTune, list[dict]]:
    """Fit one :class:`NeuronTune` per grid point and keep the best on the selection set.

    Winner: highest worst-class accuracy on ``D_sel``; ties broken by mean
    accuracy, then SFit, then grid order. Only class labels are used.

    Parameters
    ----------
    grid : {parameter: [values]} over NeuronTune/retrain_head arguments
    fixed : arguments shared by all candidates (must include ``n_classes``)
    fit_data : keyword arguments of :meth:`NeuronTune.fit`
    sel_embeddings : array (N_sel, M); sel_y : array (N_sel,)

    Returns
    -------
    best : the fitted winner
    table : one dict per candidate: its parameters, n_masked, sfit,
        sel_worst_class_accuracy, sel_mean_accuracy, selected, reason
    """
    sel_embeddings = check_embeddings(sel_embeddings, "sel_embeddings")
    sel_y = check_labels(sel_y, fixed["n_classes"], "sel_y", n_samples=len(sel_embeddings))
    table, fitted = [], []
    for candidate in tqdm(expand_grid(grid), desc="hyperparameter grid", unit="candidate", leave=False):
        estimator = NeuronTune(**{**fixed, **candidate}).fit(**fit_data)
        prediction = estimator.predict(sel_embeddings)
        fitted.append(estimator)
        table.append({
            **candidate,
            "n_masked": int(estimator.head_.n_suppressed),
            "sfit": estimator.sfit_,
            "sel_worst_class_accuracy": worst_class_accuracy(sel_y, prediction, fixed["n_classes"]),
            "sel_mean_accuracy": mean_accuracy(sel_y, prediction),
        })
    order = sorted(
        range(len(table)),
        key=lambda k: (-table[k]["sel_worst_class_accuracy"], -table[k]["sel_mean_accuracy"], -table[k]["sfit"], k),
    )
    winner = order[0]
    for rank, k in enumerate(order):
        table[k]["selection_rank"] = rank + 1
        table[k]["selected"] = k == winner
        table[k]["reason"] = _reason(table[winner], table[k], winner == k)
    logger.info("selected candidate %s", {key: table[winner][key] for key in grid})
    return fitted[winner], table


def _reason(best: dict, row: dict, is_winner: bool) -> str:
    if is_winner:
        return "highest worst-class accuracy on the selection set (ties: mean accuracy, SFit, grid order)"
    for key, label in (("sel_worst_class_accuracy", "worst-class accuracy"), ("sel_mean_accuracy", "mean accuracy"), ("sfit", "SFit")):
        if not np.isclose(row[key], best[key], rtol=0, atol=0):
            return f"lower {label} ({row[key]:.4f} vs {best[key]:.4f})"
    return "tied with the winner; later in grid order"
