"""Trust under pressure (issue 28, docs/reliability.md "Trust under pressure"): no exit 0 with a result the
project knows to be wrong — missing classes, fractional labels, huge cached values, stale digests, two runs
at once — and clear errors instead of tracebacks. The kedro runs use copies of the suite's ci project."""

import re
import shutil
import subprocess

import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient

from neurontune.data import build_benchmark_data
from neurontune.data.published import DatasetLayoutError
from neurontune.data.tables import build_metadata
from neurontune.pipelines.evaluation.nodes import compute_group_metrics
from tests.conftest import BIN, kedro, patience, project_environment
from tests.data.test_published import write_metadata_image_layout
from tests.test_reliability import data_file, ran_copy, said, times
from tests.tracking.conftest import MODEL_NAME


@pytest.fixture(scope="module")
def project(ci_project, tmp_path_factory):
    return ran_copy(ci_project, tmp_path_factory.mktemp("trust"))


@pytest.fixture
def tampered(project):
    """Edit a file of the ci data tree (``tampered(name, change)``); every edited file is restored afterwards."""
    originals = {}

    def tamper(parts, change):
        path = data_file(project, *parts)
        originals.setdefault(path, path.read_bytes())
        change(path)
        return path

    yield tamper
    for path, content in originals.items():
        path.write_bytes(content)


def edit_npz(change):
    def edit(path):
        arrays = dict(np.load(path))
        change(arrays)
        np.savez(path, **arrays)  # the name ends in .npz: written in place
    return edit


# ------------------------------------------------------------------- case 3: a class missing from a split


def test_a_class_missing_from_the_test_split_is_not_measured():
    """The issue: class 1's test rows moved to val gave a WGA over 2 of 4 groups, exit 0, no warning."""
    y, a = np.array([0, 1] * 12), np.array([0, 0, 1, 1] * 6)
    split = np.array(["train"] * 8 + ["val"] * 8 + ["test"] * 8, dtype=object)
    split[16:][y[16:] == 1] = "val"  # every class-1 test row moved to val
    metadata = build_metadata(split, y, a)
    predictions = pd.DataFrame({"method": "erm", "split": metadata["split"], "sample_id": metadata["sample_id"],
                                "y_pred": metadata["y"], "n_masked": 0})
    with pytest.raises(ValueError, match=r"not measurable: raw_metadata's test split has no sample of class\(es\) \[1\] "
                                         r"/ group\(s\) \[2, 3\]"):
        compute_group_metrics(predictions, metadata, {"n_classes": 2, "n_groups": 4})


# ------------------------------------------------------------------- case 4: a fractional label


def test_a_fractional_label_in_a_published_metadata_csv_is_refused(tmp_path):
    """The issue: ``y=0.5`` in waterbirds' metadata.csv was stored as ``y=0``."""
    table = write_metadata_image_layout(tmp_path)
    table["y"] = table["y"].astype(float)
    table.loc[2, "y"] = 0.5
    table.to_csv(tmp_path / "metadata.csv", index=False)
    with pytest.raises(DatasetLayoutError, match=r"metadata.csv column 'y' must hold integers; 1 row\(s\) do not, "
                                                 r"e.g. row 2 = 0.5"):
        build_benchmark_data({"name": "waterbirds", "root": str(tmp_path)})
    with pytest.raises(ValueError, match=r"column 'y' must hold integers"):
        build_metadata(["train", "val"], [0, 0.5], [0, 1])


# ------------------------------------------------------------------- case 5: huge finite cached values


def test_huge_finite_values_in_the_training_cache_stop_the_run(project, tampered):
    """The issue: 1e30 in two rows of embeddings_train.npz gave only a numpy overflow warning and test WGA 0.000."""
    def huge(arrays):
        arrays["embeddings"] = arrays["embeddings"].copy()
        arrays["embeddings"][[7, 11]] = 1e30

    tampered(("04_feature", "embeddings_train.npz"), edit_npz(huge))
    heads = times(project, "06_models")
    result = kedro(project, "run", "--env", "ci", "--pipelines", "baselines", check=False)
    assert result.returncode != 0
    assert said("data/ci/04_feature/embeddings_train.npz: array 'embeddings' has 2 rows with values over 10000 × the "
                "split's typical magnitude", result)
    assert said("(first: [7, 11], largest |value| 1e+30)", result)
    assert times(project, "06_models") == heads


