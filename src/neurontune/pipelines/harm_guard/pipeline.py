"""harm_guard: the label-free do-no-harm guard over every method of the registry (the cache and the candidate tables)."""

from kedro.pipeline import Pipeline, node

from neurontune.methods import load_registry

from .nodes import guard_against_harm


def create_pipeline(methods=None, **kwargs) -> Pipeline:
    candidates = {name: method.candidates_dataset for name, method in (methods or load_registry()).items()
                  if method.kind != "reference"}
    return Pipeline([
        node(guard_against_harm, {"embeddings_val": "embeddings_val", "validation_split": "validation_split",
                                  "erm_head": "erm_head", "error_sets": "error_sets",
                                  "variants": "params:neurontune_regulation.variants", "guard": "params:harm_guard",
                                  **candidates},
             "harm_guard", name="guard_against_harm"),
    ])
