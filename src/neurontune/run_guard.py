"""Runs that cannot mix (docs/reliability.md, "Trust under pressure").

- **One run at a time per project.** :class:`RunGuardHook` takes an exclusive lock on
  ``<project>/.neurontune-run.lock`` when a pipeline starts, before kedro-mlflow opens its run, and
  releases it after the run has ended. A second ``kedro run`` in the same project **waits** for the
  first to finish, saying whose run it waits for; ``NEURONTUNE_RUN_LOCK_TIMEOUT`` (seconds) bounds the
  wait, ``0`` refuses at once (:class:`RunLockedError`). The lock is the kernel's (``flock``): a killed
  run releases it with its process.
- **Packaging from this run's own artifacts.** The files of the packaging node's inputs that this run
  wrote are hashed when saved and hashed again just before packaging; a difference (another process
  wrote the file) stops the run before anything is registered.
- **Digests that follow the data.** Before a run that reads the raw data without rebuilding it, the
  dataset manifest's digest is recomputed from the raw inputs and metadata on disk; a raw file edited
  after ``data_versioning`` stops the run, naming both digests.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

from kedro.framework.hooks import hook_impl

from neurontune.content_ledger import record_contents
from neurontune.data.tables import content_digest
from neurontune.tracking.digests import dataset_file, file_digest, pipeline_files

logger = logging.getLogger(__name__)

LOCK_FILE = ".neurontune-run.lock"
TIMEOUT_VARIABLE = "NEURONTUNE_RUN_LOCK_TIMEOUT"
PACKAGING_NODE = "package_debiased_model"
RAW_DATA = ("raw_inputs", "raw_metadata", "dataset_manifest")


class RunLockedError(RuntimeError):
    """Another ``kedro run`` of this project holds the run lock."""


class StaleDataError(RuntimeError):
    """A file changed under the run: raw data after its manifest, or an artifact after this run wrote it."""


class RunLock:
    """An exclusive, process-held lock on ``path``; re-entrant within one process."""

    def __init__(self, path: Path):
        self.path = path
        self._handle = None

    def acquire(self, timeout: float | None = None, poll: float = 1.0) -> None:
        """Take the lock, waiting up to ``timeout`` seconds (None: as long as it takes; 0: refuse at once)."""
        if self._handle is not None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(self.path, "a+")
        deadline = None if timeout is None else time.monotonic() + timeout
        announced = False
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                holder = self.holder()
                if deadline is not None and time.monotonic() >= deadline:
                    handle.close()
                    raise RunLockedError(
                        f"another kedro run of this project holds {self.path} ({describe_holder(holder)}); one run at "
                        f"a time per project (runs share data/ and the registry). Wait for it, or raise "
                        f"{TIMEOUT_VARIABLE} (now {timeout:g} s) to wait longer.") from None
                if not announced:
                    logger.warning("waiting for another kedro run of this project to finish (%s): one run at a time "
                                   "per project; %s=0 refuses instead of waiting", describe_holder(holder), TIMEOUT_VARIABLE)
                    announced = True
                time.sleep(poll)
        handle.seek(0)
        handle.truncate()
        handle.write(json.dumps({"pid": os.getpid(), "command": " ".join(sys.argv[-12:]),
                                 "since": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")}))
        handle.flush()
        self._handle = handle

    def release(self) -> None:
        if self._handle is not None:
            self._handle.truncate(0)
            fcntl.flock(self._handle, fcntl.LOCK_UN)
            self._handle.close()
            self._handle = None

    def holder(self) -> dict:
        try:
            return json.loads(self.path.read_text() or "{}")
        except (OSError, ValueError):
            return {}


def describe_holder(holder: dict) -> str:
    if not holder:
        return "holder unknown"
    return f"pid {holder.get('pid')}, since {holder.get('since')}, `{holder.get('command', '?')}`"


def lock_timeout(environ=os.environ) -> float | None:
    """``NEURONTUNE_RUN_LOCK_TIMEOUT`` as seconds (unset: wait as long as it takes)."""
    value = environ.get(TIMEOUT_VARIABLE, "").strip()
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        raise ValueError(f"{TIMEOUT_VARIABLE} must be a number of seconds (0 refuses at once); got {value!r}.") from None
    if seconds < 0:
        raise ValueError(f"{TIMEOUT_VARIABLE} must be >= 0 seconds; got {value!r}.")
    return seconds


def check_manifest(manifest: dict, inputs, metadata, source: str = "dataset_manifest") -> None:
    """Raise :class:`StaleDataError` unless ``manifest["digest"]`` is the digest of these raw inputs and metadata."""
    actual = content_digest(inputs, metadata)
    if actual != manifest["digest"]:
        raise StaleDataError(
            f"the raw data changed after data_versioning recorded it: {source} says digest "
            f"{manifest['digest'][:12]}…, the raw inputs and metadata on disk now give {actual[:12]}…. Every "
            "downstream digest, the gate's same-data check and lineage would describe data this run did not read; "
            "rerun data_versioning first (`kedro run`, or `kedro run --pipelines data_versioning` and then these stages).")


class RunGuardHook:
    def __init__(self):
        self._lock: RunLock | None = None
        self._watched: set[str] = set()
        self._written: dict[str, tuple[Path, str]] = {}
        self._catalog = None

    @hook_impl(tryfirst=True)  # before kedro-mlflow opens its run: a waiting run has no MLflow run yet
    def before_pipeline_run(self, run_params, pipeline, catalog) -> None:
        project = Path(run_params.get("project_path") or Path.cwd())
        lock = RunLock(project / LOCK_FILE)
        lock.acquire(lock_timeout())
        self._lock = lock
        try:
            self._check_raw_data(pipeline, catalog)
        except Exception:
            self._release()
            raise
        self._watched = {name for node in pipeline.nodes if node.name.split(".")[-1] == PACKAGING_NODE
                         for name in node.inputs}
        self._written = {}

    @hook_impl
    def after_dataset_saved(self, dataset_name, data, node) -> None:
        if dataset_name in self._watched:
            path = _file_of(self._catalog_dataset(dataset_name))
            if path is not None and path.is_file():
                self._written[dataset_name] = (path, file_digest(path))

    @hook_impl
    def before_node_run(self, node, catalog, inputs) -> None:
        self._catalog = catalog
        if node.name.split(".")[-1] != PACKAGING_NODE:
            return
        for name, (path, digest) in self._written.items():
            now = file_digest(path) if path.is_file() else None
            if now != digest:
                raise StaleDataError(
                    f"{path} ({name}) changed after this run wrote it (sha256 {digest[:12]}… then, "
                    f"{(now or 'missing')[:12]}… now): another process wrote it, so the model would not be the one this "
                    "run evaluated; nothing was registered. Rerun with no other run on this project.")

    @hook_impl(trylast=True)  # after kedro-mlflow has ended the run
    def after_pipeline_run(self, run_params, pipeline, catalog) -> None:
        try:  # what each file held, for `neurontune status` (staleness by content)
            project = Path(run_params.get("project_path") or Path.cwd())
            conf = project / "conf"
            envs = {"base", run_params.get("env") or "local"}
            parameter_files = [path for env in envs for path in (conf / env).rglob("parameters*.yml")]
            record_contents(project, [*pipeline_files(catalog, pipeline, project), *parameter_files])
        except OSError as error:  # a read-only project: status falls back to file times
            logger.warning("could not record file contents for `neurontune status`: %s", error)
        finally:
            self._release()

    @hook_impl(trylast=True)
    def on_pipeline_error(self) -> None:
        self._release()

    def _catalog_dataset(self, name):
        return None if self._catalog is None else self._catalog.get(name)

    def _check_raw_data(self, pipeline, catalog) -> None:
        if "dataset_manifest" in pipeline.all_outputs() or not set(RAW_DATA) & pipeline.inputs():
            return  # this run rebuilds the manifest from the data, or never reads the raw data
        if not all(name in catalog and catalog.exists(name) for name in RAW_DATA):
            return
        check_manifest(catalog.load("dataset_manifest"), catalog.load("raw_inputs")["inputs"], catalog.load("raw_metadata"),
                       source=str(_file_of(catalog.get("dataset_manifest")) or "dataset_manifest"))

    def _release(self) -> None:
        if self._lock is not None:
            self._lock.release()
            self._lock = None


def _file_of(dataset) -> Path | None:
    if dataset is None:
        return None
    return dataset_file(getattr(dataset, "_dataset", dataset))  # an MlflowArtifactDataset wraps the file dataset
