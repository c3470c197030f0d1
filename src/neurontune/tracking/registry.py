"""Model registry operations: register the debiased model, read versions by alias, apply decisions.

MLflow 3 aliases (``challenger``, ``champion``), not stages. Every version carries
the numbers it was evaluated with as tags (``eval.<split>.<metric>``), so the gate
compares versions from the registry alone, across runs and machines.
"""

from __future__ import annotations

import json
import logging
import math

import mlflow
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from neurontune.tracking.pyfunc_model import log_debiased_model

logger = logging.getLogger(__name__)

EVAL_TAG_PREFIX = "eval."
DECISION_TAG_PREFIX = "promotion."
#: Per-split metrics recorded on every version (per-group accuracies stay in the run's metrics).
RECORDED_METRICS = ("worst_group_accuracy", "mean_accuracy", "mean_accuracy_train_weighted",
                    "worst_class_accuracy", "n_masked")


def register_debiased_model(bundle: dict, *, alias: str, artifact_name: str = "debiased_model") -> dict:
    """Log ``bundle`` (from the packaging node) into the active run, register it, point ``alias`` at it.

    Returns the record ``{registered_model_name, version, model_uri, model_id, run_id}``.
    """
    name = bundle["registered_model_name"]
    metadata = {key: bundle[key] for key in ("benchmark", "method", "data_digest", "erm_checkpoint_digest")}
    info = log_debiased_model(
        checkpoint=bundle["checkpoint"], head=bundle["head"], input_example=bundle["input_example"],
        name=artifact_name, registered_model_name=name, requirements=list(bundle["requirements"]),
        metadata=metadata, model_config=dict(bundle.get("serving") or {}),
    )
    version = str(info.registered_model_version)
    client = MlflowClient()
    tags = {**metadata, "git_commit": _run_tag(client, info.run_id, "git_commit") or "unknown",
            **bundle.get("version_tags", {})}
    for split, values in bundle["evaluation"].items():
        for metric in RECORDED_METRICS:
            if metric in values:
                tags[f"{EVAL_TAG_PREFIX}{split}.{metric}"] = repr(float(values[metric]))
    for key, value in tags.items():
        client.set_model_version_tag(name, version, key, str(value))
    client.set_registered_model_alias(name, alias, version)
    logger.info("registered %s version %s (%s) and pointed @%s at it", name, version, info.model_uri, alias)
    return {"registered_model_name": name, "version": version, "model_uri": f"models:/{name}/{version}",
            "logged_model_uri": info.model_uri, "model_id": info.model_id, "run_id": info.run_id}


def version_record(client: MlflowClient, name: str, version: str | int) -> dict:
    """A model version as plain data: ids, tags, aliases and the evaluation numbers parsed from its tags."""
    model_version = client.get_model_version(name, str(version))
    tags = dict(model_version.tags)
    metrics: dict[str, dict[str, float]] = {}
    for key, value in tags.items():
        if key.startswith(EVAL_TAG_PREFIX):
            split, metric = key[len(EVAL_TAG_PREFIX):].split(".", 1)
            metrics.setdefault(split, {})[metric] = float(value)
    return {
        "registered_model_name": name,
        "version": str(model_version.version),
        "run_id": model_version.run_id,
        "model_id": getattr(model_version, "model_id", None),
        "source": model_version.source,
        "aliases": sorted(model_version.aliases),
        "created_at_ms": model_version.creation_timestamp,
        "tags": tags,
        "metrics": metrics,
        "data_digest": tags.get("data_digest"),
    }


def alias_version(client: MlflowClient, name: str, alias: str) -> str | None:
    """The version ``alias`` points at, or None when the alias (or the model) does not exist."""
    try:
        return str(client.get_model_version_by_alias(name, alias).version)
    except MlflowException as error:
        if error.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE", "NOT_FOUND"):
            return None
        raise


def apply_decision(decision: dict, *, champion_alias: str = "champion") -> None:
    """Record ``decision`` on the challenger version and the active run; move ``champion_alias`` if promoted.

    Refuses to apply (raises) when the champion moved since the decision was taken,
    so two concurrent runs cannot overwrite each other's promotion.
    """
    client = MlflowClient()
    name, challenger = decision["registered_model_name"], str(decision["challenger_version"])
    current = alias_version(client, name, champion_alias)
    decided_against = None if decision["champion_version"] is None else str(decision["champion_version"])
    if current != decided_against:
        raise RuntimeError(
            f"@{champion_alias} of {name} moved from v{decided_against} to v{current} while this run decided; "
            "rerun the model_promotion pipeline to decide against the new champion."
        )
    tags = decision_tags(decision)
    for key, value in tags.items():
        client.set_model_version_tag(name, challenger, key, value)
    if decision["promote"]:
        client.set_registered_model_alias(name, champion_alias, challenger)
        logger.info("promoted %s v%s to @%s: %s", name, challenger, champion_alias, decision["reason"])
    else:
        logger.warning("%s v%s not promoted (%s): %s", name, challenger, decision["status"], decision["reason"])
    if mlflow.active_run() is not None:
        mlflow.set_tags(tags)
        mlflow.log_dict(decision, "promotion/decision.json")


def decision_tags(decision: dict) -> dict[str, str]:
    """``promotion.<field>`` tags; numbers as repr, missing values as ``none``."""
    tags = {}
    for key, value in decision.items():
        if isinstance(value, float) and not math.isfinite(value):
            value = "nan"
        tags[DECISION_TAG_PREFIX + key] = "none" if value is None else (value if isinstance(value, str) else json.dumps(value))
    return tags


def _run_tag(client: MlflowClient, run_id: str | None, key: str) -> str | None:
    return None if run_id is None else client.get_run(run_id).data.tags.get(key)
