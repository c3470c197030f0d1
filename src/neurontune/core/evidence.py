"""What a neuron responds to, shown without group labels: which neurons to show, the samples that
activate them most and least, and (for text) the words over-represented in their top samples."""

from __future__ import annotations

import re
from collections import Counter

import numpy as np

from neurontune.core._validation import check_embeddings

_WORD = re.compile(r"[a-z]+(?:'[a-z]+)?")


def evidence_neurons(scores, masked, weight, n_neurons: int = 8, active=None) -> dict[str, np.ndarray]:
    """The neurons a gallery shows: the masked ones with the largest ``δ``, and for contrast the
    active unmasked ones the head leans on most.

    Parameters
    ----------
    scores : array (C, M), ``δ`` per class (NaN for a class that was not scored)
    masked : bool array (M,), True where the neuron is suppressed (in any class row)
    weight : array (C, M), the head's weight; a neuron's pull is its spread over classes
        (``max_c W − min_c W``, = ``|w₁ − w₀|`` for two classes: what moves the prediction)
    n_neurons : how many of each kind
    active : bool array (M,), optional; False for a neuron that never varies on the data shown (dead
        after a ReLU): it moves no prediction, so it is no contrast. None = all active.

    Returns
    -------
    ``{"masked": ids, "unmasked": ids}``, int arrays of at most ``n_neurons`` neuron ids, in order
    (largest max-over-classes ``δ`` first; largest weight spread first); ties go to the lower id.
    """
    scores, weight, masked = np.asarray(scores, dtype=np.float64), np.asarray(weight, dtype=np.float64), np.asarray(masked)
    if scores.ndim != 2 or weight.shape != scores.shape or masked.shape != (scores.shape[1],) or masked.dtype != bool:
        raise ValueError(f"scores and weight must be (C, M) and masked a boolean (M,); got {scores.shape}, "
                         f"{weight.shape} and {masked.dtype}{masked.shape}.")
    if not isinstance(n_neurons, (int, np.integer)) or n_neurons < 1:
        raise ValueError(f"n_neurons must be a positive integer; got {n_neurons!r}.")
    active = np.ones(masked.shape, dtype=bool) if active is None else np.asarray(active, dtype=bool)
    if active.shape != masked.shape:
        raise ValueError(f"active must have shape {masked.shape}; got {active.shape}.")
    delta = np.where(np.isnan(scores), -np.inf, scores).max(axis=0)
    spread = np.ptp(weight, axis=0)
    masked_ids, unmasked_ids = np.flatnonzero(masked), np.flatnonzero(~masked & active)
    return {
        "masked": masked_ids[np.argsort(-delta[masked_ids], kind="stable")][:n_neurons],
        "unmasked": unmasked_ids[np.argsort(-spread[unmasked_ids], kind="stable")][:n_neurons],
    }


def extreme_samples(activations, k: int = 8, seed: int = 0) -> dict[str, np.ndarray]:
    """Rows of the ``k`` highest and ``k`` lowest activations.

    Ties (many samples sit at 0 after a ReLU) are broken in a seeded random order rather than
    file order, so the samples shown at a tied end are a fair draw from it.

    Parameters
    ----------
    activations : array (N,)
    k : samples per end
    seed : the tie-breaking order's seed

    Returns
    -------
    ``{"highest": rows, "lowest": rows}``, each of ``min(k, N)`` row indices
    """
    activations = check_embeddings(np.asarray(activations).reshape(-1, 1), "activations")[:, 0]
    if not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"k must be a positive integer; got {k!r}.")
    order = np.random.default_rng(seed).permutation(activations.size)
    shuffled = activations[order]
    return {"highest": order[np.argsort(-shuffled, kind="stable")[:k]],
            "lowest": order[np.argsort(shuffled, kind="stable")[:k]]}


def tokenize(text: str) -> list[str]:
    """Lower-cased words (letters, with an inner apostrophe: ``don't``)."""
    return _WORD.findall(str(text).lower())


def overrepresented_words(texts, chosen, n_words: int = 8, prior_strength: float = 100.0) -> list[tuple[str, float]]:
    """Words over-represented in the ``chosen`` texts against the rest, by log-odds with an informative
    Dirichlet prior (Monroe, Colaresi & Quinn 2008), z-scored so rare words do not dominate.

    Parameters
    ----------
    texts : sequence of str (N,)
    chosen : bool array (N,), e.g. a neuron's highest-activating texts
    n_words : how many words to return
    prior_strength : total pseudo-count of the prior, spread by each word's frequency in all texts

    Returns
    -------
    list of ``(word, z)``, largest ``z`` first, only words with ``z > 0`` (ties: alphabetical)
    """
    chosen = np.asarray(chosen)
    if chosen.dtype != bool or chosen.shape != (len(texts),):
        raise ValueError(f"chosen must be a boolean vector of length {len(texts)}; got {chosen.dtype}{chosen.shape}.")
    if prior_strength <= 0:
        raise ValueError(f"prior_strength must be > 0; got {prior_strength!r}.")
    inside, outside = Counter(), Counter()
    for text, is_chosen in zip(texts, chosen):
        (inside if is_chosen else outside).update(tokenize(text))
    total = inside + outside
    if not inside or not outside:
        return []
    words = sorted(total)
    n_total = sum(total.values())
    prior = np.array([prior_strength * total[word] / n_total for word in words])
    y_in = np.array([inside[word] for word in words], dtype=np.float64)
    y_out = np.array([outside[word] for word in words], dtype=np.float64)
    n_in, n_out = y_in.sum(), y_out.sum()
    log_odds = (np.log((y_in + prior) / (n_in + prior_strength - y_in - prior))
                - np.log((y_out + prior) / (n_out + prior_strength - y_out - prior)))
    z = log_odds / np.sqrt(1.0 / (y_in + prior) + 1.0 / (y_out + prior))
    order = np.argsort(-z, kind="stable")
    return [(words[i], float(z[i])) for i in order[:n_words] if z[i] > 0]
