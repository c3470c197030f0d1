import warnings

import numpy as np
import pytest

from neurontune.core import LinearHead, head_predict, retrain_head, score_neurons, select_biased_neurons, spuriousness_fit
from tests.core.conftest import SPURIOUS_NEURON


def test_scores_by_hand():
    embeddings = np.array([[1.0, 0.0], [3.0, 0.0], [0.0, 2.0], [0.0, 4.0]])
    y = np.array([0, 0, 1, 1])
    pred = np.array([0, 1, 1, 0])
    scores = score_neurons(embeddings, y, pred, 2)
    np.testing.assert_allclose(scores.scores, [[2.0, 0.0], [0.0, 2.0]])
    assert scores.n_wrong.tolist() == [1, 1] and scores.n_right.tolist() == [1, 1]


def test_class_without_errors_is_skipped_with_a_warning_naming_it():
    embeddings = np.ones((4, 3))
    with pytest.warns(UserWarning, match="class 1 is not scored: it has 0 misclassified and 2 correctly"):
        scores = score_neurons(embeddings, [0, 0, 1, 1], [1, 0, 1, 1], 2)
    assert np.isnan(scores.scores[1]).all() and np.isfinite(scores.scores[0]).all()
    assert scores.scored_classes.tolist() == [True, False]


def test_planted_spurious_neuron_scores_highest_and_is_selected(planted):
    train, val = planted["train"], planted["val"]
    erm = retrain_head(train["x"], train["y"], 2, solver="lbfgs", weight_decay=1e-3)
    scores = score_neurons(val["x"], val["y"], head_predict(val["x"], erm), 2)
    assert np.nanargmax(scores.scores.max(axis=0)) == SPURIOUS_NEURON
    for rule in ("any", "per_class"):
        mask = select_biased_neurons(scores.scores, 0.0, rule)
        assert mask.reshape(-1, mask.shape[-1]).any(axis=0)[SPURIOUS_NEURON]


def test_rules_combine_classes_as_documented():
    scores = np.array([[1.0, 1.0, -1.0], [1.0, -1.0, -1.0]])
    assert select_biased_neurons(scores, 0.0, "all").tolist() == [True, False, False]
    assert select_biased_neurons(scores, 0.0, "any").tolist() == [True, True, False]
    assert select_biased_neurons(scores, 0.0, "per_class").tolist() == [[True, True, False], [True, False, False]]
    assert select_biased_neurons(scores, 0.5, "any").tolist() == [True, True, False]


def test_unscored_class_is_ignored_by_all_rule():
    scores = np.array([[1.0, -1.0], [np.nan, np.nan]])
    assert select_biased_neurons(scores, 0.0, "all").tolist() == [True, False]


def test_nothing_selected_warns():
    with pytest.warns(UserWarning, match="no neuron was selected"):
        select_biased_neurons(np.array([[-1.0, -2.0]]), 0.0, "all")


def test_everything_selected_warns():
    with pytest.warns(UserWarning, match="every neuron was selected"):
        select_biased_neurons(np.array([[1.0, 2.0]]), 0.0, "all")


def test_sfit_sums_absolute_scores_of_scored_classes():
    assert spuriousness_fit(np.array([[1.0, -2.0], [np.nan, np.nan]])) == 3.0


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"embeddings": np.ones(4)}, ValueError, r"embeddings must be a 2-D array"),
        ({"embeddings": np.array([[np.nan, 1.0]] * 4)}, ValueError, "NaN/inf"),
        ({"y": np.array([0, 1, 2, 0])}, ValueError, r"y must lie in \[0, 2\)"),
        ({"y_pred": np.array([0, 1])}, ValueError, "y_pred has 2 entries but the embeddings have 4 rows"),
        ({"y": np.array([0.5, 1, 0, 1])}, TypeError, "integer class ids"),
        ({"n_classes": 1}, ValueError, "n_classes must be an integer >= 2"),
    ],
)
def test_score_neurons_validates_inputs(kwargs, error, match):
    arguments = {"embeddings": np.ones((4, 2)), "y": np.array([0, 1, 0, 1]), "y_pred": np.array([0, 1, 1, 0]), "n_classes": 2}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(error, match=match):
            score_neurons(**{**arguments, **kwargs})


def test_select_rejects_unknown_rule():
    with pytest.raises(ValueError, match=r"rule must be one of \['all', 'any', 'per_class'\]; got 'some'"):
        select_biased_neurons(np.zeros((2, 2)), 0.0, "some")


def test_linear_head_rejects_mismatched_width():
    head = LinearHead.from_arrays(np.zeros((2, 3)), np.zeros(2))
    with pytest.raises(ValueError, match="head weight has 3 input neurons but the embeddings have 2"):
        head_predict(np.ones((1, 2)), head)
