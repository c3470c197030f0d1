import numpy as np
import pytest

from neurontune.core import LinearHead, NeuronTune, group_report, head_predict, retrain_head, score_neurons, select_biased_neurons
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


# Contract details mutation testing found unpinned (docs/testing.md).

def test_defaults_are_the_papers_settings():
    assert NeuronTune().get_params() == {
        "n_classes": 2, "threshold": 0.0, "rule": "all", "suppression_scale": 0.0, "rounds": 1, "use_mask": True,
        "top_k": None, "statistic": "median", "balance": "class", "weight_decay": 1e-4, "solver": "lbfgs",
        "max_iter": 400, "epochs": 20, "learning_rate": 0.01, "momentum": 0.9, "batch_size": 128, "seed": 0,
        "device": "cpu"}


def _arguments(planted):
    val, train = planted["val"], planted["train"]
    return {"ide_embeddings": val["x"], "ide_y": val["y"], "ide_erm_pred": val["y"], "tune_embeddings": train["x"],
            "tune_y": train["y"]}


@pytest.mark.parametrize(("change", "message"), [
    ({"ide_embeddings": np.zeros(8)}, r"^ide_embeddings must be a 2-D array"),
    ({"tune_embeddings": np.zeros(8)}, r"^tune_embeddings must be a 2-D array"),
    ({"tune_embeddings": np.zeros((4, 3))}, r"embedding widths differ between splits \(ide_embeddings: 8, tune_embeddings: 3\)"),
    ({"ide_y": np.zeros(3, int)}, r"^ide_y has 3 entries but the embeddings have 1000 rows"),
    ({"ide_erm_pred": np.zeros(3, int)}, r"^ide_erm_pred has 3 entries but the embeddings have 1000 rows"),
    ({"tune_y": np.zeros(3, int)}, r"^tune_y has 3 entries but the embeddings have 2000 rows"),
], ids=["ide_embeddings", "tune_embeddings", "widths", "ide_y", "ide_erm_pred", "tune_y"])
def test_bad_fit_arguments_are_named(planted, change, message):
    with pytest.raises(ValueError, match=message):
        NeuronTune(2).fit(**{**_arguments(planted), **change})


@pytest.mark.parametrize("rounds", [0, 1.5])
def test_rounds_must_be_a_positive_integer(planted, rounds):
    with pytest.raises(ValueError, match=rf"^rounds must be a positive integer; got {rounds}\.$"):
        NeuronTune(2, rounds=rounds).fit(**_arguments(planted))


def test_pseudo_group_balancing_needs_valid_groups(planted):
    arguments = _arguments(planted)
    with pytest.raises(ValueError, match=r"^balance='pseudo_group' needs tune_groups, the pseudo-group id of every "
                                         r"tuning sample\.$"):
        NeuronTune(2, balance="pseudo_group").fit(**arguments)
    with pytest.raises(ValueError, match=r"^tune_groups has 3 entries but the embeddings have 2000 rows"):
        NeuronTune(2, balance="pseudo_group").fit(**arguments, tune_groups=np.zeros(3, int))
    with pytest.raises(ValueError, match=r"^balance must be 'class' or 'pseudo_group'; got 'group'\.$"):
        NeuronTune(2, balance="group").fit(**arguments)
    with pytest.raises(RuntimeError, match=r"^NeuronTune is not fitted yet; call fit\(\.\.\.\) first\.$"):
        NeuronTune(2).predict(np.ones((1, 8)))


def test_pseudo_group_balancing_weighs_every_group_cell_the_same(planted):
    from neurontune.core.groups import balanced_sample_weights

    train = planted["train"]
    # class 0 one cell, class 1 two: group balancing then weighs class 1 double, which class balancing would undo
    groups = np.where(train["y"] == 0, 0, 2 + train["a"])
    fitted = NeuronTune(2, use_mask=False, balance="pseudo_group", **RETRAIN).fit(**_arguments(planted), tune_groups=groups)
    direct = retrain_head(train["x"], train["y"], 2, sample_weight=balanced_sample_weights(groups, 4),
                          balance_classes=False, **RETRAIN)
    np.testing.assert_allclose(fitted.head_.weight, direct.weight)
    class_balanced = retrain_head(train["x"], train["y"], 2, sample_weight=balanced_sample_weights(groups, 4), **RETRAIN)
    assert not np.allclose(class_balanced.weight, direct.weight), "class balancing must matter here"


