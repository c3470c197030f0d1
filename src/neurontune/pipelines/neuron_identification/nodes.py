"""Score neurons on the identification half of validation and select the biased ones."""

from __future__ import annotations

import logging

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from neurontune.core import head_predict, retrain_head, select_biased_neurons, spuriousness_fit  # noqa: E402
from neurontune.core._validation import check_classes_present  # noqa: E402
from neurontune.core.errors import crossfit_predictions, loss_quantile_sets  # noqa: E402
from neurontune.core.groups import stratified_split  # noqa: E402
from neurontune.core.roles import PAPER_ROLES, ScoringRole, score_table_entries, scores_of  # noqa: E402
from neurontune.core.scoring import permutation_discoveries, score_error_sets  # noqa: E402
from neurontune.methods import variant_roles  # noqa: E402

logger = logging.getLogger(__name__)


def split_validation(embeddings_val: dict, selection_split: dict) -> dict[str, np.ndarray]:
    """Class-stratified halves of validation: ``ide`` (identify/tune) and ``sel`` (select), by a fixed seed."""
    ide, sel = stratified_split(embeddings_val["y"], selection_split["ide_fraction"], selection_split["seed"])
    n_classes = embeddings_val["logits"].shape[1]
    for name, rows in (("identification", ide), ("selection", sel)):
        check_classes_present(embeddings_val["y"][rows], n_classes, f"the {name} half of validation")
    return {"ide": ide, "sel": sel}


def find_error_sets(embeddings_train: dict, embeddings_val: dict, error_sets: dict, erm_mode: str) -> dict[str, np.ndarray]:
    """Label-free error sets of every source on the training split and on validation, from class labels only.

    Keys ``<split>_<source>``: int8 arrays (N,), 1 = in the error set, 0 = in the reference set, -1 = neither
    (the middle of a loss-quantile split). ``crossfit`` on validation = a plain head fitted on all training
    embeddings, the model whose held-out errors ``crossfit`` measures on the training split. ``auto`` is
    ``early`` when ERM fine-tuned the backbone (its final model has memorised the training split) and
    ``crossfit`` when the backbone was frozen (a linear probe, whose features never saw the labels).
    """
    n_classes = embeddings_val["logits"].shape[1]
    crossfit = error_sets["crossfit"]
    full_head = retrain_head(embeddings_train["embeddings"], embeddings_train["y"], n_classes, balance_classes=False,
                             weight_decay=crossfit["weight_decay"])
    held_out = {"train": crossfit_predictions(embeddings_train["embeddings"], embeddings_train["y"], n_classes,
                                              n_folds=crossfit["n_folds"], weight_decay=crossfit["weight_decay"],
                                              seed=crossfit["seed"]),
                "val": head_predict(embeddings_val["embeddings"], full_head)}
    found = {}
    for split, cache in (("train", embeddings_train), ("val", embeddings_val)):
        y = cache["y"]
        found[f"{split}_erm"] = (cache["logits"].argmax(axis=1) != y).astype(np.int8)
        found[f"{split}_crossfit"] = (held_out[split] != y).astype(np.int8)
        found[f"{split}_early"] = _early_errors(cache, found[f"{split}_crossfit"], split)
        wrong, right = loss_quantile_sets(cache["logits"], y, n_classes, error_sets["loss_quantile"]["fraction"])
        found[f"{split}_loss_quantile"] = np.where(wrong, 1, np.where(right, 0, -1)).astype(np.int8)
    auto = "crossfit" if erm_mode == "linear_probe" else "early"
    found.update({f"{split}_auto": found[f"{split}_{auto}"] for split in ("train", "val")})
    for key, value in found.items():
        logger.info("error set %s: %d of %d samples", key, int((value == 1).sum()), len(value))
    return found


def _early_errors(cache: dict, crossfit: np.ndarray, split: str) -> np.ndarray:
    """The early checkpoint's errors; an imported classifier has none, so its cross-fitted errors stand in (said)."""
    if "early_logits" in cache:
        return (cache["early_logits"].argmax(axis=1) != cache["y"]).astype(np.int8)
    logger.warning("%s: no early checkpoint (an imported classifier): the 'early' error set is the cross-fitted one", split)
    return crossfit


def _role_data(role: ScoringRole, embeddings_train: dict, embeddings_val: dict, validation_split: dict,
               error_sets: dict):
    """Embeddings, labels and error-set membership (1 / 0 / -1) of one scoring role's rows."""
    rows = {"val_ide": validation_split["ide"], "val_sel": validation_split["sel"],
            "val_all": np.arange(len(embeddings_val["y"])), "train": slice(None)}[role.rows]
    cache = embeddings_train if role.split == "train" else embeddings_val
    in_set = error_sets[f"{role.split}_{role.errors}"][rows]
    embeddings = cache["embeddings"][rows]
    if role.relu:  # signed features (mean-pooled text): score what the head sees as activation
        embeddings = np.maximum(embeddings, 0.0)
    return embeddings, cache["y"][rows], in_set


