"""dvc.yaml is generated from the Kedro graph (`make dvc-yaml`): the committed file is the generated one, and the
derivation (deps, params, outs) on a toy DAG."""

import difflib
from types import SimpleNamespace

import pytest
import yaml
from kedro.io import DataCatalog, MemoryDataset
from kedro.pipeline import Pipeline, node

from neurontune.dvc_stages import BUNDLED_BENCHMARKS, code_dependencies, derive_stage, project_dvc_yaml, render
from neurontune.io.datasets import JsonDataset
from tests.conftest import PROJECT_ROOT


@pytest.fixture(scope="module")
def generated():
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv("NEURONTUNE_DATA_ROOT", raising=False)  # dvc.yaml's stages use the default data tree
        return project_dvc_yaml(PROJECT_ROOT)


def test_the_committed_dvc_yaml_is_the_generated_one(generated):
    committed = (PROJECT_ROOT / "dvc.yaml").read_text()
    difference = "".join(difflib.unified_diff(committed.splitlines(True), generated.splitlines(True),
                                              "dvc.yaml (committed)", "dvc.yaml (from the Kedro graph)"))
    assert committed == generated, f"dvc.yaml has drifted from the Kedro pipelines and catalog; run `make dvc-yaml`:\n{difference}"


def test_the_stages_read_what_their_nodes_read(generated):
    """The drift of issue 26: harm_guard reads the error sets and the variants, mask_evidence the variants."""
    stages = {name: stage["do"] for name, stage in yaml.safe_load(generated)["stages"].items()}
    variants = {"conf/base/parameters_neurontune_regulation.yml": ["neurontune_regulation.variants"]}
    assert "data/${item}/05_model_input/error_sets.npz" in stages["harm_guard"]["deps"]
    assert variants in stages["harm_guard"]["params"] and variants in stages["mask_evidence"]["params"]
    assert "model_promotion" not in stages  # the MLflow registry is no file DVC can restore
    assert stages["evaluation"]["metrics"] == [{"data/${item}/08_reporting/metrics.json": {"cache": False}}]
    assert yaml.safe_load(generated)["vars"] == [{"benchmarks": list(BUNDLED_BENCHMARKS)}]


def identity(*values):
    return values[0]


def test_a_stage_is_derived_from_its_nodes_and_the_catalog(tmp_path):
    root = tmp_path / "data" / "toy"
    files = {"raw": root / "01_raw" / "raw.json", "fit.a_head": root / "06_models" / "fit" / "a_head.json",
             "fit.b_head": root / "06_models" / "fit" / "b_head.json", "report": root / "08_reporting" / "report.json",
             "metrics": root / "08_reporting" / "metrics.json"}
    catalog = DataCatalog(datasets={**{name: JsonDataset(str(path)) for name, path in files.items()},
                                    "scratch": MemoryDataset()})
    fit = Pipeline([node(identity, ["raw", "params:grid.l2", "params:grid.l1.max"], "scratch", name="prepare"),
                    node(identity, ["scratch", "params:tuning"], "a_head", name="fit_a"),
                    node(identity, ["raw", "params:tuning", "a_head"], "b_head", name="fit_b"),  # reads what it writes
                    node(identity, ["a_head", "params:shared.threads"], ["report", "metrics"], name="report")],
                   namespace="fit", inputs={"raw"}, outputs={"report", "metrics"},
                   parameters={"params:grid.l2", "params:grid.l1.max", "params:shared.threads"})
    stage = derive_stage("fit", fit, catalog, code=["src/toy/fit"], data_root=root, project=tmp_path,
                         parameter_files={"fit": "conf/base/parameters_fit.yml", "grid": "conf/base/parameters_grid.yml",
                                          "runtime": "conf/base/parameters_runtime.yml",
                                          "shared": "conf/base/parameters_shared.yml"},
                         block_keys={"fit": {"tuning"}, "grid": {"l1", "l2", "unused"}, "runtime": {"threads"},
                                     "shared": {"threads"}})
    assert stage.deps == ("conf/${item}", "src/toy/fit", "data/${item}/01_raw/raw.json")
    assert stage.outs == ("data/${item}/06_models/fit", "data/${item}/08_reporting/report.json")  # the namespace's folder
    assert stage.metrics == ("data/${item}/08_reporting/metrics.json",)
    assert stage.params == (("conf/base/parameters_fit.yml", ("fit",)),  # every key of its own block: the block
                            ("conf/base/parameters_grid.yml", ("grid.l1", "grid.l2")),  # at most block.key
                            ("conf/base/parameters_shared.yml", ("shared",)),
                            ("conf/base/parameters_runtime.yml", ("runtime",)))  # every stage: the thread count
    text = render([stage], ("toy",))
    assert "  - benchmarks: [toy]\n" in text
    assert yaml.safe_load(text)["stages"]["fit"]["do"]["params"][1] == {"conf/base/parameters_grid.yml": ["grid.l1", "grid.l2"]}


def test_a_stage_reading_an_intermediate_it_does_not_make_cannot_be_a_dvc_stage(tmp_path):
    catalog = DataCatalog(datasets={"scratch": MemoryDataset(), "out": JsonDataset(str(tmp_path / "out.json"))})
    stage = Pipeline([node(identity, "scratch", "out", name="late")])
    with pytest.raises(ValueError, match="reads 'scratch', which is no file of the catalog.*cannot run alone"):
        derive_stage("late", stage, catalog, code=[], data_root=tmp_path, project=tmp_path,
                     parameter_files={"runtime": "conf/base/parameters_runtime.yml"}, block_keys={"runtime": {"threads"}})


def test_code_dependencies_are_the_pipelines_folder_and_what_its_code_imports(tmp_path):
    package = tmp_path / "src" / "neurontune"
    for unit in ("core", "io", "models", "pipelines/fit"):
        (package / unit).mkdir(parents=True)
    for module in ("methods.py", "parameters.py"):
        (package / module).write_text("")
    (package / "parameter_hooks.py").write_text("from neurontune.methods import complete_parameters\n")
    (package / "pipelines" / "fit" / "__init__.py").write_text("from .pipeline import create_pipeline\n")
    (package / "pipelines" / "fit" / "nodes.py").write_text(
        "import numpy\nfrom neurontune.core.head import retrain_head\nfrom neurontune import models\n\n"
        "def fit():\n    import neurontune.parameters\n")
    fit = SimpleNamespace(__file__=str(package / "pipelines" / "fit" / "__init__.py"))  # the pipeline package
    assert code_dependencies(fit, package, tmp_path) == [
        "src/neurontune/pipelines/fit", "src/neurontune/core", "src/neurontune/io", "src/neurontune/methods.py",
        "src/neurontune/models", "src/neurontune/parameters.py"]
