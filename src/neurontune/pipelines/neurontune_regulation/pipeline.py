"""neurontune_regulation: both published variants and the no-mask ablation, one node each, one function."""

from kedro.pipeline import Pipeline, node

from .nodes import regulate_head

#: method name → (its head dataset, its candidate table); the variants' settings are parameters.
VARIANTS = ("neurontune", "neurontune_dagger", "class_balanced_retrain")


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline(
        [
            node(
                regulate_head,
                [
                    "embeddings_train",
                    "embeddings_val",
                    "validation_split",
                    "erm_head",
                    f"params:neurontune_regulation.variants.{method}",
                    "params:neurontune_regulation.tuning",
                ],
                [f"{method}_head", f"{method}_candidates"],
                name=f"regulate_{method}",
            )
            for method in VARIANTS
        ]
    )
