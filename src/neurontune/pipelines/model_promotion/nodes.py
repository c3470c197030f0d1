"""Package the debiased model, decide on its promotion, enforce the gate. No MLflow here:
registration and the alias moves happen in the catalog's registry datasets."""

from __future__ import annotations

import logging

import numpy as np

from neurontune.core.choice import HELD_OUT_PREDICTION
from neurontune.core.metrics import measured_or_nan
from neurontune.methods import REFERENCE, method_entries, not_fitted_reason
from neurontune.parameters import AUTO_METHOD
from neurontune.models.imported import IMPORTED, example_inputs, source_name, source_summary
from neurontune.models.predictor import checkpoint_digest
from neurontune.tracking.promotion import (
    AUTO,
    CHOICE_REASON_TAG,
    CHOICE_TAG_PREFIX,
    METRIC_LABELS,
    REFUSED,
    Candidate,
    PromotionRefused,
    decide_promotion,
    resolve_gate_metric,
    validate_gate,
)

logger = logging.getLogger(__name__)

def package_debiased_model(
    erm_model: dict, raw_inputs: dict[str, np.ndarray], metrics: dict, dataset_manifest: dict, benchmark: str,
    packaging: dict, gate: dict, harm_guard: dict | None = None, method_choice: dict | None = None, **heads: dict,
) -> dict:
    """Everything the registered model needs: backbone checkpoint, the chosen method's head, an input
    example, its evaluation numbers and lineage digests. The gate settings are checked here, before
    saving this output registers anything.

    When the do-no-harm guard (``harm_guard``, label-free) fired for the method, the model keeps ERM's
    head and ERM's numbers, and says so in its version tags (``guard.*``). An imported classifier is registered
    under ``{source}`` (its name) when the configured name uses it, and its lineage is in the version's tags
    (``source_model.*``: URI, version, weights digest). With ``packaging.method: auto`` the method is the one
    ``method_choice`` chose without group labels, and the version says so (``choice.*`` tags).
    """
    method, choice_tags = _configured_method(packaging["method"], method_choice)
    if f"{method}_head" not in heads or method not in metrics:
        raise ValueError(f"model_promotion.packaging.method must be an evaluated method "
                         f"{sorted(method_entries(metrics))}; got {method!r}.")
    unfitted = not_fitted_reason(metrics[method].get(gate.get("split")))
    if unfitted:
        raise ValueError(f"model_promotion.packaging.method is {method!r}, which was not fitted ({unfitted}); package a "
                         f"method that was, e.g. one with labels_used none.")
    validate_gate(gate, metrics[method])
    resolve_gate_metric(gate.get("metric", AUTO), metrics[method][gate["split"]], gate["split"])
    shipped, guard_tags = _guarded_head(method, harm_guard)
    if erm_model.get("data_digest") not in (None, dataset_manifest["class_label_digest"]):
        logger.warning("the ERM checkpoint was trained on data %s, but evaluation used %s",
                       erm_model["data_digest"][:12], dataset_manifest["class_label_digest"][:12])
    imported = erm_model["config"].get("architecture") == IMPORTED
    source = source_name(erm_model["config"]) if imported else benchmark
    return {
        "registered_model_name": packaging["registered_model_name"].format(benchmark=benchmark, source=source),
        "benchmark": benchmark,
        "method": method,
        "checkpoint": erm_model,
        "head": {key: value for key, value in heads[f"{shipped}_head"].items() if key != HELD_OUT_PREDICTION},
        "input_example": example_inputs(erm_model, raw_inputs["inputs"][: packaging["input_example_size"]]),
        "evaluation": metrics[shipped],
        "version_tags": {**choice_tags, **guard_tags, **(source_summary(erm_model["config"]) if imported else {})},
        "data_digest": dataset_manifest["digest"],
        "erm_checkpoint_digest": checkpoint_digest(erm_model),
        "requirements": packaging["requirements"],
        "serving": packaging["serving"],
        "dry_run": bool(gate.get("dry_run", False)),  # the registry dataset then registers nothing
    }


