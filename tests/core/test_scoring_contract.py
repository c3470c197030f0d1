"""Scoring's contract in detail: defaults, argument checks, what reaches the statistic, warnings.

Written from the survivors of mutation testing (docs/testing.md): each test pins one behaviour that a
small change to ``neurontune.core.scoring`` could alter while the method-level tests still passed.
"""

from __future__ import annotations

import inspect
import logging
import warnings

import numpy as np
import pytest

from neurontune.core.scoring import (
    permutation_discoveries,
    score_error_sets,
    score_neurons,
    select_biased_neurons,
    spuriousness_fit,
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


def test_settings_left_out_take_their_documented_values(data):
    embeddings, y, wrong, right = data
    y_pred = np.where(wrong, 1 - y, y)
    bootstrap = {"statistic": "lcb", "n_bootstrap": 200, "confidence": 0.9, "seed": 0}
    np.testing.assert_array_equal(score_neurons(embeddings, y, y_pred, 2, statistic="lcb").scores,
                                  score_neurons(embeddings, y, y_pred, 2, **bootstrap).scores)
    np.testing.assert_array_equal(score_error_sets(*data, 2, statistic="lcb").scores,
                                  score_error_sets(*data, 2, **bootstrap).scores)
    scores = np.array([[0.5, -0.5, 0.5], [0.5, 0.5, -0.5]])
    assert select_biased_neurons(scores).tolist() == [True, False, False]  # λ = 0, rule "all"
    documented = {"threshold": 0.0, "rule": "any", "statistic": "median", "n_permutations": 20, "seed": 0}
    assert permutation_discoveries(*data, 2) == permutation_discoveries(*data, 2, **documented)


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


def spread_data():
    """Class 0: 12 scored samples (the last 4 in the error set) and one in neither set; class 1: one of each.

    Neuron 0: IQR-based spread; neuron 1: IQR 0 (mostly zero, a ReLU) but medians that differ, so the
    standard deviation; neuron 2: twice neuron 0; neuron 3: neuron 1 shrunk below the spread's floor."""
    column = np.arange(12.0)
    relu = np.where(np.arange(12) >= 10, 4.0, 0.0)
    embeddings = np.column_stack([column, relu, 2 * column, 1e-7 * relu])
    embeddings = np.vstack([embeddings, [100.0, 100.0, 200.0, 1.0], [1.0, 1.0, 2.0, 0.0], [0.0, 0.0, 0.0, 0.0]])
    y = np.array([0] * 13 + [1, 1])
    wrong = np.array([False] * 8 + [True] * 4 + [False, True, False])
    right = np.array([True] * 8 + [False] * 4 + [False, False, True])
    return embeddings, y, wrong, right


def test_the_scaled_statistic_divides_by_the_robust_spread_of_the_scored_samples():
    """The sample in neither set (row 12) does not enter the spread."""
    embeddings, y, wrong, right = spread_data()
    scaled = score_error_sets(embeddings, y, wrong, right, 2, statistic="scaled").scores[0]
    median = score_error_sets(embeddings, y, wrong, right, 2).scores[0]
    assert median[1] == 2.0  # the ReLU neuron's medians differ while its IQR is 0
    q25, q75 = np.quantile(embeddings[:12, 0], [0.25, 0.75])
    assert scaled[0] == pytest.approx(median[0] / ((q75 - q25) / 1.349))
    assert scaled[1] == pytest.approx(median[1] / embeddings[:12, 1].std())
    assert scaled[2] == pytest.approx(scaled[0])


@pytest.mark.parametrize("statistic", ["scaled", "lcb"])
def test_the_spread_scaled_statistics_are_unit_free(statistic):
    """λ means the same on every backbone: rescaling the embeddings leaves the scores as they are, for spreads
    above and below 1 and for the near-constant neuron 3 held at the floor (a power of 2 keeps it exact)."""
    embeddings, y, wrong, right = spread_data()
    settings = {"statistic": statistic, "n_bootstrap": 20, "confidence": 0.5, "seed": 3}
    unit = score_error_sets(embeddings, y, wrong, right, 2, **settings).scores
    assert np.all(np.isfinite(unit)) and unit[0, 3] > 0
    for factor in (2.0**-10, 2.0**10):
        rescaled = score_error_sets(factor * embeddings, y, wrong, right, 2, **settings).scores
        np.testing.assert_allclose(rescaled, unit, rtol=1e-12)


def test_an_unscored_class_is_nan_with_a_warning_and_a_log_record(data, caplog):
    embeddings, y, wrong, right = data
    right = right & (y == 0)  # class 1 has errors but no reference sample
    message = r"class 1 is not scored: it has 5 misclassified and 0 correctly classified identification samples"
    for chunk_size in (None, 7):
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="neurontune.core.scoring"), \
                pytest.warns(UserWarning, match=rf"^{message}") as caught:
            scores = score_error_sets(embeddings, y, wrong, right, 2, chunk_size=chunk_size)
        assert len(caught) == 1
        assert [record.getMessage() for record in caplog.records] == [str(caught[0].message)]  # kedro run logs show it
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


