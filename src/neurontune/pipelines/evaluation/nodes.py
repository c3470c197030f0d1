"""Evaluation: the only stage that reads group labels — and reports without them.

A split has group labels when every one of its rows has a known group (:func:`neurontune.core.groups.has_group_labels`).
Where it has none, worst-group accuracy, the validity card and mask precision / recall hold
``not measurable: no group labels`` instead of a number; the class-level and pseudo-group numbers are always there.
"""

from __future__ import annotations

import logging

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from neurontune.core import LinearHead, head_predict, overlapping_group_report  # noqa: E402
from neurontune.core.groups import has_group_labels  # noqa: E402
from neurontune.core.metrics import (  # noqa: E402
    HARM_METRICS,
    LABEL_FREE_HARM_METRIC,
    NOT_MEASURABLE,
    change_against_reference,
    check_measurable,
    extreme_auroc,
    is_measured,
    mask_hits,
    not_measurable,
    split_report,
    validity_card,
    validity_warning,
    within_stratum_auroc,
)
from neurontune.methods import ERROR_SET_QUALITY, HARM, MASK_QUALITY, METHOD_CHOICE, NOT_FITTED, REFERENCE, VALIDITY, method_entries, not_fitted_reason  # noqa: E402
from neurontune.data.tables import (  # noqa: E402
    CLASS_LABEL_COLUMNS,
    SPLITS,
    split_groups,
    splits_with_groups,
    validate_metadata,
)

logger = logging.getLogger(__name__)


def predict_with_heads(embeddings_train: dict, embeddings_val: dict, embeddings_test: dict, **heads: dict) -> pd.DataFrame:
    """Predictions of every method's head on every split: method, split, sample_id, y_pred, n_masked."""
    caches = dict(zip(SPLITS, (embeddings_train, embeddings_val, embeddings_test)))
    frames = []
    for method, arrays in heads.items():
        if not_fitted_reason(arrays):
            continue
        head = LinearHead.from_arrays(arrays["weight"], arrays["bias"], arrays["keep"])
        for split, cache in caches.items():
            frames.append(pd.DataFrame({
                "method": method, "split": split, "sample_id": cache["sample_id"],
                "y_pred": head_predict(cache["embeddings"], head), "n_masked": head.n_suppressed,
            }))
    return pd.concat(frames, ignore_index=True)


def list_unfitted_heads(**heads: dict) -> dict[str, str]:
    """``{method: why}`` for every head that was not fitted (a labelled baseline without validation group labels)."""
    return {method: not_fitted_reason(arrays) for method, arrays in heads.items() if not_fitted_reason(arrays)}


