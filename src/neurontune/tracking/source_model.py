"""The user's own classifier (``erm_training.source``) resolved and loaded: MLflow model URIs through the
registry, the rest from local files through :mod:`neurontune.models.imported`.

The MLflow side (resolving ``models:/NAME@ALIAS``, ``models:/NAME/VERSION`` or ``runs:/RUN_ID/PATH`` to a
version and a local copy) lives here, in the tracking layer; loading and splitting the network is the
library's (no MLflow there).
"""

from __future__ import annotations

import re
import tempfile
from pathlib import Path

import numpy as np

from neurontune.models.imported import (
    SourceModelError,
    build_imported,
    check_class_names,
    load_huggingface_dir,
    load_mlflow_pytorch_dir,
    load_timm,
    load_torchvision,
    parse_source,
    precomputed_classifier,
)

_MODELS_URI = re.compile(r"^models:/(?P<name>[^/@]+)(?:@(?P<alias>[^/]+)|/(?P<version>\d+))$")
_RUNS_URI = re.compile(r"^runs:/(?P<run_id>[^/]+)/(?P<path>.+)$")


def describe_mlflow_source(uri: str, client=None) -> dict:
    """``{uri, name, version, run_id, model_id}`` of an MLflow model URI (version = the registry's, or None)."""
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    client = client or MlflowClient()
    models, runs = _MODELS_URI.match(uri), _RUNS_URI.match(uri)
    if runs:
        return {"uri": uri, "name": f"run-{runs['run_id'][:8]}", "version": None, "run_id": runs["run_id"], "model_id": None}
    if not models:
        raise SourceModelError(f"erm_training.source {uri!r} is not an MLflow model URI; expected models:/NAME@ALIAS, "
                               "models:/NAME/VERSION or runs:/RUN_ID/PATH.")
    try:
        version = (client.get_model_version_by_alias(models["name"], models["alias"]) if models["alias"]
                   else client.get_model_version(models["name"], models["version"]))
    except MlflowException as error:
        raise SourceModelError(f"erm_training.source {uri!r} does not resolve in the registry at "
                               f"{_tracking_uri()}: {error.message}; is MLFLOW_TRACKING_URI the store it was "
                               "registered in?") from error
    return {"uri": uri, "name": models["name"], "version": str(version.version), "run_id": version.run_id,
            "model_id": getattr(version, "model_id", None)}


def _tracking_uri() -> str:
    import mlflow

    return mlflow.get_tracking_uri()


def load_source_model(source: str, imported: dict, n_classes: int, class_names: list[str] | None = None,
                      raw_inputs: dict | None = None, input_kind: str = "image"):
    """The :class:`~neurontune.models.imported.ImportedClassifier` of ``erm_training.source``.

    Parameters
    ----------
    source : str
        ``erm_training.source`` (not ``train``).
    imported : dict
        ``erm_training.imported``: ``weights`` (a state_dict file), ``head`` (an attribute path or None) and
        ``preprocessing``.
    n_classes, class_names
        The data's classes; the model's outputs must be these, in this order.
    raw_inputs : dict
        ``precomputed`` reads the head (``head_weight``, ``head_bias``) stored with the embeddings.
    input_kind : str
        ``image`` or ``text`` for MLflow, torchvision and timm sources (transformers are text).
    """
    kind, reference = parse_source(source)
    common = {"n_classes": n_classes, "head": imported.get("head"), "preprocessing": imported.get("preprocessing")}
    if kind == "precomputed":
        if not raw_inputs or "head_weight" not in raw_inputs:
            raise SourceModelError("erm_training.source is 'precomputed' but the data hold no head: use a custom "
                                   "dataset with modality 'embeddings' (head_weight and head_bias beside the features).")
        model = precomputed_classifier(raw_inputs["head_weight"], raw_inputs["head_bias"], name="precomputed",
                                       source={"uri": "precomputed", "name": "precomputed", "version": None})
        if model.config["n_classes"] != n_classes:
            raise SourceModelError(f"the precomputed head has {model.config['n_classes']} outputs but the data declare "
                                   f"{n_classes} classes.")
        return model
    if kind == "mlflow":
        return _from_mlflow(reference, common, class_names, input_kind)
    if kind in ("torchvision", "timm"):
        loader = load_torchvision if kind == "torchvision" else load_timm
        model = loader(reference, imported.get("weights"), n_classes)
        return build_imported(model, loader=kind, name=source, input_kind=input_kind,
                              source={"uri": source, "name": reference, "version": None,
                                      "weights_file": str(imported.get("weights"))}, **common)
    if kind == "huggingface":
        model, tokenizer, files, names = load_huggingface_dir(reference)
        if class_names:
            check_class_names(class_names, names, source)
        return build_imported(model, loader=kind, name=source, input_kind="text", tokenizer=tokenizer, files=files,
                              source={"uri": source, "name": Path(reference).name, "version": None}, **common)
    raise SourceModelError(f"erm_training.source {source!r} names no model to import.")


def _from_mlflow(uri: str, common: dict, class_names: list[str] | None, input_kind: str):
    import mlflow

    info = describe_mlflow_source(uri)
    with tempfile.TemporaryDirectory() as folder:
        try:
            local = mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=folder)
        except Exception as error:  # noqa: BLE001 — any failure to fetch the files: name the URI
            raise SourceModelError(f"cannot download {uri} from {_tracking_uri()}: {type(error).__name__}: {error}") from error
        model, serialization, files = load_mlflow_pytorch_dir(local)
        names = _declared_classes(Path(local))
    if class_names and names is not None:
        check_class_names(class_names, names, uri)
    return build_imported(model, loader="mlflow", name=uri, input_kind=input_kind, files=files,
                          source={**info, "serialization": serialization}, **common)


def _declared_classes(path: Path) -> list[str] | None:
    """Class names the logged model declares in its metadata (``classes``), if any."""
    import yaml

    metadata = (yaml.safe_load((path / "MLmodel").read_text()) or {}).get("metadata") or {}
    classes = metadata.get("classes")
    return None if classes is None else [str(name) for name in np.atleast_1d(classes)]
