"""Fit a last-layer baseline of the method registry on the cached embeddings and NeuronTune's validation halves."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from neurontune.core import LinearHead
from neurontune.core.baselines import BaselineInputs, MissingBaselineInput, call_baseline
from neurontune.core.choice import HELD_OUT_PREDICTION
from neurontune.core.groups import has_group_labels
from neurontune.methods import NOT_FITTED, resolve_function
from neurontune.models.devices import resolve_device

logger = logging.getLogger(__name__)


def fit_baseline(
    name: str, method: dict, settings: dict, embeddings_train: dict, embeddings_val: dict, validation_split: dict,
    erm_head: dict, raw_metadata: pd.DataFrame | None = None,
) -> tuple[dict, pd.DataFrame]:
    """Call ``method["function"]`` (its complete registry entry) with the inputs it names; return its head and
    candidate table.

    Only the explicitly group-labelled baselines (``labels_used != none``) receive ``raw_metadata``; a group-free
    baseline handed group labels, or a labelled one without them, is an error. A baseline whose inputs this run
    lacks (validation group labels, an early checkpoint) is recorded as not fitted, with why, and the run goes on.
    """
    labelled = method["labels_used"] != "none"
    if labelled != (raw_metadata is not None):
        raise ValueError(f"baseline {name!r} declares labels_used={method['labels_used']!r} but was "
                         f"{'not ' if labelled else ''}given the group labels (raw_metadata); wire it accordingly.")
    groups = _validation_groups(embeddings_val, raw_metadata) if labelled else None
    if labelled and groups is None:
        return _not_fitted(name, method, NO_VALIDATION_GROUPS)
    inputs = build_baseline_inputs(method["tune_set"], settings["seed"], embeddings_train, embeddings_val,
                                   validation_split, erm_head, groups)
    retrain = {**settings["retrain"], "device": resolve_device(settings["device"])}
    try:
        fit = call_baseline(resolve_function(method["function"]), inputs, method["options"], retrain)
    except MissingBaselineInput as missing:  # e.g. SELF on an imported model without an early checkpoint
        return _not_fitted(name, method, str(missing))
    table = pd.DataFrame(fit.candidates).assign(method=name, labels_used=method["labels_used"])
    logger.info("%s: %d candidates, labels used: %s", name, len(table), method["labels_used"])
    return {**fit.head.to_dict(), HELD_OUT_PREDICTION: fit.held_out_prediction}, table


def build_baseline_inputs(tune_set: str, seed: int, embeddings_train: dict, embeddings_val: dict,
                          validation_split: dict, erm_head: dict,
                          validation_groups: tuple[np.ndarray, int] | None = None) -> BaselineInputs:
    """The one inputs value of every baseline: tuning rows (training split or identification half), the selection
    half, the ERM head and logits, the early checkpoint's logits when cached, and validation groups (ids of every
    cached validation sample, number of groups) only when given (the labelled baselines)."""
    ide, sel = validation_split["ide"], validation_split["sel"]
    tune, rows = (embeddings_train, slice(None)) if tune_set == "train" else (embeddings_val, ide)
    early = "early_logits" in tune and "early_logits" in embeddings_val
    groups = {}
    if validation_groups is not None:
        ids, n_groups = validation_groups
        groups = {"tune_groups": ids[ide] if tune is embeddings_val else None, "sel_groups": ids[sel], "n_groups": n_groups}
    return BaselineInputs(
        tune_embeddings=tune["embeddings"][rows], tune_y=tune["y"][rows],
        sel_embeddings=embeddings_val["embeddings"][sel], sel_y=embeddings_val["y"][sel],
        n_classes=erm_head["weight"].shape[0], erm_head=LinearHead.from_arrays(erm_head["weight"], erm_head["bias"]),
        tune_erm_logits=tune["logits"][rows], sel_erm_logits=embeddings_val["logits"][sel],
        tune_early_logits=tune["early_logits"][rows] if early else None,
        sel_early_logits=embeddings_val["early_logits"][sel] if early else None,
        seed=seed, **groups)


def _validation_groups(embeddings_val: dict, raw_metadata: pd.DataFrame) -> tuple[np.ndarray, int] | None:
    """Group id of every cached validation sample, looked up by sample id, and the number of groups; None when
    validation has no group labels (no ``group`` column, or a row whose group is unknown)."""
    if "group" not in raw_metadata.columns:
        return None
    table = raw_metadata.set_index("sample_id")["group"]
    missing = ~np.isin(embeddings_val["sample_id"], table.index)
    if missing.any():
        raise ValueError(f"{int(missing.sum())} validation sample ids are not in raw_metadata; rerun the pipeline.")
    ids = table.loc[embeddings_val["sample_id"]].to_numpy()
    return (ids, int(raw_metadata["group"].max()) + 1) if has_group_labels(ids) else None


# ------------------------------------------------- labelled baselines on data without validation group labels

NO_VALIDATION_GROUPS = "no validation group labels"


def _not_fitted(name: str, method: dict, reason: str) -> tuple[dict, pd.DataFrame]:
    """A recorded "not fitted" result in place of a head and its candidate table, so the run goes on without it."""
    logger.warning("%s not fitted: %s (it declares labels_used=%s); the run goes on and reports it as not fitted",
                   name, reason, method["labels_used"])
    table = pd.DataFrame({"method": [name], "labels_used": [method["labels_used"]], "selected": [False], NOT_FITTED: [reason]})
    return {NOT_FITTED: np.array(reason)}, table