def compute_group_metrics(method_predictions: pd.DataFrame, raw_metadata: pd.DataFrame, dataset_manifest: dict,
                          overlapping_attributes: list[str] = (), unfitted_heads: dict | None = None) -> dict:
    """``{method: {split: {metric: value}}}``: per-class, worst-class and mean accuracy and the label-free
    pseudo-group accuracies (class × ERM wrong) everywhere; per-group accuracy, WGA and the train-weighted mean
    where the split has group labels (else ``not measurable: no group labels``). A method in ``unfitted_heads``
    gets ``{split: {"not_fitted": why}}``.

    ``overlapping_attributes`` names 0/1 metadata columns (CivilComments' identities) whose
    (attribute, class) groups overlap; each adds ``accuracy_<column>_y<k>`` and
    ``worst_overlapping_group_accuracy``.
    """
    missing = [column for column in overlapping_attributes if column not in raw_metadata.columns]
    if missing:
        raise ValueError(f"evaluation.overlapping_attributes names {missing}, which raw_metadata lacks; "
                         f"its columns are {list(raw_metadata.columns)}.")
    n_classes = int(dataset_manifest["n_classes"])
    validate_metadata(raw_metadata, n_classes, columns=CLASS_LABEL_COLUMNS, source="raw_metadata")
    labelled = splits_with_groups(raw_metadata)
    n_groups = _n_groups(raw_metadata, dataset_manifest) if any(labelled.values()) else None
    proportions = (np.bincount(split_groups(raw_metadata, "train"), minlength=n_groups)
                   / int((raw_metadata["split"] == "train").sum())) if labelled["train"] else None
    columns = ["sample_id", "y", *(["group"] if "group" in raw_metadata.columns else []), *overlapping_attributes]
    absent = {split: check_measurable(rows["y"].to_numpy(),
                                      rows["group"].to_numpy() if labelled.get(split) else np.zeros(len(rows), int),
                                      n_classes, n_groups if labelled.get(split) else 1, f"raw_metadata's {split} split",
                                      require_groups=bool(labelled.get(split)) and split != "train")
              for split, rows in raw_metadata.groupby("split", sort=False)}  # before any method is scored
    if absent.get("train"):  # a fully correlated training split is a benchmark's point; say what its WGA omits
        logger.warning("train split: group(s) %s have no sample; its worst_group_accuracy covers the others "
                       "(recorded as not_measured_groups)", absent["train"])
    joined = method_predictions.merge(raw_metadata[columns], on="sample_id", how="left", validate="m:1")
    if joined["y"].isna().any():
        raise ValueError("method_predictions has sample ids that raw_metadata does not know; rerun the pipeline.")
    reference_wrong = _reference_errors(joined)
    metrics: dict = {}
    for (method, split), rows in joined.groupby(["method", "split"], sort=False):
        y_true, y_pred = rows["y"].to_numpy(), rows["y_pred"].to_numpy()
        report = split_report(y_true, y_pred, n_classes, groups=rows["group"].to_numpy() if labelled[split] else None,
                              n_groups=n_groups, train_group_proportions=proportions,
                              reference_wrong=None if reference_wrong is None else rows["sample_id"].map(reference_wrong).to_numpy(bool))
        if overlapping_attributes:
            members = {column: rows[column].to_numpy() == 1 for column in overlapping_attributes}
            report.update(overlapping_group_report(y_true, y_pred, members, n_classes))
        metrics.setdefault(method, {})[split] = {**report, "n_masked": int(rows["n_masked"].iloc[0]),
                                                 **({"not_measured_groups": absent[split]} if absent.get(split) else {})}
    for method, reason in (unfitted_heads or {}).items():
        metrics[method] = {split: {NOT_FITTED: reason} for split in SPLITS}
    _log_summary(metrics, labelled)
    return metrics


def _n_groups(raw_metadata: pd.DataFrame, dataset_manifest: dict) -> int:
    """The number of group ids: the manifest's, or one more than the largest known id when it has none."""
    return max(int(dataset_manifest.get("n_groups") or 0), int(raw_metadata["group"].max()) + 1)


def _reference_errors(joined: pd.DataFrame) -> pd.Series | None:
    """Whether ERM's prediction of each sample is wrong (by sample id): the error set behind the pseudo-groups."""
    erm = joined[joined["method"] == REFERENCE]
    if erm.empty:
        return None
    return pd.Series((erm["y_pred"] != erm["y"]).to_numpy(), index=erm["sample_id"].to_numpy())


def _log_summary(metrics: dict, labelled: dict) -> None:
    if not labelled.get("test"):
        logger.info("worst-group accuracy on test: %s (the test split has no group labels)", NOT_MEASURABLE)
    for method, splits in metrics.items():
        test = splits.get("test", {})
        if not_fitted_reason(test):
            logger.info("%-24s not fitted: %s", method, not_fitted_reason(test))
        elif test:
            logger.info("%-24s test WGA %s  mean acc %.3f  worst-class %.3f", method, format_metric(test["worst_group_accuracy"]),
                        test["mean_accuracy"], test["worst_class_accuracy"])


def format_metric(value, digits: int = 3) -> str:
    """A measured number with ``digits`` decimals, or the note that says why it was not measured."""
    return f"{value:.{digits}f}" if is_measured(value) else str(value)


def flatten_metrics(metrics: dict) -> dict:
    """``method.split.metric`` (and every report section's nested keys, dot-joined) → ``{"value", "step"}``
    for MLflow; flags become 0/1."""
    flat = {}

    def walk(prefix: str, value) -> None:
        if isinstance(value, dict):
            for key, item in value.items():
                walk(f"{prefix}.{key}" if prefix else str(key), item)
        elif isinstance(value, (bool, int, float, np.number)):
            flat[prefix] = {"value": float(value), "step": 0}

    walk("", metrics)
    return flat


