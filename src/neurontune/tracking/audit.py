"""The audit trail of alias moves, kept where a registered model's MANAGE permission cannot edit it.

Each move the promotion code makes is one run of the experiment :func:`audit_experiment_name`
(default ``neurontune-audit``) whose **parameters** are the entry — MLflow parameters cannot be
changed once logged, and deleting a run needs MANAGE on that experiment, which the team server's
bootstrap gives to nobody but admins (the promoter gets EDIT: it can append, not edit or delete).
Deleting a model version leaves its moves here. :func:`alias_history` reads them back and adds a
``moved outside the gate`` entry for every alias that points where no recorded move put it.
"""

from __future__ import annotations

import os

from mlflow.entities import Param
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

AUDIT_EXPERIMENT = "neurontune-audit"
OUTSIDE_THE_GATE = "moved outside the gate"
FIELDS = ("model", "alias", "version", "from_version", "by", "at", "run_id", "git_commit", "decision", "reason")


def audit_experiment_name(environ=os.environ) -> str:
    return environ.get("NEURONTUNE_AUDIT_EXPERIMENT") or AUDIT_EXPERIMENT


def record_move(client: MlflowClient, entry: dict) -> None:
    """Append ``entry`` (an alias move: :data:`FIELDS`) to the audit experiment as one finished run."""
    experiment = client.get_experiment_by_name(audit_experiment_name())
    experiment_id = experiment.experiment_id if experiment else client.create_experiment(audit_experiment_name())
    run = client.create_run(experiment_id, run_name=f"{entry['model']}@{entry['alias']} → v{entry['version']}",
                            tags={"neurontune.audit": "alias_move", "model": str(entry["model"])})
    client.log_batch(run.info.run_id, params=[Param(key, "" if entry.get(key) is None else str(entry[key])[:500])
                                              for key in FIELDS])
    client.set_terminated(run.info.run_id)


def recorded_moves(client: MlflowClient, name: str) -> list[dict]:
    """Every recorded move of ``name``'s aliases, oldest first (deleted versions included)."""
    experiment = client.get_experiment_by_name(audit_experiment_name())
    if experiment is None:
        return []
    runs = client.search_runs([experiment.experiment_id], filter_string=f"params.model = '{name}'",
                              order_by=["attributes.start_time ASC"], max_results=5000)
    return [{key: (run.data.params.get(key) or None) for key in FIELDS if key != "model"} for run in runs]


def alias_history(client: MlflowClient, name: str) -> list[dict]:
    """:func:`recorded_moves`, then one ``moved outside the gate`` entry per alias whose target no recorded move set."""
    moves = recorded_moves(client, name)
    try:
        aliases = dict(client.get_registered_model(name).aliases)
    except MlflowException:
        aliases = {}
    last = {move["alias"]: move["version"] for move in moves}
    for alias, version in sorted(aliases.items()):
        if last.get(alias) != str(version):
            moves.append({"alias": alias, "version": str(version), "from_version": last.get(alias), "by": "unknown",
                          "at": "unknown", "run_id": None, "git_commit": None, "decision": OUTSIDE_THE_GATE,
                          "reason": "no move to this version is recorded: it was made outside the promotion code"})
    return moves
