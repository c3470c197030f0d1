import re

import numpy as np
import pytest

from neurontune.core import LinearHead, SelectionSet, expand_grid, head_predict, retrain_head, search_grid, select_neurontune
from neurontune.core.scoring import score_neurons


def test_expand_grid_is_the_cartesian_product_in_order():
    assert expand_grid({"a": [1, 2], "b": ["x"]}) == [{"a": 1, "b": "x"}, {"a": 2, "b": "x"}]
    with pytest.raises(ValueError, match="grid entry 'a' must be a non-empty list"):
        expand_grid({"a": []})


def constant_head(label: int) -> LinearHead:
    """A head that predicts ``label`` for every sample."""
    bias = np.zeros(2)
    bias[label] = 1.0
    return LinearHead.from_arrays(np.zeros((2, 1)), bias)


def test_search_grid_picks_the_best_criterion_and_returns_its_head():
    x = np.zeros((4, 1))
    selection = SelectionSet.build(x, [0, 0, 0, 1], 2, group=[0, 0, 1, 1])
    heads = {"zero": constant_head(0), "one": constant_head(1)}
    search = search_grid([{"name": "zero"}, {"name": "one"}], lambda c, fold: heads[c["name"]], [selection])
    # both have worst-class accuracy 0; the tie goes to the higher mean accuracy ("zero": 3/4)
    assert search.winner == 0 and search.head is heads["zero"]
    assert search.table[1]["reason"] == "lower mean accuracy (0.2500 vs 0.7500)"
    by_group = search_grid([{"name": "one"}, {"name": "zero"}], lambda c, fold: heads[c["name"]], [selection],
                           criterion="group")
    assert by_group.table[0]["sel_worst_group_accuracy"] == 0.0 and by_group.table[1]["sel_worst_group_accuracy"] == 0.5
    assert by_group.winner == 1 and by_group.head is heads["zero"]  # not first in grid order
    with pytest.raises(ValueError, match="criterion must be one of"):
        search_grid([{"name": "one"}], lambda c, fold: heads[c["name"]], [selection], criterion="pseudo_group")


def test_cross_fitted_scores_are_averaged_over_folds():
    x = np.zeros((4, 1))
    folds = [SelectionSet.build(x, [0, 0, 0, 1], 2), SelectionSet.build(x, [0, 1, 1, 1], 2)]
    search = search_grid([{"name": "zero"}], lambda c, fold: constant_head(0), folds)
    assert search.table[0]["sel_mean_accuracy"] == 0.5


def test_a_selection_set_missing_a_class_is_refused():
    with pytest.raises(ValueError, match=r"the selection set \(sel_y\) has no sample of class\(es\) \[1\]"):
        SelectionSet.build(np.zeros((2, 1)), [0, 0], 2)


@pytest.fixture(scope="module")
def setting(planted):
    train, val = planted["train"], planted["val"]
    erm = retrain_head(train["x"], train["y"], 2, solver="lbfgs", weight_decay=1e-3)
    half = len(val["y"]) // 2
    ide_pred = head_predict(val["x"][:half], erm)
    fold = {"ide_embeddings": val["x"][:half], "ide_y": val["y"][:half], "ide_erm_pred": ide_pred,
            "tune_embeddings": train["x"], "tune_y": train["y"],
            "scores": score_neurons(val["x"][:half], val["y"][:half], ide_pred, 2)}
    return {"fold": fold, "selection": SelectionSet.build(val["x"][half:], val["y"][half:], 2), "erm": erm}


def test_neurontune_selection_returns_the_winning_row_even_when_it_is_not_first(setting):
    # λ = 100 selects nothing (listed first); λ = 0 masks the planted neuron and wins
    grid = {"threshold": [100.0, 0.0], "rule": ["any"], "weight_decay": [1e-3]}
    best, table = select_neurontune(grid, {"n_classes": 2}, [setting["fold"]], [setting["selection"]], progress=None)
    assert len(table) == 2 and [row["selected"] for row in table] == [False, True]
    winner = table[1]
    assert winner["sel_worst_class_accuracy"] > table[0]["sel_worst_class_accuracy"]
    assert best.threshold == 0.0 and best.mask_.sum() == winner["n_masked"] >= 1
    prediction = best.predict(setting["selection"].embeddings)
    assert winner["sel_mean_accuracy"] == pytest.approx(np.mean(prediction == setting["selection"].y))
    assert "lower worst class accuracy" in table[0]["reason"]


def test_candidates_with_the_same_mask_are_fitted_once(setting, monkeypatch):
    from neurontune.core import estimator

    calls = []
    original = estimator.retrain_head
    monkeypatch.setattr(estimator, "retrain_head", lambda *a, **k: calls.append(1) or original(*a, **k))
    grid = {"threshold": [50.0, 100.0], "rule": ["any", "all"], "weight_decay": [1e-3]}  # four empty masks
    _, table = select_neurontune(grid, {"n_classes": 2}, [setting["fold"]], [setting["selection"]], progress=None)
    assert len(table) == 4 and len(calls) == 1
    assert len({row["sel_mean_accuracy"] for row in table}) == 1


def test_refit_fits_the_winner_on_the_refit_data(setting):
    fold = setting["fold"]
    refit = {**fold, "tune_embeddings": fold["tune_embeddings"][:500], "tune_y": fold["tune_y"][:500]}
    grid = {"threshold": [0.0], "rule": ["any"], "weight_decay": [1e-3]}
    best, _ = select_neurontune(grid, {"n_classes": 2}, [fold], [setting["selection"]], refit=refit, progress=None)
    direct = retrain_head(refit["tune_embeddings"], refit["tune_y"], 2, best.mask_, weight_decay=1e-3)
    np.testing.assert_allclose(best.head_.weight, direct.weight)


