"""The Airflow DAG that `kedro airflow create` renders from airflow/dag_template.j2 (no Airflow needed).

Every node is in exactly one task, nodes joined by an in-memory dataset share a task, and every
dataset a task reads from another task makes that task upstream of it.
"""

import ast
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import PROJECT_ROOT, copy_project, kedro, project_environment

GRAPH = """
import json
from pathlib import Path
from kedro.framework.project import pipelines
from kedro.framework.session import KedroSession
from kedro.framework.startup import bootstrap_project
from kedro.io import MemoryDataset

bootstrap_project(Path.cwd())
with KedroSession.create(env="ci") as session:
    catalog = session.load_context().catalog
pipeline = pipelines["__default__"]
print(json.dumps({
    "nodes": {node.name: {"inputs": node.inputs, "outputs": node.outputs} for node in pipeline.nodes},
    "memory": sorted(name for name in pipeline.datasets() if not name.startswith("params:") and name != "parameters"
                     and (name not in catalog or isinstance(catalog.get(name), MemoryDataset))),
}))
"""


def generate_dag(project: Path, target: Path, **params: str) -> Path:
    """``kedro airflow create`` for the ``ci`` environment, as ``make airflow-dags`` runs it."""
    shutil.copytree(PROJECT_ROOT / "airflow", project / "airflow", ignore=shutil.ignore_patterns("dags"))
    values = ",".join(f"{key}={value}" for key, value in {"project_path": str(project), **params}.items())
    kedro(project, "airflow", "create", "--env", "ci", "--group-by", "memory", "-j", "airflow/dag_template.j2",
          "-t", str(target), "--params", values)
    return target / "neurontune_ci_dag.py"


def dag_tasks(path: Path) -> tuple[dict[str, list[str]], dict[str, list[str]]]:
    """The generated DAG's ``NODES`` (task → Kedro nodes) and ``UPSTREAM`` (task → tasks it waits for)."""
    tables = {target.id: ast.literal_eval(statement.value) for statement in ast.parse(path.read_text()).body
              if isinstance(statement, ast.Assign) for target in statement.targets
              if isinstance(target, ast.Name) and target.id in ("NODES", "UPSTREAM")}
    return tables["NODES"], tables["UPSTREAM"]


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    project = copy_project(tmp_path_factory.mktemp("dag_project"))
    dag = generate_dag(project, project / "airflow" / "dags")
    graph = subprocess.run([sys.executable, "-c", GRAPH], cwd=project, env=project_environment(), capture_output=True,
                           text=True, check=True)
    return dag, json.loads(graph.stdout.strip().splitlines()[-1])


def test_every_node_runs_in_exactly_one_task_and_in_memory_data_never_cross_tasks(generated):
    dag, graph = generated
    nodes, _ = dag_tasks(dag)
    placed = [node for group in nodes.values() for node in group]
    assert sorted(placed) == sorted(graph["nodes"])
    task_of = {node: task for task, group in nodes.items() for node in group}
    for dataset in graph["memory"]:
        users = {task_of[name] for name, node in graph["nodes"].items() if dataset in node["inputs"] + node["outputs"]}
        assert len(users) == 1, f"in-memory {dataset} is shared by tasks {sorted(users)}"


def test_a_task_waits_for_every_task_whose_stored_outputs_it_reads(generated):
    dag, graph = generated
    nodes, upstream = dag_tasks(dag)
    task_of = {node: task for task, group in nodes.items() for node in group}
    producer = {output: task_of[name] for name, node in graph["nodes"].items() for output in node["outputs"]}
    for name, node in graph["nodes"].items():
        needed = {producer[dataset] for dataset in node["inputs"] if dataset in producer} - {task_of[name]}
        assert needed <= set(upstream.get(task_of[name], [])), name


def test_each_task_is_a_kedro_run_of_its_nodes_in_the_given_environment(generated):
    dag, _ = generated
    source = dag.read_text()
    compile(source, str(dag), "exec")
    assert '[KEDRO, "run", "--env", "ci", "--pipelines", "__default__", "--nodes", ",".join(nodes)]' in source
    assert 'dag_id="neurontune_ci"' in source
