"""Properties of the pure core that hold for any data, checked on data Hypothesis draws.

Kept small (few, small examples) so the module runs in seconds; a failing example is printed minimal.
"""

from __future__ import annotations

import os
import warnings

import numpy as np
from hypothesis import Phase, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from neurontune.core import LinearHead, SelectionSet, group_report, search_grid, select_biased_neurons
from neurontune.core.metrics import worst_class_accuracy
from neurontune.core.scoring import STATISTICS, score_error_sets

FAST = settings(max_examples=40, deadline=None)
if os.environ.get("MUTANT_UNDER_TEST"):  # under `make mutation` a failure is all that counts: skip shrinking it
    FAST = settings(FAST, phases=[Phase.explicit, Phase.reuse, Phase.generate])
VALUES = st.floats(0.0, 10.0, allow_nan=False, width=32)


@st.composite
def scoring_data(draw):
    """Embeddings (N, M), labels with both classes, and disjoint error / reference sets (-1 = neither)."""
    n = draw(st.integers(4, 30))
    m = draw(st.integers(1, 5))
    embeddings = draw(arrays(np.float64, (n, m), elements=VALUES))
    y = np.array(draw(st.lists(st.integers(0, 1), min_size=n, max_size=n)))
    y[:2] = [0, 1]
    status = np.array(draw(st.lists(st.integers(-1, 1), min_size=n, max_size=n)))
    return embeddings, y, status == 1, status == 0


def score(embeddings, y, wrong, right, statistic="median"):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # classes without an error or a reference sample are left unscored (NaN)
        return score_error_sets(embeddings, y, wrong, right, 2, statistic=statistic, n_bootstrap=20, seed=0)


@FAST
@given(scoring_data(), st.randoms(use_true_random=False))
def test_median_scores_do_not_depend_on_the_order_of_the_samples(data, random):
    embeddings, y, wrong, right = data
    order = np.array(random.sample(range(len(y)), len(y)))
    before, after = score(*data), score(embeddings[order], y[order], wrong[order], right[order])
    np.testing.assert_array_equal(before.scores, after.scores)
    np.testing.assert_array_equal(before.n_wrong, after.n_wrong)
    np.testing.assert_array_equal(before.n_right, after.n_right)


@FAST
@given(scoring_data(), st.floats(0.0, 10.0, allow_nan=False), st.integers(0, 5), st.sampled_from(STATISTICS))
def test_a_constant_neuron_scores_zero_and_changes_no_other_score(data, value, position, statistic):
    embeddings, y, wrong, right = data
    position = min(position, embeddings.shape[1])
    widened = np.insert(embeddings, position, value, axis=1)
    before, after = score(*data, statistic=statistic), score(widened, y, wrong, right, statistic=statistic)
    np.testing.assert_allclose(np.delete(after.scores, position, axis=1), before.scores, rtol=1e-12, atol=0)
    scored = np.isfinite(before.scores).all(axis=1)
    assert np.all(after.scores[scored, position] == 0)
    assert np.isnan(after.scores[~scored, position]).all()


@FAST
@given(arrays(np.float64, st.tuples(st.integers(1, 3), st.integers(1, 6)),
              elements=st.floats(-3, 3, allow_nan=False) | st.just(np.nan)),
       st.floats(-3, 3), st.floats(0, 3), st.sampled_from(["all", "any", "per_class"]))
def test_a_higher_threshold_selects_a_subset(scores, threshold, increase, rule):
    low = select_biased_neurons(scores, threshold, rule, warn=False)
    high = select_biased_neurons(scores, threshold + increase, rule, warn=False)
    assert low.shape == high.shape and not np.any(high & ~low)


@st.composite
def predictions(draw, n_groups=4):
    n = draw(st.integers(2, 40))
    y = np.array(draw(st.lists(st.integers(0, 1), min_size=n, max_size=n)))
    y[:2] = [0, 1]
    y_pred = np.array(draw(st.lists(st.integers(0, 1), min_size=n, max_size=n)))
    groups = 2 * y + np.array(draw(st.lists(st.integers(0, 1), min_size=n, max_size=n)))
    return y, y_pred, groups


@FAST
@given(predictions())
def test_worst_accuracies_are_bounded_by_the_mean(data):
    y, y_pred, groups = data
    report = group_report(y, y_pred, groups, 2, 4)
    assert 0.0 <= report["worst_group_accuracy"] <= report["worst_class_accuracy"] <= report["mean_accuracy"] <= 1.0
    assert report["worst_class_accuracy"] == worst_class_accuracy(y, y_pred, 2)
    assert report["mean_accuracy"] == np.mean(y == y_pred)


@FAST
@given(predictions(), st.lists(st.floats(-2, 2, allow_nan=False), min_size=1, max_size=5))
def test_the_grid_winner_has_the_best_criterion_and_every_score_is_an_accuracy(data, offsets):
    """Candidates are heads on a one-neuron embedding whose bias offset decides the prediction."""
    y, _, groups = data
    x = (np.arange(len(y)) % 3).astype(np.float64)[:, None]
    selection = SelectionSet.build(x, y, 2, group=groups)

    def fit(candidate, fold):
        return LinearHead.from_arrays(np.array([[1.0], [-1.0]]), np.array([0.0, candidate["offset"]]))

    search = search_grid([{"offset": offset} for offset in offsets], fit, [selection], criterion="group")
    columns = ("sel_mean_accuracy", "sel_worst_class_accuracy", "sel_worst_group_accuracy")
    assert all(0.0 <= row[column] <= 1.0 for row in search.table for column in columns)
    assert all(row["sel_worst_group_accuracy"] <= row["sel_worst_class_accuracy"] <= row["sel_mean_accuracy"]
               for row in search.table)
    best = max(row["sel_worst_group_accuracy"] for row in search.table)
    assert search.best["sel_worst_group_accuracy"] == best and search.best["selected"]
    assert sum(row["selected"] for row in search.table) == 1
    assert sorted(row["selection_rank"] for row in search.table) == list(range(1, len(offsets) + 1))
