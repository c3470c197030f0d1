"""Bad inputs and faults (docs/reliability.md): tampered caches, missing classes, broken images, the thread
count, and which stages are stale after a failed run. The kedro runs use copies of the suite's ci project."""

import json
import shutil
import subprocess

import numpy as np
import pytest
import torch
from kedro.io import DatasetError
from PIL import Image

from neurontune.console import main as neurontune
from neurontune.core import retrain_head
from neurontune.data import build_benchmark_data
from neurontune.data.published import DatasetLayoutError
from neurontune.io.embedding_cache import EmbeddingCacheDataset
from neurontune.models.image import load_image_file
from neurontune.pipelines.neuron_identification.nodes import split_validation
from tests.conftest import BIN, copy_project, kedro, project_environment
from tests.data.test_published import write_metadata_image_layout

DATA = ("data", "ci")


def ran_copy(ci_project, destination):
    """A copy of the suite's ci project with every output of its run (file times kept), without its tracking store."""
    project = copy_project(destination)
    shutil.copytree(ci_project / "data", project / "data", dirs_exist_ok=True)
    return project


def data_file(project, *parts):
    return project.joinpath(*DATA, *parts)


def text(result) -> str:
    return "".join((result.stdout + result.stderr).split())  # rich wraps long lines, even inside a path


def said(message: str, result) -> bool:
    return "".join(message.split()) in text(result)


def times(project, *folders):
    return {path: path.stat().st_mtime_ns for folder in folders for path in data_file(project, folder).rglob("*")
            if path.is_file()}


@pytest.fixture(scope="module")
def project(ci_project, tmp_path_factory):
    return ran_copy(ci_project, tmp_path_factory.mktemp("reliability"))


@pytest.fixture
def tampered_val_cache(project):
    """Edit the cached validation split in place; restored afterwards."""
    path = data_file(project, "04_feature", "embeddings_val.npz")
    original = path.read_bytes()

    def tamper(change):
        with np.load(path) as stored:
            arrays = {key: stored[key] for key in stored.files}
        change(arrays)
        with open(path, "wb") as handle:
            np.savez(handle, **arrays)
        return path

    yield tamper
    path.write_bytes(original)


# ----------------------------------------------------------------------------- the embedding cache


def test_nan_rows_in_cached_logits_stop_identification_before_anything_is_fitted(project, tampered_val_cache):
    """The issue: NaN logits made argmax say class 0, and wrong scores, masks and heads followed, exit 0."""
    def nan_rows(arrays):
        arrays["logits"] = arrays["logits"].copy()
        arrays["logits"][[3, 17, 42]] = np.nan

    tampered_val_cache(nan_rows)
    before = times(project, "05_model_input", "06_models", "08_reporting")
    result = kedro(project, "run", "--env", "ci", "--pipelines", "neuron_identification", check=False)
    assert result.returncode != 0
    assert said("data/ci/04_feature/embeddings_val.npz: array 'logits' has NaN/inf values in 3 rows (first: [3, 17, 42])",
                result)
    assert times(project, "05_model_input", "06_models", "08_reporting") == before


def test_a_class_missing_from_validation_fails_closed(project, tampered_val_cache):
    """The issue: a one-class head (test WGA 0.000) whose selection score said worst-class accuracy 1.0, exit 0."""
    def drop_class_1(arrays):
        keep = arrays["y"] != 1
        arrays.update({key: value[keep] for key, value in arrays.items()})

    tampered_val_cache(drop_class_1)
    heads = times(project, "06_models")
    result = kedro(project, "run", "--env", "ci", "--pipelines", "neuron_identification,neurontune_regulation,baselines",
                   check=False)
    assert result.returncode != 0
    assert said("the identification half of validation has no sample of class(es) [1]", result)
    assert times(project, "06_models") == heads  # no scores, mask or head was written