def add_validity_card(method_metrics: dict, validity: dict) -> dict:
    """The metrics report: every method's metrics and, under ``validity``, the benchmark validity card per split."""
    oracle = validity["oracle"]
    if oracle not in method_metrics or REFERENCE not in method_metrics:
        raise ValueError(f"evaluation.validity.oracle must name an evaluated method (and {REFERENCE!r} must be "
                         f"evaluated); got {oracle!r}, evaluated {list(method_metrics)}.")
    thresholds = {key: validity[key] for key in ("min_oracle_worst_group_accuracy", "min_headroom")}
    cards = {split: validity_card(method_metrics[REFERENCE][split], _oracle_report(oracle, method_metrics[oracle][split]),
                                  **thresholds)
             for split in method_metrics[REFERENCE]}
    for split, card in cards.items():
        warning = validity_warning(card, **thresholds)
        if warning and split == "test":
            logger.warning("benchmark validity (%s): %s", split, warning)
        elif not is_measured(card["separates_methods"]) and split == "test":
            logger.info("benchmark validity (%s): %s", split, card["separates_methods"])
    return {**method_metrics, VALIDITY: cards}


def _oracle_report(oracle: str, report: dict) -> dict:
    """The oracle's report for the card; an oracle that was not fitted has no worst-group accuracy, and says why."""
    reason = not_fitted_reason(report)
    return {"worst_group_accuracy": not_measurable(f"{oracle} not fitted ({reason})")} if reason else report


def declare_labels_used(metrics: dict, labels_used: dict) -> dict:
    """``{method: none | val_groups | train_groups}`` for every scored method, from the method registry."""
    unknown = sorted(set(method_entries(metrics)) - set(labels_used))
    if unknown:
        raise ValueError(f"no labels-used declaration for {unknown}; declare them in the method registry.")
    return {method: labels_used[method] for method in method_entries(metrics)}


def plot_group_accuracies(metrics: dict, split: str):
    """Grouped bars: accuracy of each group for each method on ``split``, worst group annotated. Without group
    labels on ``split``, the accuracy of each class, worst class annotated, and the title says WGA is not measurable;
    a method that was not fitted is named in the legend with why."""
    metrics = method_entries(metrics)
    unfitted = {m: not_fitted_reason(metrics[m].get(split)) for m in metrics if not_fitted_reason(metrics[m].get(split))}
    methods = [m for m in metrics if m not in unfitted]
    kind = "group" if any(is_measured(metrics[m][split].get("worst_group_accuracy")) for m in methods) else "class"
    groups = sorted({name for m in methods for name in metrics[m][split] if name.startswith(f"accuracy_{kind}_")},
                    key=lambda name: int(name.rsplit("_", 1)[1]))
    # about a quarter inch per bar, capped so nine methods x many groups stays readable
    figure, axis = plt.subplots(figsize=(min(16.0, 2.0 + 0.25 * len(groups) * len(methods)), 4.0))
    width = 0.8 / len(methods)
    for k, method in enumerate(methods):
        values = [metrics[method][split].get(group, np.nan) for group in groups]
        positions = np.arange(len(groups)) + (k - (len(methods) - 1) / 2) * width
        worst = metrics[method][split][f"worst_{kind}_accuracy"]
        axis.bar(positions, values, width, label=f"{method} ({'WGA' if kind == 'group' else 'worst class'} {worst:.2f})")
    for method, reason in unfitted.items():
        axis.bar([], [], facecolor="none", edgecolor="grey", label=f"{method}: not fitted ({reason})")
    axis.set_xticks(np.arange(len(groups)), [f"{kind} {g.rsplit('_', 1)[1]}" for g in groups])
    title = (f"Per-group accuracy on {split}" if kind == "group" else
             f"Per-class accuracy on {split}\n(worst-group accuracy {NOT_MEASURABLE})")
    axis.set(ylim=(0, 1.05), ylabel="accuracy", title=title)
    axis.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    figure.tight_layout()
    return figure