def _configured_method(configured: str, method_choice: dict | None) -> tuple[str, dict]:
    """The method to package and its ``choice.*`` version tags (empty unless ``packaging.method`` is ``auto``)."""
    if configured != AUTO_METHOD:
        return configured, {}
    if method_choice is None:
        raise ValueError("model_promotion.packaging.method is 'auto' but no method_choice was given; run the harm_guard "
                         "pipeline first (it chooses the method without group labels).")
    candidates = ", ".join(row["method"] for row in method_choice["candidates"])
    logger.info("packaging.method auto: %s", method_choice["reason"])
    return method_choice["chosen"], {CHOICE_TAG_PREFIX + "method": method_choice["chosen"],
                                     CHOICE_REASON_TAG: method_choice["reason"],
                                     CHOICE_TAG_PREFIX + "rule": method_choice["rule"],
                                     CHOICE_TAG_PREFIX + "candidates": candidates}


def _guarded_head(method: str, harm_guard: dict | None) -> tuple[str, dict]:
    """The method whose head ships (the method, or ERM when the guard fired) and the ``guard.*`` version tags."""
    if harm_guard is None or method == REFERENCE:
        return method, {}
    if method not in harm_guard["methods"]:
        raise ValueError(f"harm_guard has no decision for {method!r}; run the harm_guard pipeline first.")
    decision = harm_guard["methods"][method]
    if decision["fired"]:
        logger.warning("registering %s with ERM's head: %s", method, decision["reason"])
    return decision["kept_head"], {"guard.fired": str(decision["fired"]).lower(), "guard.kept_head": decision["kept_head"],
                                   "guard.reason": decision["reason"], "guard.margin": str(harm_guard["settings"]["margin"])}


def decide_on_challenger(debiased_model: dict, gate: dict, metrics: dict) -> dict:
    """Compare the challenger with the champion on ``gate["split"]`` — with ERM's own numbers when there is
    no champion yet — in the gate metric (``gate["metric"]``; ``auto``: worst-group accuracy where the split has
    group labels, else worst-class accuracy); return the decision, naming that metric, with both versions and
    whether the challenger was reused."""
    split = gate["split"]
    if split not in metrics.get("erm", {}):
        raise ValueError(f"the gate compares with ERM, but metrics has no erm.{split} (evaluated: {sorted(metrics)}).")
    erm = metrics["erm"][split]
    metric = resolve_gate_metric(gate.get("metric", AUTO), erm, split)
    decision = decide_promotion(
        _candidate(debiased_model["challenger"], split, metric),
        None if debiased_model["champion"] is None else _candidate(debiased_model["champion"], split, metric),
        min_delta=gate["min_delta"],
        max_mean_acc_drop=gate["max_mean_acc_drop"],
        require_same_data=gate["require_same_data"],
        erm=Candidate(version=0, score=measured_or_nan(erm.get(metric)), mean_accuracy=measured_or_nan(erm.get("mean_accuracy"))),
        metric=metric,
    )
    version = debiased_model["challenger"]["version"]
    registration = (f"reused v{version}: same content digest as that earlier version, nothing registered"
                    if debiased_model.get("reused") else f"registered v{version}")
    if debiased_model.get("dry_run"):
        registration = f"dry run: would have {registration.replace('nothing registered', 'nothing to register')}"
    logger.info("promotion gate on %s by %s: %s — %s (%s)", split, METRIC_LABELS[metric], decision.status, decision.reason,
                registration)
    return {"registered_model_name": debiased_model["registered_model_name"], "split": split,
            "registration": registration, **decision.to_dict(), "dry_run": bool(debiased_model.get("dry_run")),
            "method": debiased_model["challenger"].get("tags", {}).get("method")}


def enforce_promotion_gate(promotion_decision: dict, fail_on_refusal: bool) -> None:
    """Fail the run when the challenger was refused and ``fail_on_refusal`` is set (CI/CD gating)."""
    if promotion_decision["status"] == REFUSED and fail_on_refusal:
        raise PromotionRefused(
            f"{promotion_decision['registered_model_name']} v{promotion_decision['challenger_version']} was refused "
            f"promotion: {promotion_decision['reason']}."
            + (" (dry run: nothing was registered and no alias moved)" if promotion_decision.get("dry_run") else "")
        )


def _candidate(record: dict, split: str, metric: str) -> Candidate:
    numbers = record["metrics"].get(split, {})
    return Candidate(
        version=int(record["version"]),
        score=measured_or_nan(numbers.get(metric)),
        mean_accuracy=measured_or_nan(numbers.get("mean_accuracy")),
        data_digest=record.get("data_digest"),
    )