def scoring_roles(variants: dict) -> list[ScoringRole]:
    """Every scoring role the registered (complete) variants read, the paper's three first."""
    return list(dict.fromkeys([*PAPER_ROLES.values(), *(role for v in variants.values() for role in variant_roles(v))]))


def score_identification_neurons(embeddings_train: dict, embeddings_val: dict, validation_split: dict,
                                 error_sets: dict, variants: dict, scoring: dict) -> dict[str, np.ndarray]:
    """``δ`` (C, M) with per-class wrong/right counts for every scoring role the registered variants read
    (the paper's three always).

    Keys ``<role>_scores``, ``<role>_n_wrong``, ``<role>_n_right``; regulation reads these, it never re-scores.
    """
    n_classes = embeddings_val["logits"].shape[1]
    scored = {}
    for role in scoring_roles(variants):
        embeddings, y, in_set = _role_data(role, embeddings_train, embeddings_val, validation_split, error_sets)
        scores = score_error_sets(embeddings, y, in_set == 1, in_set == 0, n_classes, statistic=role.statistic,
                                  n_bootstrap=scoring["n_bootstrap"], confidence=scoring["confidence"], seed=scoring["seed"])
        scored.update(score_table_entries(role, scores))
    return scored


def estimate_chance_discoveries(embeddings_train: dict, embeddings_val: dict, validation_split: dict,
                                error_sets: dict, variants: dict, scoring: dict) -> dict[str, float]:
    """Per scoring role, how many neurons pass λ = ``scoring.chance_threshold`` (rule any) when the error labels
    are permuted within class: a false-discovery estimate for the identification summary (a diagnostic that no
    method's fit reads, so it is not part of any method's cost)."""
    n_classes = embeddings_val["logits"].shape[1]
    chance = {}
    for role in scoring_roles(variants):
        embeddings, y, in_set = _role_data(role, embeddings_train, embeddings_val, validation_split, error_sets)
        chance[str(role)] = permutation_discoveries(
            embeddings, y, in_set == 1, in_set == 0, n_classes, threshold=scoring["chance_threshold"], rule="any",
            statistic=role.statistic, n_permutations=scoring["n_permutations"], seed=scoring["seed"])
    return chance


def select_default_mask(neuron_scores: dict, chance_discoveries: dict, selection: dict) -> tuple[dict, dict]:
    """The mask at the default ``λ`` and rule on the identification half, and a summary (SFit, counts, the
    false-discovery estimate of every scoring role) for tracking."""
    scores = scores_of(neuron_scores, "ide")
    mask = select_biased_neurons(scores.scores, selection["threshold"], selection["rule"])
    summary = {
        "threshold": selection["threshold"],
        "rule": selection["rule"],
        "n_neurons": int(scores.scores.shape[1]),
        "n_selected": int(mask.any(axis=0).sum() if mask.ndim == 2 else mask.sum()),
        "sfit": spuriousness_fit(scores.scores),
        "n_wrong_per_class": scores.n_wrong.tolist(),
        "n_right_per_class": scores.n_right.tolist(),
        # per scoring role: error-set sizes per class, and neurons passing λ = scoring.chance_threshold
        # (rule any) with the error labels permuted within class, a false-discovery estimate
        "roles": {role: {"n_wrong_per_class": neuron_scores[f"{role}_n_wrong"].tolist(),
                         "n_right_per_class": neuron_scores[f"{role}_n_right"].tolist(),
                         "chance_discoveries": float(chance)}
                  for role, chance in chance_discoveries.items()},
    }
    logger.info("selected %d of %d neurons (SFit %.3f)", summary["n_selected"], summary["n_neurons"], summary["sfit"])
    return {"mask": mask}, summary


def plot_neuron_scores(neuron_scores: dict, selection: dict):
    """Histogram of ``δ`` (identification half) per class with the threshold ``λ`` marked."""
    scores = scores_of(neuron_scores, "ide").scores
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
    """Numeric summary values as MLflow metrics (with each scoring role's chance discoveries)."""
    metrics = {key: {"value": float(identification_summary[key]), "step": 0} for key in ("n_selected", "sfit")}
    for role, summary in identification_summary.get("roles", {}).items():
        metrics[f"{role}.chance_discoveries"] = {"value": summary["chance_discoveries"], "step": 0}
    return metrics
