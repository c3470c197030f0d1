"""Talking to a tracking server: fail fast and clearly, say who is acting, never print a secret.

- :func:`apply_http_defaults` caps MLflow's HTTP retries (its default, 7 retries with a
  backoff factor of 2, waits about 4 minutes on a closed port) unless the user set them.
- :func:`check_tracking_server` asks the server one cheap question before a run starts, so a
  closed port, a missing password or a wrong one is one clear line, not a retry storm and a
  traceback.
- :func:`permitted` turns the server's 401/403 into :class:`NotPermittedError` naming the user
  and the action; :func:`acting_user` is who the audit trail records.

Credentials come only from ``MLFLOW_TRACKING_USERNAME`` / ``MLFLOW_TRACKING_PASSWORD`` (which
kedro-mlflow sets from ``conf/local/credentials.yml``, entry ``mlflow_credentials``); this module
never logs a password.
"""

from __future__ import annotations

import base64
import getpass
import json
import os
import urllib.error
import urllib.parse
import urllib.request
from contextlib import contextmanager
from pathlib import Path

from neurontune.tracking.redact import redact_text, split_credentials

#: MLflow's HTTP client settings the project sets when the user has not (documented in docs/team_setup.md):
#: 2 retries with backoff 1 s → a dead server fails in seconds; 60 s per request leaves room for artifacts.
HTTP_DEFAULTS = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "60",
}
#: Seconds the pre-flight check waits for an answer.
PREFLIGHT_TIMEOUT = 10
CREDENTIALS_HELP = ("set MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD, or put them under "
                    "`mlflow_credentials:` in conf/local/credentials.yml (see docs/team_setup.md)")


class TrackingServerError(RuntimeError):
    """The tracking server cannot be used: unreachable, or it refused these credentials."""


class TrackingServerUnreachable(TrackingServerError):
    """The tracking server did not answer, or answered with a server error (HTTP 5xx): an outage, not a setting."""


class NotPermittedError(PermissionError):
    """The server authenticated the user but refused the action (HTTP 403)."""


def apply_http_defaults(environ=os.environ) -> dict[str, str]:
    """Set :data:`HTTP_DEFAULTS` where the environment has no value; return what was set."""
    applied = {key: value for key, value in HTTP_DEFAULTS.items() if not environ.get(key)}
    environ.update(applied)
    return applied


def is_remote(uri: str | None) -> bool:
    return urllib.parse.urlparse(uri or "").scheme in ("http", "https")


def acting_user(tracking_uri: str | None) -> str:
    """The authenticated user on a server with credentials, else the OS user (``local`` if unknown)."""
    username = os.environ.get("MLFLOW_TRACKING_USERNAME")
    if is_remote(tracking_uri) and username:
        return username
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "local"