def test_a_class_without_errors_is_a_warning_reported_in_the_summary_and_mlflow(project, tampered_val_cache):
    """Nothing to learn from in class 1 is a legitimate outcome: identification runs, says so, and records it."""
    def class_1_always_right(arrays):
        arrays["logits"] = arrays["logits"].copy()
        arrays["logits"][arrays["y"] == 1] = [-5.0, 5.0]

    tampered_val_cache(class_1_always_right)
    result = kedro(project, "run", "--env", "ci", "--pipelines", "neuron_identification")
    assert said("class 1 is not scored: it has 0 misclassified", result)
    summary = json.loads(data_file(project, "08_reporting", "identification_summary.json").read_text())
    assert summary["n_wrong_per_class"][1] == 0 and summary["n_wrong_per_class"][0] > 0
    assert summary["roles"]["val_ide.erm.median"]["n_wrong_per_class"][1] == 0

    from mlflow import MlflowClient

    client = MlflowClient(f"sqlite:///{project / 'mlflow.db'}")
    run = client.search_runs([client.get_experiment_by_name("neurontune").experiment_id], max_results=1,
                             order_by=["attributes.start_time DESC"])[0]
    logged = client.download_artifacts(run.info.run_id, "identification/identification_summary.json", str(project))
    assert json.loads(open(logged).read())["roles"]["val_ide.erm.median"]["n_wrong_per_class"][1] == 0


