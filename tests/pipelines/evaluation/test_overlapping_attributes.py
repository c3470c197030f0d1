import pandas as pd
import pytest

from neurontune.pipelines.evaluation.nodes import compute_group_metrics


def test_civilcomments_style_identity_columns_add_overlapping_group_metrics():
    # every split holds all four groups (evaluation refuses a split missing one); rows 8-11 carry no identity
    metadata = pd.DataFrame({"sample_id": range(12), "split": ["train"] * 4 + ["val"] * 2 + ["test"] * 2 + ["val", "val", "test", "test"],
                             "y": [0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1], "a": [0, 0, 1, 1, 0, 1, 1, 1, 1, 0, 0, 0],
                             "group": [0, 2, 1, 3, 0, 3, 1, 3, 1, 2, 0, 2],
                             "identity_male": [0, 0, 1, 1, 0, 1, 1, 0, 0, 0, 0, 0],
                             "identity_black": [0, 0, 0, 1, 0, 1, 0, 1, 0, 0, 0, 0]})
    predictions = pd.DataFrame({"method": "erm", "split": metadata["split"], "sample_id": metadata["sample_id"],
                                "y_pred": [0, 1, 0, 1, 0, 1, 1, 1, 0, 1, 0, 1], "n_masked": 0})
    manifest = {"n_classes": 2, "n_groups": 4}
    metrics = compute_group_metrics(predictions, metadata, manifest, ["identity_male", "identity_black"])
    test = metrics["erm"]["test"]
    assert test["accuracy_identity_male_y0"] == 0.0 and test["accuracy_identity_black_y1"] == 1.0
    assert test["worst_overlapping_group_accuracy"] == 0.0 and "worst_group_accuracy" in test
    assert "worst_overlapping_group_accuracy" not in compute_group_metrics(predictions, metadata, manifest)["erm"]["test"]
    with pytest.raises(ValueError, match=r"overlapping_attributes names \['identity_muslim'\]"):
        compute_group_metrics(predictions, metadata, manifest, ["identity_muslim"])
