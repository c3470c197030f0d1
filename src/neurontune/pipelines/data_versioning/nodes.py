"""Build the benchmark's raw data and describe it for lineage."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from neurontune.data import build_benchmark_data
from neurontune.data.tables import content_digest, group_counts, validate_metadata

logger = logging.getLogger(__name__)


def build_benchmark(benchmark: dict) -> tuple[dict[str, np.ndarray], pd.DataFrame]:
    """Build the benchmark named by ``benchmark["name"]``: raw inputs and the metadata table."""
    inputs, metadata = build_benchmark_data(benchmark)
    validate_metadata(metadata, n_classes=int(benchmark["n_classes"]))
    return {"inputs": inputs}, metadata


def describe_dataset(raw_inputs: dict[str, np.ndarray], raw_metadata: pd.DataFrame, benchmark: dict) -> dict:
    """Manifest recorded as the MLflow dataset input: name, digest, source, per-split group counts."""
    manifest = {
        "name": benchmark["name"],
        "digest": content_digest(raw_inputs["inputs"], raw_metadata),
        "source": benchmark["source"],
        "n_samples": int(len(raw_metadata)),
        "group_counts": group_counts(raw_metadata),
    }
    logger.info("dataset %s digest %s", manifest["name"], manifest["digest"][:12])
    return manifest