def check_tracking_server(uri: str, experiment: str, credentials: dict | None = None,
                          timeout: float = PREFLIGHT_TIMEOUT) -> None:
    """Raise :class:`TrackingServerError` unless ``uri`` answers a read of ``experiment`` for these credentials.

    ``credentials`` (``MLFLOW_TRACKING_USERNAME`` / ``_PASSWORD`` keys, from conf/local/credentials.yml)
    take precedence over the environment, as in kedro-mlflow. A missing experiment (404) is fine:
    the run creates it. Local stores are not checked.
    """
    if not is_remote(uri):
        check_local_store(uri)
        return
    uri, uri_username, uri_password = split_credentials(uri)  # user info is not a host name: send it as a header
    query = urllib.parse.urlencode({"experiment_name": experiment})
    request = urllib.request.Request(f"{uri.rstrip('/')}/api/2.0/mlflow/experiments/get-by-name?{query}")
    found = {**os.environ, **(credentials or {})}
    username = found.get("MLFLOW_TRACKING_USERNAME") or uri_username
    password = found.get("MLFLOW_TRACKING_PASSWORD") or uri_password
    if username and password:
        token = base64.b64encode(f"{username}:{password}".encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
    try:
        with urllib.request.urlopen(request, timeout=timeout):
            return
    except urllib.error.HTTPError as error:
        if error.code == 404:
            if _mlflow_error_code(error) == "RESOURCE_DOES_NOT_EXIST":
                return  # an MLflow server without the experiment yet: the run creates it
            raise TrackingServerError(
                f"{uri} answered HTTP 404 to MLflow's REST API (/api/2.0/mlflow/…): it is not an MLflow tracking "
                "server, or not at this path. Fix MLFLOW_TRACKING_URI (scheme, host, port, any path prefix), or unset "
                "it to use the project's local mlflow.db.") from None
        if error.code == 401:
            if not (username and password):
                missing = [name for name, value in (("MLFLOW_TRACKING_USERNAME", username),
                                                    ("MLFLOW_TRACKING_PASSWORD", password)) if not value]
                raise TrackingServerError(
                    f"the MLflow server {uri} requires authentication (HTTP 401) and {' and '.join(missing)} "
                    f"{'is' if len(missing) == 1 else 'are'} not set: {CREDENTIALS_HELP}.") from None
            raise TrackingServerError(
                f"the MLflow server {uri} refused user {username!r} (HTTP 401): wrong username or password; "
                f"{CREDENTIALS_HELP}.") from None
        if error.code == 403:
            raise TrackingServerError(
                f"the MLflow server {uri} does not let user {username!r} read experiment {experiment!r} (HTTP 403); "
                "ask an admin for READ (or EDIT to log runs).") from None
        kind = TrackingServerUnreachable if error.code >= 500 else TrackingServerError
        raise kind(f"the MLflow server {uri} answered HTTP {error.code} to a health read: {_body(error)}") from None
    except (urllib.error.URLError, OSError) as error:
        reason = getattr(error, "reason", error)
        raise TrackingServerUnreachable(
            f"cannot reach the MLflow tracking server {uri} ({reason}); start it or fix MLFLOW_TRACKING_URI "
            "(unset it to use the project's local mlflow.db).") from None


@contextmanager
def permitted(action: str, tracking_uri: str | None):
    """Re-raise the server's refusal of ``action`` as :class:`NotPermittedError` (403) or
    :class:`TrackingServerError` (401), naming the user; other errors pass unchanged."""
    from mlflow.exceptions import MlflowException

    tracking_uri = redact_text(tracking_uri or "")
    try:
        yield
    except MlflowException as error:
        status = error.get_http_status_code()
        user = os.environ.get("MLFLOW_TRACKING_USERNAME") or "(no user)"
        if status == 403 or error.error_code == "PERMISSION_DENIED":
            raise NotPermittedError(
                f"not permitted: user {user!r} may not {action} on {tracking_uri} (HTTP 403). Registering "
                "versions and moving aliases is the `promoter` account's job (MANAGE on neurontune-* models; "
                "see docs/team_setup.md); nothing was changed.") from None
        if status == 401 or error.error_code == "UNAUTHENTICATED":
            raise TrackingServerError(f"the MLflow server {tracking_uri} refused user {user!r} (HTTP 401) "
                                      f"while trying to {action}: {CREDENTIALS_HELP}.") from None
        raise


def check_local_store(uri: str) -> None:
    """Raise :class:`TrackingServerError` when a ``sqlite:///`` store exists but cannot be read (truncated,
    overwritten, not a database). A missing file is fine: MLflow creates it."""
    if not (uri or "").startswith("sqlite:///"):
        return
    path = Path(uri[len("sqlite:///"):])
    if not path.is_file():
        return
    import sqlite3

    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as connection:
            verdict = connection.execute("PRAGMA quick_check(1)").fetchone()[0]
    except sqlite3.DatabaseError as error:
        verdict = str(error)
    if verdict != "ok":
        raise TrackingServerError(
            f"the MLflow store {path} is damaged (sqlite: {verdict}); nothing was run. Restore it from a backup, or "
            f"move it aside (`mv {path.name} {path.name}.damaged`) to start an empty store (its runs and registered "
            "models are then not available).")


def _mlflow_error_code(error: urllib.error.HTTPError) -> str | None:
    """The ``error_code`` of an MLflow REST error body (None for anything else, e.g. an HTML 404 page)."""
    try:
        return json.loads(error.read().decode(errors="replace")).get("error_code")
    except (OSError, ValueError, AttributeError):
        return None


def validate_credentials(entry, source: str = "conf/local/credentials.yml, entry mlflow_credentials") -> dict:
    """The ``mlflow_credentials`` entry as a ``{VARIABLE: text}`` mapping; raise naming ``source`` otherwise."""
    if entry in (None, {}):
        return {}
    if not isinstance(entry, dict):
        raise TrackingServerError(
            f"{source} must be a mapping such as `{{MLFLOW_TRACKING_USERNAME: promoter, MLFLOW_TRACKING_PASSWORD: …}}`; "
            f"got a {type(entry).__name__}. See conf/local/credentials.yml.example.")
    bad = sorted(str(key) for key, value in entry.items()
                 if not (isinstance(key, str) and key.startswith("MLFLOW_") and isinstance(value, (str, int))))
    if bad:
        raise TrackingServerError(f"{source}: {bad} must be MLFLOW_* variable names with text values "
                                  "(e.g. MLFLOW_TRACKING_USERNAME, MLFLOW_TRACKING_PASSWORD).")
    return {key: str(value) for key, value in entry.items()}


def refusal_message(error: BaseException) -> str | None:
    """One line for the tracking server's refusal (HTTP 401/403) of an MLflow call, else None."""
    from mlflow.exceptions import MlflowException

    if not isinstance(error, MlflowException):
        return None
    status, user = error.get_http_status_code(), os.environ.get("MLFLOW_TRACKING_USERNAME") or "(no user)"
    if status == 403 or error.error_code == "PERMISSION_DENIED":
        return (f"not permitted: the MLflow server refused user {user!r} a write (HTTP 403: {error.message}). A "
                "reader may read runs and models; logging runs needs EDIT on the experiment, registering and moving "
                "aliases the promoter role (docs/team_setup.md). Nothing more was written.")
    if status == 401 or error.error_code == "UNAUTHENTICATED":
        return f"the MLflow server refused user {user!r} (HTTP 401): {CREDENTIALS_HELP}."
    return None


def _body(error: urllib.error.HTTPError) -> str:
    try:
        text = error.read().decode(errors="replace")[:200]
        return json.loads(text).get("message", text) if text.startswith("{") else text
    except (OSError, ValueError):
        return ""
