"""Kedro's ``OmegaConfigLoader`` with errors that name the file: an unknown ``--env`` and a YAML file
Kedro cannot construct (a duplicate key) are one line naming the environment or the file, not a
traceback ending in ``ConstructorError`` without the file's name."""

from __future__ import annotations

from pathlib import Path

import yaml
from kedro.config import OmegaConfigLoader
from omegaconf import OmegaConf


class ConfigurationError(ValueError):
    """The project's configuration cannot be read: a missing environment or a malformed file."""


class ProjectConfigLoader(OmegaConfigLoader):
    def __init__(self, conf_source: str, env: str | None = None, *args, **kwargs):
        super().__init__(conf_source, env, *args, **kwargs)
        root = Path(str(conf_source))
        if env and env not in (self.base_env, self.default_run_env) and root.is_dir() and not (root / env).is_dir():
            known = sorted(path.name for path in root.iterdir() if path.is_dir() and path.name not in (self.base_env, "local"))
            raise ConfigurationError(f"no Kedro environment {env!r}: {root / env} does not exist. Environments here: "
                                     f"{', '.join(known)} (see conf/README.md).")

    def _read_dir_configs(self, conf_path: str, patterns, key: str, processed_files: set,
                          read_environment_variables: bool | None = False):
        # every loading path of Kedro 1.x (__getitem__ and load_and_merge_dir_config) reads files here
        try:
            return super()._read_dir_configs(conf_path, patterns, key, processed_files, read_environment_variables)
        except yaml.MarkedYAMLError as error:
            raise ConfigurationError(_locate(conf_path, patterns, error)) from None


def _locate(conf_path: str, patterns, error: yaml.MarkedYAMLError) -> str:
    """``<file>, line N: <problem>`` for the first file under ``conf_path`` that fails to load as ``error`` did."""
    for pattern in patterns:
        for path in sorted(Path(conf_path).glob(pattern)):
            try:
                OmegaConf.load(path)
            except yaml.MarkedYAMLError as found:
                mark = found.problem_mark
                where = f", line {mark.line + 1}" if mark is not None else ""
                return (f"cannot read {path}{where}: {found.problem} ({found.context or 'YAML'}); each key may appear "
                        "once per mapping: merge or remove the repeated one.")
    return f"cannot read the configuration under {conf_path}: {error}"
