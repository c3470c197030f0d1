import numpy as np
import pytest

from neurontune.core.evidence import evidence_neurons, extreme_samples, overrepresented_words, tokenize


def test_evidence_neurons_rank_masked_by_delta_and_kept_by_weight_spread():
    scores = np.array([[0.5, np.nan, 0.1, 0.0, 0.2], [0.1, 0.9, np.nan, 0.0, -1.0]])
    masked = np.array([True, True, True, False, False])
    weight = np.array([[0.0, 0.0, 0.0, 1.0, 0.0], [0.0, 0.0, 0.0, -1.0, 3.0]])
    chosen = evidence_neurons(scores, masked, weight, n_neurons=2)
    assert chosen["masked"].tolist() == [1, 0]   # max over scored classes: 0.9, 0.5, 0.1
    assert chosen["unmasked"].tolist() == [4, 3]  # spread over classes: 3.0 vs 2.0
    inactive = evidence_neurons(scores, masked, weight, active=np.array([True, True, True, True, False]))
    assert inactive["unmasked"].tolist() == [3]   # a dead neuron is no contrast
    with pytest.raises(ValueError, match="masked a boolean"):
        evidence_neurons(scores, masked.astype(int), weight)


def test_extreme_samples_break_ties_by_seed_not_file_order():
    activations = np.array([3.0, 0.0, 0.0, 5.0, 0.0, 0.0, 0.0, 0.0, 1.0])
    ends = extreme_samples(activations, 2, seed=0)
    assert ends["highest"].tolist() == [3, 0]
    assert set(ends["lowest"]) <= {1, 2, 4, 5, 6, 7}
    assert extreme_samples(activations, 2, seed=0)["lowest"].tolist() == ends["lowest"].tolist()
    draws = {tuple(extreme_samples(activations, 2, seed=s)["lowest"]) for s in range(10)}
    assert len(draws) > 1


def test_overrepresented_words_find_the_planted_word():
    rng = np.random.default_rng(0)
    vocabulary = ["good", "day", "movie", "the", "a", "great", "bad", "food"]
    texts = [" ".join(rng.choice(vocabulary, 6)) + (" not" if i < 30 else "") for i in range(300)]
    chosen = np.arange(300) < 30
    words = overrepresented_words(texts, chosen, n_words=3)
    assert words[0][0] == "not" and words[0][1] > 3
    assert tokenize("Don't STOP, it's fine!") == ["don't", "stop", "it's", "fine"]
    assert overrepresented_words(texts, np.zeros(300, dtype=bool)) == []
    with pytest.raises(ValueError, match="chosen must be a boolean vector of length 300"):
        overrepresented_words(texts, chosen[:10])
