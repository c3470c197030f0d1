"""evaluation: per-group metrics of every method's head on every split."""

from kedro.pipeline import Pipeline, node

from .nodes import compute_group_metrics, declare_labels_used, flatten_metrics, plot_group_accuracies, predict_with_heads

#: Methods whose heads evaluation scores, in report order.
EVALUATED_METHODS = (
    "erm", "class_balanced_retrain", "neurontune", "neurontune_dagger",
    "dfr", "dfr_groupfree", "jtt_last_layer", "afr", "group_balanced_oracle",
)


def create_pipeline(methods=EVALUATED_METHODS, **kwargs) -> Pipeline:
    heads = {method: f"{method}_head" for method in methods}
    return Pipeline(
        [
            node(predict_with_heads,
                 {"embeddings_train": "embeddings_train", "embeddings_val": "embeddings_val",
                  "embeddings_test": "embeddings_test", **heads},
                 "method_predictions", name="predict_with_heads"),
            node(compute_group_metrics, ["method_predictions", "raw_metadata", "params:evaluation.overlapping_attributes"],
                 "metrics", name="compute_group_metrics"),
            node(flatten_metrics, "metrics", "evaluation_metrics", name="flatten_metrics"),
            node(declare_labels_used, "metrics", "method_labels_used", name="declare_labels_used"),
            node(plot_group_accuracies, ["metrics", "params:evaluation.chart_split"], "group_accuracy_chart",
                 name="plot_group_accuracies"),
        ]
    )
