import numpy as np
import pytest

from neurontune.core import expand_grid, head_predict, retrain_head, select_neurontune


def test_expand_grid_is_the_cartesian_product_in_order():
    assert expand_grid({"a": [1, 2], "b": ["x"]}) == [{"a": 1, "b": "x"}, {"a": 2, "b": "x"}]
    with pytest.raises(ValueError, match="grid entry 'a' must be a non-empty list"):
        expand_grid({"a": []})


def test_selection_keeps_every_candidate_and_picks_best_worst_class(planted):
    train, val = planted["train"], planted["val"]
    erm = retrain_head(train["x"], train["y"], 2, solver="lbfgs", weight_decay=1e-3)
    half = len(val["y"]) // 2
    fit_data = {"ide_embeddings": val["x"][:half], "ide_y": val["y"][:half],
                "ide_erm_pred": head_predict(val["x"][:half], erm), "tune_embeddings": train["x"], "tune_y": train["y"]}
    grid = {"threshold": [0.0, 100.0], "rule": ["any"], "weight_decay": [1e-3]}
    fixed = {"n_classes": 2, "solver": "lbfgs"}
    with pytest.warns(UserWarning):  # λ = 100 selects nothing
        best, table = select_neurontune(grid, fixed, fit_data, val["x"][half:], val["y"][half:])
    assert len(table) == 2 and sum(row["selected"] for row in table) == 1
    winner = next(row for row in table if row["selected"])
    assert winner["sel_worst_class_accuracy"] == max(row["sel_worst_class_accuracy"] for row in table)
    assert winner["threshold"] == 0.0 and winner["n_masked"] >= 1
    assert "lower worst-class accuracy" in next(row for row in table if not row["selected"])["reason"]
    np.testing.assert_array_equal(best.mask_, best.mask_.astype(bool))
