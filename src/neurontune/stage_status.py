"""Which stages of a benchmark are stale: ``neurontune status [--env ENV]``.

From the pipeline structure (each node's file inputs and outputs, found through the catalog, and the
parameter files of the blocks it reads) and the files' modification times, without DVC — a file whose time
is newer but whose content is the one it had when the outputs were written (by the content ledger the runs
keep, :mod:`neurontune.content_ledger`) is not a change. A stage is

- ``missing`` when none of its outputs exists (never run), ``incomplete`` when some are missing;
- ``stale`` when one of its nodes reads a file or a parameter file that changed after that node's
  outputs were written, or a file that a stale node (of any stage) has to rewrite;
- ``up to date`` otherwise (``not checked`` when its outputs are not local files, e.g. on object storage).

Every file is written atomically, so after a failed run every file is whole, and the stages whose
nodes did not all run after their inputs changed show as stale: rerun them. Runtime ``--params`` of
the last run are not known here, nor are code changes (``dvc status`` tracks those for runs made
through ``dvc repro``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from neurontune.content_ledger import load_ledger, unchanged_since

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
    #: whether bringing the project up to date reruns it: not up to date, or it reads what a rerun stage rewrites
    rerun: bool = False


def stage_statuses(stages: dict, catalog, parameter_files: dict[str, list[Path]], project: Path,
                   ledger: dict | None = None) -> list[StageStatus]:
    """The status of each stage, in the order of ``stages``.

    Judged node by node, in the order Kedro runs them (one ``kedro run`` interleaves the nodes of several
    stages): a node is stale when a file it reads (through in-memory datasets) or a parameter file of its
    blocks changed after its oldest output, or when a file it reads was written by a stale node.

    Parameters
    ----------
    stages : {name: kedro Pipeline}, in execution order
    catalog : the environment's DataCatalog (file locations)
    parameter_files : {parameters block: the files that set keys of it}
    project : the project root (paths are shown relative to it)
    ledger : :mod:`neurontune.content_ledger`'s record of contents; an input newer than the outputs but with the
        content it had when they were written does not make them stale
    """
    from kedro.pipeline import Pipeline

    located: dict[str, Path | None] = {}

    def file(name: str) -> Path | None:
        if name not in located:
            located[name] = catalog_file(catalog, name, project)
        return located[name]

    stage_of = {node: name for name, pipeline in stages.items() for node in pipeline.nodes}
    made_by = {output: node for node in stage_of for output in node.outputs}

    def reads(dataset: str, seen: frozenset = frozenset()) -> set[Path]:
        """The files (data and parameters) behind ``dataset``, through the nodes that make in-memory ones."""
        if dataset.startswith("params:"):
            return {path for block in (dataset.split(":", 1)[1].split(".")[0], *SESSION_BLOCKS)
                    for path in parameter_files.get(block, [])}
        if file(dataset) is not None:
            return {file(dataset)}
        if dataset in made_by and dataset not in seen:
            return set().union(*(reads(item, seen | {dataset}) for item in made_by[dataset].inputs))
        return set()

    written_by: dict[Path, str] = {}  # file → stage of the node that writes it
    stale_files: set[Path] = set()
    reasons: dict[str, list[str]] = {name: [] for name in stages}
    stage_reads: dict[str, set[Path]] = {name: set() for name in stages}
    flagged: set[str] = set()
    for node in Pipeline(list(stage_of)).nodes:  # Kedro's run order
        stage = stage_of[node]
        written = [file(item) for item in node.outputs if file(item) is not None]
        written_by.update(dict.fromkeys(written, stage))
        present = [path for path in written if path.is_file()]
        if len(present) < len(written):  # a missing output: the stage reports it; readers must wait for it
            stale_files.update(written)
        read = set().union(*(reads(item) for item in node.inputs))
        stage_reads[stage] |= read
        if not present:
            continue
        oldest = min(path.stat().st_mtime_ns for path in present)
        for path in sorted(read):
            if path in stale_files:
                why = None if written_by[path] == stage else \
                    f"reads {_shown(path, project)}, which stage {written_by[path]} has to rewrite"
            elif path.is_file() and path.stat().st_mtime_ns > oldest:
                if ledger and unchanged_since(ledger, path, project, oldest):
                    continue  # a newer time, the same content (e.g. an identical file copied again)
                why = f"{_shown(path, project)} changed after its outputs were written"
            else:
                continue
            stale_files.update(written)
            reasons[stage] += [why] if why and why not in reasons[stage] else []
            flagged.add(stage)
    statuses = []
    for name, pipeline in stages.items():
        outputs = sorted({file(item) for node in pipeline.nodes for item in node.outputs if file(item) is not None})
        missing = [path for path in outputs if not path.is_file()]
        if not outputs:
            statuses.append(StageStatus(name, NOT_CHECKED, ["its outputs are not local files"]))
        elif len(missing) == len(outputs):
            statuses.append(StageStatus(name, MISSING, ["never run: none of its outputs exists"]))
        elif missing:
            statuses.append(StageStatus(name, INCOMPLETE, [f"missing {_shown(path, project)}" for path in missing]))
        else:
            statuses.append(StageStatus(name, STALE if name in flagged else UP_TO_DATE, reasons[name]))
    rerun = set()
    for status in statuses:  # in run order: a stage reading what a rerun stage rewrites reruns too
        status.rerun = status.state not in (UP_TO_DATE, NOT_CHECKED) or any(
            written_by.get(path) in rerun for path in stage_reads[status.name])
        rerun |= {status.name} if status.rerun else set()
    return statuses


def catalog_file(catalog, name: str, project: Path) -> Path | None:
    """The local file (or folder) behind catalog entry ``name``, relative paths taken under ``project``; None for
    parameters, memory datasets, metrics logged only to MLflow and remote storage. Shared with
    :mod:`neurontune.dvc_stages`, so ``neurontune status`` and ``dvc.yaml`` see the same files."""
    if name == "parameters" or name.startswith("params:"):
        return None
    path = _local_file(catalog.get(name))
    return None if path is None else path if path.is_absolute() else project / path


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
    return stage_statuses({name: pipelines[name] for name in STAGES}, catalog, parameter_files, project,
                          load_ledger(project))


def all_up_to_date(statuses: list[StageStatus]) -> bool:
    return all(status.state in (UP_TO_DATE, NOT_CHECKED) for status in statuses)


def format_status(statuses: list[StageStatus], env: str | None) -> str:
    """One line per stage, its reasons below it, and the command that brings everything up to date."""
    lines = []
    for status in statuses:
        reasons = status.reasons + (["reruns too: it reads files that a rerun stage rewrites"]
                                    if status.rerun and status.state == UP_TO_DATE else [])
        lines.append(f"{status.name:<24}{status.state}" + "".join(f"\n{'':<24}  {reason}" for reason in reasons))
    todo = [status.name for status in statuses if status.rerun]
    environment = f" --env {env}" if env else ""
    lines.append(f"\nto bring them up to date: kedro run{environment} --pipelines {','.join(todo)}" if todo
                 else "\nevery stage is up to date")
    return "\n".join(lines)


def environment_catalog(project: Path, env: str | None = None):
    """The catalog of the project at ``project`` for Kedro environment ``env``, read straight from its configuration:
    it starts no Kedro session and no MLflow run."""
    from kedro.config import OmegaConfigLoader
    from kedro.io import DataCatalog

    from neurontune.settings import CONFIG_LOADER_ARGS

    loader = OmegaConfigLoader(conf_source=str(Path(project) / "conf"), env=env, **CONFIG_LOADER_ARGS)
    return DataCatalog.from_config(loader["catalog"])
