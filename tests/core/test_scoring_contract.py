"""Scoring's contract in detail: defaults, argument checks, what reaches the statistic, warnings.

Written from the survivors of mutation testing (docs/testing.md): each test pins one behaviour that a
small change to ``neurontune.core.scoring`` could alter while the method-level tests still passed.
"""

from __future__ import annotations

import inspect
import warnings

import numpy as np
import pytest

from neurontune.core.scoring import (
    permutation_discoveries,
    score_error_sets,
    score_neurons,
    select_biased_neurons,
)


def defaults(function) -> dict:
    return {name: p.default for name, p in inspect.signature(function).parameters.items() if p.default is not p.empty}


def test_documented_defaults():
    bootstrap = {"statistic": "median", "n_bootstrap": 200, "confidence": 0.9, "seed": 0, "chunk_size": None}
    assert defaults(score_neurons) == bootstrap and defaults(score_error_sets) == bootstrap
    assert defaults(select_biased_neurons) == {"threshold": 0.0, "rule": "all", "top_k": None, "warn": True}
    assert defaults(permutation_discoveries) == {"threshold": 0.0, "rule": "any", "statistic": "median",
                                                 "n_permutations": 20, "seed": 0}


@pytest.fixture
def data():
    rng = np.random.default_rng(0)
    embeddings = np.abs(rng.normal(size=(40, 3)))
    y = np.repeat([0, 1], 20)
    status = np.tile([1, 0, 0, -1], 10)  # 1 = error set, 0 = reference set, -1 = neither
    return embeddings, y, status == 1, status == 0


@pytest.mark.parametrize(("change", "error", "message"), [
    ({"y": np.zeros(3, int)}, ValueError, r"^y has 3 entries but the embeddings have 40 rows"),
    ({"wrong": np.zeros(40, int)}, ValueError, r"^wrong must be a boolean array of shape \(40,\); got int64 \(40,\)"),
    ({"right": np.zeros(39, bool)}, ValueError, r"^right must be a boolean array of shape \(40,\); got bool \(39,\)"),
    ({"right": np.ones(40, bool)}, ValueError, r"^wrong and right overlap; a sample belongs to at most one of the two sets\.$"),
    ({"statistic": "mean"}, ValueError, r"^statistic must be one of \['lcb', 'median', 'scaled'\]; got 'mean'"),
    ({"statistic": "lcb", "n_bootstrap": 1}, ValueError, r"^lcb needs n_bootstrap >= 2 and confidence in \(0, 1\); got 1 and 0\.9"),
    ({"statistic": "lcb", "n_bootstrap": 2.0}, ValueError, r"^lcb needs n_bootstrap >= 2"),
    ({"statistic": "lcb", "confidence": 0.0}, ValueError, r"^lcb needs n_bootstrap >= 2 and confidence in \(0, 1\); got 200 and 0\.0"),
    ({"statistic": "lcb", "confidence": 1.0}, ValueError, r"^lcb needs n_bootstrap >= 2"),
    ({"statistic": "scaled", "chunk_size": 8}, ValueError, r"^chunked scoring computes the median statistic only; got statistic='scaled'"),
    ({"embeddings": np.zeros(40)}, ValueError, r"^embeddings must be a 2-D array"),
    ({"embeddings": np.zeros(40), "chunk_size": 8}, ValueError, r"^embeddings must be a 2-D array"),
], ids=["y_length", "wrong_dtype", "right_shape", "overlap", "statistic", "n_bootstrap", "n_bootstrap_float",
        "confidence_0", "confidence_1", "chunked_scaled", "embeddings", "embeddings_chunked"])
def test_bad_arguments_are_named(data, change, error, message):
    embeddings, y, wrong, right = data
    arguments = {"embeddings": embeddings, "y": y, "wrong": wrong, "right": right, **change}
    with pytest.raises(error, match=message):
        score_error_sets(arguments.pop("embeddings"), arguments.pop("y"), arguments.pop("wrong"), arguments.pop("right"),
                         2, **arguments)


def test_the_smallest_valid_bootstrap_runs(data):
    scores = score_error_sets(*data, 2, statistic="lcb", n_bootstrap=2, confidence=0.5)
    assert np.isfinite(scores.scores).all()


def test_score_neurons_passes_every_setting_on(data):
    embeddings, y, _, _ = data
    y_pred = np.where(np.arange(40) % 3 == 0, 1 - y, y)
    with pytest.raises(ValueError, match=r"^y has 3 entries"):
        score_neurons(embeddings, y[:3], y_pred, 2)
    settings = {"statistic": "lcb", "n_bootstrap": 7, "confidence": 0.75, "seed": 4}
    through = score_neurons(embeddings, y, y_pred, 2, **settings)
    direct = score_error_sets(embeddings, y, y_pred != y, y_pred == y, 2, **settings)
    np.testing.assert_array_equal(through.scores, direct.scores)
    other_seed = score_error_sets(embeddings, y, y_pred != y, y_pred == y, 2, **{**settings, "seed": 5})
    assert not np.array_equal(through.scores, other_seed.scores)
    assert through.n_wrong.dtype == through.n_right.dtype == np.int64


