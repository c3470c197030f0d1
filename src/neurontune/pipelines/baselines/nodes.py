"""Fit a last-layer baseline of the method registry on the cached embeddings and NeuronTune's validation halves."""

from __future__ import annotations

import importlib
import inspect
import logging

import numpy as np
import pandas as pd

from neurontune.core import LinearHead
from neurontune.core.groups import has_group_labels
from neurontune.methods import NOT_FITTED
from neurontune.models.devices import resolve_device

logger = logging.getLogger(__name__)

#: Module holding the functions a registry entry names without a dotted path.
BASELINES_MODULE = "neurontune.core.baselines"


def fit_baseline(
    name: str, method: dict, settings: dict, embeddings_train: dict, embeddings_val: dict, validation_split: dict,
    erm_head: dict, raw_metadata: pd.DataFrame | None = None,
) -> tuple[dict, pd.DataFrame]:
    """Call ``method["function"]`` with the data it reads; return its head and candidate table.

    Only the explicitly group-labelled baselines (``labels_used != none``) receive
    ``raw_metadata``; a group-free baseline handed group labels, or a labelled one
    without them, is an error.
    """
    labelled = method["labels_used"] != "none"
    if labelled != (raw_metadata is not None):
        raise ValueError(f"baseline {name!r} declares labels_used={method['labels_used']!r} but was "
                         f"{'not ' if labelled else ''}given the group labels (raw_metadata); wire it accordingly.")
    if labelled and not _has_validation_groups(embeddings_val, raw_metadata):
        return _not_fitted(name, method, NO_VALIDATION_GROUPS)
    ide, sel = validation_split["ide"], validation_split["sel"]
    tune_cache, tune_rows = (embeddings_train, slice(None)) if method["tune_set"] == "train" else (embeddings_val, ide)
    available = {
        "tune_embeddings": tune_cache["embeddings"][tune_rows], "tune_y": tune_cache["y"][tune_rows],
        "sel_embeddings": embeddings_val["embeddings"][sel], "sel_y": embeddings_val["y"][sel],
        "n_classes": erm_head["weight"].shape[0], "erm_head": LinearHead.from_arrays(erm_head["weight"], erm_head["bias"]),
        "seed": settings["seed"],
    }
    if labelled:
        groups, available["n_groups"] = _validation_groups(embeddings_val, raw_metadata)
        available.update(tune_groups=groups[ide], sel_groups=groups[sel])
    retrain = {**settings["retrain"], "device": resolve_device(settings["device"])}
    fit = _call(resolve_function(method["function"]), available, retrain, dict(method.get("options") or {}))
    table = pd.DataFrame(fit.candidates).assign(method=name, labels_used=method["labels_used"])
    logger.info("%s: %d candidates, labels used: %s", name, len(table), method["labels_used"])
    return fit.head.to_dict(), table


def resolve_function(reference: str):
    """A baseline function from its name in :data:`BASELINES_MODULE` or a dotted path ``package.module.function``."""
    module, _, attribute = reference.rpartition(".") if "." in reference else (BASELINES_MODULE, ".", reference)
    try:
        return getattr(importlib.import_module(module), attribute)
    except (ImportError, AttributeError) as error:
        raise ValueError(f"baseline function {reference!r} not found ({error}); name a function of "
                         f"{BASELINES_MODULE} or give a dotted path.") from error


def _call(function, available: dict, retrain: dict, options: dict):
    """Pass the data the function's signature names, the shared retraining options if it takes ``**kwargs``,
    and the entry's options (checked against the signature before the run: neurontune.parameters)."""
    parameters = inspect.signature(function).parameters
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values())
    arguments = {key: value for key, value in available.items() if key in parameters}
    if takes_any:
        arguments.update({key: value for key, value in retrain.items() if key not in options})
    return function(**arguments, **options)


def _validation_groups(embeddings_val: dict, raw_metadata: pd.DataFrame) -> tuple[np.ndarray, int]:
    """Group id of every cached validation sample, looked up by sample id."""
    table = raw_metadata.set_index("sample_id")["group"]
    missing = ~np.isin(embeddings_val["sample_id"], table.index)
    if missing.any():
        raise ValueError(f"{int(missing.sum())} validation sample ids are not in raw_metadata; rerun the pipeline.")
    return table.loc[embeddings_val["sample_id"]].to_numpy(), int(raw_metadata["group"].max()) + 1


# ------------------------------------------------- labelled baselines on data without validation group labels

NO_VALIDATION_GROUPS = "no validation group labels"


def _has_validation_groups(embeddings_val: dict, raw_metadata: pd.DataFrame) -> bool:
    return "group" in raw_metadata.columns and has_group_labels(_validation_groups(embeddings_val, raw_metadata)[0])


def _not_fitted(name: str, method: dict, reason: str) -> tuple[dict, pd.DataFrame]:
    """A recorded "not fitted" result in place of a head and its candidate table, so the run goes on without it."""
    logger.warning("%s not fitted: %s (it declares labels_used=%s); the run goes on and reports it as not fitted",
                   name, reason, method["labels_used"])
    table = pd.DataFrame({"method": [name], "labels_used": [method["labels_used"]], "selected": [False], NOT_FITTED: [reason]})
    return {NOT_FITTED: np.array(reason)}, table
