"""Project pipelines: each stage by name, and ``__default__`` = the whole DAG in order."""

from __future__ import annotations

import warnings

from kedro.pipeline import Pipeline

from neurontune.methods import load_registry

from neurontune.pipelines import (
    baselines,
    data_versioning,
    embedding_caching,
    erm_training,
    evaluation,
    harm_guard,
    mask_evidence,
    model_promotion,
    neuron_identification,
    neurontune_regulation,
)

#: The DAG, in execution order (Kedro orders by data dependencies; this order documents it).
STAGES = {
    "data_versioning": data_versioning,
    "erm_training": erm_training,
    "embedding_caching": embedding_caching,
    "neuron_identification": neuron_identification,
    "neurontune_regulation": neurontune_regulation,
    "baselines": baselines,
    "harm_guard": harm_guard,
    "mask_evidence": mask_evidence,
    "evaluation": evaluation,
    "model_promotion": model_promotion,
}


def register_pipelines() -> dict[str, Pipeline]:
    methods = load_registry()
    with warnings.catch_warnings():
        # evaluation and promotion read the namespaced heads (`baselines.dfr_head`) by their full names
        warnings.filterwarnings("ignore", message="One or more dataset names contain")
        pipelines = {name: module.create_pipeline(methods=methods) for name, module in STAGES.items()}
    pipelines["__default__"] = Pipeline(list(pipelines.values()))
    return pipelines
