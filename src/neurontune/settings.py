"""Kedro project settings."""

import os

from neurontune.hooks import LineageHook, NodeTimingHook

HOOKS = (LineageHook(), NodeTimingHook())

CONFIG_LOADER_ARGS = {
    "base_env": "base",
    "default_run_env": "local",
    # an environment (a benchmark, or the reduced `ci` config) overrides only the keys it names
    "merge_strategy": {"parameters": "soft"},
    # ``${env:NAME,default}`` in any config file: lets MLFLOW_TRACKING_URI override
    # the embedded SQLite store with no change to conf/.
    "custom_resolvers": {"env": lambda name, default=None: os.environ.get(name, default)},
}
