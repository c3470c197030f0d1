"""baselines: the peers a user would pick instead of NeuronTune, one node each, one function.

Group labels (``raw_metadata``) are wired only into the explicitly labelled baselines;
every other node sees class labels through the cached embeddings alone.
"""

from functools import partial, update_wrapper

from kedro.pipeline import Pipeline, node

from neurontune.core.baselines import LABELS_USED

from .nodes import fit_baseline

#: Baselines this pipeline fits, in report order.
BASELINES = ("dfr", "dfr_groupfree", "jtt_last_layer", "afr", "group_balanced_oracle")


def create_pipeline(methods=BASELINES, **kwargs) -> Pipeline:
    return Pipeline([_baseline_node(method) for method in methods])


def _baseline_node(method: str):
    inputs = {
        "embeddings_train": "embeddings_train",
        "embeddings_val": "embeddings_val",
        "validation_split": "validation_split",
        "erm_head": "erm_head",
        "options": f"params:baselines.methods.{method}",
        "settings": "params:baselines.settings",
    }
    if LABELS_USED[method] != "none":
        inputs["raw_metadata"] = "raw_metadata"
    func = update_wrapper(partial(fit_baseline, method), fit_baseline)
    return node(func, inputs, [f"{method}_head", f"{method}_candidates"], name=f"fit_{method}")
