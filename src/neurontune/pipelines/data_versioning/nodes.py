"""Build the benchmark's raw data and describe it for lineage."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from neurontune.data import colored_mnist
from neurontune.data.tables import content_digest, group_counts, validate_metadata

logger = logging.getLogger(__name__)


def build_benchmark(benchmark: dict) -> tuple[dict[str, np.ndarray], pd.DataFrame]:
    """Build the benchmark named by ``benchmark["name"]``: raw inputs and the metadata table."""
    if benchmark["name"] != "colored_mnist":
        raise ValueError(f"unknown benchmark {benchmark['name']!r}; available: ['colored_mnist'].")
    digit_images, digits = colored_mnist.load_mnist_digits()
    correlations = {split: benchmark[f"{split}_correlation"] for split in ("train", "val", "test")}
    images, metadata = colored_mnist.build_colored_mnist(
        digit_images, digits, benchmark["split_sizes"], correlations, benchmark["colours"], benchmark["seed"]
    )
    validate_metadata(metadata, n_classes=2)
    return {"inputs": images}, metadata


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