def valid_cache(n=6):
    return {"embeddings": np.ones((n, 3), np.float32), "logits": np.zeros((n, 2), np.float32),
            "early_logits": np.zeros((n, 2), np.float32), "y": np.array([0, 1] * (n // 2)), "sample_id": np.arange(n)}


@pytest.mark.parametrize(("change", "message"), [
    ({"embeddings": np.vstack([np.ones((5, 3)), [[np.inf, 0, 0]]])}, r"array 'embeddings' has NaN/inf values in 1 rows \(first: \[5\]\)"),
    ({"early_logits": np.full((6, 2), np.nan)}, r"array 'early_logits' has NaN/inf values in 6 rows"),
    ({"logits": np.zeros((5, 2))}, r"array 'logits' has shape \(5, 2\); expected \(6, …\)"),
    ({"y": np.array([0, 1, 0, 1, 0, 2])}, r"array 'y' has labels outside \[0, 2\) in rows \[5\]"),
    ({"y": np.array([0.0, 1, 0, 1, 0, 1])}, "array 'y' must be a 1-D integer array"),
    ({"sample_id": np.array([0, 1, 2, 3, 4, 4])}, "array 'sample_id' must hold 6 unique ids"),
    ({"early_logits": np.zeros((6, 3))}, "'early_logits' has 3 classes but 'logits' has 2"),
])
def test_the_cache_names_the_file_the_array_and_the_rows(tmp_path, change, message):
    path = tmp_path / "embeddings_val.npz"
    np.savez(path, **{**valid_cache(), **change})
    with pytest.raises(DatasetError, match=f"{path}: {message}"):
        EmbeddingCacheDataset(str(path)).load()


def test_a_cache_missing_an_array_or_invalid_is_neither_loaded_nor_saved(tmp_path):
    path = tmp_path / "embeddings_val.npz"
    np.savez(path, **{key: value for key, value in valid_cache().items() if key != "logits"})
    with pytest.raises(DatasetError, match=r"lacks \['logits'\]"):
        EmbeddingCacheDataset(str(path)).load()
    target = EmbeddingCacheDataset(str(tmp_path / "new.npz"))
    with pytest.raises(DatasetError, match="array 'logits' has NaN/inf values in 6 rows"):
        target.save({**valid_cache(), "logits": np.full((6, 2), np.nan)})
    assert not (tmp_path / "new.npz").exists()


def test_a_missing_class_is_an_error_wherever_a_head_is_fitted_or_selected():
    with pytest.raises(ValueError, match=r"the tuning data \(y\) has no sample of class\(es\) \[1\]"):
        retrain_head(np.eye(3), [0, 0, 2], 3)
    cache = {"y": np.array([0, 0, 1, 1]), "logits": np.zeros((4, 2))}  # class 1 only twice: one per half
    with pytest.raises(ValueError, match=r"the identification half of validation has no sample of class\(es\) \[1\]"):
        split_validation({**cache, "y": np.array([0, 0, 0, 1])}, {"seed": 0, "ide_fraction": 0.5})
    halves = split_validation(cache, {"seed": 0, "ide_fraction": 0.5})
    assert sorted(cache["y"][halves["ide"]]) == sorted(cache["y"][halves["sel"]]) == [0, 1]


# ----------------------------------------------------------------------------- images


def test_a_zero_byte_image_fails_data_versioning_naming_the_file(tmp_path):
    write_metadata_image_layout(tmp_path)
    empty = tmp_path / "002.Bird" / "img_2.jpg"
    empty.write_bytes(b"")
    with pytest.raises(DatasetLayoutError, match=rf"waterbirds: 1 of 5 images listed in metadata.csv cannot be read, "
                                                 rf"e.g. {empty} \(zero bytes\)"):
        build_benchmark_data({"name": "waterbirds", "root": str(tmp_path)})


def test_a_file_that_is_not_an_image_fails_data_versioning_naming_the_file(tmp_path):
    write_metadata_image_layout(tmp_path, "img_align_celeba")
    foreign = tmp_path / "img_align_celeba" / "000003.jpg"
    foreign.write_text("<html>404 Not Found</html>")
    with pytest.raises(DatasetLayoutError, match=rf"celeba: 1 of 5 images .* cannot be read, e.g. {foreign} "
                                                 r"\(UnidentifiedImageError"):
        build_benchmark_data({"name": "celeba", "root": str(tmp_path), "image_dir": "img_align_celeba"})


def test_a_truncated_image_is_named_when_it_is_read(tmp_path):
    path = tmp_path / "photo.jpg"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (120, 120, 3), dtype=np.uint8)).save(path)
    path.write_bytes(path.read_bytes()[: int(path.stat().st_size * 0.9)])
    with pytest.raises(ValueError, match=rf"cannot read image {path}: OSError: image file is truncated"):
        load_image_file(str(path), 32, 0.875)


# ----------------------------------------------------------------------------- determinism


def test_erm_weights_do_not_depend_on_omp_num_threads(ci_project, tmp_path):
    """runtime.threads is applied when the session starts: one seed, one set of weights, whatever the shell says.
    (Without it, OMP_NUM_THREADS=1 and =2 give different weights on this config.)"""
    copy = copy_project(tmp_path / "project")
    shutil.copytree(ci_project / "data" / "ci" / "01_raw", data_file(copy, "01_raw"))
    weights = {}
    for threads in ("1", "2"):
        result = subprocess.run([str(BIN / "kedro"), "run", "--env", "ci", "--pipelines", "erm_training"],
                                cwd=copy, capture_output=True, text=True,
                                env=project_environment(OMP_NUM_THREADS=threads, MKL_NUM_THREADS=threads))
        assert result.returncode == 0, result.stderr[-2000:]
        weights[threads] = torch.load(data_file(copy, "06_models", "erm_model.pt"), weights_only=False)["state_dict"]
    assert weights["1"].keys() == weights["2"].keys()
    for name, tensor in weights["1"].items():
        assert torch.equal(tensor, weights["2"][name]), name


# ----------------------------------------------------------------------------- stale stages after a failure


def status(project, capsys, monkeypatch) -> tuple[int, str]:
    monkeypatch.chdir(project)
    code = neurontune(["status", "--env", "ci"])
    return code, capsys.readouterr().out


def states(report: str) -> dict[str, str]:
    rows = [line.split(None, 1) for line in report.splitlines() if line and not line.startswith(" ")]
    return {row[0]: row[1] for row in rows if len(row) == 2 and row[1] in ("up to date", "stale", "missing", "incomplete")}


def test_a_failure_in_regulation_leaves_earlier_stages_consistent_and_status_names_the_stale_ones(
        ci_project, tmp_path, capsys, monkeypatch):
    project = ran_copy(ci_project, tmp_path / "project")
    code, report = status(project, capsys, monkeypatch)
    if code != 0:  # earlier tests reran some stages of the shared ci project: bring the copy up to date first
        kedro(project, "run", "--env", "ci", "--pipelines", report.rsplit("kedro run --env ci --pipelines ", 1)[1].split()[0])
        code, report = status(project, capsys, monkeypatch)
    assert code == 0 and set(states(report).values()) == {"up to date"}, report

    nodes = project / "src" / "neurontune" / "pipelines" / "neurontune_regulation" / "nodes.py"
    original = nodes.read_text()
    nodes.write_text(original + "\n\ndef regulate_head(*args, **kwargs):\n    raise RuntimeError('induced failure')\n")
    result = kedro(project, "run", "--env", "ci", "--pipelines",
                   "neuron_identification,neurontune_regulation,baselines,evaluation", check=False)
    nodes.write_text(original)
    assert result.returncode != 0 and said("induced failure", result)

    code, report = status(project, capsys, monkeypatch)
    found = states(report)
    assert code == 1
    assert all(found[stage] == "up to date" for stage in ("data_versioning", "erm_training", "embedding_caching")), report
    assert all(found[stage] == "stale" for stage in ("neurontune_regulation", "evaluation", "model_promotion")), report
    assert "data/ci/06_models/neuron_scores.npz changed after its outputs were written" in report
    # every file is whole (no temporary left) and readable, the new identification outputs included
    assert not [path for path in project.joinpath(*DATA).rglob("*") if path.name.endswith(".tmp")]
    for folder, name in (("05_model_input", "validation_split"), ("05_model_input", "error_sets"),
                         ("06_models", "neuron_scores"), ("06_models", "biased_neuron_mask")):
        np.load(data_file(project, folder, f"{name}.npz"))

    command = report.rsplit("kedro run --env ci --pipelines ", 1)[1].split()[0]
    kedro(project, "run", "--env", "ci", "--pipelines", command)
    code, report = status(project, capsys, monkeypatch)
    assert code == 0 and "every stage is up to date" in report, report


# ----------------------------------------------------------------------------- one data folder per benchmark


def test_each_benchmark_reads_and_writes_its_own_data_folder(monkeypatch):
    """The issue: every environment wrote data/01_raw/…, so running one benchmark overwrote another's data."""
    import yaml
    from kedro.config import OmegaConfigLoader
    from kedro.io import DataCatalog

    from neurontune.parameters import validate_parameters
    from neurontune.pipeline_registry import register_pipelines
    from neurontune.settings import CONFIG_LOADER_ARGS
    from neurontune.stage_status import _local_file
    from tests.conftest import PROJECT_ROOT
    from tests.pipelines.conftest import environment_parameters

    monkeypatch.delenv("NEURONTUNE_DATA_ROOT", raising=False)
    names = register_pipelines()["__default__"].datasets()
    environments = sorted(path.name for path in (PROJECT_ROOT / "conf").iterdir() if path.is_dir()
                          and path.name not in ("base", "local"))
    owner = {}
    for env in environments:
        catalog = DataCatalog.from_config(OmegaConfigLoader(str(PROJECT_ROOT / "conf"), env=env, **CONFIG_LOADER_ARGS)["catalog"])
        files = {str(_local_file(catalog.get(name))) for name in names if _local_file(catalog.get(name)) is not None}
        assert files and all(path.startswith(f"data/{env}/") for path in files), (env, sorted(files)[:3])
        for path in files:
            assert owner.setdefault(path, env) == env, f"{path} is written by {owner[path]} and {env}"
    bundled = [env for env in environments if env != "ci"
               and validate_parameters(environment_parameters(env)).data_versioning.name == env
               and not hasattr(validate_parameters(environment_parameters(env)).data_versioning, "root")]
    stages = yaml.safe_load((PROJECT_ROOT / "dvc.yaml").read_text())
    assert sorted(stages["vars"][0]["benchmarks"]) == sorted(bundled) == ["colored_mnist", "tweets_negation", "waterbirds_like"]
