"""Build the benchmark's raw data and describe it for lineage."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from neurontune.data import build_benchmark_data
from neurontune.data.tables import CLASS_LABEL_COLUMNS, content_digest, group_counts, validate_metadata

logger = logging.getLogger(__name__)


def build_benchmark(benchmark: dict) -> tuple[dict[str, np.ndarray], pd.DataFrame]:
    """Build the benchmark named by ``benchmark["name"]``: raw inputs and the metadata table."""
    inputs, metadata = build_benchmark_data(benchmark)
    validate_metadata(metadata, n_classes=int(benchmark["n_classes"]))
    return {"inputs": inputs}, metadata


def describe_dataset(raw_inputs: dict[str, np.ndarray], raw_metadata: pd.DataFrame, benchmark: dict) -> dict:
    """Manifest recorded as the MLflow dataset input: name, digests, source, sizes, per-split group counts.

    ``digest`` covers the inputs and the whole metadata table; ``class_label_digest`` only what the
    training side may read (inputs + ``sample_id, split, y``), the digest ERM records in its checkpoint.
    """
    manifest = {
        "name": benchmark["name"],
        "digest": content_digest(raw_inputs["inputs"], raw_metadata),
        "class_label_digest": content_digest(raw_inputs["inputs"], raw_metadata[list(CLASS_LABEL_COLUMNS)]),
        "source": benchmark["source"],
        "n_samples": int(len(raw_metadata)),
        "n_classes": int(benchmark["n_classes"]),
        "n_attributes": int(raw_metadata["a"].max()) + 1,
        "n_groups": int(raw_metadata["group"].max()) + 1,
        "group_counts": group_counts(raw_metadata),
    }
    logger.info("dataset %s digest %s", manifest["name"], manifest["digest"][:12])
    return manifest
