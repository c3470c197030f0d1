"""What `retrain_head` promises beyond "a head comes back": its documented defaults, errors that name the argument,
each solver option reaching its optimizer, and numerically safe logits. Written after mutation testing showed
these could change unnoticed (docs/testing.md)."""

import warnings

import numpy as np
import pytest
from scipy.special import logsumexp

from neurontune.core import LinearHead, head_logits, keep_from_mask, retrain_head

SGD = {"solver": "sgd", "epochs": 40, "batch_size": 50, "learning_rate": 0.05}


@pytest.fixture(scope="module")
def imbalanced():
    """A small, not separable, imbalanced problem (25% class 1) whose optimum SGD can reach in a second."""
    rng = np.random.default_rng(0)
    y = (rng.random(300) < 0.25).astype(int)
    x = rng.normal(size=(300, 3)) + np.outer(2 * y - 1, [1.0, 0.5, 0.0])
    return x, y


def test_defaults_are_the_documented_ones(imbalanced):
    x, y = imbalanced
    np.testing.assert_array_equal(retrain_head(x, y, 2).weight, retrain_head(x, y, 2, weight_decay=1e-4).weight)
    sgd = {"solver": "sgd", "seed": 3}
    np.testing.assert_array_equal(retrain_head(x, y, 2, **sgd).weight,
                                  retrain_head(x, y, 2, epochs=20, learning_rate=0.01, momentum=0.9, batch_size=128,
                                               **sgd).weight)


@pytest.mark.parametrize(
    ("arguments", "match"),
    [
        ({"embeddings": [[0.0, np.nan], [1.0, 0.0]]}, "embeddings contains 1 NaN/inf"),
        ({"embeddings": np.array([[0.0, np.nan], [1.0, 0.0]]), "solver": "lbfgs_chunked"}, "embeddings contains 1 NaN/inf"),
        ({"embeddings": np.zeros((2, 2, 1)), "solver": "lbfgs_chunked"}, "embeddings must be a 2-D array"),
        ({"y": [0, 1, 1]}, "y has 3 entries but the embeddings have 2 rows"),
        ({"y": [0, 2]}, r"y must lie in \[0, 2\)"),
        ({"y": [1, 1]}, r"the tuning data \(y\) has no sample of class\(es\) \[0\]"),
        ({"init": LinearHead.from_arrays(np.zeros((3, 2)), np.zeros(3))}, "init head has 3 classes; expected 2"),
        ({"anchor_strength": 1.0}, "anchor_strength must be >= 0 and needs an init head .* with init=None"),
        ({"anchor_strength": -1.0, "init": LinearHead.from_arrays(np.zeros((2, 2)), np.zeros(2))},
         "with init=a head"),
        ({"batch_size": 0}, "batch_size must be a positive integer; got 0"),
        ({"learning_rate": 0.0}, "learning_rate must be > 0 and weight_decay >= 0; got 0.0 and 0.0001"),
        ({"weight_decay": -1.0}, "learning_rate must be > 0 and weight_decay >= 0; got 0.01 and -1.0"),
        ({"sample_weight": [1.0, 1.0, 1.0], "balance_classes": False}, r"of shape \(2,\); got shape \(3,\)"),
        ({"sample_weight": [1.0, np.inf], "balance_classes": False}, "sample_weight must be finite, non-negative"),
        ({"sample_weight": [1.0, -0.5], "balance_classes": False}, "sample_weight must be finite, non-negative"),
        ({"sample_weight": [0.0, 0.0], "balance_classes": False}, "not all zero"),
    ],
)
def test_bad_arguments_are_refused_naming_what_was_wrong(arguments, match):
    arguments = {"embeddings": np.eye(2), "y": [0, 1], **arguments}
    with pytest.raises((ValueError, TypeError), match=match):
        retrain_head(arguments.pop("embeddings"), arguments.pop("y"), 2, **arguments)


def test_valid_sample_weights_are_accepted_whatever_their_scale():
    """Zeros are allowed (a sample that does not count), and so is a total below one."""
    x, y = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]), np.array([0, 1, 1])
    for sample_weight in ([0.2, 0.2, 0.0], [1e-3, 1e-3, 1e-3]):
        head = retrain_head(x, y, 2, sample_weight=sample_weight, balance_classes=False)
        assert np.all(np.isfinite(head.weight))


def test_head_checks_name_their_argument():
    head = LinearHead.from_arrays(np.ones((2, 2)), np.zeros(2))
    with pytest.raises(ValueError, match="embeddings must be a 2-D array"):
        head_logits([1.0, 2.0], head)
    with pytest.raises(ValueError, match=r"keep must have shape \(2,\) or \(2, 2\); got \(3,\)"):
        LinearHead.from_arrays(np.ones((2, 2)), np.zeros(2), keep=[1, 1, 1])
    with pytest.raises(TypeError, match="mask must be boolean .* got dtype int"):
        keep_from_mask(np.array([1, 0]))