@pytest.mark.skipif(hasattr(score_error_sets, "__wrapped__"), reason="wrapped functions (mutmut's trampolines) add frames")
def test_warnings_point_at_the_caller(data):
    embeddings, y, wrong, right = data
    with pytest.warns(UserWarning, match="^class 1 is not scored") as unscored:
        score_error_sets(embeddings, y, wrong, right & (y == 0), 2)
    with pytest.warns(UserWarning, match="^no neuron was selected") as degenerate:
        select_biased_neurons(np.full((2, 3), -1.0))
    assert unscored[0].filename == degenerate[0].filename == __file__


def test_selection_validates_and_ignores_unscored_classes():
    with pytest.raises(ValueError, match=r"^scores must have shape \(n_classes, n_neurons\); got \(3,\)"):
        select_biased_neurons(np.zeros(3))
    with pytest.raises(ValueError, match=r"^threshold must be a finite number; got nan"):
        select_biased_neurons(np.zeros((2, 3)), np.nan)
    scores = np.array([[np.nan, np.nan, np.nan], [1.0, -1.0, 1.0]])
    assert select_biased_neurons(scores, 0.0, "all", warn=False).tolist() == [True, False, True]
    assert select_biased_neurons(scores, 0.0, "per_class", warn=False).tolist() == [[False] * 3, [True, False, True]]
    assert select_biased_neurons([[1, 0, 2]], 0.5, "any", warn=False).tolist() == [True, False, True]  # integer scores
    # an unscored class is never suppressed, even when λ < 0 lets every scored entry through
    assert select_biased_neurons(scores, -2.0, "per_class", warn=False).tolist() == [[False] * 3, [True] * 3]
    # δ > λ is decided at full precision: float32(0.1) is 0.10000000149 > 0.1
    assert select_biased_neurons(np.array([[0.1, 0.05]], dtype=np.float32), 0.1, warn=False).tolist() == [True, False]


def test_top_k_keeps_the_strongest_in_score_order():
    scores = np.array([[3.0, 1.0, 2.0, -1.0], [0.5, 4.0, -1.0, 0.1]])
    assert select_biased_neurons(scores, 0.0, "any", top_k=2, warn=False).tolist() == [True, True, False, False]
    scores[1, 2] = np.nan  # an unscored entry is never among the strongest
    per_class = select_biased_neurons(scores, 0.0, "per_class", top_k=2, warn=False)
    assert per_class.tolist() == [[True, False, False, False], [False, True, False, False]]
    ties = select_biased_neurons(np.array([[1.0, 1.0, 1.0]]), 0.0, "any", top_k=2, warn=False)
    assert ties.tolist() == [True, True, False]  # ties: the earlier neurons (a stable order)
    assert select_biased_neurons(scores, 0.0, "any", top_k=3, warn=False).tolist() == [True, True, True, False]
    # a layer of 512 with 52 tied at the top: the 16 earliest of them (an unstable sort keeps others)
    layer = (np.arange(512) * 7 % 10)[None, :] / 10
    kept = select_biased_neurons(layer, 0.0, "any", top_k=16, warn=False)
    assert np.flatnonzero(kept).tolist() == np.flatnonzero(layer[0] == 0.9)[:16].tolist()