def assess_mask_quality(embeddings_train: dict, embeddings_val: dict, embeddings_test: dict, raw_metadata: pd.DataFrame,
                        settings: dict, **heads: dict) -> tuple[dict, pd.DataFrame]:
    """Does each mask hit the shortcut? Per neuron, on ``settings["split"]``: the within-class AUROC of its
    activation for the attribute and the within-attribute AUROC for the class; per masking method, mask
    precision / recall for the attribute-coding neurons (AUROC beyond ``settings["auroc_threshold"]``)
    beside the expected values of a random mask of the same size, and the share of masked core neurons."""
    cache = dict(zip(SPLITS, (embeddings_train, embeddings_val, embeddings_test)))[settings["split"]]
    if not (splits_with_groups(raw_metadata)[settings["split"]] and "a" in raw_metadata.columns):
        return _unmeasured_mask_quality(cache["embeddings"].shape[1], settings, heads)
    labels = _attribute_labels(cache["sample_id"], raw_metadata)
    aurocs = pd.DataFrame({
        "neuron": np.arange(cache["embeddings"].shape[1]),
        "attribute_auroc": within_stratum_auroc(cache["embeddings"], labels["a"], labels["y"]),
        "core_auroc": within_stratum_auroc(cache["embeddings"], labels["y"], labels["a"]),
    })
    threshold = settings["auroc_threshold"]
    aurocs["attribute_neuron"] = extreme_auroc(aurocs["attribute_auroc"], threshold)
    aurocs["core_neuron"] = extreme_auroc(aurocs["core_auroc"], threshold)
    quality = {}
    for method, head in heads.items():
        aurocs[f"masked_{method}"] = masked = LinearHead.from_arrays(head["weight"], head["bias"], head["keep"]).suppressed
        quality[method] = _mask_quality(masked, aurocs, threshold)
        logger.info("%s masks %d neurons: attribute precision %.2f (random %.2f), recall %.2f (random %.2f)", method,
                    quality[method]["n_masked"], quality[method]["precision"], quality[method]["random_precision"],
                    quality[method]["recall"], quality[method]["random_recall"])
    return quality, aurocs


def _unmeasured_mask_quality(n_neurons: int, settings: dict, heads: dict) -> tuple[dict, pd.DataFrame]:
    """Mask quality where ``settings["split"]`` has no group (attribute) labels: each mask's size, and
    ``not measurable: no group labels`` in place of every number that needs the attribute."""
    logger.info("mask precision / recall on %s: %s", settings["split"], NOT_MEASURABLE)
    aurocs = pd.DataFrame({"neuron": np.arange(n_neurons)})
    quality = {}
    for method, head in heads.items():
        aurocs[f"masked_{method}"] = masked = LinearHead.from_arrays(head["weight"], head["bias"], head["keep"]).suppressed
        unmeasured = dict.fromkeys(("precision", "recall", "random_precision", "random_recall", "n_attribute_neurons",
                                    "core_share", "random_core_share", "n_core_neurons"), NOT_MEASURABLE)
        quality[method] = {**unmeasured, "n_masked": int(masked.sum()), "n_neurons": n_neurons,
                           "auroc_threshold": float(settings["auroc_threshold"])}
    return quality, aurocs


def _attribute_labels(sample_ids: np.ndarray, raw_metadata: pd.DataFrame) -> pd.DataFrame:
    table = raw_metadata.set_index("sample_id")
    if not np.isin(sample_ids, table.index).all():
        raise ValueError("the embedding cache has sample ids that raw_metadata does not know; rerun the pipeline.")
    return table.loc[sample_ids, ["y", "a"]].reset_index(drop=True)


def _mask_quality(masked: np.ndarray, aurocs: pd.DataFrame, threshold: float) -> dict:
    attribute = mask_hits(masked, aurocs["attribute_neuron"].to_numpy())
    core = mask_hits(masked, aurocs["core_neuron"].to_numpy())
    return {**{key: attribute[key] for key in ("precision", "recall", "random_precision", "random_recall", "n_masked")},
            "n_attribute_neurons": attribute["n_relevant"], "core_share": core["precision"],
            "random_core_share": core["random_precision"], "n_core_neurons": core["n_relevant"],
            "n_neurons": attribute["n_neurons"], "auroc_threshold": float(threshold)}


