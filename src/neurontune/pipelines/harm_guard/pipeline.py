"""harm_guard: label-free decisions on the selection half — the do-no-harm guard over every method of the registry, and
which method ``packaging.method: auto`` ships."""

from kedro.pipeline import Pipeline, node

from neurontune.methods import load_registry

from .nodes import choose_method_to_ship, guard_against_harm


def create_pipeline(methods=None, **kwargs) -> Pipeline:
    methods = methods or load_registry()
    candidates = {name: method.candidates_dataset for name, method in methods.items() if method.kind != "reference"}
    # only the label-free methods are candidates to ship by default; group labels never reach the choice
    label_free = {name: method.head_dataset for name, method in methods.items()
                  if method.kind != "reference" and method.labels_used == "none"}
    return Pipeline([
        node(guard_against_harm, {"embeddings_val": "embeddings_val", "validation_split": "validation_split",
                                  "erm_head": "erm_head", "error_sets": "error_sets",
                                  "variants": "params:neurontune_regulation.variants", "guard": "params:harm_guard",
                                  **candidates},
             "harm_guard", name="guard_against_harm"),
        node(choose_method_to_ship, {"embeddings_val": "embeddings_val", "validation_split": "validation_split",
                                     "error_sets": "error_sets", "settings": "params:model_promotion.packaging.auto",
                                     **label_free},
             "method_choice", name="choose_method_to_ship"),
    ])
