"""Honest run states: an interrupted ``kedro run`` ends KILLED, and a run left RUNNING by a process
that no longer exists is found and marked.

Each run started by the lineage hook is tagged with the process that owns it
(:data:`PID_TAG`, :data:`HOST_TAG`, :data:`STARTED_TAG`). A RUNNING run is *stale* when its host is
this one and that process is gone (or the pid now belongs to a younger process); the next
``kedro run`` and ``neurontune runs --clean-stale`` mark such runs KILLED.
"""

from __future__ import annotations

import atexit
import logging
import os
import signal
import socket
import time

import mlflow
from mlflow.entities import RunStatus
from mlflow.tracking import MlflowClient

logger = logging.getLogger(__name__)

PID_TAG = "neurontune.pid"
HOST_TAG = "neurontune.host"
STARTED_TAG = "neurontune.process_started"
INTERRUPTED_TAG = "neurontune.interrupted_by"
STALE_TAG = "neurontune.stale_cleaned"


class RunInterrupted(KeyboardInterrupt):
    """SIGTERM turned into an exception, so the run unwinds and is recorded KILLED."""


def owner_tags() -> dict[str, str]:
    """Which process on which host owns the active run."""
    return {PID_TAG: str(os.getpid()), HOST_TAG: socket.gethostname(), STARTED_TAG: str(_process_start(os.getpid()))}


def process_alive(pid: int, started: str | None = None) -> bool:
    """Whether ``pid`` runs on this host (and, when ``started`` is known, is the same process)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # exists, owned by someone else
    return started in (None, "None", "") or str(_process_start(pid)) == started


def stale_runs(client: MlflowClient, experiment_ids: list[str]) -> list:
    """RUNNING runs of this host whose owning process is gone."""
    if not experiment_ids:
        return []
    host = socket.gethostname()
    running = client.search_runs(experiment_ids, f"attributes.status = 'RUNNING' and tags.`{HOST_TAG}` = '{host}'",
                                 max_results=1000)
    return [run for run in running
            if run.data.tags.get(PID_TAG, "").isdigit()
            and not process_alive(int(run.data.tags[PID_TAG]), run.data.tags.get(STARTED_TAG))]


def mark_stale(client: MlflowClient, runs: list) -> list[str]:
    """End each stale run as KILLED, tagged with when and by whom it was cleaned; return their ids."""
    marked = []
    for run in runs:
        client.set_tag(run.info.run_id, STALE_TAG, f"pid {run.data.tags[PID_TAG]} gone; marked by pid {os.getpid()} "
                                                   f"at {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())}")
        client.set_terminated(run.info.run_id, RunStatus.to_string(RunStatus.KILLED))
        logger.warning("run %s (%s) was left RUNNING by pid %s, which is gone: marked KILLED",
                       run.info.run_id, run.info.run_name, run.data.tags[PID_TAG])
        marked.append(run.info.run_id)
    return marked


class InterruptGuard:
    """While a pipeline runs: SIGINT/SIGTERM unwind the run, and at exit it is ended KILLED, not FINISHED.

    MLflow's own exit handler would end an interrupted run as FINISHED; this one is registered
    later, so it runs first.
    """

    def __init__(self):
        self.signal_name: str | None = None
        self._previous: dict[int, object] = {}

    def install(self) -> None:
        for number in (signal.SIGINT, signal.SIGTERM):
            self._previous[number] = signal.signal(number, self._handle)
        atexit.register(self._end_interrupted_run)

    def close(self) -> None:
        """The pipeline ended (finished or failed): restore the handlers; nothing to do at exit."""
        self._restore()
        atexit.unregister(self._end_interrupted_run)

    def _restore(self) -> None:
        for number, handler in self._previous.items():
            signal.signal(number, handler)
        self._previous.clear()

    def _handle(self, number, frame) -> None:
        self.signal_name = signal.Signals(number).name
        self._restore()  # a second Ctrl-C gets the default behaviour
        raise (KeyboardInterrupt if number == signal.SIGINT else RunInterrupted)(f"{self.signal_name} received")

    def _end_interrupted_run(self) -> None:
        if self.signal_name is None:
            return
        while (run := mlflow.active_run()) is not None:
            mlflow.set_tag(INTERRUPTED_TAG, self.signal_name)
            mlflow.end_run(RunStatus.to_string(RunStatus.KILLED))
            logger.warning("MLflow run %s ended KILLED (%s)", run.info.run_id, self.signal_name)


def _process_start(pid: int) -> int | None:
    """Start time of ``pid`` in clock ticks since boot (Linux ``/proc``); None elsewhere."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return int(handle.read().rsplit(")", 1)[1].split()[19])
    except (OSError, IndexError, ValueError):
        return None
