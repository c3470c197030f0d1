"""Label-free decisions on the selection half: the do-no-harm guard (keep ERM's head when a method does not beat ERM)
and the choice of the method to ship (``packaging.method: auto``)."""

from __future__ import annotations

import logging

import pandas as pd

from neurontune.core import LinearHead, SelectionSet, head_predict
from neurontune.core.choice import HELD_OUT_PREDICTION, choose_method
from neurontune.core.errors import pseudo_groups
from neurontune.core.metrics import guard_fires
from neurontune.methods import NOT_FITTED, REFERENCE, not_fitted_reason

logger = logging.getLogger(__name__)

#: The partition the guard must never use: it is built from group labels.
LABELLED_PARTITION = "group"


def guard_against_harm(embeddings_val: dict, validation_split: dict, erm_head: dict, error_sets: dict,
                       variants: dict, guard: dict, **candidates: pd.DataFrame) -> dict:
    """Each method's selection-half criterion (its selected candidate's, as its grid search recorded it:
    held out from its fit, averaged over folds when cross-fitted) against ERM's head on the same half.

    ``guard["criterion"]``: ``class`` compares worst-class accuracy for every method; ``own`` compares each
    method by the label-free criterion it was selected by (worst pseudo-group accuracy for the variants that
    select so, over the same pseudo-groups; worst-class accuracy for the others). The decision under the
    other criterion is recorded too (``would_fire_by``), so a report can show what each would have done.

    Returns ``{"settings", "erm": {sel_*}, "methods": {method: {sel_*, erm_sel_*, delta_sel_*, would_fire,
    would_fire_by, fired, kept_head, reason}}}``; ``fired`` = ``would_fire`` and the guard is enabled. A method
    that was not fitted (its table has a ``not_fitted`` column) gets ``{not_fitted, reason}`` only.
    """
    if guard["criterion"] == LABELLED_PARTITION:
        raise ValueError("harm_guard.criterion must be a label-free partition ('class' or 'own'); 'group' reads group labels.")
    erm = _ErmScores(embeddings_val, validation_split, erm_head, error_sets)
    methods = {}
    for method, table in candidates.items():
        unfitted = not_fitted_reason(table)  # a labelled baseline without validation group labels: nothing to guard
        if unfitted:
            methods[method] = {NOT_FITTED: unfitted, "reason": f"not fitted: {unfitted}"}
            continue
        partitions = {"class": ("class", None), "own": _own_partition(method, variants)}
        decisions = {name: _decide(method, _selected_row(method, table, _column(partition)),
                                   erm.scores(*partition), _column(partition), guard)
                     for name, partition in partitions.items()}
        methods[method] = {**decisions[guard["criterion"]],
                           "would_fire_by": {name: decision["would_fire"] for name, decision in decisions.items()}}
        if methods[method]["fired"]:
            logger.warning("harm guard fired for %s: %s", method, methods[method]["reason"])
    settings = {key: guard[key] for key in ("enabled", "criterion", "margin")}
    return {"settings": {**settings, "data": "selection half of validation"}, "erm": erm.scores("class", None),
            "methods": methods}


def _column(partition: tuple) -> str:
    return f"sel_worst_{partition[0]}_accuracy"


def _own_partition(method: str, variants: dict) -> tuple[str, str | None]:
    """(partition, error set behind it) a method was selected by: pseudo-groups for the NeuronTune variants that
    select by them, classes for every other method (a labelled baseline's group selection is never reused)."""
    if method not in variants:
        return "class", None
    variant = variants[method]  # complete: the method registry's settings
    if variant["criterion"] != "pseudo_group":
        return "class", None
    return "pseudo_group", variant["errors"] if variant["pseudo_groups"] == "same" else variant["pseudo_groups"]


class _ErmScores:
    """ERM's head on the selection half, scored once per (partition, error set)."""

    def __init__(self, embeddings_val: dict, validation_split: dict, erm_head: dict, error_sets: dict) -> None:
        sel = validation_split["sel"]
        head = LinearHead.from_arrays(erm_head["weight"], erm_head["bias"], erm_head.get("keep"))
        self._y, self._error_sets, self._sel = embeddings_val["y"][sel], error_sets, sel
        self._embeddings = embeddings_val["embeddings"][sel]
        self._prediction = head_predict(self._embeddings, head)
        self._n_classes, self._cache = head.n_classes, {}

    def scores(self, partition: str, errors: str | None) -> dict:
        if (partition, errors) not in self._cache:
            extra = {} if partition == "class" else {
                partition: pseudo_groups(self._y, self._error_sets[f"val_{errors}"][self._sel] == 1)}
            selection = SelectionSet.build(self._embeddings, self._y, self._n_classes, **extra)
            self._cache[partition, errors] = {
                "sel_mean_accuracy": float((self._prediction == self._y).mean()),
                _column((partition, errors)): selection.worst_accuracy(self._prediction, partition)}
        return self._cache[partition, errors]


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
    return {**scores, f"erm_{criterion}": erm[criterion], f"delta_{criterion}": scores[criterion] - erm[criterion],
            "would_fire": would_fire,
            "fired": fired, "kept_head": "erm" if fired else method, "reason": reason}


def choose_method_to_ship(embeddings_val: dict, validation_split: dict, error_sets: dict, settings: dict,
                          **heads: dict) -> dict:
    """Which method ``packaging.method: auto`` ships: :func:`neurontune.core.choice.choose_method` over ERM and
    ``heads`` (``{method: head}``, the label-free methods; a head not fitted is left out and listed), each judged by
    its held-out predictions on the selection half, pseudo-groups from the ``settings["error_set"]`` error set."""
    if settings["candidates"] != "all":  # a list: ERM (the reference) is always a candidate
        heads = {method: head for method, head in heads.items() if method in settings["candidates"]}
    sel = validation_split["sel"]
    y = embeddings_val["y"][sel]
    predictions = {REFERENCE: embeddings_val["logits"][sel].argmax(axis=1)}
    skipped = {}
    for method, head in heads.items():
        unfitted = not_fitted_reason(head)
        if unfitted:
            skipped[method] = f"not fitted: {unfitted}"
        elif HELD_OUT_PREDICTION not in head:
            raise ValueError(f"{method}'s head has no {HELD_OUT_PREDICTION!r}: it was fitted by an older version of this "
                             f"project; rerun its pipeline.")
        else:
            predictions[method] = head[HELD_OUT_PREDICTION]
    error_set = settings["error_set"]
    key = f"val_{error_set}"
    if key not in error_sets:
        raise ValueError(f"model_promotion.packaging.auto.error_set must name an error set of neuron_identification "
                         f"({sorted(name[4:] for name in error_sets if name.startswith('val_'))}); got {error_set!r}.")
    choice = choose_method(predictions, y, error_sets[key][sel], embeddings_val["logits"].shape[1], reference=REFERENCE,
                           worst_class_tolerance=settings["worst_class_tolerance"], error_set=error_set)
    choice["not_candidates"] = skipped
    logger.info("auto: ships %s — %s", choice["chosen"], choice["reason"])
    return choice
