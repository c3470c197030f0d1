"""The layer order of ``src/neurontune`` (docs/architecture.md): every import points down or sideways, never up,
no two modules import each other in a loop, and no pipeline imports another pipeline's code."""

import ast
from pathlib import Path

import pytest

from tests.conftest import PROJECT_ROOT

PACKAGE = PROJECT_ROOT / "src" / "neurontune"
#: floors, lowest first; a module may import only from its own floor or below (docs/architecture.md)
LAYERS = (
    ("neurontune.core",),
    ("neurontune.io", "neurontune.data", "neurontune.models"),
    ("neurontune.parameters",),
    ("neurontune.methods",),
    ("neurontune.tracking", "neurontune.exit_codes"),
    ("neurontune.pipelines",),
    ("neurontune.hooks", "neurontune.parameter_hooks", "neurontune.pipeline_registry", "neurontune.settings",
     "neurontune.config_loader", "neurontune.run_guard", "neurontune.user_errors", "neurontune.content_ledger",
     "neurontune.stage_status", "neurontune.dvc_stages"),
    ("neurontune.console", "neurontune.ci_summary", "neurontune.cli", "neurontune.__main__", "neurontune"),
)


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def floor(module: str) -> int:
    matches = [(len(prefix), index) for index, prefixes in enumerate(LAYERS) for prefix in prefixes
               if module == prefix or module.startswith(prefix + ".")]
    assert matches, f"{module} is on no floor of LAYERS: add it (and to docs/architecture.md)"
    return max(matches)[1]


def imports_of(path: Path) -> set[str]:
    """Every neurontune module ``path`` imports, at module level or inside a function."""
    found = set()
    package = module_name(path).rsplit(".", 1)[0] if path.name != "__init__.py" else module_name(path)
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else []))
            found |= {f"{base}.{alias.name}" if _is_module(f"{base}.{alias.name}") else base for alias in node.names}
    return {name for name in found if name == "neurontune" or name.startswith("neurontune.")}


def _is_module(name: str) -> bool:
    path = PACKAGE.parent / Path(*name.split("."))
    return path.with_suffix(".py").exists() or (path / "__init__.py").exists()


MODULES = {module_name(path): imports_of(path) for path in sorted(PACKAGE.rglob("*.py"))}


def test_no_import_runs_back_up_the_layers():
    upward = [f"{module} (floor {floor(module)}) imports {target} (floor {floor(target)})"
              for module, targets in MODULES.items() for target in sorted(targets)
              if floor(target) > floor(module) and not module.startswith(target + ".")]
    assert not upward, "imports that run back up:\n" + "\n".join(upward)


def test_no_pipeline_imports_another_pipelines_code():
    def pipeline(module):
        parts = module.split(".")
        return parts[2] if len(parts) > 2 and parts[1] == "pipelines" else None

    crossing = [f"{module} imports {target}" for module, targets in MODULES.items() for target in targets
                if pipeline(module) and pipeline(target) and pipeline(module) != pipeline(target)]
    assert not crossing, "\n".join(crossing)


def test_no_import_cycle():
    graph = {module: {target for target in targets if target in MODULES and target != module
                      and not module.startswith(target + ".")}  # a module's own package __init__ is not a cycle
             for module, targets in MODULES.items()}
    cycles, state = [], {}

    def visit(module, stack):
        state[module] = "open"
        for target in sorted(graph[module]):
            if state.get(target) == "open":
                cycles.append(" -> ".join(stack[stack.index(target):] + [target]))
            elif target not in state:
                visit(target, stack + [target])
        state[module] = "done"

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    assert not cycles, "import cycles:\n" + "\n".join(cycles)


@pytest.mark.parametrize("module, target, expected", [
    ("neurontune.methods", "neurontune.parameters", True), ("neurontune.parameters", "neurontune.methods", False),
    ("neurontune.tracking.explain", "neurontune.pipelines.neuron_identification.nodes", False)])
def test_the_layer_order_is_the_documented_one(module, target, expected):
    assert (floor(target) <= floor(module)) is expected
