"""``neurontune lineage``, ``neurontune runs`` and ``neurontune team-server``: the tracking commands.

Each exits with one line: 2 (bad input or configuration) on a bad URI, an unknown model, a refusing
server or a local store that does not exist (none is ever created); 4 when the server does not answer
(:mod:`neurontune.exit_codes`).
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from neurontune.exit_codes import BAD_INPUT, FAILED, exit_code_for


def add_tracking_commands(commands) -> None:
    """Register the tracking subcommands on ``commands`` (argparse subparsers); each sets ``handler``."""
    lineage = commands.add_parser("lineage", help="audit a registered model: run, commit, parameters, data, ERM model, "
                                                  "metrics, alias history")
    lineage.add_argument("model_uri", help="models:/NAME@ALIAS or models:/NAME/VERSION")
    lineage.add_argument("--json", action="store_true", help="print the chain as JSON")
    lineage.add_argument("--verify", action="store_true",
                         help="compare the files on disk with the digests the model's run recorded; exit 1 on any mismatch")
    lineage.add_argument("--check-dvc-lock", action="store_true",
                         help="also compare the files with the committed dvc.lock (informational: not the exit code)")
    _store_options(lineage)
    lineage.set_defaults(handler=run_lineage)

    runs = commands.add_parser("runs", help="MLflow runs left RUNNING by a process that no longer exists")
    runs.add_argument("--clean-stale", action="store_true", help="mark them KILLED (default: only list them)")
    runs.add_argument("--experiment", default=os.environ.get("NEURONTUNE_EXPERIMENT", "neurontune"))
    _store_options(runs)
    runs.set_defaults(handler=run_runs)

    team = commands.add_parser("team-server", help="create the users and permissions of an authenticated MLflow server")
    team.add_argument("action", choices=["bootstrap"])
    team.add_argument("--tracking-uri", required=True, help="the server, e.g. http://mlflow.internal:5000")
    team.add_argument("--users", required=True, type=Path, help="YAML outside the repository: NAME: {role, password}")
    team.add_argument("--experiment", default=os.environ.get("NEURONTUNE_EXPERIMENT", "neurontune"))
    team.add_argument("--model", action="append", dest="models",
                      help="registered model the promoter manages (repeatable; default: neurontune-<benchmark> for "
                           "every benchmark in conf/)")
    team.set_defaults(handler=run_team_server)


def run_lineage(arguments: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    """Print the chain (or JSON); with --verify, 1 when a recorded file differs on disk."""
    from neurontune.tracking.lineage import LineageError, check_dvc_lock, format_lineage, resolve_lineage, verify_files
    from neurontune.tracking.redact import redact_text

    project_dir = arguments.project_dir.resolve()
    try:
        client = _client(arguments, project_dir)
        chain = resolve_lineage(arguments.model_uri, project_dir, client)
    except LineageError as error:
        parser.exit(exit_code_for(error), f"neurontune lineage: {redact_text(str(error))}\n")
    if arguments.verify:
        chain["verification"] = verify_files(chain, project_dir)
    if arguments.check_dvc_lock:
        chain["dvc_lock"] = check_dvc_lock(project_dir)
    print(json.dumps(chain, indent=2, sort_keys=True, default=str) if arguments.json else format_lineage(chain))
    return 1 if arguments.verify and not chain["verification"]["ok"] else 0


def run_runs(arguments: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    """List (or, with --clean-stale, mark KILLED) the runs whose owning process is gone."""
    from neurontune.tracking.lineage import LineageError
    from neurontune.tracking.runs import PID_TAG, mark_stale, stale_runs

    try:
        client = _client(arguments, arguments.project_dir.resolve())
        experiment = client.get_experiment_by_name(arguments.experiment)
        stale = [] if experiment is None else stale_runs(client, [experiment.experiment_id])
    except LineageError as error:
        parser.exit(exit_code_for(error), f"neurontune runs: {error}\n")
    for run in stale:
        print(f"stale   {run.info.run_id}  {run.info.run_name!r}  pid {run.data.tags[PID_TAG]} is gone")
    if arguments.clean_stale:
        marked = mark_stale(client, stale)
        print(f"marked {len(marked)} stale run(s) KILLED")
    else:
        print(f"{len(stale)} stale run(s)" + (": rerun with --clean-stale to mark them KILLED" if stale else ""))
    return 0


def run_team_server(arguments: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    """Create the experiment, the models and the users of an authenticated server (admin credentials from the environment)."""
    from mlflow.exceptions import MlflowException

    from neurontune.tracking.connection import TrackingServerError, apply_http_defaults, check_tracking_server
    from neurontune.tracking.redact import adopt_uri_credentials
    from neurontune.tracking.team import benchmark_models, bootstrap, read_users

    apply_http_defaults()
    arguments.tracking_uri = adopt_uri_credentials(arguments.tracking_uri, os.environ)
    try:
        users = read_users(arguments.users)
        check_tracking_server(arguments.tracking_uri, arguments.experiment)
        models = arguments.models or benchmark_models(Path.cwd() / "conf")
        if not models:
            raise ValueError("no registered model to grant: pass --model NAME, or run from the project root (reads conf/).")
        for line in bootstrap(arguments.tracking_uri, users, models, arguments.experiment):
            print(line)
    except (ValueError, TrackingServerError) as error:
        parser.exit(exit_code_for(error), f"neurontune team-server: {error}\n")
    except MlflowException as error:
        code = exit_code_for(error)  # an MlflowException: 4 when the server did not answer, else a refusal (2)
        parser.exit(BAD_INPUT if code == FAILED else code, "neurontune team-server: the server refused: "
                    f"{error.message.splitlines()[0]} (are MLFLOW_TRACKING_USERNAME/PASSWORD the admin's?)\n")
    return 0


def _store_options(command) -> None:
    command.add_argument("--project-dir", type=Path, default=Path.cwd(), help="project root (default: here)")
    command.add_argument("--tracking-uri", help="default: $MLFLOW_TRACKING_URI, else the project's mlflow.db")


def _client(arguments: argparse.Namespace, project_dir: Path):
    """A client for the chosen store, after checking it exists (local) or answers (server)."""
    from mlflow.tracking import MlflowClient

    from neurontune.tracking.connection import TrackingServerError, apply_http_defaults, check_tracking_server
    from neurontune.tracking.lineage import LineageError, default_tracking_uri, require_existing_store
    from neurontune.tracking.redact import adopt_uri_credentials

    apply_http_defaults()
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # keep the output to the report
    uri = arguments.tracking_uri or os.environ.get("MLFLOW_TRACKING_URI") or default_tracking_uri(project_dir)
    uri = adopt_uri_credentials(uri, os.environ)  # a password in the URI travels as a header, never printed
    require_existing_store(uri)
    try:
        check_tracking_server(uri, os.environ.get("NEURONTUNE_EXPERIMENT", "neurontune"))
    except TrackingServerError as error:
        raise LineageError(str(error)) from None
    return MlflowClient(tracking_uri=uri, registry_uri=uri)
