"""Retrain the head with suppressed biased neurons; choose hyperparameters without group labels."""

from __future__ import annotations

import numpy as np
import pandas as pd

from neurontune.core import LinearHead, SelectionSet, select_neurontune
from neurontune.models.devices import resolve_device
from neurontune.pipelines.neuron_identification.nodes import neuron_scores_of


def regulate_head(
    embeddings_train: dict, embeddings_val: dict, validation_split: dict, erm_head: dict, neuron_scores: dict,
    variant: dict, tuning: dict,
) -> tuple[dict, pd.DataFrame]:
    """Grid-search one NeuronTune variant over the identification scores; return its winning head and candidate table."""
    n_classes = erm_head["weight"].shape[0]
    init = LinearHead.from_arrays(erm_head["weight"], erm_head["bias"]) if tuning["init_from_erm"] else None
    folds, selection_sets, refit = _folds(embeddings_train, embeddings_val, validation_split, neuron_scores,
                                          variant["tune_set"], init, n_classes)
    grid = {**tuning["grid"], **variant.get("grid", {})}
    if not variant["use_mask"]:
        grid = {"weight_decay": grid["weight_decay"]}
    fixed = {"n_classes": n_classes, "use_mask": variant["use_mask"], "suppression_scale": tuning["suppression_scale"],
             "rounds": tuning["rounds"], **tuning["retrain"], "seed": tuning["seed"],
             "device": resolve_device(tuning["device"])}
    best, table = select_neurontune(grid, fixed, folds, selection_sets, criterion=variant.get("criterion", "class"),
                                    refit=refit)
    return {**best.head_.to_dict(), "mask": best.mask_}, pd.DataFrame(table)


def _folds(train: dict, val: dict, split: dict, neuron_scores: dict, tune_set: str, init, n_classes: int):
    """Fit data and selection set of each fold, and the refit data (cross-fitting only), for ``tune_set``."""

    def fold(ide_role: str, ide_rows, tune_cache: dict, tune_rows) -> dict:
        return {"ide_embeddings": val["embeddings"][ide_rows], "ide_y": val["y"][ide_rows],
                "ide_erm_pred": val["logits"][ide_rows].argmax(axis=1), "scores": neuron_scores_of(neuron_scores, ide_role),
                "tune_embeddings": tune_cache["embeddings"][tune_rows], "tune_y": tune_cache["y"][tune_rows], "init": init}

    def selection(rows) -> SelectionSet:
        return SelectionSet.build(val["embeddings"][rows], val["y"][rows], n_classes)

    ide, sel, everything = split["ide"], split["sel"], np.arange(len(val["y"]))
    if tune_set == "train":
        return [fold("ide", ide, train, slice(None))], [selection(sel)], None
    if tune_set == "val_ide":
        return [fold("ide", ide, val, ide)], [selection(sel)], None
    if tune_set == "val_crossfit":
        return ([fold("ide", ide, val, ide), fold("sel", sel, val, sel)], [selection(sel), selection(ide)],
                fold("all", everything, val, everything))
    raise ValueError(f"tune_set must be one of ['train', 'val_ide', 'val_crossfit']; got {tune_set!r}.")
