"""neuron_identification: δ scores from the cached validation embeddings, using class labels only."""

from kedro.pipeline import Pipeline, node

from .nodes import (
    estimate_chance_discoveries,
    find_error_sets,
    plot_neuron_scores,
    score_identification_neurons,
    select_default_mask,
    split_validation,
    summarise_identification_metrics,
)


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline(
        [
            node(split_validation, ["embeddings_val", "params:neuron_identification.selection_split"],
                 "validation_split", name="split_validation"),
            node(find_error_sets, ["embeddings_train", "embeddings_val", "params:neuron_identification.error_sets",
                  "params:erm_training.mode"],
                 "error_sets", name="find_error_sets"),
            node(score_identification_neurons,
                 ["embeddings_train", "embeddings_val", "validation_split", "error_sets",
                  "params:neurontune_regulation.variants", "params:neuron_identification.scoring"],
                 "neuron_scores", name="score_identification_neurons"),
            node(estimate_chance_discoveries,
                 ["embeddings_train", "embeddings_val", "validation_split", "error_sets",
                  "params:neurontune_regulation.variants", "params:neuron_identification.scoring"],
                 "chance_discoveries", name="estimate_chance_discoveries"),
            node(select_default_mask, ["neuron_scores", "chance_discoveries", "params:neuron_identification.selection"],
                 ["biased_neuron_mask", "identification_summary"], name="select_default_mask"),
            node(plot_neuron_scores, ["neuron_scores", "params:neuron_identification.selection"],
                 "neuron_score_plot", name="plot_neuron_scores"),
            node(summarise_identification_metrics, "identification_summary", "identification_metrics",
                 name="summarise_identification_metrics"),
        ]
    )
