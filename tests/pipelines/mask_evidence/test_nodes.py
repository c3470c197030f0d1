"""Evidence galleries: the tables behind them on the tiny real run, and the text gallery on literal texts."""

import numpy as np
import pandas as pd
import pytest

from neurontune.methods import complete_variant
from neurontune.methods import load_registry
from neurontune.pipeline_registry import register_pipelines
from neurontune.pipelines.mask_evidence.nodes import collect_mask_evidence, draw_mask_gallery, masked_neurons

REGISTRY = load_registry()
MASKING = [name for name, method in REGISTRY.items() if method.uses_mask]
SETTINGS = {"n_neurons": 2, "n_samples": 3, "seed": 0, "text": {"n_words": 3, "word_pool": 10, "prior_strength": 10.0}}


def test_one_gallery_per_masking_variant_of_the_registry():
    names = {node.name for node in register_pipelines()["mask_evidence"].nodes}
    assert MASKING and names == {f"mask_evidence.{verb}_{name}" for name in MASKING for verb in ("collect_evidence", "draw_gallery")}
    assert "raw_metadata" not in register_pipelines()["mask_evidence"].inputs()


@pytest.mark.parametrize("method", MASKING)
def test_evidence_shows_masked_neurons_by_delta_and_their_extreme_samples(tiny_run, parameters, method):
    table = tiny_run[f"mask_evidence.{method}_evidence"]
    head = tiny_run[f"neurontune_regulation.{method}_head"]
    settings = parameters["mask_evidence"]["gallery"]
    masked = masked_neurons(head)
    shown = table.drop_duplicates(["kind", "neuron"])
    assert masked[shown.loc[shown["kind"] == "masked", "neuron"]].all()
    assert not masked[shown.loc[shown["kind"] == "unmasked", "neuron"]].any()
    assert len(shown[shown["kind"] == "masked"]) == min(settings["n_neurons"], int(masked.sum()))
    assert shown[shown["kind"] == "masked"]["delta"].is_monotonic_decreasing
    assert (table.groupby(["kind", "neuron"]).size() == 2 * settings["n_samples"]).all()
    val = tiny_run["embeddings_val"]
    rows = pd.Series(np.arange(len(val["sample_id"])), index=val["sample_id"]).loc[table["sample_id"]].to_numpy()
    np.testing.assert_array_equal(table["y"], val["y"][rows])
    np.testing.assert_allclose(table["activation"], val["embeddings"][rows, table["neuron"]])
    highest = table[(table["end"] == "highest")].groupby("neuron")["activation"].min()
    lowest = table[(table["end"] == "lowest")].groupby("neuron")["activation"].max()
    assert (highest >= lowest).all()
    figure, notes = tiny_run[f"mask_evidence.{method}_gallery"], tiny_run[f"mask_evidence.{method}_gallery_notes"]
    assert len([axis for axis in figure.axes if axis.images]) == len(table)  # one tile per shown sample
    assert notes.startswith(f"# What `{method}` masked") and "| neuron | kind |" in notes


@pytest.fixture
def text_run():
    """Twelve validation texts; neuron 0 fires on the ones that say "not", neuron 1 on "great"."""
    texts = np.array([f"this is {'not ' if i % 3 == 0 else ''}a {'great' if i % 2 else 'plain'} day number {i}"
                      for i in range(12)])
    embeddings = np.column_stack([[2.0 + 0.1 * i if i % 3 == 0 else 0.0 for i in range(12)],
                                  [1.0 if i % 2 else 0.0 for i in range(12)], np.linspace(0, 1, 12)])
    class_labels = pd.DataFrame({"sample_id": np.arange(100, 112), "split": "val", "y": np.arange(12) % 2})
    val = {"embeddings": embeddings, "y": class_labels["y"].to_numpy(), "sample_id": class_labels["sample_id"].to_numpy()}
    scores = np.array([[0.8, -0.2, 0.0], [0.6, -0.1, 0.0]])
    head = {"weight": np.array([[0.0, -1.0, 0.2], [0.0, 1.0, -0.2]]), "bias": np.zeros(2), "keep": np.array([0.0, 1.0, 1.0])}
    role = "val_ide.erm.median"  # the paper's scoring role
    neuron_scores = {f"{role}_scores": scores, f"{role}_n_wrong": np.array([3, 3]), f"{role}_n_right": np.array([3, 3])}
    return val, class_labels, {"inputs": texts}, neuron_scores, head


def test_text_evidence_names_the_words_of_a_masked_neuron(text_run):
    val, class_labels, raw_inputs, neuron_scores, head = text_run
    table = collect_mask_evidence(val, class_labels, raw_inputs, neuron_scores, head, complete_variant({"tune_set": "val_ide", "use_mask": True}), SETTINGS)
    masked = table[table["kind"] == "masked"]
    assert set(masked["neuron"]) == {0}
    assert masked["top_words"].iloc[0].startswith("not (")
    assert masked.loc[masked["end"] == "highest", "text"].str.contains("not ").all()
    assert set(table.loc[table["kind"] == "unmasked", "neuron"]) == {1, 2}
    figure, notes = draw_mask_gallery(table, raw_inputs, class_labels, "toy")
    assert "## Neuron 0 (masked" in notes and "Over-represented words (log-odds z): not (" in notes
    assert "not" in figure.axes[0].texts[0].get_text()


def test_a_head_without_a_mask_shows_its_kept_neurons_only(text_run):
    val, class_labels, raw_inputs, neuron_scores, head = text_run
    table = collect_mask_evidence(val, class_labels, raw_inputs, neuron_scores, {**head, "keep": np.ones(3)}, complete_variant({"tune_set": "val_ide", "use_mask": True}), SETTINGS)
    assert set(table["kind"]) == {"unmasked"}
    _, notes = draw_mask_gallery(table, raw_inputs, class_labels, "toy")
    assert "(masked" not in notes and "## Neuron 1 (kept" in notes
