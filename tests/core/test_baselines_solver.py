"""The retraining options the baselines add to the shared solver and balancing module."""

import numpy as np
import pytest

from neurontune.core import LinearHead, balanced_sample_weights, retrain_head


def test_sample_weight_redistributes_within_each_label_and_keeps_labels_equal():
    labels = np.array([0, 0, 0, 1])
    weights = balanced_sample_weights(labels, 2, sample_weight=np.array([1.0, 1.0, 2.0, 5.0]))
    assert weights.sum() == pytest.approx(4.0)
    assert weights[:3].sum() == pytest.approx(weights[3])
    assert weights[2] == pytest.approx(2 * weights[0])


def test_uniform_sample_weight_equals_plain_balancing():
    labels = np.array([0, 1, 1, 2, 2, 2])
    np.testing.assert_allclose(balanced_sample_weights(labels, 3, np.ones(6)), balanced_sample_weights(labels, 3))


def test_sample_weight_is_validated():
    with pytest.raises(ValueError, match="sample_weight"):
        balanced_sample_weights(np.array([0, 1]), 2, sample_weight=np.array([1.0, -1.0]))


@pytest.fixture
def toy():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 4))
    y = (x[:, 0] > 0).astype(int)
    return x, y


def test_a_strong_anchor_keeps_the_head_at_init(toy):
    x, y = toy
    init = LinearHead.from_arrays(np.array([[0.0, 0.0, 0.0, 1.0], [0.0, 0.0, 0.0, -1.0]]), np.zeros(2))
    pulled = retrain_head(x, y, 2, init=init, anchor_strength=1e4, solver="lbfgs", weight_decay=0.0)
    free = retrain_head(x, y, 2, init=init, anchor_strength=0.0, solver="lbfgs", weight_decay=1e-3)
    assert np.abs(pulled.weight - init.weight).max() < 0.01
    assert np.abs(free.weight - init.weight).max() > 0.5


def test_anchor_needs_an_init_head(toy):
    x, y = toy
    with pytest.raises(ValueError, match="anchor_strength"):
        retrain_head(x, y, 2, anchor_strength=0.1)


def test_upweighting_a_sample_changes_the_head(toy):
    x, y = toy
    weights = np.ones(len(y))
    weights[:5] = 100.0
    plain = retrain_head(x, y, 2, solver="lbfgs", epochs=5, balance_classes=False)
    weighted = retrain_head(x, y, 2, solver="lbfgs", epochs=5, balance_classes=False, sample_weight=weights)
    assert not np.allclose(plain.weight, weighted.weight)
