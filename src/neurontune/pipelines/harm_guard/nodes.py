"""The do-no-harm guard: keep ERM's head when a method does not beat ERM on the selection half, without group labels."""

from __future__ import annotations

import logging

import pandas as pd

from neurontune.core import LinearHead, SelectionSet, head_predict
from neurontune.core.metrics import guard_fires

logger = logging.getLogger(__name__)

#: The partition the guard must never use: it is built from group labels.
LABELLED_PARTITION = "group"


def guard_against_harm(embeddings_val: dict, validation_split: dict, erm_head: dict, guard: dict,
                       **candidates: pd.DataFrame) -> dict:
    """Each method's selection-half criterion (its selected candidate's, as its grid search recorded it:
    held out from its fit, averaged over folds when cross-fitted) against ERM's head on the same half.

    Returns ``{"settings", "erm": {sel_*}, "methods": {method: {sel_*, delta_sel_*, would_fire, fired,
    kept_head, reason}}}``; ``fired`` = ``would_fire`` and the guard is enabled.
    """
    criterion = _criterion_column(guard["criterion"])
    erm = _erm_selection_scores(embeddings_val, validation_split, erm_head, guard["criterion"])
    methods = {}
    for method, table in candidates.items():
        methods[method] = _decide(method, _selected_row(method, table, criterion), erm, criterion, guard)
    settings = {key: guard[key] for key in ("enabled", "criterion", "margin")}
    return {"settings": {**settings, "data": "selection half of validation"}, "erm": erm, "methods": methods}


def _criterion_column(criterion: str) -> str:
    if criterion == LABELLED_PARTITION:
        raise ValueError("harm_guard.criterion must be a label-free partition (e.g. 'class'); 'group' reads group labels.")
    return f"sel_worst_{criterion}_accuracy"


def _erm_selection_scores(embeddings_val: dict, validation_split: dict, erm_head: dict, criterion: str) -> dict:
    sel = validation_split["sel"]
    head = LinearHead.from_arrays(erm_head["weight"], erm_head["bias"], erm_head.get("keep"))
    selection = SelectionSet.build(embeddings_val["embeddings"][sel], embeddings_val["y"][sel], head.n_classes)
    prediction = head_predict(selection.embeddings, head)
    if criterion != "class" and criterion not in selection.partitions:
        raise ValueError(f"harm_guard.criterion {criterion!r} is not a partition the guard can compute; use 'class'.")
    return {"sel_mean_accuracy": float((prediction == selection.y).mean()),
            f"sel_worst_{criterion}_accuracy": selection.worst_accuracy(prediction, criterion)}


def _selected_row(method: str, table: pd.DataFrame, criterion: str) -> dict:
    selected = table[table["selected"].astype(bool)]
    if len(selected) != 1 or criterion not in table.columns:
        raise ValueError(f"{method}'s candidate table must have one selected row and a {criterion!r} column; got "
                         f"{len(selected)} selected rows and columns {list(table.columns)}.")
    return {"sel_mean_accuracy": float(selected["sel_mean_accuracy"].iloc[0]), criterion: float(selected[criterion].iloc[0])}


def _decide(method: str, scores: dict, erm: dict, criterion: str, guard: dict) -> dict:
    would_fire = guard_fires(scores[criterion], erm[criterion], guard["margin"])
    fired = bool(guard["enabled"]) and would_fire
    label = criterion.removeprefix("sel_").replace("_", " ")
    comparison = (f"{label} on the selection half {scores[criterion]:.4f} vs ERM {erm[criterion]:.4f} "
                  f"(margin {guard['margin']})")
    reason = (f"kept ERM's head: {comparison}" if fired else
              f"would keep ERM's head, but the guard is off: {comparison}" if would_fire else f"passed: {comparison}")
    if fired:
        logger.warning("harm guard fired for %s: %s", method, reason)
    return {**scores, f"delta_{criterion}": scores[criterion] - erm[criterion], "would_fire": would_fire,
            "fired": fired, "kept_head": "erm" if fired else method, "reason": reason}