# ------------------------------------------------------------------- case 2: raw data edited after data_versioning


def test_raw_metadata_edited_after_data_versioning_stops_the_run(project, tampered):
    """The issue: test rows moved to val in metadata.parquet kept the old data_digest (the gate compared numbers from
    different data, evaluated on 293 test samples instead of 400)."""
    def move_test_rows(path):
        metadata = pd.read_parquet(path)
        metadata.loc[metadata.index[metadata["split"] == "test"][:50], "split"] = "val"
        metadata.to_parquet(path)

    tampered(("01_raw", "metadata.parquet"), move_test_rows)
    before = times(project, "04_feature", "06_models", "08_reporting")
    result = kedro(project, "run", "--env", "ci", "--pipelines", "evaluation,model_promotion", check=False)
    assert result.returncode != 0
    assert said("the raw data changed after data_versioning recorded it", result)
    assert said("rerun data_versioning first", result)
    assert times(project, "04_feature", "06_models", "08_reporting") == before


# ------------------------------------------------------------------- case 1: two runs at once


def test_two_runs_started_together_do_not_mix(ci_project, tmp_path):
    """The issue: run A (seed 0) packaged run B's seed-1 ERM backbone; both exit 0. Now the second run waits for the
    first (one run at a time per project) and each packages the backbone it trained."""
    project = ran_copy(ci_project, tmp_path / "project")
    shutil.copy2(ci_project / "mlflow.db", project / "mlflow.db")
    command = [str(BIN / "kedro"), "run", "--env", "ci", "--pipelines", "erm_training,model_promotion"]
    runs = [subprocess.Popen(command + extra, cwd=project, env=project_environment(), stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True) for extra in ([], ["--params", "erm_training.seed=1"])]
    outputs = [run.communicate(timeout=patience(600))[0] for run in runs]
    assert [run.returncode for run in runs] == [0, 0], outputs[0][-3000:] + outputs[1][-3000:]
    assert sum(bool(re.search(r"waiting\s+for\s+another\s+kedro\s+run", output)) for output in outputs) == 1

    store = f"sqlite:///{project / 'mlflow.db'}"
    client = MlflowClient(store, store)  # its registry too, whatever an earlier test set as the registry URI
    experiment = client.get_experiment_by_name("neurontune").experiment_id
    pair = sorted(client.search_runs([experiment], "tags.erm_checkpoint_digest != ''", max_results=50),
                  key=lambda run: run.info.start_time)[-2:]
    assert len(pair) == 2 and pair[0].info.end_time <= pair[1].info.start_time  # one after the other, not interleaved
    assert pair[0].data.tags["erm_checkpoint_digest"] != pair[1].data.tags["erm_checkpoint_digest"]  # seeds 0 and 1
    for run in pair:  # each registered (or reused) version serves the backbone its own run trained
        version = client.get_model_version(MODEL_NAME, run.data.tags["promotion.challenger_version"])
        assert version.tags["erm_checkpoint_digest"] == run.data.tags["erm_checkpoint_digest"]


# ------------------------------------------------------------------- cases 9-12: a clear error, not a traceback


def clear_error(result, *messages: str) -> None:
    """The run failed with every message in its output and no traceback."""
    assert result.returncode != 0, result.stdout[-2000:]
    output = result.stdout + result.stderr
    assert "Traceback" not in output, output[-4000:]
    for message in messages:
        assert said(message, result), output[-3000:]


def kedro_with(project, *arguments, **variables):
    return subprocess.run([str(BIN / "kedro"), *arguments], cwd=project, env=project_environment(**variables),
                          capture_output=True, text=True, timeout=patience(300))


