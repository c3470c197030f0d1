"""erm_training: a backbone + linear head trained by plain ERM (class labels only), or the user's classifier."""

from kedro.pipeline import Pipeline, node

from .nodes import provide_erm_model


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline(
        [
            node(
                provide_erm_model,
                ["raw_inputs", "class_labels", "params:erm_training", "params:data_versioning"],
                ["erm_model", "erm_training_history", "erm_early_model"],
                name="train_erm_model",
            )
        ]
    )
