"""Score neurons on the identification half of validation and select the biased ones."""

from __future__ import annotations

import logging

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from neurontune.core import NeuronScores, score_neurons, select_biased_neurons, spuriousness_fit  # noqa: E402

logger = logging.getLogger(__name__)


def split_validation(embeddings_val: dict, selection_split: dict) -> dict[str, np.ndarray]:
    """Class-stratified halves of validation: ``ide`` (identify/tune) and ``sel`` (select), by a fixed seed."""
    rng = np.random.default_rng(selection_split["seed"])
    fraction = selection_split["ide_fraction"]
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"selection_split.ide_fraction must be in (0, 1); got {fraction!r}.")
    ide = []
    for label in np.unique(embeddings_val["y"]):
        rows = rng.permutation(np.flatnonzero(embeddings_val["y"] == label))
        ide.append(rows[: int(round(fraction * len(rows)))])
    ide = np.sort(np.concatenate(ide))
    sel = np.setdiff1d(np.arange(len(embeddings_val["y"])), ide)
    if ide.size == 0 or sel.size == 0:
        raise ValueError(f"validation split gave {ide.size} identification and {sel.size} selection samples; both must be > 0.")
    return {"ide": ide, "sel": sel}


#: The validation subsets neurons are scored on: the identification half (the paper), and, for
#: cross-fitting, the selection half and all of validation.
SCORED_ROLES = ("ide", "sel", "all")


def score_identification_neurons(embeddings_val: dict, validation_split: dict) -> dict[str, np.ndarray]:
    """``δ`` (C, M) from the ERM predictions, with per-class wrong/right counts, for each of :data:`SCORED_ROLES`.

    Keys ``<role>_scores``, ``<role>_n_wrong``, ``<role>_n_right``; regulation reads these, it never re-scores.
    """
    n_classes = embeddings_val["logits"].shape[1]
    rows = {"ide": validation_split["ide"], "sel": validation_split["sel"],
            "all": np.arange(len(embeddings_val["y"]))}
    scored = {}
    for role in SCORED_ROLES:
        erm_pred = embeddings_val["logits"][rows[role]].argmax(axis=1)
        scores = score_neurons(embeddings_val["embeddings"][rows[role]], embeddings_val["y"][rows[role]], erm_pred, n_classes)
        scored.update({f"{role}_scores": scores.scores, f"{role}_n_wrong": scores.n_wrong, f"{role}_n_right": scores.n_right})
    return scored


def neuron_scores_of(neuron_scores: dict, role: str) -> NeuronScores:
    """The :class:`NeuronScores` of one scored role."""
    return NeuronScores(*(neuron_scores[f"{role}_{key}"] for key in ("scores", "n_wrong", "n_right")))


def select_default_mask(neuron_scores: dict, selection: dict) -> tuple[dict, dict]:
    """The mask at the default ``λ`` and rule on the identification half, and a summary (SFit, counts) for tracking."""
    scores = neuron_scores_of(neuron_scores, "ide")
    mask = select_biased_neurons(scores.scores, selection["threshold"], selection["rule"])
    summary = {
        "threshold": selection["threshold"],
        "rule": selection["rule"],
        "n_neurons": int(scores.scores.shape[1]),
        "n_selected": int(mask.any(axis=0).sum() if mask.ndim == 2 else mask.sum()),
        "sfit": spuriousness_fit(scores.scores),
        "n_wrong_per_class": scores.n_wrong.tolist(),
        "n_right_per_class": scores.n_right.tolist(),
    }
    logger.info("selected %d of %d neurons (SFit %.3f)", summary["n_selected"], summary["n_neurons"], summary["sfit"])
    return {"mask": mask}, summary


def plot_neuron_scores(neuron_scores: dict, selection: dict):
    """Histogram of ``δ`` (identification half) per class with the threshold ``λ`` marked."""
    scores = neuron_scores["ide_scores"]
    figure, axes = plt.subplots(1, len(scores), figsize=(4 * len(scores), 3), squeeze=False)
    for label, axis in enumerate(axes[0]):
        if np.isnan(scores[label]).all():
            axis.text(0.5, 0.5, "not scored", ha="center", transform=axis.transAxes)
        else:
            axis.hist(scores[label], bins=30, color="tab:blue", alpha=0.8)
        axis.axvline(selection["threshold"], color="tab:red", linestyle="--", label=f"λ = {selection['threshold']}")
        axis.set(title=f"class {label}", xlabel="δ (wrong − right median activation)", ylabel="neurons")
        axis.legend()
    figure.tight_layout()
    return figure


def summarise_identification_metrics(identification_summary: dict) -> dict:
    """Numeric summary values as MLflow metrics."""
    return {key: {"value": float(identification_summary[key]), "step": 0} for key in ("n_selected", "sfit")}
