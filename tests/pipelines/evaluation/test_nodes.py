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
    assert list(metrics)[-5:] == ["validity", "mask_quality", "harm", "method_choice", "error_set_quality"]
    assert set(metrics["mask_quality"]) == masking and set(method_entries(metrics)) == set(load_registry())
    for name in masking:
        assert metrics["mask_quality"][name]["n_masked"] == metrics[name]["test"]["n_masked"]
    flat = flatten_metrics(metrics)
    assert "mask_quality.neurontune.recall" in flat and "harm.neurontune.test.delta_worst_group_accuracy" in flat
    assert flat["harm.neurontune.selection.guard_fired"]["value"] in (0.0, 1.0)
    assert len(tiny_run["neuron_aurocs"]) == tiny_run["embeddings_test"]["embeddings"].shape[1]


# ------------------------------------------------- groups optional (issue 24): literal inputs, no group labels

from neurontune.core.metrics import NOT_MEASURABLE  # noqa: E402
from neurontune.pipelines.evaluation.nodes import assess_harm, list_unfitted_heads, predict_with_heads  # noqa: E402

NOT_FITTED = {"not_fitted": "no validation group labels"}


def literal_predictions():
    """Two samples per split and class; ERM wrong on one sample of each class, "fixed" right everywhere on test."""
    rows = []
    for offset, split in enumerate(("train", "val", "test")):
        ids, y = np.arange(4) + 4 * offset, np.array([0, 0, 1, 1])
        rows += [{"method": "erm", "split": split, "sample_id": i, "y_pred": p, "n_masked": 0}
                 for i, p in zip(ids, [0, 1, 1, 0])]
        rows += [{"method": "fixed", "split": split, "sample_id": i, "y_pred": p, "n_masked": 2}
                 for i, p in zip(ids, y if split == "test" else [0, 1, 1, 0])]
    metadata = pd.DataFrame({"sample_id": np.arange(12), "split": np.repeat(["train", "val", "test"], 4),
                             "y": np.tile([0, 0, 1, 1], 3)})
    return pd.DataFrame(rows), metadata


def test_metrics_without_a_group_column_report_classes_and_pseudo_groups_and_no_wga():
    predictions, metadata = literal_predictions()
    metrics = compute_group_metrics(predictions, metadata, {"n_classes": 2}, unfitted_heads={"dfr": "no validation group labels"})
    assert list(metrics) == ["erm", "fixed", "dfr"] and metrics["dfr"] == {split: NOT_FITTED for split in ("train", "val", "test")}
    assert metrics["erm"]["test"] == {"worst_group_accuracy": NOT_MEASURABLE, "mean_accuracy_train_weighted": NOT_MEASURABLE,
                                      "accuracy_class_0": 0.5, "accuracy_class_1": 0.5, "worst_class_accuracy": 0.5,
                                      "mean_accuracy": 0.5, "accuracy_pseudo_group_0": 1.0, "accuracy_pseudo_group_1": 0.0,
                                      "accuracy_pseudo_group_2": 1.0, "accuracy_pseudo_group_3": 0.0,
                                      "worst_pseudo_group_accuracy": 0.0, "n_masked": 0}
    fixed = metrics["fixed"]["test"]  # after: right on ERM's error set too
    assert fixed["accuracy_pseudo_group_1"] == fixed["accuracy_pseudo_group_3"] == fixed["worst_class_accuracy"] == 1.0
    assert flatten_metrics(metrics) and not [key for key in flatten_metrics(metrics) if "worst_group" in key]


def test_groups_on_one_split_give_wga_there_only():
    predictions, metadata = literal_predictions()
    metadata = metadata.assign(a=[-1] * 8 + [0, 1, 0, 1], group=[-1] * 8 + [0, 1, 2, 3])
    metrics = compute_group_metrics(predictions, metadata, {"n_classes": 2})
    assert metrics["erm"]["test"]["worst_group_accuracy"] == 0.0 and metrics["fixed"]["test"]["worst_group_accuracy"] == 1.0
    assert metrics["erm"]["test"]["accuracy_group_1"] == 0.0
    assert metrics["erm"]["val"]["worst_group_accuracy"] == metrics["erm"]["train"]["worst_group_accuracy"] == NOT_MEASURABLE
    assert metrics["erm"]["test"]["mean_accuracy_train_weighted"] == "not measurable: no group labels on the training split"


def test_unfitted_heads_are_listed_and_never_predicted(tiny_run):
    assert list_unfitted_heads(erm=tiny_run["erm_head"], dfr=NOT_FITTED) == {"dfr": "no validation group labels"}
    cache = tiny_run["embeddings_test"]
    predictions = predict_with_heads(cache, cache, cache, erm=tiny_run["erm_head"], dfr=NOT_FITTED)
    assert set(predictions["method"]) == {"erm"}


def test_validity_harm_and_plot_without_groups():
    predictions, metadata = literal_predictions()
    metrics = compute_group_metrics(predictions, metadata, {"n_classes": 2},
                                    unfitted_heads={"group_balanced_oracle": "no validation group labels"})
    validity = {"oracle": "group_balanced_oracle", "min_oracle_worst_group_accuracy": 0.8, "min_headroom": 0.1}
    assert add_validity_card(metrics, validity)["validity"]["test"]["separates_methods"] == NOT_MEASURABLE
    guard = {"methods": {"fixed": {"would_fire": False, "fired": False}, "group_balanced_oracle": NOT_FITTED}}
    harm = assess_harm(metrics, guard, {"split": "test", "tolerance": 0.0})
    assert harm["group_balanced_oracle"] == NOT_FITTED
    assert harm["fixed"]["worse_than_erm_by"] == "worst_class_accuracy" and not harm["fixed"]["worse_than_erm"]
    assert harm["fixed"]["test"] == {"delta_worst_group_accuracy": NOT_MEASURABLE, "delta_mean_accuracy": 0.5,
                                     "delta_worst_class_accuracy": 0.5}
    worse = assess_harm({**metrics, "fixed": metrics["erm"], "erm": metrics["fixed"]}, guard, {"split": "test", "tolerance": 0.0})
    assert worse["fixed"]["worse_than_erm"]
    axis = plot_group_accuracies(metrics, "test").axes[0]
    assert axis.get_title() == f"Per-class accuracy on test\n(worst-group accuracy {NOT_MEASURABLE})"
    legend = [text.get_text() for text in axis.get_legend().get_texts()]
    assert legend == ["erm (worst class 0.50)", "fixed (worst class 1.00)",
                      "group_balanced_oracle: not fitted (no validation group labels)"]


def test_mask_quality_without_the_attribute_is_not_measurable(tiny_run):
    cache = tiny_run["embeddings_test"]
    head = tiny_run["neurontune_regulation.neurontune_dagger_head"]
    metadata = tiny_run["raw_metadata"].drop(columns=["a", "group"])
    quality, aurocs = assess_mask_quality(cache, cache, cache, metadata, {"split": "test", "auroc_threshold": 0.7},
                                          neurontune_dagger=head)
    entry = quality["neurontune_dagger"]
    assert entry["precision"] == entry["recall"] == entry["n_attribute_neurons"] == NOT_MEASURABLE
    assert entry["n_masked"] == int((np.asarray(head["keep"]) == 0).sum()) and entry["n_neurons"] == aurocs.shape[0]
    assert list(aurocs.columns) == ["neuron", "masked_neurontune_dagger"]
