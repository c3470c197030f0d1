"""Retrain the head with suppressed biased neurons; choose hyperparameters without group labels."""

from __future__ import annotations

import numpy as np
import pandas as pd

from neurontune.core import LinearHead, SelectionSet, select_neurontune
from neurontune.core.choice import HELD_OUT_PREDICTION
from neurontune.core.errors import pseudo_groups
from neurontune.core.roles import scores_of
from neurontune.methods import scoring_role
from neurontune.models.devices import resolve_device


def regulate_head(
    embeddings_train: dict, embeddings_val: dict, validation_split: dict, erm_head: dict, neuron_scores: dict,
    error_sets: dict, variant: dict, tuning: dict,
) -> tuple[dict, pd.DataFrame]:
    """Grid-search one NeuronTune variant (its complete settings, from the method registry) over the identification
    scores; return its winning head (with the held-out predictions on the selection half of its fold-0 head, which
    ``packaging.method: auto`` compares methods by) and candidate table."""
    n_classes = erm_head["weight"].shape[0]
    init = LinearHead.from_arrays(erm_head["weight"], erm_head["bias"]) if tuning["init_from_erm"] else None
    folds, selection_sets, refit = _folds(embeddings_train, embeddings_val, validation_split, neuron_scores,
                                          error_sets, variant, init, n_classes)
    grid = {**tuning["grid"], **variant["grid"]}
    if not variant["use_mask"]:
        grid = {"weight_decay": grid["weight_decay"]}
    fixed = {"n_classes": n_classes, "use_mask": variant["use_mask"], "suppression_scale": tuning["suppression_scale"],
             "rounds": tuning["rounds"], "balance": variant["balance"], **tuning["retrain"], "seed": tuning["seed"],
             "device": resolve_device(tuning["device"])}
    best, table = select_neurontune(grid, fixed, folds, selection_sets, criterion=variant["criterion"], refit=refit)
    return {**best.head_.to_dict(), "mask": best.mask_, HELD_OUT_PREDICTION: best.held_out_prediction_}, pd.DataFrame(table)


def _folds(train: dict, val: dict, split: dict, neuron_scores: dict, error_sets: dict, variant: dict, init,
           n_classes: int):
    """Fit data and selection set of each fold, and the refit data (cross-fitting only), for the variant."""
    ide, sel, everything = split["ide"], split["sel"], np.arange(len(val["y"]))
    source = variant["errors"] if variant["pseudo_groups"] == "same" else variant["pseudo_groups"]
    in_error_set = {name: error_sets[f"{name}_{source}"] == 1 for name in ("train", "val")}
    rows = {"val_ide": (val, ide), "val_sel": (val, sel), "val_all": (val, everything), "train": (train, slice(None))}

    def fold(identify: str, tune: str) -> dict:
        (ide_cache, ide_rows), (tune_cache, tune_rows) = rows[identify], rows[tune]
        tune_split = "train" if tune == "train" else "val"
        return {"ide_embeddings": ide_cache["embeddings"][ide_rows], "ide_y": ide_cache["y"][ide_rows],
                "ide_erm_pred": ide_cache["logits"][ide_rows].argmax(axis=1),
                "scores": scores_of(neuron_scores, scoring_role(identify, variant)),
                "tune_embeddings": tune_cache["embeddings"][tune_rows], "tune_y": tune_cache["y"][tune_rows],
                "tune_groups": pseudo_groups(tune_cache["y"][tune_rows], in_error_set[tune_split][tune_rows]),
                "init": init}

    def selection(selection_rows) -> SelectionSet:
        y = val["y"][selection_rows]
        return SelectionSet.build(val["embeddings"][selection_rows], y, n_classes,
                                  pseudo_group=pseudo_groups(y, in_error_set["val"][selection_rows]))

    tune_set, identify = variant["tune_set"], variant["identify_on"]
    if tune_set == "train":
        return [fold(identify, "train")], [selection(sel)], None
    if tune_set == "val_ide":
        return [fold(identify, "val_ide")], [selection(sel)], None
    if tune_set == "val_crossfit":
        return ([fold("val_ide", "val_ide"), fold("val_sel", "val_sel")], [selection(sel), selection(ide)],
                fold("val_all", "val_all"))
    raise ValueError(f"tune_set must be one of ['train', 'val_ide', 'val_crossfit']; got {tune_set!r}.")