@pytest.fixture
def not_mlflow(tmp_path):
    """A web server on 127.0.0.1 that is not MLflow: every path answers 404 (an HTML page)."""
    import sys

    from tests.tracking.conftest import free_port, stop, wait_for_http

    (tmp_path / "index.html").write_text("hello")
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1"], cwd=tmp_path,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    wait_for_http(f"http://127.0.0.1:{port}/", process, timeout=patience(30))
    yield f"http://127.0.0.1:{port}"
    stop(process)


def test_a_tracking_uri_that_is_not_mlflow_is_named(project, not_mlflow):
    """Case 9: a URI answering 404 passed the pre-flight check and failed 12 s later in a raw MlflowException."""
    result = kedro_with(project, "run", "--env", "ci", "--pipelines", "data_versioning", MLFLOW_TRACKING_URI=not_mlflow)
    clear_error(result, f"{not_mlflow} answered HTTP 404 to MLflow's REST API", "it is not an MLflow tracking server")


def test_a_truncated_mlflow_db_is_named(project, ci_project):
    """Case 10: a truncated mlflow.db gave a "database disk image is malformed" traceback."""
    store = project / "mlflow.db"
    content = (ci_project / "mlflow.db").read_bytes()
    store.write_bytes(content[: len(content) // 2])
    try:
        result = kedro_with(project, "run", "--env", "ci", "--pipelines", "data_versioning")
    finally:
        store.unlink()
    clear_error(result, f"the MLflow store {store} is damaged", "move it aside")


@pytest.mark.parametrize("entry", ["[promoter, secret]", "promoter:secret"])
def test_mlflow_credentials_of_the_wrong_shape_are_named(project, entry):
    """Case 11: ``mlflow_credentials`` given as a list or a string gave ``AttributeError: .items``."""
    credentials = project / "conf" / "ci" / "credentials.yml"
    credentials.write_text(f"mlflow_credentials: {entry}\n")
    try:
        result = kedro_with(project, "run", "--env", "ci", "--pipelines", "data_versioning")
    finally:
        credentials.unlink()
    clear_error(result, "credentials.yml of environment ci, entry 'mlflow_credentials' must be a mapping")
    assert "secret" not in result.stdout + result.stderr


def test_a_duplicate_key_names_the_file_and_an_unknown_env_is_one_line(project):
    """Case 12: a duplicate key gave ``ConstructorError`` without the file's name; ``--env nosuch`` was named only
    after a 222-line traceback."""
    parameters = project / "conf" / "ci" / "parameters.yml"
    original = parameters.read_text()
    parameters.write_text(original + "data_versioning: {}\n")  # the file already has a data_versioning block
    try:
        result = kedro_with(project, "run", "--env", "ci", "--pipelines", "data_versioning")
    finally:
        parameters.write_text(original)
    clear_error(result, f"cannot read {parameters}, line", "found duplicate key")
    clear_error(kedro_with(project, "run", "--env", "nosuch"), "no Kedro environment 'nosuch'", "Environments here:")


# ------------------------------------------------------------------- also seen: staleness by content


def test_an_identical_conf_file_copied_again_leaves_every_stage_up_to_date(ci_project, tmp_path, capsys, monkeypatch):
    """Issue 28: ``neurontune status`` judged by file times, so re-copying an identical conf file marked every stage
    stale. Runs now keep a ledger of contents; a newer time with the same content is not a change."""
    from neurontune.console import main as neurontune

    project = ran_copy(ci_project, tmp_path / "project")
    shutil.copy2(ci_project / ".neurontune-content.json", project / ".neurontune-content.json")
    monkeypatch.chdir(project)

    def status() -> tuple[int, str]:
        code = neurontune(["status", "--env", "ci"])
        return code, capsys.readouterr().out

    assert status()[0] == 0
    for name in ("ci/parameters.yml", "base/parameters_erm_training.yml"):
        path = project / "conf" / name
        content = path.read_bytes()
        path.unlink()
        path.write_bytes(content)  # the same bytes, a new file time
    code, report = status()
    assert code == 0 and "every stage is up to date" in report, report
    (project / "conf/base/parameters_erm_training.yml").write_bytes(content + b"# edited\n")
    code, report = status()
    assert code == 1 and "conf/base/parameters_erm_training.yml changed after its outputs were written" in report
