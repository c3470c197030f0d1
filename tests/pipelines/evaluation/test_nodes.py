import numpy as np
import pandas as pd
import pytest

from neurontune.pipelines.evaluation.nodes import (
    compute_group_metrics,
    flatten_metrics,
    plot_group_accuracies,
    predict_with_heads,
)


@pytest.fixture(scope="module")
def predictions(tiny_run):
    caches = {name: tiny_run[name] for name in ("embeddings_train", "embeddings_val", "embeddings_test")}
    return predict_with_heads(**caches, erm=tiny_run["erm_head"])


def test_predictions_cover_every_split(predictions, tiny_run):
    assert len(predictions) == len(tiny_run["raw_metadata"])
    erm_test = predictions[(predictions["split"] == "test")]["y_pred"].to_numpy()
    np.testing.assert_array_equal(erm_test, tiny_run["embeddings_test"]["logits"].argmax(1))


def test_metrics_match_a_hand_computation(predictions, tiny_run):
    metrics = compute_group_metrics(predictions, tiny_run["raw_metadata"])
    joined = predictions.merge(tiny_run["raw_metadata"], on="sample_id").query("split_x == 'test'")
    per_group = joined.assign(ok=joined["y_pred"] == joined["y"]).groupby("group")["ok"].mean()
    test = metrics["erm"]["test"]
    assert test["worst_group_accuracy"] == pytest.approx(per_group.min())
    assert test["mean_accuracy"] == pytest.approx((joined["y_pred"] == joined["y"]).mean())
    assert set(metrics["erm"]) == {"train", "val", "test"} and test["n_masked"] == 0


def test_unknown_sample_ids_are_an_error(predictions, tiny_run):
    with pytest.raises(ValueError, match="sample ids that raw_metadata does not know"):
        compute_group_metrics(predictions.assign(sample_id=predictions["sample_id"] + 10_000), tiny_run["raw_metadata"])


def test_flatten_and_plot():
    metrics = {"erm": {"test": {"accuracy_group_0": 1.0, "accuracy_group_1": 0.5, "worst_group_accuracy": 0.5}}}
    assert flatten_metrics(metrics) == {
        "erm.test.accuracy_group_0": {"value": 1.0, "step": 0},
        "erm.test.accuracy_group_1": {"value": 0.5, "step": 0},
        "erm.test.worst_group_accuracy": {"value": 0.5, "step": 0},
    }
    assert plot_group_accuracies(metrics, "test").axes[0].get_title() == "Per-group accuracy on test"
