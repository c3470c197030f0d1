"""Build the benchmark's raw data and describe it for lineage."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from neurontune.data import build_benchmark_data
from neurontune.data.tables import CLASS_LABEL_COLUMNS, content_digest, group_columns, group_counts, validate_metadata

logger = logging.getLogger(__name__)


def build_benchmark(benchmark: dict) -> tuple[dict[str, np.ndarray], pd.DataFrame]:
    """Build the benchmark named by ``benchmark["name"]``: raw inputs and the metadata table (its group columns
    ``a`` / ``group`` only where the data have group labels)."""
    inputs, metadata = build_benchmark_data(benchmark)
    validate_metadata(metadata, int(benchmark["n_classes"]), [*CLASS_LABEL_COLUMNS, *group_columns(metadata)])
    return inputs if isinstance(inputs, dict) else {"inputs": inputs}, metadata


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
        # omitted when the data have no group labels (evaluation then reports what needs none)
        **{f"n_{name}s": int(raw_metadata[column].max()) + 1 for name, column in (("attribute", "a"), ("group", "group"))
           if column in raw_metadata.columns},
        "group_counts": group_counts(raw_metadata),
    }
    logger.info("dataset %s digest %s", manifest["name"], manifest["digest"][:12])
    return manifest