def test_a_head_is_stored_in_float64_whatever_it_was_given():
    """Saved heads (npz) and served models read float64 arrays, even from float32 or boolean input."""
    head = LinearHead.from_arrays(np.ones((2, 2), dtype=np.float32), np.zeros(2, dtype=np.float32), keep=[True, False])
    assert head.weight.dtype == head.bias.dtype == head.keep.dtype == np.float64
    assert head_logits(np.ones((1, 2), dtype=np.float32), head).dtype == np.float64


def test_embeddings_may_be_any_array_like_in_memory():
    head = retrain_head([[1.0, 0.0], [0.0, 1.0]], [0, 1], 2)
    assert head.weight.shape == (2, 2)


def test_lbfgs_passes_valid_options_and_honours_max_iter(imbalanced):
    """SciPy ignores an option it does not know with only a warning: none may be raised, and the iteration
    limit must bite (one iteration is far from the optimum)."""
    x, y = imbalanced
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        converged = retrain_head(x, y, 2, weight_decay=0.1)
        one_step = retrain_head(x, y, 2, weight_decay=0.1, max_iter=1)
    assert [str(warning.message) for warning in caught] == []
    assert np.abs(converged.weight - one_step.weight).max() > 1e-3


def test_lbfgs_is_stable_for_logits_far_beyond_exp_range():
    """Rows whose largest logits differ by more than exp can represent (±800 next to ±8): the log-sum-exp must be
    shifted per row, or a row overflows (inf) or underflows (log 0) and the fit is lost."""
    x = np.array([[100.0, 0.0], [-100.0, 0.0], [1.0, 1.0], [-1.0, -1.0], [1.0, -1.0], [-1.0, 1.0]])
    y = np.array([0, 1, 0, 1, 1, 0])
    init = LinearHead.from_arrays([[8.0, 0.0], [-8.0, 0.0]], [0.0, 0.0])
    head = retrain_head(x, y, 2, init=init, balance_classes=False, weight_decay=0.01)
    assert np.all(np.isfinite(head.weight)) and np.all(np.isfinite(head.bias))
    logits = x @ head.weight.T + head.bias
    residual = np.exp(logits - logsumexp(logits, axis=1, keepdims=True))
    residual[np.arange(len(y)), y] -= 1
    gradient = residual.T @ x / len(y) + 0.01 * head.weight
    assert np.abs(gradient).max() < 1e-5, "the returned head must be the optimum of the stable objective"


@pytest.mark.parametrize("case", ["class_balanced", "sample_weights", "anchored"])
def test_sgd_reaches_the_lbfgs_optimum_of_the_same_objective(imbalanced, case):
    """Every term of the objective reaches the SGD solver: class balancing (sampling with replacement by weight),
    zero-weighted samples (here mislabelled) that must not count, weight decay on the weight only, and AFR's
    anchor toward the init head."""
    x, y = imbalanced
    rng = np.random.default_rng(1)
    arguments = {"weight_decay": 0.1}
    if case == "sample_weights":
        flipped = rng.random(len(y)) < 0.2
        y = np.where(flipped, 1 - y, y)
        arguments.update(sample_weight=np.where(flipped, 0.0, 1.0), balance_classes=False)
    if case == "anchored":
        arguments.update(init=LinearHead.from_arrays(3 * rng.normal(size=(2, 3)), rng.normal(size=2)),
                         anchor_strength=2.0)
    optimum = retrain_head(x, y, 2, **arguments)
    sgd = retrain_head(x, y, 2, **SGD, **arguments)
    np.testing.assert_allclose(sgd.weight, optimum.weight, atol=0.1)
    np.testing.assert_allclose(sgd.bias, optimum.bias, atol=0.1)


def test_sgd_momentum_reaches_the_optimizer(imbalanced):
    x, y = imbalanced
    with_momentum = retrain_head(x, y, 2, solver="sgd", epochs=1, momentum=0.9)
    without = retrain_head(x, y, 2, solver="sgd", epochs=1, momentum=0.0)
    assert not np.allclose(with_momentum.weight, without.weight)


def test_a_head_round_trips_through_its_saved_arrays():
    """`to_dict` is what the catalog saves (npz) and the served model loads back."""
    head = LinearHead.from_arrays([[1.0, -2.0], [0.5, 3.0]], [0.1, -0.1], keep=[[0.0, 1.0], [1.0, 0.5]])
    saved = head.to_dict()
    assert sorted(saved) == ["bias", "keep", "weight"]
    loaded = LinearHead.from_arrays(**saved)
    for name in saved:
        np.testing.assert_array_equal(getattr(loaded, name), getattr(head, name))
