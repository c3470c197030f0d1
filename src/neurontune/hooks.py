"""Lineage hook: tags every MLflow run with the git commit and the data digest,
and records the benchmark as an MLflow dataset input.

Nodes never import MLflow; this is the one place (with the catalog) that talks to it.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import time
import warnings

import mlflow
from kedro.config import MissingConfigException
from kedro.framework.hooks import hook_impl

from neurontune.io.datasets import apply_storage_options
from neurontune.models.predictor import checkpoint_digest

logger = logging.getLogger(__name__)


def git_commit() -> str:
    """``<sha>`` of HEAD, with ``-dirty`` when tracked files differ from it; ``unknown`` outside git."""
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True, text=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return sha + ("-dirty" if dirty.strip() else "")


class LineageHook:
    @hook_impl(trylast=True)  # after kedro-mlflow has started the run
    def before_pipeline_run(self, run_params, pipeline, catalog) -> None:
        if mlflow.active_run() is None:
            return
        mlflow.set_tag("git_commit", git_commit())
        # Airflow runs each task as its own kedro run (one MLflow run each): these tags join them up
        airflow = {f"airflow.{key}": os.environ[f"AIRFLOW_CTX_{key.upper()}"]
                   for key in ("dag_id", "dag_run_id", "task_id") if os.environ.get(f"AIRFLOW_CTX_{key.upper()}")}
        if airflow:
            mlflow.set_tags(airflow)
        if "dataset_manifest" in catalog and catalog.exists("dataset_manifest"):
            mlflow.set_tag("data_digest", catalog.load("dataset_manifest")["digest"])

    @hook_impl
    def after_node_run(self, node, catalog, inputs, outputs) -> None:
        if "erm_model" in outputs and mlflow.active_run() is not None:
            # lets `neurontune lineage` find the run that trained a registered model's backbone
            mlflow.set_tag("erm_checkpoint_digest", checkpoint_digest(outputs["erm_model"]))
        if "dataset_manifest" not in outputs or mlflow.active_run() is None:
            return
        manifest = outputs["dataset_manifest"]
        metadata = inputs["raw_metadata"]
        with warnings.catch_warnings():  # MLflow's schema inference warns about integer columns
            warnings.simplefilter("ignore")
            dataset = mlflow.data.from_pandas(
                metadata, source="data/01_raw/metadata.parquet", name=manifest["name"], digest=manifest["digest"][:32]
            )
        tags = {"digest_sha256": manifest["digest"], "origin": manifest["source"],
                "group_counts": json.dumps(manifest["group_counts"], sort_keys=True)}
        mlflow.log_input(dataset, context="benchmark", tags=tags)
        mlflow.set_tag("data_digest", manifest["digest"])
        logger.info("logged MLflow dataset input %s (%s)", manifest["name"], manifest["digest"][:12])


class ObjectStoreHook:
    """Applies ``credentials.yml``'s ``object_store`` entry, ``{protocol: storage options}``
    (e.g. ``s3: {key, secret, endpoint_url}``), to every catalog dataset on that protocol."""

    @hook_impl
    def after_context_created(self, context) -> None:
        try:
            credentials = context.config_loader["credentials"]
        except MissingConfigException:  # no credentials.yml: the environment's AWS_* variables apply
            return
        if "object_store" in credentials:
            apply_storage_options(credentials["object_store"])


class NodeTimingHook:
    """Logs each node's wall time as the MLflow metric ``timing.<node>_seconds``.

    The benchmark runner compares methods' costs from these (measured in the same run).
    """

    def __init__(self):
        self._started: dict[str, float] = {}

    @hook_impl
    def before_node_run(self, node) -> None:
        self._started[node.name] = time.perf_counter()

    @hook_impl
    def after_node_run(self, node) -> None:
        started = self._started.pop(node.name, None)
        if started is None or mlflow.active_run() is None:
            return
        mlflow.log_metric(f"timing.{node.name}_seconds", time.perf_counter() - started)
