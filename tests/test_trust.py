"""Trust under pressure (issue 28, docs/reliability.md "Trust under pressure"): no exit 0 with a result the
project knows to be wrong — missing classes, fractional labels, huge cached values, stale digests, two runs
at once — and clear errors instead of tracebacks. The kedro runs use copies of the suite's ci project."""

import numpy as np
import pandas as pd
import pytest

from neurontune.data import build_benchmark_data
from neurontune.data.published import DatasetLayoutError
from neurontune.data.tables import build_metadata
from neurontune.pipelines.evaluation.nodes import compute_group_metrics
from tests.conftest import kedro
from tests.data.test_published import write_metadata_image_layout
from tests.test_reliability import data_file, ran_copy, said, times


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
        with np.load(path) as stored:
            arrays = {key: stored[key] for key in stored.files}
        change(arrays)
        with open(path, "wb") as handle:
            np.savez(handle, **arrays)
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