def test_given_scores_decide_the_mask_and_the_statistic_and_seed_reach_self_scoring(planted):
    from neurontune.core import NeuronScores, spuriousness_fit

    arguments = _arguments(planted)
    given = np.full((2, 8), -1.0)
    given[0, 5] = 2.0  # only neuron 5, which the data would never select
    scores = NeuronScores(given, np.array([10, 10]), np.array([10, 10]))
    fitted = NeuronTune(2, rule="any", **RETRAIN).fit(**arguments, scores=scores)
    assert np.flatnonzero(fitted.mask_).tolist() == [5] and fitted.sfit_ == spuriousness_fit(given)
    erm = retrain_head(planted["train"]["x"], planted["train"]["y"], 2, **RETRAIN)
    arguments["ide_erm_pred"] = head_predict(arguments["ide_embeddings"], erm)
    for statistic in ("scaled", "lcb"):
        fitted = NeuronTune(2, statistic=statistic, seed=3, **RETRAIN).fit(**arguments)
        expected = score_neurons(arguments["ide_embeddings"], arguments["ide_y"], arguments["ide_erm_pred"], 2,
                                 statistic=statistic, seed=3)
        np.testing.assert_array_equal(fitted.scores_.scores, expected.scores)


def test_no_mask_fits_once_from_the_erm_errors_whatever_the_rounds(planted):
    arguments = _arguments(planted)
    # predictions no retrained head would make, so a second round's re-scoring would show
    arguments["ide_erm_pred"] = np.where(np.arange(len(arguments["ide_y"])) % 4 == 0, 1 - arguments["ide_y"],
                                         arguments["ide_y"])
    fitted = NeuronTune(2, use_mask=False, rounds=3, **RETRAIN).fit(**arguments)
    expected = score_neurons(arguments["ide_embeddings"], arguments["ide_y"], arguments["ide_erm_pred"], 2)
    np.testing.assert_array_equal(fitted.scores_.scores, expected.scores)
    assert fitted.mask_.dtype == bool and fitted.mask_.shape == (8,) and not fitted.mask_.any()


def test_top_k_and_the_suppression_scale_reach_the_head(planted):
    arguments = _arguments(planted)
    erm = retrain_head(planted["train"]["x"], planted["train"]["y"], 2, **RETRAIN)
    arguments["ide_erm_pred"] = head_predict(arguments["ide_embeddings"], erm)
    capped = NeuronTune(2, threshold=-1.0, rule="any", top_k=1, **RETRAIN).fit(**arguments)
    assert capped.mask_.sum() == 1
    scaled = NeuronTune(2, rule="any", suppression_scale=0.5, **RETRAIN).fit(**arguments)
    assert scaled.mask_.any() and np.all(scaled.head_.keep[scaled.mask_] == 0.5)


def test_fit_keys_tell_apart_what_changes_the_head(planted):
    from neurontune.core import NeuronScores

    scores = np.array([[0.5, -1.0, 0.2], [0.1, -1.0, -0.3]])
    given = NeuronScores(scores, np.array([5, 5]), np.array([5, 5]))
    key = NeuronTune(2, rule="any").fit_key(given)
    assert key == NeuronTune(2, rule="any", threshold=0.05).fit_key(given)  # same mask: same key
    assert key != NeuronTune(2, rule="all").fit_key(given)
    assert key != NeuronTune(2, rule="any", top_k=1).fit_key(given)
    assert key != NeuronTune(2, rule="any", weight_decay=1e-2).fit_key(given)
    assert key != NeuronTune(2, rule="any", balance="pseudo_group").fit_key(given)
    assert NeuronTune(2, rule="any").fit_key(None) is None and NeuronTune(2, rounds=2).fit_key(given) is None
    assert NeuronTune(2, use_mask=False).fit_key(None) == NeuronTune(2, use_mask=False).fit_key(given) is not None
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a key is no fit: selecting nothing is not worth a warning here
        NeuronTune(2, threshold=10.0).fit_key(given)


def test_the_init_head_reaches_the_retraining(planted):
    """With SGD (a few steps from the start) the initial head shows in the result."""
    train = planted["train"]
    sgd = {"solver": "sgd", "epochs": 1, "learning_rate": 0.01, "weight_decay": 1e-3}
    starts = [LinearHead.from_arrays(np.full((2, 8), value), np.zeros(2)) for value in (-1.0, 1.0)]
    heads = [NeuronTune(2, use_mask=False, **sgd).fit(**_arguments(planted), init=start).head_ for start in starts]
    direct = retrain_head(train["x"], train["y"], 2, init=starts[1], **sgd)
    np.testing.assert_allclose(heads[1].weight, direct.weight, rtol=1e-6)
    assert not np.allclose(heads[0].weight, heads[1].weight)
