"""Which method to ship, chosen without group labels (``packaging.method: auto``).

Every candidate — ERM's head and each label-free method — is judged on the same held-out data: the selection
half of validation, by the head that method fitted *without* it (its selected candidate's fold-0 head; the
refit on all validation is never scored, it has seen those samples). The rule, fixed before any test number
of it existed:

1. **Do no harm** — a candidate is eligible when its worst-class accuracy on the selection half is at least
   ERM's minus ``worst_class_tolerance``. ERM itself is always eligible, so "change nothing" is a possible answer.
2. **Shortcut victims first** — among the eligible, the highest worst pseudo-group accuracy, pseudo-groups being
   class × (in the shared label-free error set or not): the samples a shortcut-following model gets wrong are
   the label-free stand-in for the minority groups (JTT, AFR, NeuronTune+'s selection).
3. Ties: higher worst-class accuracy, then higher mean accuracy, then the earlier candidate (ERM first).
"""

from __future__ import annotations

from typing import Mapping

import numpy as np

from neurontune.core._validation import check_labels, check_n_classes
from neurontune.core.errors import pseudo_groups
from neurontune.core.groups import per_group_accuracy

#: The key of a method's head output holding its held-out predictions on the selection half.
HELD_OUT_PREDICTION = "held_out_prediction"

RULE = ("eligible: worst-class accuracy on the selection half >= ERM's − {tolerance}; among the eligible, the "
        "highest worst pseudo-group accuracy (class × the '{error_set}' error set), ties by worst-class then mean "
        "accuracy; every method scored by its head fitted without the selection half")


def choose_method(held_out_predictions: Mapping[str, np.ndarray], y, in_error_set, n_classes: int, *,
                  reference: str = "erm", worst_class_tolerance: float = 0.02, error_set: str = "auto") -> dict:
    """Choose the method to ship among ``held_out_predictions`` (``{method: predictions on the selection half}``,
    ``reference`` = ERM's head among them) by :data:`RULE`.

    ``in_error_set`` : bool/int array (N,), 1 = the sample is in the label-free error set. No group label is read.

    Returns ``{"chosen", "reason", "rule", "settings", "candidates": [{method, sel_mean_accuracy,
    sel_worst_class_accuracy, sel_worst_pseudo_group_accuracy, eligible, rank}] (in ranking order),
    "error_set_size"}``.
    """
    n_classes = check_n_classes(n_classes)
    y = check_labels(y, n_classes, "selection-half labels")
    if reference not in held_out_predictions:
        raise ValueError(f"the candidates must include the reference {reference!r} (ERM's head: 'change nothing'); "
                         f"got {sorted(held_out_predictions)}.")
    if not 0.0 <= worst_class_tolerance <= 1.0:
        raise ValueError(f"worst_class_tolerance must be in [0, 1]; got {worst_class_tolerance!r}.")
    in_error_set = np.asarray(in_error_set)
    if in_error_set.shape != y.shape:
        raise ValueError(f"in_error_set must have one entry per selection sample ({len(y)}); got shape {in_error_set.shape}.")
    groups = pseudo_groups(y, in_error_set == 1)
    order = [reference, *(name for name in held_out_predictions if name != reference)]
    rows = []
    for position, name in enumerate(order):
        prediction = check_labels(held_out_predictions[name], n_classes, f"{name}'s held-out predictions", n_samples=len(y))
        rows.append({"method": name, "position": position,
                     "sel_mean_accuracy": float(np.mean(prediction == y)),
                     "sel_worst_class_accuracy": _worst(y, prediction, y, n_classes),
                     "sel_worst_pseudo_group_accuracy": _worst(y, prediction, groups, 2 * n_classes)})
    floor = rows[0]["sel_worst_class_accuracy"] - worst_class_tolerance
    for row in rows:
        row["eligible"] = row["method"] == reference or row["sel_worst_class_accuracy"] >= floor
    ranked = sorted(rows, key=lambda row: (not row["eligible"], -row["sel_worst_pseudo_group_accuracy"],
                                           -row["sel_worst_class_accuracy"], -row["sel_mean_accuracy"], row["position"]))
    for rank, row in enumerate(ranked, start=1):
        row["rank"] = rank
        del row["position"]
    chosen, erm = ranked[0], next(row for row in ranked if row["method"] == reference)
    settings = {"reference": reference, "worst_class_tolerance": worst_class_tolerance, "error_set": error_set}
    return {"chosen": chosen["method"], "reason": _reason(chosen, erm, ranked, floor), "rule": RULE.format(
                tolerance=worst_class_tolerance, error_set=error_set),
            "settings": settings, "candidates": ranked, "error_set_size": int((in_error_set == 1).sum()),
            "n_selection_samples": int(len(y))}


def _worst(y: np.ndarray, prediction: np.ndarray, ids: np.ndarray, n_cells: int) -> float:
    return float(np.nanmin(per_group_accuracy(y, prediction, ids, n_cells)))


def _reason(chosen: dict, erm: dict, ranked: list[dict], floor: float) -> str:
    excluded = [row["method"] for row in ranked if not row["eligible"]]
    dropped = (f"; below ERM's worst-class floor {floor:.4f}, so not eligible: {', '.join(excluded)}" if excluded else "")
    scores = (f"worst pseudo-group accuracy {chosen['sel_worst_pseudo_group_accuracy']:.4f}, worst-class "
              f"{chosen['sel_worst_class_accuracy']:.4f} on the selection half")
    if chosen["method"] == erm["method"]:
        return f"kept ERM's head: no eligible method beats its {scores}{dropped}"
    return (f"{chosen['method']}: highest {scores} (ERM {erm['sel_worst_pseudo_group_accuracy']:.4f}, "
            f"{erm['sel_worst_class_accuracy']:.4f}){dropped}")
