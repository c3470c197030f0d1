"""Group labels are for evaluation only: randomising the attribute column changes no model, mask or prediction.

The exceptions are the baselines that declare ``labels_used != "none"`` (DFR, the
group-balanced oracle); they are left out of the comparison, every group-free
baseline is held to the same standard as NeuronTune.
"""

import json
import shutil

import numpy as np
import pandas as pd
import pytest
import torch

from neurontune.data.tables import content_digest, group_counts
from neurontune.methods import load_registry
from tests.conftest import copy_project, kedro

TRAINING_SIDE = ("erm_training,embedding_caching,neuron_identification,neurontune_regulation,baselines,harm_guard,"
                 "mask_evidence,evaluation")
REGISTRY = load_registry()
LABELS_USED = {name: method.labels_used for name, method in REGISTRY.items()}
GROUP_FREE = sorted(name for name, method in REGISTRY.items() if method.labels_used == "none" and name != "erm")
MASKING = sorted(name for name, method in REGISTRY.items() if method.uses_mask)
ARRAYS = ["04_feature/embeddings_train.npz", "04_feature/embeddings_val.npz", "04_feature/embeddings_test.npz",
          "06_models/biased_neuron_mask.npz", "06_models/neuron_scores.npz", "05_model_input/error_sets.npz",
          *(f"06_models/{REGISTRY[name].stage}/{name}_head.npz" for name in GROUP_FREE)]


@pytest.fixture(scope="module")
def twin_runs(ci_project, tmp_path_factory):
    """The training side run twice on the same raw data: true attributes vs random attributes (in the metadata
    table and in the dataset manifest's group counts)."""
    runs = {}
    for arm in ("true", "random"):
        project = copy_project(tmp_path_factory.mktemp(f"labels_{arm}"))
        (project / "data" / "ci" / "01_raw").mkdir(parents=True)
        for name in ("inputs.npz", "metadata.parquet", "dataset_manifest.json"):
            shutil.copy2(ci_project / "data" / "ci" / "01_raw" / name, project / "data" / "ci" / "01_raw" / name)
        if arm == "random":
            raw = project / "data" / "ci" / "01_raw"
            metadata = pd.read_parquet(raw / "metadata.parquet")
            metadata["a"] = np.random.default_rng(123).integers(0, 2, len(metadata))
            metadata["group"] = 2 * metadata["y"] + metadata["a"]
            metadata.to_parquet(raw / "metadata.parquet", index=False)
            # the manifest carries per-split (y, a) counts: a leak through it must show too
            manifest = json.loads((raw / "dataset_manifest.json").read_text())
            with np.load(raw / "inputs.npz") as inputs:
                manifest["digest"] = content_digest(inputs["inputs"], metadata)
            manifest["group_counts"] = group_counts(metadata)
            (raw / "dataset_manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
        kedro(project, "run", "--env", "ci", "--pipelines", TRAINING_SIDE)
        runs[arm] = project / "data" / "ci"
    return runs


def test_random_attributes_give_bit_identical_models_masks_heads(twin_runs):
    true, random = twin_runs["true"], twin_runs["random"]
    for checkpoint in ("erm_model.pt", "erm_early_model.pt"):  # the early checkpoint defines neurontune_plus's errors
        first = torch.load(true / "06_models" / checkpoint, weights_only=True)["state_dict"]
        second = torch.load(random / "06_models" / checkpoint, weights_only=True)["state_dict"]
        assert all(torch.equal(first[name], second[name]) for name in first), checkpoint
    for relative in ARRAYS:
        a, b = np.load(true / relative), np.load(random / relative)
        assert a.files == b.files
        for key in a.files:
            np.testing.assert_array_equal(a[key], b[key], err_msg=f"{relative}:{key}")


def test_random_attributes_give_identical_predictions_but_different_group_metrics(twin_runs):
    predictions = [pd.read_parquet(twin_runs[arm] / "07_model_output" / "method_predictions.parquet") for arm in ("true", "random")]
    group_free = [frame[frame["method"].map(LABELS_USED) == "none"].reset_index(drop=True) for frame in predictions]
    assert set(group_free[0]["method"]) == {"erm", *GROUP_FREE}
    pd.testing.assert_frame_equal(*group_free)
    labelled = [frame[frame["method"] == "dfr"]["y_pred"].to_numpy() for frame in predictions]
    assert not np.array_equal(*labelled), "dfr reads the (changed) group labels, so its predictions must move"
    metrics = [(twin_runs[arm] / "08_reporting" / "metrics.json").read_text() for arm in ("true", "random")]
    assert metrics[0] != metrics[1], "evaluation must read the (changed) group labels"


def test_random_attributes_give_identical_galleries_guard_decisions_and_method_choice(twin_runs):
    """The label-free audit outputs: the tables behind the evidence galleries (and their Markdown), the do-no-harm
    guard's decisions for every group-free method and the method ``auto`` ships (the PNG bytes are left out: fonts
    may differ)."""
    reporting = {arm: twin_runs[arm] / "08_reporting" for arm in ("true", "random")}
    assert MASKING
    for name in MASKING:
        tables = [pd.read_parquet(reporting[arm] / "mask_evidence" / f"{name}_evidence.parquet") for arm in ("true", "random")]
        assert len(tables[0]) > 0
        pd.testing.assert_frame_equal(*tables)
        notes = [(reporting[arm] / "mask_evidence" / f"{name}_gallery.md").read_text() for arm in ("true", "random")]
        assert notes[0] == notes[1]
    guards = [json.loads((reporting[arm] / "harm_guard.json").read_text()) for arm in ("true", "random")]
    assert guards[0]["erm"] == guards[1]["erm"] and guards[0]["settings"] == guards[1]["settings"]
    assert {name: guards[0]["methods"][name] for name in GROUP_FREE} == {name: guards[1]["methods"][name] for name in GROUP_FREE}
    assert guards[0]["methods"]["dfr"] != guards[1]["methods"]["dfr"], "dfr reads the (changed) group labels"
    # which method packaging.method: auto ships is model selection: it must not move either
    choices = [json.loads((reporting[arm] / "method_choice.json").read_text()) for arm in ("true", "random")]
    assert choices[0] == choices[1] and {row["method"] for row in choices[0]["candidates"]} == {"erm", *GROUP_FREE}
