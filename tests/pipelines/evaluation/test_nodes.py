import numpy as np
import pandas as pd
import pytest

from neurontune.methods import load_registry, method_entries
from neurontune.pipelines.evaluation.nodes import (
    add_validity_card,
    assess_mask_quality,
    compute_group_metrics,
    flatten_metrics,
    plot_group_accuracies,
)


def test_predictions_cover_every_split_and_method(tiny_run):
    predictions = tiny_run["method_predictions"]
    assert set(predictions["method"]) == set(load_registry())
    erm = predictions[predictions["method"] == "erm"]
    assert len(erm) == len(tiny_run["raw_metadata"])
    np.testing.assert_array_equal(erm[erm["split"] == "test"]["y_pred"].to_numpy(),
                                  tiny_run["embeddings_test"]["logits"].argmax(1))


def test_metrics_match_a_hand_computation(tiny_run):
    predictions = tiny_run["method_predictions"].query("method == 'erm'")
    joined = predictions.merge(tiny_run["raw_metadata"], on="sample_id").query("split_x == 'test'")
    per_group = joined.assign(ok=joined["y_pred"] == joined["y"]).groupby("group")["ok"].mean()
    test = tiny_run["metrics"]["erm"]["test"]
    assert test["worst_group_accuracy"] == pytest.approx(per_group.min())
    assert test["mean_accuracy"] == pytest.approx((joined["y_pred"] == joined["y"]).mean())
    assert set(tiny_run["metrics"]["erm"]) == {"train", "val", "test"} and test["n_masked"] == 0


def test_the_validity_card_compares_erm_with_the_oracle(tiny_run):
    metrics = tiny_run["metrics"]
    card = metrics["validity"]["test"]
    assert card["erm_worst_group_accuracy"] == metrics["erm"]["test"]["worst_group_accuracy"]
    assert card["oracle_worst_group_accuracy"] == metrics["group_balanced_oracle"]["test"]["worst_group_accuracy"]
    assert card["headroom"] == pytest.approx(card["oracle_worst_group_accuracy"] - card["erm_worst_group_accuracy"])


def test_a_benchmark_without_headroom_is_flagged(caplog):
    report = {"erm_mean_accuracy": 0.6, "mean_accuracy": 0.6, "worst_group_accuracy": 0.55}
    metrics = {"erm": {"test": report}, "oracle": {"test": {**report, "worst_group_accuracy": 0.6}}}
    thresholds = {"oracle": "oracle", "min_oracle_worst_group_accuracy": 0.8, "min_headroom": 0.1}
    card = add_validity_card(metrics, thresholds)["validity"]["test"]
    assert card["separates_methods"] == 0.0 and card["headroom"] == pytest.approx(0.05)
    assert "cannot separate debiasing methods" in caplog.text
    with pytest.raises(ValueError, match="evaluation.validity.oracle must name an evaluated method"):
        add_validity_card(metrics, {**thresholds, "oracle": "dfr"})


def test_unknown_sample_ids_are_an_error(tiny_run):
    predictions = tiny_run["method_predictions"]
    with pytest.raises(ValueError, match="sample ids that raw_metadata does not know"):
        compute_group_metrics(predictions.assign(sample_id=predictions["sample_id"] + 10_000), tiny_run["raw_metadata"],
                              tiny_run["dataset_manifest"])


def test_flatten_and_plot():
    metrics = {"erm": {"test": {"accuracy_group_0": 1.0, "accuracy_group_1": 0.5, "worst_group_accuracy": 0.5}},
               "validity": {"test": {"headroom": 0.3}}}
    assert flatten_metrics(metrics) == {
        "erm.test.accuracy_group_0": {"value": 1.0, "step": 0},
        "erm.test.accuracy_group_1": {"value": 0.5, "step": 0},
        "erm.test.worst_group_accuracy": {"value": 0.5, "step": 0},
        "validity.test.headroom": {"value": 0.3, "step": 0},
    }
    assert plot_group_accuracies(metrics, "test").axes[0].get_title() == "Per-group accuracy on test"


def test_mask_quality_finds_a_planted_neuron_that_copies_the_attribute():
    """Neuron 2 copies the attribute within each class; a head masking it has precision = recall = 1."""
    rng = np.random.default_rng(0)
    n = 400
    y, a = rng.integers(0, 2, n), rng.integers(0, 2, n)
    embeddings = np.column_stack([y + rng.normal(0, 0.3, n), rng.random(n), a.astype(float), rng.random((n, 5))])
    cache = {"embeddings": embeddings, "y": y, "sample_id": np.arange(n)}
    metadata = pd.DataFrame({"sample_id": np.arange(n), "split": "test", "y": y, "a": a, "group": 2 * y + a})
    keep = np.ones(8)
    heads = {"on_target": {"weight": np.ones((2, 8)), "bias": np.zeros(2), "keep": np.where(np.arange(8) == 2, 0.0, 1.0)},
             "off_target": {"weight": np.ones((2, 8)), "bias": np.zeros(2), "keep": np.where(np.arange(8) < 2, 0.0, 1.0)},
             "per_class": {"weight": np.ones((2, 8)), "bias": np.zeros(2), "keep": np.stack([keep, np.where(np.arange(8) == 2, 0.0, 1.0)])}}
    quality, aurocs = assess_mask_quality(cache, cache, cache, metadata, {"split": "test", "auroc_threshold": 0.7}, **heads)
    assert aurocs["attribute_neuron"].tolist() == [i == 2 for i in range(8)]
    assert aurocs["core_neuron"].tolist() == [i == 0 for i in range(8)]
    assert quality["on_target"]["precision"] == 1.0 and quality["on_target"]["recall"] == 1.0
    assert quality["on_target"]["random_precision"] == pytest.approx(1 / 8) and quality["on_target"]["random_recall"] == pytest.approx(1 / 8)
    assert quality["off_target"]["precision"] == 0.0 and quality["off_target"]["recall"] == 0.0
    assert quality["off_target"]["core_share"] == 0.5 and quality["per_class"]["recall"] == 1.0
    assert aurocs["masked_off_target"].tolist() == [True, True] + [False] * 6


def test_mask_quality_and_harm_are_report_sections(tiny_run):
    metrics = tiny_run["metrics"]
    masking = {name for name, method in load_registry().items() if method.uses_mask}
    assert list(metrics)[-3:] == ["validity", "mask_quality", "harm"]
    assert set(metrics["mask_quality"]) == masking and set(method_entries(metrics)) == set(load_registry())
    for name in masking:
        assert metrics["mask_quality"][name]["n_masked"] == metrics[name]["test"]["n_masked"]
    flat = flatten_metrics(metrics)
    assert "mask_quality.neurontune.recall" in flat and "harm.neurontune.test.delta_worst_group_accuracy" in flat
    assert flat["harm.neurontune.selection.guard_fired"]["value"] in (0.0, 1.0)
    assert len(tiny_run["neuron_aurocs"]) == tiny_run["embeddings_test"]["embeddings"].shape[1]
