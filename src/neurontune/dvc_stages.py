"""``dvc.yaml``, generated from the Kedro pipelines and the catalog: ``make dvc-yaml``.

One DVC stage per stage of :data:`neurontune.pipeline_registry.STAGES` and bundled benchmark (a ``foreach``), each
``kedro run --env ${item} --pipelines NAME``. Everything else is read off the graph, as ``neurontune status`` reads it:

- ``deps``: the benchmark's configuration folder; the pipeline's folder, ``src/neurontune/io`` (every file dataset
  of the catalog), the library modules the pipeline's code imports directly and those that complete every run's
  parameters (what :mod:`neurontune.parameter_hooks` imports); the catalog files its nodes read that the stage does
  not write itself;
- ``params``: each node's ``params:`` inputs, ``file: [block.key]`` (a whole block when the stage reads every key
  that ``conf/base`` sets in it), plus the session's blocks (``runtime``) for every stage;
- ``outs``: the files the stage writes; a namespaced pipeline's datasets in the namespace's own folder as that
  folder (one file per method of the registry: adding a method changes no stage); ``metrics.json`` as a DVC metric.

``tests/test_dvc_stages.py`` fails when the committed ``dvc.yaml`` differs from what this module writes.
"""

from __future__ import annotations

import ast
import importlib
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

from neurontune.stage_status import SESSION_BLOCKS, catalog_file

#: The benchmarks that build without downloaded data, in dvc.yaml's ``foreach`` order (the default first);
#: tests/test_reliability.py checks the list against ``conf/``.
BUNDLED_BENCHMARKS = ("colored_mnist", "waterbirds_like", "tweets_negation")
#: Stages of the Kedro DAG that are no DVC stage, and why.
OUTSIDE_DVC = {
    "model_promotion": "it registers a model version and moves @challenger / @champion in MLflow's registry, which "
                       "DVC can neither cache nor restore, and its gate reads the registry's current champion",
}
#: Catalog entries DVC shows with ``dvc metrics show`` (committed to git, so not cached).
METRICS = ("metrics",)
#: The benchmark of a ``foreach`` stage, and where its files are, in dvc.yaml.
ITEM = "${item}"
ITEM_DATA_ROOT = f"data/{ITEM}"

HEADER = """\
# GENERATED from the Kedro pipelines and the catalog by `make dvc-yaml` (python -m neurontune.dvc_stages):
# do not edit by hand; tests/test_dvc_stages.py fails when this file and the Kedro graph differ.
# One stage per Kedro pipeline and bundled benchmark (`foreach`): stage `NAME@BENCHMARK` runs
# `kedro run --env BENCHMARK --pipelines NAME`, whose data live in data/BENCHMARK/ (conf/*/globals.yml).
# Parameters are read straight from Kedro's YAML files; a benchmark's own overrides are a dependency.
# Every stage depends on the runtime block too: the thread count changes the last bits of every float.
# A namespaced pipeline (one node per method of the registry) writes into folders named after it: each
# folder is one output.
{outside}
# Run with the project's virtualenv on PATH: `make repro` (or `source .venv/bin/activate && dvc repro`).
"""


@dataclass(frozen=True)
class DvcStage:
    """One ``foreach`` stage of dvc.yaml; data paths start with ``data/${item}``.

    Attributes
    ----------
    name : the Kedro pipeline
    deps : paths, sorted: configuration, code, then data
    params : ((parameter file, (keys …)), …), the stage's own block first, the session's blocks last
    outs : paths (files, or a namespace's folder)
    metrics : paths of DVC metrics (``cache: false``)
    """

    name: str
    deps: tuple[str, ...]
    params: tuple[tuple[str, tuple[str, ...]], ...]
    outs: tuple[str, ...]
    metrics: tuple[str, ...]