def test_the_scaled_statistic_divides_by_the_robust_spread_of_the_scored_samples():
    """Neuron 0: IQR-based spread; neuron 1: IQR 0 (mostly zero, a ReLU) so the standard deviation;
    neuron 2: twice neuron 0 (same scaled score). Samples in neither set do not enter the spread."""
    column = np.array([0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0])
    relu = np.array([0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 4.0])
    embeddings = np.column_stack([column, relu, 2 * column])
    embeddings = np.vstack([embeddings, [[100.0, 100.0, 200.0]]])  # in neither set
    y = np.zeros(9, int)
    wrong = np.array([0, 0, 0, 0, 1, 1, 1, 1, 0], bool)
    right = np.array([1, 1, 1, 1, 0, 0, 0, 0, 0], bool)
    y, wrong, right = np.append(y, [1, 1]), np.append(wrong, [True, False]), np.append(right, [False, True])
    embeddings = np.vstack([embeddings, [[1.0, 1.0, 2.0], [0.0, 0.0, 0.0]]])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        scaled = score_error_sets(embeddings, y, wrong, right, 2, statistic="scaled").scores[0]
        median = score_error_sets(embeddings, y, wrong, right, 2).scores[0]
    q25, q75 = np.quantile(column, [0.25, 0.75])
    assert scaled[0] == pytest.approx(median[0] / ((q75 - q25) / 1.349))
    assert scaled[1] == pytest.approx(median[1] / relu.std())
    assert scaled[2] == pytest.approx(scaled[0])


def test_an_unscored_class_is_nan_with_a_warning(data):
    embeddings, y, wrong, right = data
    right = right & (y == 0)  # class 1 has errors but no reference sample
    for chunk_size in (None, 7):
        with pytest.warns(UserWarning, match=r"^class 1 is not scored: it has 5 misclassified and 0 correctly "
                                             r"classified identification samples") as caught:
            scores = score_error_sets(embeddings, y, wrong, right, 2, chunk_size=chunk_size)
        assert len(caught) == 1
        assert np.isnan(scores.scores[1]).all() and np.isfinite(scores.scores[0]).all()
        assert scores.n_wrong.tolist() == [5, 5] and scores.n_right.tolist() == [10, 0]
        assert scores.n_wrong.dtype == scores.n_right.dtype == np.int64


def test_chunked_scores_leave_out_samples_in_neither_set(data):
    embeddings, y, wrong, right = data
    embeddings = embeddings.copy()
    embeddings[~(wrong | right)] = 1e6  # would move every median if counted
    np.testing.assert_array_equal(score_error_sets(embeddings, y, wrong, right, 2, chunk_size=7).scores,
                                  score_error_sets(embeddings, y, wrong, right, 2).scores)


@pytest.mark.parametrize(("threshold", "message"), [(0.0, "no neuron was selected"), (-10.0, "every neuron was selected")])
def test_degenerate_selections_warn(threshold, message):
    with pytest.warns(UserWarning, match=rf"^{message} as biased"):
        select_biased_neurons(np.full((2, 3), -1.0), threshold)


def test_selection_validates_and_ignores_unscored_classes():
    with pytest.raises(ValueError, match=r"^scores must have shape \(n_classes, n_neurons\); got \(3,\)"):
        select_biased_neurons(np.zeros(3))
    with pytest.raises(ValueError, match=r"^threshold must be a finite number; got nan"):
        select_biased_neurons(np.zeros((2, 3)), np.nan)
    scores = np.array([[np.nan, np.nan, np.nan], [1.0, -1.0, 1.0]])
    assert select_biased_neurons(scores, 0.0, "all", warn=False).tolist() == [True, False, True]
    assert select_biased_neurons(scores, 0.0, "per_class", warn=False).tolist() == [[False] * 3, [True, False, True]]
    assert select_biased_neurons([[1, 0, 2]], 0.5, "any", warn=False).tolist() == [True, False, True]  # integer scores


def test_top_k_keeps_the_strongest_in_score_order():
    scores = np.array([[3.0, 1.0, 2.0, -1.0], [0.5, 4.0, -1.0, 0.1]])
    assert select_biased_neurons(scores, 0.0, "any", top_k=2, warn=False).tolist() == [True, True, False, False]
    scores[1, 2] = np.nan  # an unscored entry is never among the strongest
    per_class = select_biased_neurons(scores, 0.0, "per_class", top_k=2, warn=False)
    assert per_class.tolist() == [[True, False, False, False], [False, True, False, False]]
    ties = select_biased_neurons(np.array([[1.0, 1.0, 1.0]]), 0.0, "any", top_k=2, warn=False)
    assert ties.tolist() == [True, True, False]  # ties: the earlier neurons (a stable order)
    assert select_biased_neurons(scores, 0.0, "any", top_k=3, warn=False).tolist() == [True, True, True, False]


def test_permutation_discoveries_count_neurons_and_follow_their_settings(data):
    embeddings, y, wrong, right = data
    arguments = (embeddings, y, wrong, right, 2)
    everything = permutation_discoveries(*arguments, threshold=-1e9, rule="any", n_permutations=3)
    assert everything == 3.0  # every neuron passes: neurons counted once, not once per class
    per_class = permutation_discoveries(*arguments, threshold=-1e9, rule="per_class", n_permutations=3)
    assert per_class == 3.0
    assert permutation_discoveries(*arguments, threshold=1e9, n_permutations=3) == 0.0
    first = permutation_discoveries(*arguments, threshold=0.0, n_permutations=5, seed=1)
    assert first == permutation_discoveries(*arguments, threshold=0.0, n_permutations=5, seed=1)
    by_rule = {rule: permutation_discoveries(*arguments, threshold=0.0, rule=rule, n_permutations=5) for rule in ("any", "all")}
    assert by_rule["all"] <= by_rule["any"]
