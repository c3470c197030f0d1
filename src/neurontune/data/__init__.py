"""Benchmark builders: pure functions from a config to ``(inputs, metadata)``.

Each builder returns ``inputs`` (an array with one entry per sample: uint8 images,
or strings) and the metadata table (sample_id, split, y, a, group).
Add a benchmark by adding a builder to :data:`BENCHMARK_BUILDERS`.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import pandas as pd

from neurontune.data import colored_mnist

BENCHMARK_BUILDERS: dict[str, Callable[[dict], tuple[np.ndarray, pd.DataFrame]]] = {
    "colored_mnist": colored_mnist.build_from_config,
}


def build_benchmark_data(config: dict) -> tuple[np.ndarray, pd.DataFrame]:
    """Dispatch on ``config["name"]``."""
    name = config.get("name")
    if name not in BENCHMARK_BUILDERS:
        raise ValueError(f"unknown benchmark {name!r}; available: {sorted(BENCHMARK_BUILDERS)}.")
    return BENCHMARK_BUILDERS[name](config)
