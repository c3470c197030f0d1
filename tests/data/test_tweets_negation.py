import numpy as np
import pandas as pd
import pytest

from neurontune.data import build_benchmark_data
from neurontune.data.tweets_negation import build_tweets_negation, load_tweets, negation_pattern

WORDS = ["not", "no", "never", "nothing", "n't", "cannot"]


@pytest.fixture(scope="module")
def tweets():
    return load_tweets()


def test_negation_words_match_whole_words_and_contractions():
    pattern = negation_pattern(WORDS)
    for text in ("I do not care", "No way", "don't", "can\u2019t stop", "NEVER again", "I cannot"):
        assert pattern.search(text), text
    for text in ("Notable", "nobody else", "knot", "snow"):
        assert not pattern.search(text), text


def test_corpus_is_deduplicated_positive_and_negative(tweets):
    assert set(tweets["y"]) == {0, 1} and not tweets["text"].duplicated().any()
    assert 22_000 < len(tweets) < 23_500  # DATA.md: about 22.8k after deduplication


def test_splits_are_disjoint_class_balanced_and_correlated_as_asked(tweets):
    sizes, correlations = {"train": 200, "val": 100, "test": 100}, {"train": 0.95, "val": 0.5, "test": 0.5}
    texts, metadata = build_tweets_negation(tweets, WORDS, sizes, correlations, seed=0)
    assert texts.dtype.kind == "U" and len(set(texts)) == len(texts) == 400
    pattern = negation_pattern(WORDS)
    assert np.array_equal([bool(pattern.search(t)) for t in texts], metadata["a"].to_numpy() == 1)
    for split, correlation in correlations.items():
        rows = metadata[metadata["split"] == split]
        assert (rows["y"] == 0).sum() == (rows["y"] == 1).sum() == sizes[split] // 2
        aligned = np.where(rows["y"] == 0, rows["a"] == 1, rows["a"] == 0)  # negation goes with negative tweets
        assert aligned.mean() == pytest.approx(correlation), split
    truth = tweets.set_index("text")["y"]
    assert np.array_equal(truth.loc[texts].to_numpy(), metadata["y"].to_numpy())


def test_exhausted_group_is_a_clear_error():
    tiny = pd.DataFrame({"text": ["good", "not good", "bad", "not bad"], "y": [1, 1, 0, 0]})
    with pytest.raises(ValueError, match=r"split 'train' needs 2 tweets with y=0, a=1 but only 1 are left"):
        build_tweets_negation(tiny, WORDS, {"train": 4, "val": 2, "test": 2}, {"train": 1.0, "val": 0.5, "test": 0.5}, 0)


def test_registered_builder(tweets):
    config = {"name": "tweets_negation", "seed": 0, "split_sizes": {"train": 20, "val": 10, "test": 10},
              "train_correlation": 0.9, "val_correlation": 0.5, "test_correlation": 0.5, "negation_words": WORDS}
    texts, metadata = build_benchmark_data(config)
    assert len(texts) == len(metadata) == 40