def derive_stage(name: str, pipeline, catalog, *, code: list[str], data_root: Path,
                 parameter_files: Mapping[str, str], block_keys: Mapping[str, set[str]], project: Path) -> DvcStage:
    """The DVC stage of one Kedro pipeline.

    Parameters
    ----------
    name : the pipeline's name; pipeline : the Kedro Pipeline
    catalog : the benchmark's DataCatalog (file locations)
    code : the stage's code dependencies (paths relative to ``project``)
    data_root : the benchmark's data folder (``globals.data_root``), written ``data/${item}``
    parameter_files : {block: the conf/base file that sets it}
    block_keys : {block: the keys conf/base sets in it}
    project : the project root
    """
    made_here = {output for node in pipeline.nodes for output in node.outputs}
    written, read, keys = set(), set(), {}
    for node in pipeline.nodes:
        for dataset in node.outputs:
            path = catalog_file(catalog, dataset, project)
            if path is not None:
                written.add(_tracked(dataset, path, data_root))
        for dataset in node.inputs:
            if dataset.startswith("params:"):
                block, *rest = dataset.removeprefix("params:").split(".")
                keys.setdefault(block, set()).add(rest[0] if rest else None)
                continue
            path = catalog_file(catalog, dataset, project)
            if path is not None:
                read.add(_tracked(dataset, path, data_root))
            elif dataset not in made_here:
                raise ValueError(f"stage {name} reads {dataset!r}, which is no file of the catalog and which none of "
                                 f"its nodes makes: `kedro run --pipelines {name}` cannot run alone. Persist it in "
                                 f"conf/base/catalog.yml.")
    metrics = {_tracked(dataset, catalog_file(catalog, dataset, project), data_root)
               for dataset in METRICS if dataset in made_here}
    unknown = sorted(set(keys) - set(parameter_files))
    if unknown:
        raise ValueError(f"stage {name} reads parameters block(s) {unknown} that no file of conf/base sets; DVC tracks "
                         f"parameters in files: add conf/base/parameters_{unknown[0]}.yml.")
    own = sorted(keys, key=lambda block: (block != name, block))
    params = tuple((parameter_files[block], _collapsed(block, keys[block], block_keys[block])) for block in own
                   if block not in SESSION_BLOCKS)
    params += tuple((parameter_files[block], (block,)) for block in SESSION_BLOCKS)
    deps = [f"conf/{ITEM}", *code, *sorted(read - written)]
    return DvcStage(name, tuple(deps), params, tuple(sorted(written - metrics)), tuple(sorted(metrics)))


def _tracked(dataset: str, path: Path, data_root: Path) -> str:
    """``path`` as dvc.yaml writes it: under ``data/${item}``, and a namespaced dataset in its namespace's own
    folder as that folder."""
    namespace = dataset.split(".")[0] if "." in dataset else None
    if namespace is not None and path.parent.name == namespace:
        path = path.parent
    try:
        relative = path.resolve().relative_to(data_root.resolve())
    except ValueError:
        raise ValueError(f"{dataset} is at {path}, outside the benchmark's data folder {data_root}: dvc.yaml's "
                         f"foreach needs every file of a benchmark under its globals.data_root.") from None
    return f"{ITEM_DATA_ROOT}/{relative.as_posix()}"


def _collapsed(block: str, read: set, all_keys: set[str]) -> tuple[str, ...]:
    """DVC's keys for the keys of ``block`` a stage reads (None: the whole block): the block itself when it reads
    all that conf/base sets in it, else ``block.key`` for each key."""
    if None in read or read >= all_keys:
        return (block,)
    return tuple(f"{block}.{key}" for key in sorted(read))


def code_dependencies(module, package: Path, project: Path) -> list[str]:
    """The stage's code, relative to ``project``: the pipeline's folder (``module`` is its package), then, a package
    as its folder and a module as its file, ``io`` (every file dataset of the catalog), the library modules the
    pipeline's code imports directly, and those every ``kedro run`` completes its parameters with (what the parameter
    hook imports: a default changed there changes the stage's parameters without touching a YAML file)."""
    folder = Path(module.__file__).parent
    units = {"io"} | _imported_units(package / "parameter_hooks.py")
    for source in sorted(folder.glob("*.py")):
        units |= _imported_units(source)
    units.discard("pipelines")  # the pipeline's own modules (its folder) and, by the layer rules, no other's
    return [_shown(folder, project), *(_shown(_unit_path(unit, package), project) for unit in sorted(units))]


