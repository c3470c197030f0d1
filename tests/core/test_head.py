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
    one = retrain_head(train["x"], train["y"], 2, solver="sgd", epochs=1, seed=0)
    two = retrain_head(train["x"], train["y"], 2, solver="sgd", epochs=1, seed=1)
    assert not np.array_equal(one.weight, two.weight)


def test_retrain_starts_from_init_head():
    x = np.array([[1.0, 0.0], [0.0, 1.0]])
    init = LinearHead.from_arrays([[5.0, 0.0], [0.0, 5.0]], [0.0, 0.0])
    head = retrain_head(x, [0, 1], 2, init=init, solver="sgd", epochs=1, learning_rate=1e-6)
    np.testing.assert_allclose(head.weight, init.weight, atol=1e-4)


def test_retrain_accepts_a_torch_device():
    head = retrain_head(np.eye(2), [0, 1], 2, epochs=1, device=torch.device("cpu"))
    assert head.weight.shape == (2, 2)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"solver": "adam"}, r"solver must be one of \['lbfgs', 'lbfgs_chunked', 'sgd'\]"),
        ({"max_iter": 0}, "max_iter must be a positive integer"),
        ({"epochs": 0}, "epochs must be a positive integer"),
        ({"mask": np.array([1, 0])}, "mask must be boolean"),
        ({"mask": np.array([True])}, r"mask must have shape \(2,\) or \(2, 2\)"),
        ({"init": LinearHead.from_arrays(np.zeros((2, 3)), np.zeros(2))}, "head weight has 3 input neurons"),
    ],
)
def test_retrain_validates_arguments(kwargs, match):
    with pytest.raises((ValueError, TypeError), match=match):
        retrain_head(np.eye(2), [0, 1], 2, **kwargs)


def test_lbfgs_solves_the_objective_to_its_optimum(planted):
    """The gradient of the exact objective vanishes at the returned head (a converged, not an early-stopped, fit)."""
    from neurontune.core.groups import balanced_sample_weights

    train = planted["train"]
    x, y = train["x"].astype(np.float64), train["y"]
    head = retrain_head(x, y, 2, solver="lbfgs", weight_decay=1e-2)
    weights = balanced_sample_weights(y, 2) / len(y)
    logits = x @ head.weight.T + head.bias
    probabilities = np.exp(logits - logits.max(1, keepdims=True))
    probabilities /= probabilities.sum(1, keepdims=True)
    probabilities[np.arange(len(y)), y] -= 1
    gradient = (probabilities * weights[:, None]).T @ x + 1e-2 * head.weight
    assert np.abs(gradient).max() < 1e-5 and np.abs((probabilities * weights[:, None]).sum(0)).max() < 1e-5


def test_sgd_and_lbfgs_reach_the_same_predictions(planted):
    train, test = planted["train"], planted["test"]
    sgd = retrain_head(train["x"], train["y"], 2, solver="sgd", epochs=30, weight_decay=1e-2)
    lbfgs = retrain_head(train["x"], train["y"], 2, solver="lbfgs", weight_decay=1e-2)
    agree = np.mean(np.argmax(test["x"] @ sgd.weight.T + sgd.bias, 1) == np.argmax(test["x"] @ lbfgs.weight.T + lbfgs.bias, 1))
    assert agree > 0.97


def test_the_anchored_lbfgs_solution_is_stationary_for_the_documented_objective():
    """mean CE + weight_decay/2·||W⊙keep||² + anchor_strength/2·||θ − θ_init||², written out here independently:
    its numerical gradient vanishes at the solver's answer (mutation testing found the anchor term untested)."""
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(30, 3)), rng.integers(0, 2, 30)
    init = LinearHead.from_arrays(rng.normal(size=(2, 3)), rng.normal(size=2))
    keep = np.array([1.0, 0.0, 1.0])
    decay, anchor = 0.01, 0.5
    head = retrain_head(x, y, 2, np.array([False, True, False]), init=init, anchor_strength=anchor,
                        balance_classes=False, weight_decay=decay)

    def objective(theta):
        weight, bias = theta[:6].reshape(2, 3), theta[6:]
        logits = x @ (weight * keep).T + bias
        log_norm = np.log(np.exp(logits).sum(axis=1))
        data = np.mean(log_norm - logits[np.arange(30), y])
        return (data + decay / 2 * np.sum((weight * keep) ** 2)
                + anchor / 2 * (np.sum((weight - init.weight) ** 2) + np.sum((bias - init.bias) ** 2)))

    theta = np.concatenate([head.weight.ravel(), head.bias])
    step = 1e-6
    gradient = [(objective(theta + step * e) - objective(theta - step * e)) / (2 * step) for e in np.eye(8)]
    np.testing.assert_allclose(gradient, 0.0, atol=1e-6)
    # the masked neuron's weight is pulled to its init (no data, no decay on it)
    np.testing.assert_allclose(head.weight[:, 1], init.weight[:, 1], atol=1e-6)
