"""model_promotion: package + register the debiased model (@challenger), gate it against @champion."""

from kedro.pipeline import Pipeline, node

from neurontune.methods import load_registry

from .nodes import decide_on_challenger, enforce_promotion_gate, package_debiased_model


def create_pipeline(methods=None, **kwargs) -> Pipeline:
    heads = {f"{name}_head": method.head_dataset for name, method in (methods or load_registry()).items()}
    return Pipeline(
        [
            node(package_debiased_model,
                 {"erm_model": "erm_model", "raw_inputs": "raw_inputs", "metrics": "metrics",
                  "dataset_manifest": "dataset_manifest", "benchmark": "params:data_versioning.name",
                  "packaging": "params:model_promotion.packaging", "gate": "params:model_promotion.gate", "harm_guard": "harm_guard",
                  "method_choice": "method_choice", **heads},
                 "debiased_model", name="package_debiased_model"),
            node(decide_on_challenger, ["debiased_model", "params:model_promotion.gate", "metrics"], "promotion_decision",
                 name="decide_on_challenger"),
            node(enforce_promotion_gate, ["promotion_decision", "params:model_promotion.gate.fail_on_refusal"], None,
                 name="enforce_promotion_gate"),
        ]
    )
