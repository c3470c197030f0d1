"""DVC: every stage's outputs are the ones its Kedro pipeline writes, a parameter change reruns only its stage, push →
delete → pull restores the same digest. (A stage run from scratch by `dvc repro`: tests/test_dvc_s3.py.)"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from neurontune.data.tables import content_digest
from tests.conftest import PROJECT_ROOT, copy_project, project_environment

BIN = Path(sys.executable).parent


def dvc(project, *arguments):
    env = project_environment(PATH=f"{BIN}{os.pathsep}{os.environ['PATH']}")
    result = subprocess.run([str(BIN / "dvc"), *arguments], cwd=project, env=env, capture_output=True, text=True)
    assert result.returncode == 0, f"dvc {' '.join(arguments)}:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result.stdout


def make_dvc_project(project: Path) -> Path:
    """A copy of the project (``copy_project``) made a git repository with the project's DVC configuration, whose
    stages run the suite's reduced configuration (``ci``) instead of the bundled benchmarks."""
    shutil.copytree(PROJECT_ROOT / ".dvc", project / ".dvc", ignore=shutil.ignore_patterns("tmp", "cache"))
    subprocess.run(["git", "init", "-q"], cwd=project, check=True)
    stages = project / "dvc.yaml"
    stages.write_text(stages.read_text().replace("benchmarks: [colored_mnist, waterbirds_like, tweets_negation]",
                                                 "benchmarks: [ci]"))
    return project


@pytest.fixture(scope="module")
def dvc_project(tmp_path_factory):
    project = make_dvc_project(copy_project(tmp_path_factory.mktemp("dvc_project")))
    remote = tmp_path_factory.mktemp("dvc_remote")
    dvc(project, "remote", "modify", "--local", "store", "url", str(remote))
    return project


def test_the_ci_runs_outputs_are_every_stages_and_an_evaluation_parameter_reruns_only_evaluation(dvc_project, ci_project):
    # the suite's `kedro run --env ci` wrote what every stage declares: `dvc commit` of all stages finds each output
    # (a missing one fails), without running the whole DAG again stage by stage
    shutil.copytree(ci_project / "data" / "ci", dvc_project / "data" / "ci", dirs_exist_ok=True)
    dvc(dvc_project, "commit", "--force")
    assert "up to date" in dvc(dvc_project, "status")
    parameters = dvc_project / "conf" / "base" / "parameters_evaluation.yml"
    parameters.write_text(parameters.read_text().replace("chart_split: test", "chart_split: val"))
    assert "evaluation@ci" in dvc(dvc_project, "status")
    output = dvc(dvc_project, "repro")  # evaluation@ci for real, reading the upstream stages' files
    assert "Running stage 'evaluation@ci'" in output
    assert "Running stage" not in output.replace("Running stage 'evaluation@ci'", "")
    assert "up to date" in dvc(dvc_project, "status")
    shown = json.loads(dvc(dvc_project, "metrics", "show", "--json"))
    metrics = shown[""]["data"]["data/ci/08_reporting/metrics.json"]["data"]
    assert 0.0 <= metrics["neurontune"]["test"]["worst_group_accuracy"] <= 1.0


def test_push_delete_pull_restores_the_same_digest(dvc_project):
    if not (dvc_project / "dvc.lock").exists():
        dvc(dvc_project, "repro", "data_versioning@ci")
    raw = dvc_project / "data" / "ci" / "01_raw"
    manifest = json.loads((raw / "dataset_manifest.json").read_text())
    dvc(dvc_project, "push")
    for name in ("inputs.npz", "metadata.parquet", "dataset_manifest.json"):
        (raw / name).unlink()
    shutil.rmtree(dvc_project / ".dvc" / "cache")
    dvc(dvc_project, "pull")
    inputs = np.load(raw / "inputs.npz")["inputs"]
    assert content_digest(inputs, pd.read_parquet(raw / "metadata.parquet")) == manifest["digest"]
