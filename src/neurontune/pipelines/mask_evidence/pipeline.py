"""mask_evidence: evidence galleries of what each masking NeuronTune variant switched off (class labels only)."""

from functools import partial, update_wrapper

from kedro.pipeline import Pipeline, node

from neurontune.methods import load_registry

from .nodes import collect_mask_evidence, draw_mask_gallery

SHARED_INPUTS = {"embeddings_val", "class_labels", "raw_inputs", "neuron_scores"}


def create_pipeline(methods=None, **kwargs) -> Pipeline:
    """Nodes ``collect_evidence_<variant>`` and ``draw_gallery_<variant>`` for every variant with ``use_mask``."""
    variants = [m for m in (methods or load_registry()).values() if m.kind == "neurontune" and m.uses_mask]
    nodes = []
    for method in variants:
        draw = update_wrapper(partial(draw_mask_gallery, method=method.name), draw_mask_gallery)
        nodes += [
            node(collect_mask_evidence, {**{name: name for name in sorted(SHARED_INPUTS)}, "head": method.head_dataset,
                                         "variant": f"params:neurontune_regulation.variants.{method.name}",
                                         "settings": "params:gallery"},
                 f"{method.name}_evidence", name=f"collect_evidence_{method.name}"),
            node(draw, {"mask_evidence": f"{method.name}_evidence", "raw_inputs": "raw_inputs",
                        "class_labels": "class_labels"},
                 [f"{method.name}_gallery", f"{method.name}_gallery_notes"], name=f"draw_gallery_{method.name}"),
        ]
    heads = {method.head_dataset for method in variants}
    variant_parameters = {f"params:neurontune_regulation.variants.{method.name}" for method in variants}
    return Pipeline(nodes, namespace="mask_evidence", inputs=SHARED_INPUTS | heads if nodes else None,
                    parameters=variant_parameters or None)
