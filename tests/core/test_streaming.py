"""Chunked identification and regulation: the same results as the in-memory paths, from memory-mapped caches."""

import warnings

import numpy as np
import pytest

from neurontune.core import LinearHead, head_predict, retrain_head, score_neurons, select_biased_neurons
from neurontune.core import _chunked
from tests.core.conftest import SPURIOUS_NEURON


def as_memmap(array, path):
    np.save(path, array)
    return np.load(path, mmap_mode="r")


def scores_both_ways(embeddings, y, y_pred, n_classes, chunk_size):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return score_neurons(embeddings, y, y_pred, n_classes), score_neurons(embeddings, y, y_pred, n_classes,
                                                                               chunk_size=chunk_size)


def assert_same_scores_and_masks(reference, chunked):
    np.testing.assert_array_equal(chunked.scores, reference.scores)  # exact, NaN rows included
    np.testing.assert_array_equal(chunked.n_wrong, reference.n_wrong)
    np.testing.assert_array_equal(chunked.n_right, reference.n_right)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for rule in ("all", "any", "per_class"):
            for threshold in (0.0, 0.1):
                np.testing.assert_array_equal(select_biased_neurons(chunked.scores, threshold, rule),
                                              select_biased_neurons(reference.scores, threshold, rule))


def random_embeddings(rng, kind, n, m):
    if kind == "relu":  # many exact zeros: ties at the median
        return np.maximum(rng.normal(0.2, 1.0, (n, m)), 0.0)
    if kind == "signed":
        return rng.normal(0.0, 3.0, (n, m))
    values = rng.integers(-3, 4, (n, m)).astype(np.float64)  # a handful of values, -0.0 among them
    values[values == 0] = -0.0
    values[: n // 3][values[: n // 3] == -0.0] = 0.0
    return values


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
@pytest.mark.parametrize("kind", ["relu", "signed", "ties"])
def test_chunked_scores_equal_in_memory_scores_exactly(tmp_path, dtype, kind):
    rng = np.random.default_rng(["relu", "signed", "ties"].index(kind) * 10 + np.dtype(dtype).itemsize)
    for trial, (n, m, n_classes) in enumerate([(2001, 17, 2), (1200, 9, 3), (7, 5, 2)]):
        embeddings = random_embeddings(rng, kind, n, m).astype(dtype)
        y = rng.integers(0, n_classes, n)
        y_pred = np.where(rng.random(n) < 0.7, y, rng.integers(0, n_classes, n))
        cache = as_memmap(embeddings, tmp_path / f"{trial}.npy")
        reference, chunked = scores_both_ways(cache, y, y_pred, n_classes, chunk_size=97)
        assert_same_scores_and_masks(reference, chunked)
        assert np.isfinite(reference.scores[reference.scored_classes]).all()


def test_float16_brackets_that_miss_are_recomputed_exactly(tmp_path, monkeypatch):
    rng = np.random.default_rng(3)
    embeddings = rng.normal(0.0, 1.0, (4000, 12)).astype(np.float16)
    y, y_pred = rng.integers(0, 2, 4000), rng.integers(0, 2, 4000)
    groups = 2 * y + (y == y_pred)
    counts = np.bincount(groups, minlength=4)
    missed = _chunked._float16_medians(embeddings, groups, counts, 500, np.full((4, 12), np.nan, np.float32),
                                       sample_rows=64, bracket_z=0.0, name="embeddings")
    assert missed.any()  # a 64-row sample with no margin cannot bracket every median: the fallback runs
    monkeypatch.setattr(_chunked, "SAMPLE_ROWS", 64)
    monkeypatch.setattr(_chunked, "BRACKET_Z", 0.0)
    reference, chunked = scores_both_ways(as_memmap(embeddings, tmp_path / "e.npy"), y, y_pred, 2, chunk_size=500)
    assert_same_scores_and_masks(reference, chunked)


def test_unscored_class_warns_the_same_way_when_chunked():
    with pytest.warns(UserWarning, match="class 1 is not scored: it has 0 misclassified and 2 correctly"):
        scores = score_neurons(np.ones((4, 3), np.float16), [0, 0, 1, 1], [1, 0, 1, 1], 2, chunk_size=2)
    assert np.isnan(scores.scores[1]).all() and np.isfinite(scores.scores[0]).all()


def test_planted_spurious_neuron_is_found_from_a_memory_mapped_cache(planted, tmp_path):
    train, val = planted["train"], planted["val"]
    erm = retrain_head(train["x"], train["y"], 2, solver="lbfgs", weight_decay=1e-3)
    cache = as_memmap(val["x"].astype(np.float16), tmp_path / "val.npy")
    scores = score_neurons(cache, val["y"], head_predict(val["x"], erm), 2, chunk_size=128)
    assert np.nanargmax(scores.scores.max(axis=0)) == SPURIOUS_NEURON
    assert select_biased_neurons(scores.scores, 0.0, "any")[SPURIOUS_NEURON]


@pytest.mark.parametrize(("kwargs", "error", "match"), [
    ({"chunk_size": 0}, ValueError, "chunk_size must be a positive integer"),
    ({"chunk_size": 2.5}, ValueError, "chunk_size must be a positive integer"),
    ({"embeddings": np.ones(4, np.float16)}, ValueError, "embeddings must be a 2-D array"),
    ({"embeddings": [[1.0, 2.0]] * 4}, TypeError, "array-like with shape, dtype and row slicing"),
    ({"embeddings": np.array([["a", "b"]] * 4)}, TypeError, "must hold real numbers"),
])
def test_chunked_scoring_validates_inputs(kwargs, error, match):
    arguments = {"embeddings": np.ones((4, 2), np.float16), "y": np.array([0, 1, 0, 1]),
                 "y_pred": np.array([0, 1, 1, 0]), "n_classes": 2, "chunk_size": 2}
    with pytest.raises(error, match=match):
        score_neurons(**{**arguments, **kwargs})


@pytest.mark.parametrize("dtype", [np.float16, np.float32])
def test_nan_in_a_cache_is_named_with_its_rows(tmp_path, dtype):
    embeddings = np.ones((10, 3), dtype)
    embeddings[7, 1] = np.nan
    cache = as_memmap(embeddings, tmp_path / "bad.npy")
    y, y_pred = np.array([0, 1] * 5), np.array([0, 1, 1, 0] * 2 + [0, 1])
    with pytest.raises(ValueError, match=r"embeddings contains 1 NaN/inf values in rows [67]\.\.[78];"):
        score_neurons(cache, y, y_pred, 2, chunk_size=3)
    with pytest.raises(ValueError, match=r"embeddings contains 1 NaN/inf values in rows [67]\.\.[78];"):
        retrain_head(cache, y, 2, solver="lbfgs_chunked", chunk_size=3)


@pytest.mark.parametrize("source", ["memmap", "memmap_view", "array"])
def test_row_chunks_cover_the_source_in_order(tmp_path, source):
    array = np.arange(2 * 1000 * 3, dtype=np.float32).reshape(2000, 3)
    mapped = as_memmap(array, tmp_path / "a.npy")
    chosen = {"memmap": mapped, "memmap_view": mapped[100:1900], "array": array}[source]
    blocks = list(_chunked.iter_row_chunks(chosen, 333))
    assert [start for start, _ in blocks] == list(range(0, len(chosen), 333))
    np.testing.assert_array_equal(np.concatenate([block for _, block in blocks]), np.asarray(chosen))


def test_chunked_lbfgs_matches_in_memory_lbfgs(planted, tmp_path):
    train = planted["train"]
    rng = np.random.default_rng(0)
    init = LinearHead.from_arrays(rng.normal(0, 0.1, (2, train["x"].shape[1])), np.zeros(2))
    mask = np.zeros(train["x"].shape[1], dtype=bool)
    mask[SPURIOUS_NEURON] = True
    cache = as_memmap(train["x"].astype(np.float32), tmp_path / "train.npy")
    weights = rng.random(len(train["y"]))
    for options in ({}, {"mask": mask, "init": init, "anchor_strength": 0.1, "sample_weight": weights},
                    {"mask": np.stack([mask, ~mask]), "init": init}):
        reference = retrain_head(train["x"], train["y"], 2, solver="lbfgs", weight_decay=1e-3, **options)
        chunked = retrain_head(cache, train["y"], 2, solver="lbfgs_chunked", chunk_size=700, weight_decay=1e-3, **options)
        # the same objective, summed in another order: L-BFGS stops within its tolerance of the same optimum
        scale = np.abs(reference.weight).max()
        np.testing.assert_allclose(chunked.weight, reference.weight, atol=1e-3 * scale)
        np.testing.assert_allclose(chunked.bias, reference.bias, atol=1e-3 * scale)
        np.testing.assert_array_equal(chunked.keep, reference.keep)
        np.testing.assert_array_equal(head_predict(train["x"], chunked), head_predict(train["x"], reference))
