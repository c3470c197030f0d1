"""Bootstrap the users and permissions of an authenticated team MLflow server (``--app-name basic-auth``).

Roles (docs/team_setup.md):

- ``promoter``: the service account CI's ``kedro run`` and the promotion gate use — MANAGE on
  every ``neurontune-<benchmark>`` registered model (register versions, move ``@challenger`` and
  ``@champion``) and EDIT on the experiment (log runs).
- ``editor``: a person who logs runs — EDIT on the experiment, READ on the models.
- ``reader``: everybody else — the server's ``default_permission = READ``; no grant needed.

The admin's credentials come from ``MLFLOW_TRACKING_USERNAME`` / ``MLFLOW_TRACKING_PASSWORD``; the
users and their passwords from a YAML file kept outside the repository::

    promoter: {role: promoter, password: "…"}
    alice: {role: editor, password: "…"}
    bob: {role: reader, password: "…"}

Idempotent: existing users keep their password; grants are set to what the role says.
"""

from __future__ import annotations

import logging
import subprocess
from pathlib import Path

import yaml
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from neurontune.tracking.audit import audit_experiment_name

logger = logging.getLogger(__name__)

ROLES = ("promoter", "editor", "reader")
MODEL_PREFIX = "neurontune-"


def read_users(path: Path) -> dict[str, dict]:
    """The users file, validated; refuses a file inside a git work tree (passwords are never committed)."""
    if not path.is_file():
        raise ValueError(f"users file {path} does not exist.")
    inside = subprocess.run(["git", "-C", str(path.resolve().parent), "rev-parse", "--is-inside-work-tree"],
                            capture_output=True, text=True)
    if inside.returncode == 0 and inside.stdout.strip() == "true":
        raise ValueError(f"users file {path} is inside a git work tree; keep passwords outside any repository.")
    users = yaml.safe_load(path.read_text()) or {}
    if not isinstance(users, dict) or not users:
        raise ValueError(f"users file {path} must map each username to {{role, password}}.")
    for name, entry in users.items():
        if not isinstance(entry, dict) or entry.get("role") not in ROLES:
            raise ValueError(f"user {name!r} in {path}: role must be one of {list(ROLES)}; got "
                             f"{entry.get('role') if isinstance(entry, dict) else entry!r}.")
        if not isinstance(entry.get("password"), str) or len(entry["password"]) < 12:
            raise ValueError(f"user {name!r} in {path}: password must be a string of at least 12 characters.")
    return users


def benchmark_models(conf_dir: Path) -> list[str]:
    """``neurontune-<benchmark>`` for every benchmark name found in the project's Kedro environments."""
    names = set()
    for parameters in conf_dir.glob("*/parameters_data_versioning.yml"):
        name = ((yaml.safe_load(parameters.read_text()) or {}).get("data_versioning") or {}).get("name")
        if name:
            names.add(f"{MODEL_PREFIX}{name}")
    return sorted(names)


def bootstrap(tracking_uri: str, users: dict[str, dict], models: list[str], experiment: str) -> list[str]:
    """Create the experiment, the registered models and the users; grant what each role needs.

    Returns one line per action, for the operator (never a password).
    """
    from mlflow.server.auth.client import AuthServiceClient

    admin = AuthServiceClient(tracking_uri)
    client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    done = []
    found = client.get_experiment_by_name(experiment)
    experiment_id = found.experiment_id if found else client.create_experiment(experiment)
    done.append(f"experiment {experiment!r} (id {experiment_id}) {'exists' if found else 'created'}")
    audit = client.get_experiment_by_name(audit_experiment_name())
    audit_id = audit.experiment_id if audit else client.create_experiment(audit_experiment_name())
    done.append(f"audit experiment {audit_experiment_name()!r} (id {audit_id}) {'exists' if audit else 'created'}")
    # every name under the prefix is the promoter's, including one somebody else created first
    models = sorted(set(models) | {found.name for found in client.search_registered_models(f"name LIKE '{MODEL_PREFIX}%'")})
    for model in models:
        try:
            client.create_registered_model(model, description="NeuronTune debiased model; promoted by the gate.")
            done.append(f"registered model {model} created")
        except MlflowException as error:
            if error.error_code != "RESOURCE_ALREADY_EXISTS":
                raise
            done.append(f"registered model {model} exists")
    done += repair_grants(admin, users, models, audit_id)
    for username, entry in users.items():
        try:
            admin.create_user(username, entry["password"])
            done.append(f"user {username} created ({entry['role']})")
        except MlflowException as error:
            if error.error_code != "RESOURCE_ALREADY_EXISTS":
                raise
            done.append(f"user {username} exists ({entry['role']}); password left unchanged")
        grants = {"promoter": [("experiment", experiment_id, "EDIT"), ("experiment", audit_id, "EDIT")]
                              + [("registered_model", m, "MANAGE") for m in models],
                  "editor": [("experiment", experiment_id, "EDIT")],
                  "reader": []}[entry["role"]]
        for resource_type, resource_id, permission in grants:
            _grant(admin, username, resource_type, resource_id, permission)
            done.append(f"  {username}: {permission} on {resource_type} {resource_id}")
    return done


def repair_grants(admin, users: dict[str, dict], models: list[str], audit_id: str) -> list[str]:
    """Revoke, loudly, any grant above READ that a user who is not a promoter holds on a project model or on the
    audit experiment (e.g. the MANAGE MLflow gives whoever created a name first); return one line per repair."""
    from mlflow.server.auth.routes import LIST_USERS

    promoters = {name for name, entry in users.items() if entry["role"] == "promoter"}
    known = [user["username"] for user in admin._request(LIST_USERS, "GET").get("users", [])
             if not user.get("is_admin")]
    lines = []
    for username in sorted(set(known) - promoters):
        for resource_type, resource_id in [("registered_model", model) for model in models] + [("experiment", audit_id)]:
            try:
                held = admin.get_user_permission(username, resource_type, resource_id).permission
            except MlflowException:
                continue  # no grant: the server's default (READ) applies
            if held in (None, "READ", "NO_PERMISSIONS"):
                continue
            admin.revoke_user_permission(username, resource_type, resource_id)
            lines.append(f"REPAIRED: {username} held {held} on {resource_type} {resource_id} but is not a promoter: "
                         "revoked (now the server's default, READ)")
            logger.warning(lines[-1])
    return lines


def _grant(admin, username: str, resource_type: str, resource_id: str, permission: str) -> None:
    try:
        admin.grant_user_permission(username, resource_type, resource_id, permission)
    except MlflowException as error:
        if error.error_code != "RESOURCE_ALREADY_EXISTS":
            raise
        admin.revoke_user_permission(username, resource_type, resource_id)
        admin.grant_user_permission(username, resource_type, resource_id, permission)
