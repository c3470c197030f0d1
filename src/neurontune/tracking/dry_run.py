"""The promotion gate as a rehearsal (``model_promotion.gate.dry_run: true``): read the registry, change nothing.

A pull or merge request's CI job runs the whole pipeline and the same gate, against the same
``@champion``, but nothing is logged as a model, no version is registered and no alias moves:
:func:`preview_registration` says which version the model *would* become (the next number, or the
latest version when its content digest is the same), with the numbers the gate compares, and
:func:`record_preview` writes the decision to the run only (``promotion/decision.json`` and the
``promotion.*`` run tags, never on a model version).
"""

from __future__ import annotations

import logging

import mlflow
from mlflow.tracking import MlflowClient

from neurontune.core.metrics import is_measured
from neurontune.tracking.registry import (
    RECORDED_METRICS,
    decision_tags,
    identical_version,
    model_content_digest,
    versions_of,
)

logger = logging.getLogger(__name__)


def preview_registration(bundle: dict) -> dict:
    """What :func:`~neurontune.tracking.registry.register_debiased_model` would record for ``bundle``, without
    registering: ``{registered_model_name, version, model_digest, reused, dry_run: True, challenger}``, where
    ``challenger`` has the shape of :func:`~neurontune.tracking.registry.version_record` (its ``metrics`` are the
    bundle's evaluation numbers, as the version's ``eval.*`` tags would carry them)."""
    name = bundle["registered_model_name"]
    digest = model_content_digest(bundle)
    client = MlflowClient()
    same = identical_version(client, name, digest)  # registration reuses any earlier identical version
    reused = same is not None
    version = str(same.version) if reused else str(1 + max((int(v.version) for v in versions_of(client, name)), default=0))
    metrics = {split: {metric: float(values[metric]) if is_measured(values[metric]) else str(values[metric])
                       for metric in RECORDED_METRICS if metric in values}
               for split, values in bundle["evaluation"].items()}
    logger.info("dry run: %s would %s v%s; nothing registered", name, "reuse" if reused else "register", version)
    return {"registered_model_name": name, "version": version, "model_digest": digest, "reused": reused,
            "dry_run": True,
            "challenger": {"registered_model_name": name, "version": version, "metrics": metrics,
                           "data_digest": bundle["data_digest"], "tags": {"method": bundle["method"]}}}


def record_preview(decision: dict) -> None:
    """Log the gate's would-be decision to the active run (never to a model version); move nothing."""
    verb = {"promoted": "would promote", "refused": "would refuse"}.get(decision["status"], decision["status"])
    logger.info("dry run: the gate %s %s v%s: %s (no alias moved)", verb, decision["registered_model_name"],
                decision["challenger_version"], decision["reason"])
    if mlflow.active_run() is not None:
        mlflow.set_tags(decision_tags(decision))
        mlflow.log_dict(decision, "promotion/decision.json")