def _imported_units(source: Path) -> set[str]:
    """The top-level parts of ``neurontune`` (``core``, ``methods`` …) that ``source`` imports by absolute name."""
    names = set()
    for node in ast.walk(ast.parse(source.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module == "neurontune":
            names |= {f"neurontune.{alias.name}" for alias in node.names}  # from neurontune import core
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
    return {name.split(".")[1] for name in names if name.startswith("neurontune.")}


def _unit_path(unit: str, package: Path) -> Path:
    return package / unit if (package / unit).is_dir() else package / f"{unit}.py"


def _shown(path: Path, project: Path) -> str:
    return path.resolve().relative_to(project.resolve()).as_posix()


def render(stages: list[DvcStage], benchmarks: tuple[str, ...] = BUNDLED_BENCHMARKS) -> str:
    """dvc.yaml's text: the header, the benchmarks, one ``foreach`` stage each."""
    outside = "\n".join(textwrap.wrap(" ".join(f"Not a stage: {name}, because {why}." for name, why in OUTSIDE_DVC.items()),
                                     width=110, initial_indent="# ", subsequent_indent="# "))
    lines = [HEADER.format(outside=outside).rstrip("\n"), "vars:", f"  - benchmarks: [{', '.join(benchmarks)}]",
             "stages:"]
    for stage in stages:
        lines += [f"  {stage.name}:", "    foreach: ${benchmarks}", "    do:",
                  f"      cmd: kedro run --env {ITEM} --pipelines {stage.name}", "      deps:"]
        lines += [f"        - {path}" for path in stage.deps]
        lines.append("      params:")
        for file, keys in stage.params:
            lines += [f"        - {file}:", *(f"            - {key}" for key in keys)]
        if stage.outs:
            lines += ["      outs:", *(f"        - {path}" for path in stage.outs)]
        if stage.metrics:
            lines += ["      metrics:", *(line for path in stage.metrics for line in (f"        - {path}:",
                                                                                       "            cache: false"))]
        lines.append("")
    return "\n".join(lines[:-1]) + "\n"


def project_stages(project: Path, benchmark: str) -> list[DvcStage]:
    """The DVC stages of the project at ``project``, from benchmark ``benchmark``'s catalog."""
    from kedro.config import OmegaConfigLoader
    from kedro.io import DataCatalog

    from neurontune.parameters import ParameterSources
    from neurontune.pipeline_registry import STAGES, register_pipelines
    from neurontune.settings import CONFIG_LOADER_ARGS

    loader = OmegaConfigLoader(conf_source=str(project / "conf"), env=benchmark, **CONFIG_LOADER_ARGS)
    data_root = Path(loader["globals"]["data_root"])
    if "://" in str(data_root):
        raise ValueError(f"the data of {benchmark} are at {data_root}, not in local files: unset NEURONTUNE_DATA_ROOT "
                         f"to generate dvc.yaml.")
    catalog = DataCatalog.from_config(loader["catalog"])
    base = ParameterSources.from_config(project / "conf", None, base_env=loader.base_env,
                                        patterns=tuple(loader.config_patterns["parameters"]), relative_to=project)
    block_keys = {block: set(tree[block]) if isinstance(tree[block], dict) else set()
                  for _, tree in base.layers for block in tree}
    parameter_files = {block: _one_file(block, base.files_setting(block)) for block in block_keys}
    package = Path(importlib.import_module("neurontune").__file__).parent
    pipelines = register_pipelines()
    return [derive_stage(name, pipelines[name], catalog, code=code_dependencies(module, package, project),
                         data_root=data_root if data_root.is_absolute() else project / data_root,
                         parameter_files=parameter_files, block_keys=block_keys, project=project)
            for name, module in STAGES.items() if name not in OUTSIDE_DVC]


def _one_file(block: str, files: list[str]) -> str:
    if len(files) != 1:
        raise ValueError(f"parameters block {block!r} is set in {files or 'no file'} of conf/base; dvc.yaml needs it in "
                         f"exactly one (conf/base/parameters_{block}.yml).")
    return files[0]


def project_dvc_yaml(project: Path, benchmarks: tuple[str, ...] = BUNDLED_BENCHMARKS) -> str:
    """dvc.yaml for the project at ``project``: the stages of every benchmark, which one ``foreach`` must share."""
    stages = {benchmark: project_stages(project, benchmark) for benchmark in benchmarks}
    first = benchmarks[0]
    for benchmark, found in stages.items():
        if found != stages[first]:
            differ = [mine.name for mine, theirs in zip(found, stages[first]) if mine != theirs]
            raise ValueError(f"the stages of {benchmark} differ from those of {first} ({', '.join(differ)}): their "
                             f"catalogs or parameter files differ, and one dvc.yaml foreach cannot hold both.")
    return render(stages[first], benchmarks)


def main() -> None:
    from kedro.utils import find_kedro_project

    project = find_kedro_project(Path.cwd())
    if project is None:
        raise SystemExit("no Kedro project here: run `make dvc-yaml` in the project root.")
    text = project_dvc_yaml(project)
    (project / "dvc.yaml").write_text(text)
    print(f"wrote {project / 'dvc.yaml'} ({text.count('foreach:')} stages × {len(BUNDLED_BENCHMARKS)} benchmarks)")


if __name__ == "__main__":
    main()
