"""One self-contained ``.npz`` of a run's cached embeddings, labels, group ids and ERM head.

Other tools (DFR's reference code, a notebook, another library) can then evaluate on
exactly the embeddings this project's methods saw.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from neurontune.data.tables import SPLITS


def embedding_export(caches: dict[str, dict], metadata: pd.DataFrame, erm_head: dict) -> dict[str, np.ndarray]:
    """Arrays keyed for ``np.savez``.

    Parameters
    ----------
    caches : {split: {"embeddings" (N, M), "y" (N,), "sample_id" (N,), ...}} for train, val and test
    metadata : the benchmark table (sample_id, y, a, group)
    erm_head : {"weight" (C, M), "bias" (C,)}

    Returns
    -------
    dict with ``x_<split>`` (N, M) float32, ``y_<split>``, ``g_<split>`` (group ids) and
    ``a_<split>`` (spurious attribute) where the metadata has them (-1 = unknown), ``sample_id_<split>`` (N,) int64, and the ERM head
    ``w0`` (C, M), ``b0`` (C,).
    """
    missing = [split for split in SPLITS if split not in caches]
    if missing:
        raise ValueError(f"caches lack split(s) {missing}; expected {list(SPLITS)}.")
    table = metadata.set_index("sample_id")
    arrays: dict[str, np.ndarray] = {}
    for split in SPLITS:
        cache = caches[split]
        unknown = ~np.isin(cache["sample_id"], table.index)
        if unknown.any():
            raise ValueError(f"{int(unknown.sum())} {split} sample ids are not in the metadata; rerun the pipeline.")
        rows = table.loc[cache["sample_id"]]
        if not np.array_equal(rows["y"].to_numpy(), cache["y"]):
            raise ValueError(f"{split}: cached labels disagree with the metadata; the cache is stale, rerun the pipeline.")
        arrays[f"x_{split}"] = np.asarray(cache["embeddings"], dtype=np.float32)
        arrays[f"y_{split}"] = np.asarray(cache["y"], dtype=np.int64)
        for key, column in (("g", "group"), ("a", "a")):  # optional: absent without group labels, -1 = unknown
            if column in rows.columns:
                arrays[f"{key}_{split}"] = rows[column].to_numpy(dtype=np.int64)
        arrays[f"sample_id_{split}"] = np.asarray(cache["sample_id"], dtype=np.int64)
    weight, bias = np.asarray(erm_head["weight"]), np.asarray(erm_head["bias"])
    if weight.ndim != 2 or bias.shape != (weight.shape[0],) or weight.shape[1] != arrays["x_train"].shape[1]:
        raise ValueError(f"erm_head must be weight (C, {arrays['x_train'].shape[1]}) and bias (C,); "
                         f"got {weight.shape} and {bias.shape}.")
    arrays["w0"], arrays["b0"] = weight, bias
    return arrays
