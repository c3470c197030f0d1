"""embedding_caching: one pass of the frozen ERM model over every split; later stages read only this cache."""

from kedro.pipeline import Pipeline, node

from .nodes import cache_embeddings


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline(
        [
            node(
                cache_embeddings,
                ["raw_inputs", "class_labels", "erm_model", "erm_early_model", "params:embedding_caching",
                 "params:erm_training.distributed"],
                ["embeddings_train", "embeddings_val", "embeddings_test", "erm_head"],
                name="cache_embeddings",
            )
        ]
    )