# Contract details mutation testing found unpinned (docs/testing.md).

@pytest.mark.parametrize(("arguments", "message"), [
    ((np.zeros(4), [0, 1, 0, 1]), r"^sel_embeddings must be a 2-D array"),
    ((np.zeros((4, 1)), [0, 1, 0]), r"^sel_y has 3 entries but the embeddings have 4 rows"),
    ((np.zeros((4, 1)), [0, 1, 0, 1], {"group": [0, 1, 2]}), r"^sel group ids has 3 entries but the embeddings have 4 rows"),
    ((np.zeros((4, 1)), [0, 1, 0, 1], {"group": []}), r"^sel group ids has 0 entries but the embeddings have 4 rows"),
], ids=["embeddings", "labels", "partition", "empty partition"])
def test_selection_sets_name_bad_input(arguments, message):
    embeddings, y, *partitions = arguments
    with pytest.raises(ValueError, match=message):
        SelectionSet.build(embeddings, y, 2, **(partitions[0] if partitions else {}))


def test_partitions_may_use_ids_beyond_the_classes_and_none_is_skipped():
    selection = SelectionSet.build(np.zeros((4, 1)), [0, 0, 1, 1], 2, pseudo_group=None, group=[0, 1, 2, 3])
    assert set(selection.partitions) == {"group"}
    assert selection.worst_accuracy(np.array([0, 0, 1, 0]), "group") == 0.0
    assert selection.worst_accuracy(np.array([0, 0, 1, 1]), "group") == 1.0
    single = SelectionSet.build(np.zeros((2, 1)), [0, 1], 2, group=[0, 0])  # one group id: still a partition
    assert single.worst_accuracy(np.array([0, 0]), "group") == 0.5


def test_an_empty_grid_or_no_selection_set_is_refused():
    with pytest.raises(ValueError, match=r"^the grid is empty; give at least one candidate\.$"):
        search_grid([], lambda c, fold: constant_head(0), [SelectionSet.build(np.zeros((2, 1)), [0, 1], 2)])
    with pytest.raises(ValueError, match=r"^selection_sets is empty; give one selection set per fold\.$"):
        search_grid([{"name": "zero"}], lambda c, fold: constant_head(0), [])
    with pytest.raises(ValueError, match=r"^got 1 folds but 2 selection sets; they must pair up\.$"):
        select_neurontune({"threshold": [0.0]}, {"n_classes": 2}, [{}], [None, None], progress=None)


def test_every_row_names_the_criterion_and_why_it_lost():
    x = np.zeros((4, 1))
    selection = SelectionSet.build(x, [0, 0, 0, 1], 2)
    search = search_grid([{"name": 0}, {"name": 1}, {"name": 0}], lambda c, fold: constant_head(c["name"]), [selection])
    assert [row["criterion"] for row in search.table] == ["sel_worst_class_accuracy"] * 3
    assert search.table[0]["reason"] == "highest worst class accuracy; ties: higher mean accuracy, then earlier in grid order"
    assert search.table[2]["reason"] == "tied with the winner; later in grid order"
    assert [row["selection_rank"] for row in search.table] == [1, 3, 2]


def test_the_grid_shows_a_progress_bar_only_when_named(capsys):
    selection = SelectionSet.build(np.zeros((2, 1)), [0, 1], 2)
    search_grid([{"name": 0}], lambda c, fold: constant_head(0), [selection], progress=None)
    assert capsys.readouterr().err == ""
    search_grid([{"name": 0}], lambda c, fold: constant_head(0), [selection], progress="my grid")
    bar = capsys.readouterr().err
    assert re.search(r"(^|\r)my grid: .*[?\d]candidate/s", bar)  # labelled, counting candidates
    assert "\n" not in bar  # cleared when done: the bars of many grids do not pile up


def test_the_neurontune_grid_shows_its_progress_bar_by_default(setting, capsys):
    grid = {"threshold": [0.0], "rule": ["any"], "weight_decay": [1e-3]}
    select_neurontune(grid, {"n_classes": 2}, [setting["fold"]], [setting["selection"]])
    assert re.search(r"(^|\r)NeuronTune grid: ", capsys.readouterr().err)


def test_select_neurontune_passes_the_criterion_and_refits_every_candidate_of_a_multi_round_grid(setting, caplog):
    grid = {"threshold": [0.5, 100.0], "rule": ["any"], "weight_decay": [1e-3]}
    fixed = {"n_classes": 2, "rounds": 2, "solver": "lbfgs"}
    groups = SelectionSet.build(setting["selection"].embeddings, setting["selection"].y, 2,
                                group=setting["selection"].y)
    with caplog.at_level("INFO", logger="neurontune.core.selection"):
        best, table = select_neurontune(grid, fixed, [setting["fold"]], [groups], criterion="group", progress=None)
    assert table[0]["criterion"] == "sel_worst_group_accuracy"
    assert table[0]["n_masked"] > table[1]["n_masked"] == 0  # rounds > 1: no cached fit is shared between them
    winner = next(row for row in table if row["selected"])
    chosen = {key: winner[key] for key in grid}
    messages = [record.getMessage() for record in caplog.records if record.name == "neurontune.core.selection"]
    assert messages[-1] == (f"selected {chosen} (highest worst group accuracy; ties: higher mean accuracy, then earlier "
                            "in grid order)")
    assert re.fullmatch(r"\d+ fit\(s\) of the grid: no neuron was selected as biased.*", messages[0])
