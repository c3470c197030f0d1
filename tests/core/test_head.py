import numpy as np
import pytest
import torch

from neurontune.core import LinearHead, head_logits, keep_from_mask, retrain_head


def test_keep_from_mask_full_and_partial_suppression():
    mask = np.array([True, False])
    assert keep_from_mask(mask).tolist() == [0.0, 1.0]
    assert keep_from_mask(mask, 0.2).tolist() == [0.2, 1.0]
    with pytest.raises(ValueError, match=r"suppression_scale must be a number in \[0.0, 1.0\]"):
        keep_from_mask(mask, 2.0)


def test_suppressed_neuron_has_no_effect_on_logits():
    head = LinearHead.from_arrays([[1.0, 2.0], [0.0, -1.0]], [0.5, 0.0], keep=[0.0, 1.0])
    np.testing.assert_allclose(head_logits([[100.0, 1.0]], head), [[2.5, -1.0]])
    assert head.n_suppressed == 1


def test_per_class_keep_masks_one_row_only():
    head = LinearHead.from_arrays([[1.0, 1.0], [1.0, 1.0]], [0.0, 0.0], keep=[[0.0, 1.0], [1.0, 1.0]])
    np.testing.assert_allclose(head_logits([[1.0, 1.0]], head), [[1.0, 2.0]])


@pytest.mark.parametrize("solver", ["sgd", "lbfgs"])
def test_retrain_is_deterministic_for_a_seed_and_respects_mask(planted, solver):
    train = planted["train"]
    mask = np.zeros(train["x"].shape[1], dtype=bool)
    mask[1] = True
    first = retrain_head(train["x"], train["y"], 2, mask, solver=solver, epochs=3, seed=4)
    second = retrain_head(train["x"], train["y"], 2, mask, solver=solver, epochs=3, seed=4)
    np.testing.assert_array_equal(first.weight, second.weight)
    assert np.all(first.effective_weight[:, 1] == 0)


def test_sgd_seed_changes_result(planted):
    train = planted["train"]
    one = retrain_head(train["x"], train["y"], 2, epochs=1, seed=0)
    two = retrain_head(train["x"], train["y"], 2, epochs=1, seed=1)
    assert not np.array_equal(one.weight, two.weight)


def test_retrain_starts_from_init_head():
    x = np.array([[1.0, 0.0], [0.0, 1.0]])
    init = LinearHead.from_arrays([[5.0, 0.0], [0.0, 5.0]], [0.0, 0.0])
    head = retrain_head(x, [0, 1], 2, init=init, epochs=1, learning_rate=1e-6)
    np.testing.assert_allclose(head.weight, init.weight, atol=1e-4)


def test_retrain_accepts_a_torch_device():
    head = retrain_head(np.eye(2), [0, 1], 2, epochs=1, device=torch.device("cpu"))
    assert head.weight.shape == (2, 2)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"solver": "adam"}, r"solver must be one of \['lbfgs', 'lbfgs_chunked', 'sgd'\]"),
        ({"epochs": 0}, "epochs must be a positive integer"),
        ({"mask": np.array([1, 0])}, "mask must be boolean"),
        ({"mask": np.array([True])}, r"mask must have shape \(2,\) or \(2, 2\)"),
        ({"init": LinearHead.from_arrays(np.zeros((2, 3)), np.zeros(2))}, "head weight has 3 input neurons"),
    ],
)
def test_retrain_validates_arguments(kwargs, match):
    with pytest.raises((ValueError, TypeError), match=match):
        retrain_head(np.eye(2), [0, 1], 2, **kwargs)
