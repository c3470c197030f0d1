"""evaluation: per-class, pseudo-group and (where the split has group labels) per-group metrics of every registered
method's head on every split, the validity card, whether each mask hits the shortcut, and the do-no-harm report."""

from functools import partial, update_wrapper

from kedro.pipeline import Pipeline, node

from neurontune.methods import load_registry

from .nodes import (
    add_report_sections,
    add_validity_card,
    assess_error_sets,
    assess_harm,
    assess_mask_quality,
    compute_group_metrics,
    declare_labels_used,
    flatten_metrics,
    list_unfitted_heads,
    plot_group_accuracies,
    predict_with_heads,
)


def create_pipeline(methods=None, **kwargs) -> Pipeline:
    methods = methods or load_registry()
    heads = {name: method.head_dataset for name, method in methods.items()}
    masked_heads = {name: method.head_dataset for name, method in methods.items() if method.uses_mask}
    caches = {f"embeddings_{split}": f"embeddings_{split}" for split in ("train", "val", "test")}
    labels_used = {name: method.labels_used for name, method in methods.items()}
    declare = update_wrapper(partial(declare_labels_used, labels_used=labels_used), declare_labels_used)
    return Pipeline(
        [
            node(predict_with_heads,
                 {"embeddings_train": "embeddings_train", "embeddings_val": "embeddings_val",
                  "embeddings_test": "embeddings_test", **heads},
                 "method_predictions", name="predict_with_heads"),
            node(list_unfitted_heads, heads, "unfitted_heads", name="list_unfitted_heads"),
            node(compute_group_metrics, ["method_predictions", "raw_metadata", "dataset_manifest",
                                         "params:evaluation.overlapping_attributes", "unfitted_heads"],
                 "method_metrics", name="compute_group_metrics"),
            node(add_validity_card, ["method_metrics", "params:evaluation.validity"], "validity_report",
                 name="add_validity_card"),
            node(assess_mask_quality, {**caches, "raw_metadata": "raw_metadata",
                                       "settings": "params:evaluation.mask_quality", **masked_heads},
                 ["mask_quality", "neuron_aurocs"], name="assess_mask_quality"),
            node(assess_harm, ["method_metrics", "harm_guard", "params:evaluation.harm"], "harm_report",
                 name="assess_harm"),
            node(assess_error_sets, ["error_sets", "embeddings_train", "embeddings_val", "raw_metadata"],
                 "error_set_quality", name="assess_error_sets"),
            node(add_report_sections, ["validity_report", "mask_quality", "harm_report", "method_choice",
                                       "error_set_quality"], "metrics",
                 name="add_report_sections"),
            node(flatten_metrics, "metrics", "evaluation_metrics", name="flatten_metrics"),
            node(declare, "metrics", "method_labels_used", name="declare_labels_used"),
            node(plot_group_accuracies, ["metrics", "params:evaluation.chart_split"], "group_accuracy_chart",
                 name="plot_group_accuracies"),
        ]
    )
