import numpy as np
import pytest

from neurontune.core import NeuronTune, group_report, head_predict, retrain_head, score_neurons, select_biased_neurons
from neurontune.core.groups import balanced_subset_indices
from tests.core.conftest import SPURIOUS_NEURON

RETRAIN = {"solver": "lbfgs", "weight_decay": 1e-3}


def worst_group(planted, predictor):
    test = planted["test"]
    return group_report(test["y"], predictor(test["x"]), test["g"], 2, 4)["worst_group_accuracy"]


def test_masking_and_retraining_lifts_worst_group_close_to_oracle(planted):
    train, val = planted["train"], planted["val"]
    erm = retrain_head(train["x"], train["y"], 2, **RETRAIN)
    neurontune = NeuronTune(2, threshold=0.0, rule="any", **RETRAIN).fit(
        val["x"], val["y"], head_predict(val["x"], erm), train["x"], train["y"], init=erm
    )
    balanced = balanced_subset_indices(val["g"], 4, np.random.default_rng(0))
    oracle = retrain_head(val["x"][balanced], val["y"][balanced], 2, **RETRAIN)
    erm_wga = worst_group(planted, lambda x: head_predict(x, erm))
    oracle_wga = worst_group(planted, lambda x: head_predict(x, oracle))
    neurontune_wga = worst_group(planted, neurontune.predict)
    assert neurontune.mask_[SPURIOUS_NEURON]
    assert erm_wga < oracle_wga - 0.1, "the planted shortcut must hurt ERM, or the test proves nothing"
    assert neurontune_wga > oracle_wga - 0.05


def test_no_mask_variant_suppresses_nothing(planted):
    train, val = planted["train"], planted["val"]
    model = NeuronTune(2, use_mask=False, **RETRAIN).fit(val["x"], val["y"], val["y"], train["x"], train["y"])
    assert not model.mask_.any() and model.head_.n_suppressed == 0


def test_round_two_rescores_with_the_round_one_head_and_adds_its_neurons(planted):
    """Masking the planted shortcut moves the errors: round 2 scores them with round 1's head and adds what it
    selects (here the core neuron, whose low activation now explains the errors) to round 1's mask."""
    train, val = planted["train"], planted["val"]
    erm = retrain_head(train["x"], train["y"], 2, **RETRAIN)
    arguments = (val["x"], val["y"], head_predict(val["x"], erm), train["x"], train["y"])
    one = NeuronTune(2, threshold=0.5, rule="any", rounds=1, **RETRAIN).fit(*arguments)
    two = NeuronTune(2, threshold=0.5, rule="any", rounds=2, **RETRAIN).fit(*arguments)
    rescored = score_neurons(val["x"], val["y"], head_predict(val["x"], one.head_), 2)
    expected = one.mask_ | select_biased_neurons(rescored.scores, 0.5, "any")
    assert one.mask_.tolist() == [i == SPURIOUS_NEURON for i in range(val["x"].shape[1])]
    assert expected.sum() > one.mask_.sum(), "round 2 must add a neuron here, or the test proves nothing"
    np.testing.assert_array_equal(two.mask_, expected)
    np.testing.assert_array_equal(two.head_.suppressed, expected)
    np.testing.assert_array_equal(two.scores_.scores, rescored.scores)


def test_mismatched_embedding_widths_are_rejected(planted):
    val = planted["val"]
    with pytest.raises(ValueError, match="embedding widths differ between splits"):
        NeuronTune(2).fit(val["x"], val["y"], val["y"], val["x"][:, :3], val["y"])


def test_predict_before_fit_is_an_error():
    with pytest.raises(RuntimeError, match="not fitted"):
        NeuronTune(2).predict(np.ones((1, 2)))


def test_estimator_follows_the_scikit_learn_parameter_protocol(planted):
    from sklearn.base import clone

    model = NeuronTune(2, threshold=0.5, rule="any", weight_decay=1e-2)
    params = model.get_params()
    assert params["threshold"] == 0.5 and params["weight_decay"] == 1e-2 and params["solver"] == "lbfgs"
    assert clone(model).get_params() == params
    assert model.set_params(rule="per_class").rule == "per_class"
    train, val = planted["train"], planted["val"]
    fitted = clone(model).fit(val["x"], val["y"], val["y"], train["x"], train["y"])
    assert not hasattr(clone(fitted), "head_")


def test_precomputed_scores_give_the_same_fit(planted):
    train, val = planted["train"], planted["val"]
    erm = retrain_head(train["x"], train["y"], 2, **RETRAIN)
    arguments = (val["x"], val["y"], head_predict(val["x"], erm), train["x"], train["y"])
    scores = score_neurons(val["x"], val["y"], arguments[2], 2)
    plain = NeuronTune(2, rule="any", **RETRAIN).fit(*arguments)
    given = NeuronTune(2, rule="any", **RETRAIN).fit(*arguments, scores=scores)
    np.testing.assert_array_equal(plain.mask_, given.mask_)
    np.testing.assert_array_equal(plain.head_.weight, given.head_.weight)
    with pytest.raises(ValueError, match="scores must have shape"):
        NeuronTune(2).fit(*arguments, scores=score_neurons(val["x"][:, :3], val["y"], arguments[2], 2))
