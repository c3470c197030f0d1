"""Which stages of a benchmark are stale: ``neurontune status [--env ENV]``.

From the pipeline structure (each stage's file inputs and outputs, found through the catalog) and
the files' modification times, without DVC: a stage is

- ``missing`` when none of its outputs exists (never run), ``incomplete`` when some are missing;
- ``stale`` when an input file or a parameter file that sets one of its blocks changed after its
  oldest output was written, or when a stage it reads from is not up to date;
- ``up to date`` otherwise (``not checked`` when its outputs are not local files, e.g. on object storage).

Every file is written atomically, so after a failure in stage k the stages before it are up to
date and consistent, and k and everything after it show as stale: rerun from there. Runtime
``--params`` of the last run are not known here, nor are code changes (``dvc status`` tracks those
for runs made through ``dvc repro``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

UP_TO_DATE, STALE, MISSING, INCOMPLETE = "up to date", "stale", "missing", "incomplete"
#: A stage whose outputs are not local files (e.g. ``NEURONTUNE_DATA_ROOT`` on object storage): not judged.
NOT_CHECKED = "not checked"
#: Blocks every stage depends on besides its own (the thread count changes the last bits of every float).
SESSION_BLOCKS = ("runtime",)


@dataclass
class StageStatus:
    name: str
    state: str
    reasons: list[str] = field(default_factory=list)


def stage_statuses(stages: dict, catalog, parameter_files: dict[str, list[Path]], project: Path) -> list[StageStatus]:
    """The status of each stage, in the order of ``stages``.

    Parameters
    ----------
    stages : {name: kedro Pipeline}, in execution order
    catalog : the environment's DataCatalog (file locations)
    parameter_files : {parameters block: the files that set keys of it}
    project : the project root (paths are shown relative to it)
    """
    def files(names) -> list[Path]:
        found = []
        for name in sorted(names):
            path = None if name == "parameters" or name.startswith("params:") else _local_file(catalog.get(name))
            if path is not None:
                found.append(path if path.is_absolute() else project / path)
        return found

    producer: dict[Path, str] = {}
    statuses: dict[str, StageStatus] = {}
    for name, pipeline in stages.items():
        inputs, outputs = files(pipeline.inputs()), files(pipeline.datasets() - pipeline.inputs())
        blocks = {item.split(":", 1)[1].split(".")[0] for item in pipeline.inputs() if item.startswith("params:")}
        settings = sorted({path for block in (*blocks, *SESSION_BLOCKS) for path in parameter_files.get(block, [])})
        status = _own_status(name, inputs, outputs, settings, project)
        upstream = sorted({producer[path] for path in inputs if path in producer} - {name},
                          key=list(stages).index)
        waiting = [stage for stage in upstream if statuses[stage].state not in (UP_TO_DATE, NOT_CHECKED)]
        if waiting:
            status.reasons.append(f"reads the outputs of {', '.join(waiting)}, which {'is' if len(waiting) == 1 else 'are'} "
                                  "not up to date")
            if status.state == UP_TO_DATE:
                status.state = STALE
        statuses[name] = status
        producer.update({path: name for path in outputs})
    return list(statuses.values())


def _local_file(dataset) -> Path | None:
    """The local file a dataset reads and writes, from its description (registry records included); None for
    memory datasets, metrics logged only to MLflow and remote storage."""
    pending = [dataset._describe()] if dataset is not None else []
    while pending:
        description = pending.pop()
        location = description.get("filepath")
        if location is not None:
            location = str(location)
            return Path(location.removeprefix("file://")) if "://" not in location.removeprefix("file://") else None
        pending += [value for value in description.values() if isinstance(value, dict)]
    return None


def _own_status(name: str, inputs: list[Path], outputs: list[Path], settings: list[Path], project: Path) -> StageStatus:
    missing = [path for path in outputs if not path.is_file()]
    if outputs and len(missing) == len(outputs):
        return StageStatus(name, MISSING, ["never run: none of its outputs exists"])
    if missing:
        return StageStatus(name, INCOMPLETE, [f"missing {_shown(path, project)}" for path in missing])
    if not outputs:
        return StageStatus(name, NOT_CHECKED, ["its outputs are not local files"])
    oldest = min(path.stat().st_mtime_ns for path in outputs)
    changed = [path for path in (*inputs, *settings) if path.is_file() and path.stat().st_mtime_ns > oldest]
    if changed:
        return StageStatus(name, STALE, [f"{_shown(path, project)} changed after its outputs were written" for path in changed])
    return StageStatus(name, UP_TO_DATE)


def _shown(path: Path, project: Path) -> str:
    try:
        return path.resolve().relative_to(project.resolve()).as_posix()
    except ValueError:
        return str(path)


def project_status(project: Path, env: str | None = None) -> list[StageStatus]:
    """The status of every stage of the project at ``project`` for Kedro environment ``env``."""
    from kedro.config import OmegaConfigLoader
    from kedro.io import DataCatalog

    from neurontune.parameters import ParameterSources
    from neurontune.pipeline_registry import STAGES, register_pipelines
    from neurontune.settings import CONFIG_LOADER_ARGS

    loader = OmegaConfigLoader(conf_source=str(project / "conf"), env=env, **CONFIG_LOADER_ARGS)
    catalog = DataCatalog.from_config(loader["catalog"])
    sources = ParameterSources.from_config(project / "conf", env or loader.default_run_env, base_env=loader.base_env,
                                           patterns=tuple(loader.config_patterns["parameters"]), relative_to=project)
    blocks = {block for _, tree in sources.layers for block in tree}
    parameter_files = {block: [project / label for label in sources.files_setting(block)] for block in blocks}
    pipelines = register_pipelines()
    return stage_statuses({name: pipelines[name] for name in STAGES}, catalog, parameter_files, project)


def all_up_to_date(statuses: list[StageStatus]) -> bool:
    return all(status.state in (UP_TO_DATE, NOT_CHECKED) for status in statuses)


def format_status(statuses: list[StageStatus], env: str | None) -> str:
    """One line per stage, its reasons below it, and the command that brings everything up to date."""
    lines = [f"{status.name:<24}{status.state}" + "".join(f"\n{'':<24}  {reason}" for reason in status.reasons)
             for status in statuses]
    todo = [status.name for status in statuses if status.state not in (UP_TO_DATE, NOT_CHECKED)]
    environment = f" --env {env}" if env else ""
    lines.append(f"\nto bring them up to date: kedro run{environment} --pipelines {','.join(todo)}" if todo
                 else "\nevery stage is up to date")
    return "\n".join(lines)
