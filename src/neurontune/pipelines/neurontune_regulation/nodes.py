"""Retrain the head with suppressed biased neurons; choose hyperparameters by worst-class accuracy."""

from __future__ import annotations

import pandas as pd

from neurontune.core import LinearHead, select_neurontune
from neurontune.models.devices import resolve_device


def regulate_head(
    embeddings_train: dict, embeddings_val: dict, validation_split: dict, erm_head: dict, variant: dict, regulation: dict
) -> tuple[dict, pd.DataFrame]:
    """Grid-search one variant (tuning set, mask on/off) and return its winning head and the candidate table."""
    ide, sel = validation_split["ide"], validation_split["sel"]
    tune = {"train": (embeddings_train, slice(None)), "val_ide": (embeddings_val, ide)}
    if variant["tune_set"] not in tune:
        raise ValueError(f"tune_set must be one of {sorted(tune)}; got {variant['tune_set']!r}.")
    tune_cache, tune_rows = tune[variant["tune_set"]]
    fit_data = {
        "ide_embeddings": embeddings_val["embeddings"][ide],
        "ide_y": embeddings_val["y"][ide],
        "ide_erm_pred": embeddings_val["logits"][ide].argmax(axis=1),
        "tune_embeddings": tune_cache["embeddings"][tune_rows],
        "tune_y": tune_cache["y"][tune_rows],
        "init": LinearHead.from_arrays(erm_head["weight"], erm_head["bias"]) if regulation["init_from_erm"] else None,
    }
    grid = dict(regulation["grid"]) if variant["use_mask"] else {"weight_decay": regulation["grid"]["weight_decay"]}
    fixed = {
        "n_classes": erm_head["weight"].shape[0],
        "use_mask": variant["use_mask"],
        "suppression_scale": regulation["suppression_scale"],
        "rounds": regulation["rounds"],
        **regulation["retrain"],
        "seed": regulation["seed"],
        "device": resolve_device(regulation["device"]),
    }
    best, table = select_neurontune(grid, fixed, fit_data, embeddings_val["embeddings"][sel], embeddings_val["y"][sel])
    return {**best.head_.to_dict(), "mask": best.mask_}, pd.DataFrame(table)
