"""baselines: the peers a user would pick instead of NeuronTune, one node per registry entry, one function.

Group labels (``raw_metadata``) are wired only into the baselines whose entry declares
``labels_used`` other than ``none``; every other node sees class labels through the cache alone.
"""

from functools import partial, update_wrapper

from kedro.pipeline import Pipeline, node

from neurontune.methods import load_registry

from .nodes import fit_baseline

SHARED_INPUTS = {"embeddings_train", "embeddings_val", "validation_split", "erm_head", "raw_metadata"}


def create_pipeline(methods=None, **kwargs) -> Pipeline:
    """Nodes ``fit_<baseline>`` writing ``baselines.<baseline>_head`` and ``…_candidates``."""
    baselines = [method for method in (methods or load_registry()).values() if method.kind == "baseline"]
    nodes = [_baseline_node(method) for method in baselines]
    used = set().union(*(node_.inputs for node_ in nodes)) if nodes else set()
    return Pipeline(nodes, namespace="baselines", inputs=SHARED_INPUTS & used)


def _baseline_node(method):
    inputs = {"method": f"params:methods.{method.name}", "settings": "params:settings",
              "embeddings_train": "embeddings_train", "embeddings_val": "embeddings_val",
              "validation_split": "validation_split", "erm_head": "erm_head"}
    if method.labels_used != "none":
        inputs["raw_metadata"] = "raw_metadata"
    func = update_wrapper(partial(fit_baseline, method.name), fit_baseline)
    return node(func, inputs, [f"{method.name}_head", f"{method.name}_candidates"], name=f"fit_{method.name}")