def assess_harm(method_metrics: dict, harm_guard: dict, settings: dict) -> dict:
    """Every method against ERM: ``delta_<metric>`` per split (labelled), the label-free selection-half
    comparison and guard decision from ``harm_guard``, and ``worse_than_erm``: WGA on ``settings["split"]``
    below ERM's by more than ``settings["tolerance"]`` — or, where that split has no group labels, worst-class
    accuracy (the label-free criterion); ``worse_than_erm_by`` names which. A method that was not fitted gets
    ``{"not_fitted": why}``."""
    missing = sorted(set(method_metrics) - {REFERENCE} - set(harm_guard["methods"]))
    if missing:
        raise ValueError(f"harm_guard has no decision for {missing}; run the harm_guard pipeline before evaluation.")
    harm, split = {}, settings["split"]
    for method, splits in method_metrics.items():
        if method == REFERENCE:
            continue
        if not_fitted_reason(splits.get(split)):
            harm[method] = {NOT_FITTED: not_fitted_reason(splits[split])}
            continue
        guard = harm_guard["methods"][method]
        deltas = {name: change_against_reference(values, method_metrics[REFERENCE][name], (*HARM_METRICS, LABEL_FREE_HARM_METRIC))
                  for name, values in splits.items()}
        by = HARM_METRICS[0] if is_measured(deltas[split][f"delta_{HARM_METRICS[0]}"]) else LABEL_FREE_HARM_METRIC
        worse = deltas[split][f"delta_{by}"] < -settings["tolerance"]
        selection = {key.replace("sel_", "", 1): value for key, value in guard.items() if key.startswith("delta_sel_")}
        by_criterion = {f"guard_would_fire_by_{name}": fire for name, fire in guard.get("would_fire_by", {}).items()}
        harm[method] = {**deltas, "selection": {**selection, "guard_would_fire": guard["would_fire"],
                                                "guard_fired": guard["fired"], **by_criterion},
                        "worse_than_erm": bool(worse), "worse_than_erm_by": by}
        if worse:
            logger.warning("%s is worse than ERM on %s: %s %+.3f against ERM", method, split, by.replace("_", " "),
                           deltas[split][f"delta_{by}"])
    return harm


def assess_error_sets(error_sets: dict, embeddings_train: dict, embeddings_val: dict, raw_metadata: pd.DataFrame) -> dict:
    """How well each label-free error set finds the minority groups (evaluation only: it reads group labels).

    Minority groups = within each class, the groups smaller than that class's largest group in the training split.
    Per error set ``<split>_<source>``: ``size``, ``precision`` = share of its samples in a minority group,
    ``recall`` = share of that split's minority samples it holds, ``minority_share`` = the precision of a random
    set (the minority's share of the split). Without group labels: ``{"not_measurable": why}``.
    """
    if "group" not in raw_metadata.columns or not has_group_labels(raw_metadata["group"].to_numpy()):
        return {"not_measurable": NOT_MEASURABLE}
    table = raw_metadata.set_index("sample_id")
    train = table[table["split"] == "train"]
    counts = train.groupby(["y", "group"]).size()
    largest = counts.groupby(level="y").transform("max")
    minority_groups = {int(group) for (_, group), count in counts.items() if count < largest[(_, group)]}
    report = {}
    for split, cache in (("train", embeddings_train), ("val", embeddings_val)):
        groups = table.loc[cache["sample_id"], "group"].to_numpy()
        minority = np.isin(groups, list(minority_groups))
        for name, in_set in sorted(error_sets.items()):
            if not name.startswith(f"{split}_"):
                continue
            members = np.asarray(in_set) == 1
            report[name] = {"size": int(members.sum()),
                            "precision": float(minority[members].mean()) if members.any() else float("nan"),
                            "recall": float(members[minority].mean()) if minority.any() else float("nan"),
                            "minority_share": float(minority.mean())}
    return report


def add_report_sections(validity_report: dict, mask_quality: dict, harm: dict, method_choice: dict,
                        error_set_quality: dict) -> dict:
    """The metrics report: methods, the validity card, mask quality, the harm report, the label-free choice of the
    method to ship (``packaging.method: auto``; its candidates' selection-half scores also keyed by method, so
    MLflow records them as metrics) and how well each error set finds the minority groups, in that order."""
    scores = {row["method"]: {key: value for key, value in row.items() if key != "method"}
              for row in method_choice["candidates"]}
    return {**validity_report, MASK_QUALITY: mask_quality, HARM: harm,
            METHOD_CHOICE: {**method_choice, "scores": scores}, ERROR_SET_QUALITY: error_set_quality}
