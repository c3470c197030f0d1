"""Model registry operations: register the debiased model, read versions by alias, apply decisions,
and keep the audit trail of every alias move.

MLflow 3 aliases (``challenger``, ``champion``), not stages. Every version carries
the numbers it was evaluated with as tags (``eval.<split>.<metric>``), so the gate
compares versions from the registry alone, across runs and machines; its content digest
(``model_digest``), so an unchanged model is not registered twice; and the list of alias moves
that pointed at it (``audit.alias_moves``: who, when, from which run and commit, and why).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
from datetime import datetime, timezone
from pathlib import Path

import mlflow
import numpy as np
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

import neurontune
from neurontune.tracking.audit import record_move
from neurontune.tracking.connection import acting_user, permitted
from neurontune.tracking.promotion import ALREADY_CHAMPION, CHOICE_REASON_TAG

logger = logging.getLogger(__name__)

EVAL_TAG_PREFIX = "eval."
DECISION_TAG_PREFIX = "promotion."
MODEL_DIGEST_TAG = "model_digest"
AUDIT_TAG = "audit.alias_moves"
#: Per-split metrics recorded on every version (per-group accuracies stay in the run's metrics).
RECORDED_METRICS = ("worst_group_accuracy", "mean_accuracy", "mean_accuracy_train_weighted",
                    "worst_class_accuracy", "n_masked")
#: MLflow caps a model version tag value at 5,000 characters; the oldest audit entries go first.
_MAX_TAG = 5000


def model_content_digest(bundle: dict) -> str:
    """SHA-256 of what a registered version serves and was judged on: the ERM checkpoint, the head,
    the method, the serving config and requirements, the data it was evaluated on, and the packaged code."""
    digest = hashlib.sha256()
    fields = {key: bundle[key] for key in ("method", "erm_checkpoint_digest", "data_digest", "benchmark")}
    fields.update(serving=dict(bundle.get("serving") or {}), requirements=list(bundle["requirements"]))
    digest.update(json.dumps(fields, sort_keys=True, default=str).encode())
    for key in sorted(bundle["head"]):
        array = np.ascontiguousarray(bundle["head"][key])
        digest.update(f"{key}|{array.dtype.str}|{array.shape}".encode())
        digest.update(array.tobytes())
    package = Path(neurontune.__file__).parent
    for path in sorted(package.rglob("*.py")):
        digest.update(str(path.relative_to(package)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def register_debiased_model(bundle: dict, *, alias: str, artifact_name: str = "debiased_model") -> dict:
    """Log ``bundle`` (from the packaging node) into the active run, register it, point ``alias`` at it.

    When any version has the same content digest nothing is logged or registered: that
    version is reused (and ``alias`` pointed at it). Returns the record
    ``{registered_model_name, version, model_uri, model_id, run_id, model_digest, reused}``.
    """
    name = bundle["registered_model_name"]
    client = MlflowClient()
    uri = mlflow.get_tracking_uri()
    digest = model_content_digest(bundle)
    latest = identical_version(client, name, digest)
    if latest is not None:
        version = str(latest.version)
        logger.info("%s v%s has the same content digest %s…: reusing it, nothing registered", name, version, digest[:12])
        move_alias(client, name, alias, version, decision="reused", reason=f"same content digest {digest[:12]}…")
        return {"registered_model_name": name, "version": version, "model_uri": f"models:/{name}/{version}",
                "logged_model_uri": latest.source, "model_id": getattr(latest, "model_id", None),
                "run_id": latest.run_id, "model_digest": digest, "reused": True}
    from neurontune.tracking.pyfunc_model import log_debiased_model  # torch + the pyfunc class: only when registering

    metadata = {key: bundle[key] for key in ("benchmark", "method", "data_digest", "erm_checkpoint_digest")}
    with permitted(f"register a version of {name}", uri):
        info = log_debiased_model(
            checkpoint=bundle["checkpoint"], head=bundle["head"], input_example=bundle["input_example"],
            name=artifact_name, registered_model_name=name, requirements=list(bundle["requirements"]),
            metadata=metadata, model_config=dict(bundle.get("serving") or {}),
        )
    version = str(info.registered_model_version)
    tags = {**metadata, MODEL_DIGEST_TAG: digest, "git_commit": _run_tag(client, info.run_id, "git_commit") or "unknown",
            **bundle.get("version_tags", {})}
    from neurontune.core.metrics import is_measured  # neurontune.core loads torch: only when registering

    for split, values in bundle["evaluation"].items():
        for metric in RECORDED_METRICS:
            if metric in values:  # a number, or the note saying why it was not measured (no group labels)
                tags[f"{EVAL_TAG_PREFIX}{split}.{metric}"] = (repr(float(values[metric])) if is_measured(values[metric])
                                                              else str(values[metric]))
    with permitted(f"tag version {version} of {name}", uri):
        for key, value in tags.items():
            client.set_model_version_tag(name, version, key, str(value))
        client.update_model_version(name, version, description=describe_version(
            bundle["method"], bundle["evaluation"], source=_source_of(tags), choice=tags.get(CHOICE_REASON_TAG)))
    move_alias(client, name, alias, version, decision="registered", reason="new version")
    logger.info("registered %s version %s (%s) and pointed @%s at it", name, version, info.model_uri, alias)
    return {"registered_model_name": name, "version": version, "model_uri": f"models:/{name}/{version}",
            "logged_model_uri": info.model_uri, "model_id": info.model_id, "run_id": info.run_id,
            "model_digest": digest, "reused": False}


def describe_version(method: str, evaluation: dict, decision: dict | None = None, source: str | None = None,
                     choice: str | None = None) -> str:
    """The version's description in the MLflow UI: the source model (when imported), method, worst-group accuracy per
    split (worst-class accuracy where WGA was not measurable), why ``packaging.method: auto`` chose the method, gate
    decision."""
    numbers = ", ".join(_describe_split(split, values) for split, values in sorted(evaluation.items())
                        if "worst_group_accuracy" in values)
    text = f"{method}: {numbers or 'no worst-group accuracy recorded'}."
    if source:
        text = f"{source} debiased by {text}"
    if choice:
        text += f" Chosen without group labels (packaging.method auto): {choice}."
    if decision is not None:
        text += f" Gate ({decision.get('split', '?')}): {decision['status']} — {decision['reason']}."
    return text


def _describe_split(split: str, values: dict) -> str:
    from neurontune.core.metrics import is_measured

    wga, worst_class = values["worst_group_accuracy"], values.get("worst_class_accuracy")
    if is_measured(wga):
        return f"{split} WGA {wga:.3f}"
    return f"{split} WGA {wga}" + (f", worst-class {worst_class:.3f}" if is_measured(worst_class) else "")


def version_record(client: MlflowClient, name: str, version: str | int) -> dict:
    """A model version as plain data: ids, tags, aliases and the evaluation numbers parsed from its tags."""
    model_version = client.get_model_version(name, str(version))
    tags = dict(model_version.tags)
    metrics: dict[str, dict[str, float]] = {}
    for key, value in tags.items():
        if key.startswith(EVAL_TAG_PREFIX):
            split, metric = key[len(EVAL_TAG_PREFIX):].split(".", 1)
            metrics.setdefault(split, {})[metric] = _tag_value(value)
    return {
        "registered_model_name": name,
        "version": str(model_version.version),
        "run_id": model_version.run_id,
        "model_id": getattr(model_version, "model_id", None),
        "source": model_version.source,
        "aliases": sorted(model_version.aliases),
        "created_at_ms": model_version.creation_timestamp,
        "description": model_version.description,
        "tags": tags,
        "metrics": metrics,
        "data_digest": tags.get("data_digest"),
    }


def _tag_value(value: str) -> float | str:
    """An ``eval.*`` tag: its number, or the note recorded instead of one (``not measurable: no group labels``)."""
    try:
        return float(value)
    except ValueError:
        return value


def alias_version(client: MlflowClient, name: str, alias: str) -> str | None:
    """The version ``alias`` points at, or None when the alias (or the model) does not exist."""
    try:
        return str(client.get_model_version_by_alias(name, alias).version)
    except MlflowException as error:
        if error.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE", "NOT_FOUND"):
            return None
        raise


def identical_version(client: MlflowClient, name: str, digest: str):
    """The newest version of ``name`` whose content digest is ``digest`` — any earlier one, not only the latest
    (packaging A, then B, then A again reuses A's version); None when there is none."""
    same = [version for version in versions_of(client, name) if version.tags.get(MODEL_DIGEST_TAG) == digest]
    return max(same, key=lambda version: int(version.version), default=None)


def versions_of(client: MlflowClient, name: str) -> list:
    """Every version of ``name`` (empty when the model does not exist)."""
    try:
        return list(client.search_model_versions(f"name = '{name}'"))
    except MlflowException as error:
        if error.error_code in ("RESOURCE_DOES_NOT_EXIST", "NOT_FOUND"):
            return []
        raise


def move_alias(client: MlflowClient, name: str, alias: str, version: str, *, decision: str, reason: str) -> None:
    """Point ``alias`` at ``version`` and append the move to that version's audit trail.

    The move is made first: when the server refuses it, nothing was changed. Pointing an alias
    where it already points is not a move and is not recorded.
    """
    uri = mlflow.get_tracking_uri()
    previous = alias_version(client, name, alias)
    if previous == str(version):
        return
    with permitted(f"move @{alias} of {name}", uri):
        client.set_registered_model_alias(name, alias, version)
        run = mlflow.active_run()
        entry = {
            "alias": alias, "version": str(version), "from_version": previous, "by": acting_user(uri),
            "at": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "run_id": None if run is None else run.info.run_id,
            "git_commit": None if run is None else _run_tag(client, run.info.run_id, "git_commit"),
            "decision": decision, "reason": reason[:240],
        }
        record_move(client, {"model": name, **entry})  # the record: where a model's MANAGE cannot edit it
        trail = _audit_entries(client.get_model_version(name, version).tags) + [entry]  # a copy for the UI
        while len(json.dumps(trail)) > _MAX_TAG and len(trail) > 1:
            trail.pop(0)
        client.set_model_version_tag(name, version, AUDIT_TAG, json.dumps(trail))


def apply_decision(decision: dict, *, champion_alias: str = "champion") -> None:
    """Record ``decision`` on the challenger version and the active run; move ``champion_alias`` if promoted.

    Refuses to apply (raises) when the champion moved since the decision was taken,
    so two concurrent runs cannot overwrite each other's promotion. A version that already
    is the champion keeps the tags of the decision that promoted it.
    """
    client = MlflowClient()
    uri = mlflow.get_tracking_uri()
    name, challenger = decision["registered_model_name"], str(decision["challenger_version"])
    current = alias_version(client, name, champion_alias)
    decided_against = None if decision["champion_version"] is None else str(decision["champion_version"])
    if current != decided_against:
        raise RuntimeError(
            f"@{champion_alias} of {name} moved from v{decided_against} to v{current} while this run decided; "
            "rerun the model_promotion pipeline to decide against the new champion."
        )
    tags = decision_tags(decision)
    if decision["promote"]:
        move_alias(client, name, champion_alias, challenger, decision=decision["status"], reason=decision["reason"])
        logger.info("promoted %s v%s to @%s: %s", name, challenger, champion_alias, decision["reason"])
    else:
        logger.warning("%s v%s not promoted (%s): %s", name, challenger, decision["status"], decision["reason"])
    if decision["status"] != ALREADY_CHAMPION:
        version = version_record(client, name, challenger)
        description = describe_version(version["tags"].get("method", "?"), version["metrics"], decision,
                                       source=_source_of(version["tags"]), choice=version["tags"].get(CHOICE_REASON_TAG))
        with permitted(f"record the gate's decision on version {challenger} of {name}", uri):
            for key, value in tags.items():
                client.set_model_version_tag(name, challenger, key, value)
            client.update_model_version(name, challenger, description=description)
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


def _source_of(tags: dict) -> str | None:
    """``NAME vVERSION (URI)`` of an imported source model, from its ``source_model.*`` tags; None when trained here."""
    if "source_model.uri" not in tags:
        return None
    version = tags.get("source_model.version")
    return f"{tags.get('source_model.name', '?')}{f' v{version}' if version else ''} ({tags['source_model.uri']})"


def _audit_entries(tags: dict) -> list[dict]:
    try:
        return list(json.loads(tags.get(AUDIT_TAG, "[]")))
    except ValueError:
        return []


def _run_tag(client: MlflowClient, run_id: str | None, key: str) -> str | None:
    return None if run_id is None else client.get_run(run_id).data.tags.get(key)
