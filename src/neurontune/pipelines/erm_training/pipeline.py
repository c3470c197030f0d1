"""erm_training: a backbone + linear head trained by plain ERM (class labels only)."""

from kedro.pipeline import Pipeline, node

from .nodes import train_erm_model


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline(
        [
            node(
                train_erm_model,
                ["raw_inputs", "class_labels", "params:erm_training"],
                ["erm_model", "erm_training_history", "erm_early_model"],
                name="train_erm_model",
            )
        ]
    )
