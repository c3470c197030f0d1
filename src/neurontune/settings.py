"""Kedro project settings."""

import os
from pathlib import Path

from kedro.utils import find_kedro_project

from neurontune import user_errors
from neurontune.config_loader import ProjectConfigLoader
from neurontune.hooks import LineageHook, NodeTimingHook, ObjectStoreHook
from neurontune.parameter_hooks import RunSettingsHook
from neurontune.run_guard import RunGuardHook

# RunSettingsHook is registered last and runs first (tryfirst): parameters are checked before anything else
HOOKS = (ObjectStoreHook(), LineageHook(), NodeTimingHook(), RunGuardHook(), RunSettingsHook())


def tracking_uri() -> str:
    """``MLFLOW_TRACKING_URI`` if set, else a SQLite store in the project root (wherever kedro is started from)."""
    if os.environ.get("MLFLOW_TRACKING_URI"):
        return os.environ["MLFLOW_TRACKING_URI"]
    root = find_kedro_project(Path.cwd()) or Path.cwd()
    return f"sqlite:///{(root / 'mlflow.db').as_posix()}"


user_errors.install()  # a bad configuration, parameter, server or permission: one message, not a traceback

CONFIG_LOADER_CLASS = ProjectConfigLoader
CONFIG_LOADER_ARGS = {
    "base_env": "base",
    "default_run_env": "local",
    # an environment (a benchmark, or the reduced `ci` config) overrides only the keys it names
    "merge_strategy": {"parameters": "soft"},
    # kedro-mlflow's patterns, declared here so the lineage hook can read mlflow.yml before kedro-mlflow runs
    "config_patterns": {"mlflow": ["mlflow*", "mlflow*/**", "**/mlflow*"]},
    "custom_resolvers": {
        "env": lambda name, default=None: os.environ.get(name, default),
        "tracking_uri": tracking_uri,
    },
}
