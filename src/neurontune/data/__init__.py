"""Benchmark builders: pure functions from a config to ``(inputs, metadata)``.

Each builder returns ``inputs`` (an array with one entry per sample: uint8 images,
or strings; the user's data, :mod:`neurontune.data.custom`, returns the ``raw_inputs`` dict itself) and the
metadata table (sample_id, split, y and, where the data have groups, a and group).
Add a benchmark by adding a builder to :data:`BENCHMARK_BUILDERS`.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import pandas as pd

from neurontune.data import colored_mnist, custom, published, tweets_negation, waterbirds_like

BENCHMARK_BUILDERS: dict[str, Callable[[dict], tuple[np.ndarray, pd.DataFrame]]] = {
    "colored_mnist": colored_mnist.build_from_config,
    "waterbirds_like": waterbirds_like.build_from_config,
    "tweets_negation": tweets_negation.build_from_config,
    "waterbirds": published.build_waterbirds,
    "celeba": published.build_celeba,
    "multinli": published.build_multinli,
    "civilcomments": published.build_civilcomments,
    "custom": custom.build_custom,
}


def build_benchmark_data(config: dict) -> tuple[np.ndarray, pd.DataFrame]:
    """Dispatch on ``config["name"]``."""
    name = config.get("name")
    if name not in BENCHMARK_BUILDERS:
        raise ValueError(f"unknown benchmark {name!r}; available: {sorted(BENCHMARK_BUILDERS)}.")
    return BENCHMARK_BUILDERS[name](config)
