"""Fit the last-layer baselines on the cached embeddings and the same validation halves as NeuronTune."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from neurontune.core import LinearHead
from neurontune.core import baselines as core
from neurontune.models.devices import resolve_device

logger = logging.getLogger(__name__)


def fit_baseline(
    method: str, embeddings_train: dict, embeddings_val: dict, validation_split: dict, erm_head: dict,
    options: dict, settings: dict, raw_metadata: pd.DataFrame | None = None,
) -> tuple[dict, pd.DataFrame]:
    """Fit ``method`` (a name in ``core.baselines.LABELS_USED``); return its head and candidate table.

    Only the explicitly group-labelled baselines receive ``raw_metadata``; a group-free
    baseline handed group labels, or a labelled one without them, is an error.
    """
    _check_label_access(method, raw_metadata)
    ide, sel = validation_split["ide"], validation_split["sel"]
    data = {
        "val_ide": (embeddings_val["embeddings"][ide], embeddings_val["y"][ide]),
        "val_sel": (embeddings_val["embeddings"][sel], embeddings_val["y"][sel]),
        "train": (embeddings_train["embeddings"], embeddings_train["y"]),
        "erm": LinearHead.from_arrays(erm_head["weight"], erm_head["bias"]),
    }
    if raw_metadata is not None:
        groups, n_groups = _validation_groups(embeddings_val, raw_metadata)
        data["groups"] = (groups[ide], groups[sel], n_groups)
    retrain = {**settings["retrain"], "seed": settings["seed"], "device": resolve_device(settings["device"])}
    fit = _FITTERS[method](data, dict(options), retrain, settings["seed"])
    table = pd.DataFrame(fit.candidates).assign(method=method, labels_used=fit.labels_used)
    logger.info("%s: %d candidates, labels used: %s", method, len(table), fit.labels_used)
    return fit.head.to_dict(), table


def _check_label_access(method: str, raw_metadata) -> None:
    if method not in _FITTERS:
        raise ValueError(f"unknown baseline {method!r}; available: {sorted(_FITTERS)}.")
    labelled = core.LABELS_USED[method] != "none"
    if labelled != (raw_metadata is not None):
        raise ValueError(f"baseline {method!r} declares labels_used={core.LABELS_USED[method]!r} but was "
                         f"{'not ' if labelled else ''}given the group labels (raw_metadata); wire it accordingly.")


def _validation_groups(embeddings_val: dict, raw_metadata: pd.DataFrame) -> tuple[np.ndarray, int]:
    """Group id of every cached validation sample, looked up by sample id."""
    table = raw_metadata.set_index("sample_id")["group"]
    missing = ~np.isin(embeddings_val["sample_id"], table.index)
    if missing.any():
        raise ValueError(f"{int(missing.sum())} validation sample ids are not in raw_metadata; rerun the pipeline.")
    return table.loc[embeddings_val["sample_id"]].to_numpy(), int(raw_metadata["group"].max()) + 1


def _tune_set(data: dict, options: dict) -> tuple:
    tune_set = options.pop("tune_set", "train")
    if tune_set not in ("train", "val_ide"):
        raise ValueError(f"tune_set must be 'train' or 'val_ide'; got {tune_set!r}.")
    return data[tune_set]


def _dfr(data, options, retrain, seed):
    (tune_x, tune_y), (sel_x, sel_y), (tune_g, sel_g, n_groups) = data["val_ide"], data["val_sel"], data["groups"]
    return core.dfr(tune_x, tune_y, tune_g, sel_x, sel_y, sel_g, data["erm"].n_classes, n_groups, seed=seed, **options)


def _dfr_groupfree(data, options, retrain, seed):
    return core.dfr_groupfree(*data["val_ide"], *data["val_sel"], data["erm"].n_classes, seed=seed, **options)


def _jtt_last_layer(data, options, retrain, seed):
    tune = _tune_set(data, options)
    return core.jtt_last_layer(*tune, data["erm"], *data["val_sel"], data["erm"].n_classes, **options, **retrain)


def _afr(data, options, retrain, seed):
    tune = _tune_set(data, options)
    return core.afr(*tune, data["erm"], *data["val_sel"], data["erm"].n_classes, **options, **retrain)


def _group_balanced_oracle(data, options, retrain, seed):
    (tune_x, tune_y), (sel_x, sel_y), (tune_g, sel_g, n_groups) = data["val_ide"], data["val_sel"], data["groups"]
    init = data["erm"] if options.pop("init_from_erm", True) else None
    return core.group_balanced_oracle(tune_x, tune_y, tune_g, sel_x, sel_y, sel_g, data["erm"].n_classes, n_groups,
                                      init=init, **options, **retrain)


_FITTERS = {
    "dfr": _dfr,
    "dfr_groupfree": _dfr_groupfree,
    "jtt_last_layer": _jtt_last_layer,
    "afr": _afr,
    "group_balanced_oracle": _group_balanced_oracle,
}
