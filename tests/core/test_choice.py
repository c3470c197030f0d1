"""The label-free choice of the method to ship: each kind of candidate wins where it should, ERM when nothing is safe."""

import numpy as np
import pytest

from neurontune.core.choice import choose_method

# 2 classes × (in the error set or not): 40 samples per cell; the error-set cells stand for the shortcut's victims
N_CELL = 40
Y = np.repeat([0, 0, 1, 1], N_CELL)
IN_ERROR_SET = np.tile(np.repeat([0, 1], N_CELL), 2)
CELLS = [(0, 0), (0, 1), (1, 0), (1, 1)]  # (class, in error set) in the order of Y / IN_ERROR_SET


def predictions(accuracies: dict[tuple[int, int], float]) -> np.ndarray:
    """Predictions with the given accuracy in each (class, in error set) cell (the rest of the cell is wrong)."""
    prediction = Y.copy()
    for cell, (label, in_set) in enumerate(CELLS):
        rows = np.flatnonzero((Y == label) & (IN_ERROR_SET == in_set))
        wrong = rows[: int(round((1 - accuracies.get((label, in_set), 1.0)) * N_CELL))]
        prediction[wrong] = 1 - label
    return prediction


def erm_like() -> np.ndarray:
    """A shortcut follower: right outside the error set, mostly wrong inside it."""
    return predictions({(0, 1): 0.2, (1, 1): 0.3})


def choose(candidates: dict, **settings) -> dict:
    return choose_method({"erm": erm_like(), **candidates}, Y, IN_ERROR_SET, 2, **settings)


@pytest.mark.parametrize("winner", ["neurontune_plus", "neurontune_dagger_crossfit", "dfr_groupfree", "self"])
def test_the_candidate_that_lifts_the_shortcut_victims_most_wins_whichever_it_is(winner):
    """Each candidate in turn is the one that best serves the error-set cells without harming the others: it wins."""
    names = ["neurontune_plus", "neurontune_dagger_crossfit", "dfr_groupfree", "self"]
    candidates = {name: predictions({(0, 1): 0.6, (1, 1): 0.65, (0, 0): 0.95}) for name in names}
    candidates[winner] = predictions({(0, 1): 0.8, (1, 1): 0.85, (0, 0): 0.95})
    choice = choose(candidates)
    assert choice["chosen"] == winner and choice["reason"].startswith(f"{winner}: highest worst pseudo-group")
    assert [row["rank"] for row in choice["candidates"]] == list(range(1, 6))


def test_erm_is_kept_when_every_method_costs_a_class_more_than_the_tolerance():
    """'Change nothing' wins when the only methods that help the error set collapse a class."""
    collapsing = predictions({(0, 1): 0.9, (1, 1): 0.9, (1, 0): 0.1})  # class 1: 0.5, below ERM's worst class (0.6)
    choice = choose({"neurontune_dagger": collapsing, "class_balanced_retrain_val": collapsing})
    assert choice["chosen"] == "erm" and choice["reason"].startswith("kept ERM's head")
    assert "not eligible: neurontune_dagger, class_balanced_retrain_val" in choice["reason"]
    assert not any(row["eligible"] for row in choice["candidates"] if row["method"] != "erm")


def test_a_method_within_the_tolerance_of_erms_worst_class_stays_eligible():
    erm_worst_class = choose({})["candidates"][0]["sel_worst_class_accuracy"]
    slightly_worse = predictions({(0, 1): 0.7, (1, 1): 0.7, (1, 0): 0.45})  # worst class 0.575 vs ERM's 0.6
    row = next(row for row in choose({"m": slightly_worse})["candidates"] if row["method"] == "m")
    assert erm_worst_class - 0.03 < row["sel_worst_class_accuracy"] < erm_worst_class - 0.02
    assert choose({"m": slightly_worse}, worst_class_tolerance=0.03)["chosen"] == "m"
    assert choose({"m": slightly_worse}, worst_class_tolerance=0.0)["chosen"] == "erm"


def test_ties_go_to_worst_class_then_mean_accuracy_then_erm_first():
    same = predictions({(0, 1): 0.8, (1, 1): 0.8})
    better_class = predictions({(0, 1): 0.8, (1, 1): 0.85})
    assert choose({"a": same, "b": better_class})["chosen"] == "b"
    assert choose({"a": same, "b": same.copy()})["chosen"] == "a"  # grid order
    assert choose_method({"erm": same, "a": same.copy()}, Y, IN_ERROR_SET, 2)["chosen"] == "erm"


def test_the_choice_reads_no_group_labels_and_records_its_rule_and_scores():
    choice = choose({"a": predictions({(0, 1): 0.8, (1, 1): 0.8})}, error_set="early")
    assert choice["settings"] == {"reference": "erm", "worst_class_tolerance": 0.02, "error_set": "early"}
    assert "'early' error set" in choice["rule"] and choice["error_set_size"] == 2 * N_CELL
    row = next(row for row in choice["candidates"] if row["method"] == "a")
    assert row["sel_worst_pseudo_group_accuracy"] == pytest.approx(0.8) and row["sel_mean_accuracy"] == pytest.approx(0.9)


@pytest.mark.parametrize("bad, message", [
    (dict(held_out_predictions={"a": Y}), "must include the reference 'erm'"),
    (dict(in_error_set=IN_ERROR_SET[:-1]), "one entry per selection sample"),
    (dict(held_out_predictions={"erm": Y, "a": Y[:-1]}), "a's held-out predictions"),
    (dict(worst_class_tolerance=1.5), "worst_class_tolerance must be in [0, 1]"),
])
def test_bad_input_is_named(bad, message):
    arguments = {"held_out_predictions": {"erm": Y}, "y": Y, "in_error_set": IN_ERROR_SET, "n_classes": 2, **bad}
    tolerance = arguments.pop("worst_class_tolerance", 0.02)
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")):
        choose_method(**arguments, worst_class_tolerance=tolerance)