def test_top_k_ranks_a_neuron_by_its_scored_classes_only():
    """With λ < 0 every entry passes; an unscored class (NaN row) must not lift or tie the neurons' strength."""
    scores = np.array([[-0.4, -0.1, -0.3], [np.nan, np.nan, np.nan]])
    assert select_biased_neurons(scores, -0.5, "any", top_k=1, warn=False).tolist() == [False, True, False]


def test_sfit_sums_in_double_precision():
    assert spuriousness_fit(np.array([[2.0**24, -1.0], [np.nan, np.nan]], dtype=np.float32)) == 2.0**24 + 1


def test_permutation_discoveries_count_neurons_and_follow_their_settings(data):
    embeddings, y, wrong, right = data
    arguments = (embeddings, y, wrong, right, 2)
    everything = permutation_discoveries(*arguments, threshold=-1e9, rule="any", n_permutations=3)
    assert everything == 3.0  # every neuron passes: neurons counted once, not once per class
    per_class = permutation_discoveries(*arguments, threshold=-1e9, rule="per_class", n_permutations=3)
    assert per_class == 3.0
    assert permutation_discoveries(*arguments, threshold=1e9, n_permutations=3) == 0.0
    as_integers = permutation_discoveries(embeddings, y, wrong.astype(int), right.astype(int), 2, n_permutations=5)
    assert as_integers == permutation_discoveries(*arguments, n_permutations=5)  # 0/1 masks read as booleans
    by_rule = {rule: permutation_discoveries(*arguments, threshold=0.0, rule=rule, n_permutations=5) for rule in ("any", "all")}
    assert by_rule["all"] <= by_rule["any"]


def test_permutation_discoveries_are_reproducible_for_a_seed_with_the_bootstrap_statistic(data):
    _, y, wrong, right = data
    wide = np.random.default_rng(1).normal(size=(40, 1000))  # a count that unseeded bootstrap noise would move
    settings = {"threshold": -0.3, "statistic": "lcb", "n_permutations": 4, "seed": 1}
    first = permutation_discoveries(wide, y, wrong, right, 2, **settings)
    assert 100 < first < 900
    assert first == permutation_discoveries(wide, y, wrong, right, 2, **settings)


def test_permutation_discoveries_follow_the_statistic(data):
    """The scaled statistic is unit-free, the median is not (λ = 0.25 in the embedding's units)."""
    embeddings, y, wrong, right = data
    counts = {statistic: [permutation_discoveries(factor * embeddings, y, wrong, right, 2, threshold=0.25,
                                                  statistic=statistic, n_permutations=5) for factor in (1.0, 1024.0)]
              for statistic in ("scaled", "median")}
    assert counts["scaled"][0] == counts["scaled"][1]
    assert counts["median"][0] < counts["median"][1]


def test_permutation_discoveries_shuffle_within_each_class_and_follow_the_rule():
    """Class 0 and 2 are constant (δ = 0, never > λ = 0) and class 1 has no reference sample: a shuffle within
    each class finds nothing; one across classes would score class 1. Under ``all`` a constant class vetoes
    every neuron that ``any`` and ``per_class`` count."""
    rng = np.random.default_rng(0)
    embeddings = np.vstack([np.ones((10, 4)), rng.normal(size=(10, 4)), np.zeros((10, 4))])
    y = np.repeat([0, 1, 2], 10)
    wrong = np.array([True, False] * 5 + [True] * 10 + [True, False] * 5)
    assert permutation_discoveries(embeddings, y, wrong, ~wrong, 3, n_permutations=5) == 0.0
    right = ~wrong
    right[10] = True  # class 1 now has one reference sample: it can be scored
    wrong[10] = False
    two_classes = y < 2
    arguments = (embeddings[two_classes], y[two_classes], wrong[two_classes], right[two_classes], 2)
    by_rule = {rule: permutation_discoveries(*arguments, rule=rule, n_permutations=5)
               for rule in ("all", "any", "per_class")}
    assert by_rule["all"] == 0.0 < by_rule["any"] == by_rule["per_class"]
