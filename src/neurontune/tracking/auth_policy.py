"""The team server's authentication function: MLflow's basic auth, plus one rule MLflow lacks.

MLflow lets any authenticated user create a registered model and then gives its creator MANAGE on
it, so a reader could take over a future ``neurontune-<benchmark>`` name before it is bootstrapped.
Here, creating (or renaming to) a name under the project's prefix is refused with HTTP 403 unless
the user is an admin or one of the ``promoters`` listed in the auth config file::

    [mlflow]
    authorization_function = neurontune.tracking.auth_policy:authenticate_request
    ...
    [neurontune]
    promoters = promoter
    model_prefix = neurontune-

The server process must be able to import ``neurontune`` (install the project into its environment).
"""

from __future__ import annotations

import configparser
import functools
import os

from flask import Response, jsonify, request
from mlflow.server.auth import authenticate_request_basic_auth, store

DEFAULT_PREFIX = "neurontune-"
_CREATES = ("/registered-models/create", "/registered-models/rename")


@functools.lru_cache(maxsize=1)
def policy(path: str | None = None) -> tuple[frozenset[str], str]:
    """``(promoters, model prefix)`` from the ``[neurontune]`` section of the auth config file."""
    parser = configparser.ConfigParser()
    parser.read(path or os.environ.get("MLFLOW_AUTH_CONFIG_PATH", ""))
    section = parser["neurontune"] if parser.has_section("neurontune") else {}
    promoters = frozenset(name.strip() for name in section.get("promoters", "").split(",") if name.strip())
    return promoters, section.get("model_prefix", DEFAULT_PREFIX)


def refused_name(username: str, method: str, path: str, body: dict | None) -> str | None:
    """The project-prefixed model name this request would create without being allowed to, else None."""
    if method != "POST" or not path.endswith(_CREATES):
        return None
    promoters, prefix = policy()
    name = (body or {}).get("new_name" if path.endswith("rename") else "name") or ""
    if not str(name).startswith(prefix) or username in promoters:
        return None
    user = store.get_user(username)
    return None if user.is_admin else str(name)


def authenticate_request():
    authorization = authenticate_request_basic_auth()
    if isinstance(authorization, Response):
        return authorization
    name = refused_name(authorization.username, request.method, request.path, request.get_json(silent=True))
    if name is None:
        return authorization
    prefix = policy()[1]
    response = jsonify({"error_code": "PERMISSION_DENIED",
                        "message": f"registered model names starting with {prefix!r} are the promoter role's: user "
                                   f"{authorization.username!r} may not create {name!r} (an admin runs `neurontune "
                                   "team-server bootstrap` to create it)."})
    response.status_code = 403
    return response
