"""Lineage hook: checks the tracking server before anything runs, names and tags every MLflow run
(git commit, data digest, benchmark, owning process), records the benchmark as an MLflow dataset
input and the SHA-256 of every file the run read or wrote, keeps run states honest (Ctrl-C and
SIGTERM end the run KILLED; runs left RUNNING by dead processes are marked).

Nodes never import MLflow; this is the one place (with the catalog) that talks to it. File
locations come from the catalog.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import time
import warnings
from pathlib import Path

import mlflow
from kedro.config import MissingConfigException
from kedro.framework.hooks import hook_impl
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from neurontune.io.datasets import apply_storage_options
from neurontune.models.imported import IMPORTED, source_summary
from neurontune.models.predictor import checkpoint_digest
from neurontune.tracking.connection import apply_http_defaults, check_tracking_server, validate_credentials
from neurontune.tracking.redact import install_log_redaction, move_credentials_out_of_uri
from neurontune.tracking.digests import DIGESTS_ARTIFACT, DIGESTS_TAG, dataset_file, document_digest, pipeline_files, record_digests
from neurontune.tracking.runs import InterruptGuard, mark_stale, owner_tags, stale_runs

logger = logging.getLogger(__name__)


def git_commit() -> str:
    """``<sha>`` of HEAD, with ``-dirty`` when tracked files differ from it; ``unknown`` outside git."""
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True, text=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return sha + ("-dirty" if dirty.strip() else "")


def run_name(parameters: dict) -> str | None:
    """``colored_mnist · val 0.5 · seed 0``: benchmark, validation correlation, ERM seed (what is known)."""
    data, erm = parameters.get("data_versioning") or {}, parameters.get("erm_training") or {}
    parts = [str(data["name"])] if data.get("name") else []
    parts += [f"val {data['val_correlation']}"] if data.get("val_correlation") is not None else []  # null: published
    parts += [f"seed {erm['seed']}"] if "seed" in erm else []
    return " · ".join(parts) or None


class LineageHook:
    def __init__(self):
        self._guard: InterruptGuard | None = None

    @hook_impl(tryfirst=True)  # before kedro-mlflow contacts the server
    def after_context_created(self, context) -> None:
        apply_http_defaults()
        install_log_redaction()
        move_credentials_out_of_uri(os.environ)  # before kedro-mlflow reads the URI: no password in what it logs
        try:
            config = context.config_loader["mlflow"]
        except MissingConfigException:
            return
        server, tracking = config.get("server") or {}, config.get("tracking") or {}
        try:
            entry = server.get("credentials") or ""
            credentials = validate_credentials(context.config_loader["credentials"].get(entry, {}),
                                               f"credentials.yml of environment {context.env or 'local'}, entry {entry!r}")
        except MissingConfigException:
            credentials = {}
        check_tracking_server(str(server.get("mlflow_tracking_uri") or ""),
                              (tracking.get("experiment") or {}).get("name") or "neurontune", credentials)

    @hook_impl  # after kedro-mlflow has started the run (its hooks are registered later, so called first)
    def before_pipeline_run(self, run_params, pipeline, catalog) -> None:
        run = mlflow.active_run()
        if run is None:
            return
        client = MlflowClient()
        try:
            mark_stale(client, [stale for stale in stale_runs(client, [run.info.experiment_id])
                                if stale.info.run_id != run.info.run_id])
        except MlflowException as error:  # e.g. another user's run on a shared server: report, do not fail
            logger.warning("could not mark stale runs: %s", error.message)
        parameters = catalog.load("parameters") if "parameters" in catalog else {}
        data = parameters.get("data_versioning") or {}
        tags = {"git_commit": git_commit(), **owner_tags(),
                **({"benchmark": str(data["name"])} if data.get("name") else {}),
                **({"dataset": str(data["source"])[:250]} if data.get("source") else {})}
        name = run_name(parameters)
        if name and not os.environ.get("MLFLOW_RUN_ID"):  # the benchmark runner names its own runs
            tags["mlflow.runName"] = name
        # Airflow runs each task as its own kedro run (one MLflow run each): these tags join them up
        tags.update({f"airflow.{key}": os.environ[f"AIRFLOW_CTX_{key.upper()}"]
                     for key in ("dag_id", "dag_run_id", "task_id") if os.environ.get(f"AIRFLOW_CTX_{key.upper()}")})
        if "dataset_manifest" in catalog and catalog.exists("dataset_manifest"):
            tags["data_digest"] = catalog.load("dataset_manifest")["digest"]
        mlflow.set_tags(tags)
        self._guard = InterruptGuard()
        try:
            self._guard.install()
        except ValueError:  # not the main thread: signals stay with whoever owns them
            self._guard = None

    @hook_impl
    def after_node_run(self, node, catalog, inputs, outputs) -> None:
        if "erm_model" in outputs and mlflow.active_run() is not None:
            # lets `neurontune lineage` find the run that trained a registered model's backbone
            mlflow.set_tag("erm_checkpoint_digest", checkpoint_digest(outputs["erm_model"]))
            if outputs["erm_model"]["config"].get("architecture") == IMPORTED:  # the user's classifier: its lineage
                mlflow.set_tags({**source_summary(outputs["erm_model"]["config"]),
                                 "source_model.early_checkpoint": outputs["erm_early_model"]["reason"]})
        if "dataset_manifest" not in outputs or mlflow.active_run() is None:
            return
        manifest = outputs["dataset_manifest"]
        metadata = inputs["raw_metadata"]
        source = dataset_file(catalog.get("raw_metadata"))
        with warnings.catch_warnings():  # MLflow's schema inference warns about integer columns
            warnings.simplefilter("ignore")
            dataset = mlflow.data.from_pandas(metadata, source=None if source is None else source.as_posix(),
                                              name=manifest["name"], digest=manifest["digest"][:32])
        tags = {"digest_sha256": manifest["digest"], "origin": manifest["source"],
                "group_counts": json.dumps(manifest.get("group_counts", {}), sort_keys=True)}  # none without groups
        mlflow.log_input(dataset, context="benchmark", tags=tags)
        mlflow.set_tag("data_digest", manifest["digest"])
        logger.info("logged MLflow dataset input %s (%s)", manifest["name"], manifest["digest"][:12])

    @hook_impl(tryfirst=True)  # before kedro-mlflow ends the run
    def after_pipeline_run(self, run_params, pipeline, catalog) -> None:
        self._finish(run_params, pipeline, catalog)

    @hook_impl(tryfirst=True)
    def on_pipeline_error(self, error, run_params, pipeline, catalog) -> None:
        self._finish(run_params, pipeline, catalog)

    def _finish(self, run_params, pipeline, catalog) -> None:
        if self._guard is not None:
            self._guard.close()
            self._guard = None
        run = mlflow.active_run()
        if run is None:
            return
        project_dir = Path(run_params.get("project_path") or Path.cwd())
        document = record_digests(pipeline_files(catalog, pipeline, project_dir), project_dir)
        mlflow.log_dict(document, DIGESTS_ARTIFACT)
        pinned = document_digest(document)
        client = MlflowClient()
        for version in client.search_model_versions(f"run_id = '{run.info.run_id}'"):
            client.set_model_version_tag(version.name, version.version, DIGESTS_TAG, pinned)
        logger.info("recorded the SHA-256 of %d files in %s", len(document["files"]), DIGESTS_ARTIFACT)


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
