"""Synthetic embeddings with one planted spurious neuron.

Neurons: 0 fires for class 1 (core, noisy), 1 fires when the attribute a = 1
(spurious; a = y in 95% of training), the rest are noise. Validation/test are
group-balanced.
"""

import numpy as np
import pytest

SPURIOUS_NEURON = 1


def make_split(rng, n, correlation, n_noise=6):
    y = rng.integers(0, 2, n)
    a = np.where(rng.random(n) < correlation, y, 1 - y)
    core = np.maximum(0, y + rng.normal(0, 0.6, n))
    spurious = np.maximum(0, 1.5 * a + rng.normal(0, 0.1, n))
    noise = np.abs(rng.normal(0, 0.5, (n, n_noise)))
    return np.column_stack([core, spurious, noise]), y, a


@pytest.fixture(scope="package")
def planted():
    rng = np.random.default_rng(0)
    splits = {"train": make_split(rng, 2000, 0.95), "val": make_split(rng, 1000, 0.5), "test": make_split(rng, 2000, 0.5)}
    return {name: {"x": x, "y": y, "a": a, "g": 2 * y + a} for name, (x, y, a) in splits.items()}
