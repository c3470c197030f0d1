"""model_promotion: package + register the debiased model (@challenger), gate it against @champion."""

from kedro.pipeline import Pipeline, node

from neurontune.pipelines.evaluation.pipeline import EVALUATED_METHODS

from .nodes import decide_on_challenger, enforce_promotion_gate, package_debiased_model


def create_pipeline(methods=EVALUATED_METHODS, **kwargs) -> Pipeline:
    heads = {f"{method}_head": f"{method}_head" for method in methods}
    return Pipeline(
        [
            node(package_debiased_model,
                 {"erm_model": "erm_model", "raw_inputs": "raw_inputs", "metrics": "metrics",
                  "dataset_manifest": "dataset_manifest", "benchmark": "params:data_versioning.name",
                  "packaging": "params:model_promotion.packaging", "gate": "params:model_promotion.gate", **heads},
                 "debiased_model", name="package_debiased_model"),
            node(decide_on_challenger, ["debiased_model", "params:model_promotion.gate", "metrics"], "promotion_decision",
                 name="decide_on_challenger"),
            node(enforce_promotion_gate, ["promotion_decision", "params:model_promotion.gate.fail_on_refusal"], None,
                 name="enforce_promotion_gate"),
        ]
    )
