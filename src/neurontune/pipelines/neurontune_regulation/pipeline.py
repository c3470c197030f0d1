"""neurontune_regulation: one node per NeuronTune variant of the method registry, one function."""

from kedro.pipeline import Pipeline, node

from neurontune.methods import load_registry

from .nodes import regulate_head

SHARED_INPUTS = {"embeddings_train", "embeddings_val", "validation_split", "erm_head", "neuron_scores", "error_sets"}


def create_pipeline(methods=None, **kwargs) -> Pipeline:
    """Nodes ``regulate_<variant>`` writing ``neurontune_regulation.<variant>_head`` and ``…_candidates``."""
    variants = [method for method in (methods or load_registry()).values() if method.kind == "neurontune"]
    nodes = [
        node(regulate_head,
             {**{name: name for name in sorted(SHARED_INPUTS)},
              "variant": f"params:variants.{method.name}", "tuning": "params:tuning"},
             [f"{method.name}_head", f"{method.name}_candidates"], name=f"regulate_{method.name}")
        for method in variants
    ]
    return Pipeline(nodes, namespace="neurontune_regulation", inputs=SHARED_INPUTS)
