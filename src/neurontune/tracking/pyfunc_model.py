"""The registered model: :class:`~neurontune.models.predictor.DebiasedClassifier` as an MLflow pyfunc.

Artifacts: the ERM checkpoint, the head npz ``{weight, bias, keep, mask}`` and
the input contract. The ``neurontune`` package travels with the model as
``code_paths``, so a server needs only the pinned dependencies, and runs the
code of the commit that was evaluated.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import torch
from mlflow.exceptions import MlflowException
from mlflow.models import ModelSignature
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE
from mlflow.types import ColSpec, Schema, TensorSpec

import neurontune
from neurontune.models.devices import resolve_device
from neurontune.models.predictor import TEXT, DebiasedClassifier, describe_inputs

TEXT_COLUMN = "text"
ARTIFACT_FILES = {"checkpoint": "erm_model.pt", "head": "head.npz", "input_spec": "input_spec.json"}


class DebiasedPyfuncModel(mlflow.pyfunc.PythonModel):
    """Raw inputs → a table with ``prediction`` and ``probability_<k>`` per class.

    Input: a uint8 array (B, C, H, W) for image backbones; a ``text`` column (or a
    list of strings) for text backbones. ``model_config`` may set ``device``
    (default ``cpu``) and ``batch_size`` (default 256).
    """

    def load_context(self, context) -> None:
        checkpoint = torch.load(context.artifacts["checkpoint"], map_location="cpu", weights_only=True)
        with np.load(context.artifacts["head"], allow_pickle=False) as arrays:
            head = {key: arrays[key] for key in arrays.files}
        input_spec = json.loads(Path(context.artifacts["input_spec"]).read_text())
        config = context.model_config or {}
        self._classifier = DebiasedClassifier.from_artifacts(
            checkpoint, head, input_spec,
            batch_size=int(config.get("batch_size", 256)), device=resolve_device(config.get("device", "cpu")),
        )

    def predict(self, context, model_input, params=None) -> pd.DataFrame:
        try:
            output = self._classifier.predict(_raw_batch(model_input, self._classifier.input_spec))
        except (ValueError, TypeError) as error:  # a bad request, not a server fault
            raise MlflowException(f"bad request: {error}", error_code=INVALID_PARAMETER_VALUE) from error
        return predictions_frame(output["prediction"], output["probabilities"])


def predictions_frame(prediction: np.ndarray, probabilities: np.ndarray) -> pd.DataFrame:
    frame = pd.DataFrame({"prediction": prediction.astype(np.int64)})
    for label in range(probabilities.shape[1]):
        frame[f"probability_{label}"] = probabilities[:, label].astype(np.float64)
    return frame


def model_signature(input_spec: dict, n_classes: int) -> ModelSignature:
    """Input: a tensor spec (dtype, (-1, *shape)) or a ``text`` string column; output: prediction + probabilities."""
    if input_spec["kind"] == TEXT:
        inputs = Schema([ColSpec("string", TEXT_COLUMN)])
    else:
        inputs = Schema([TensorSpec(np.dtype(input_spec["dtype"]), (-1, *input_spec["shape"]))])
    outputs = Schema([ColSpec("long", "prediction")] + [ColSpec("double", f"probability_{k}") for k in range(n_classes)])
    return ModelSignature(inputs=inputs, outputs=outputs)


def pinned_requirements(packages: list[str]) -> list[str]:
    """``name==installed_version`` for each package (the serving environment's pins)."""
    pins = []
    for package in packages:
        try:
            pins.append(f"{package}=={version(package)}")
        except PackageNotFoundError as error:
            raise ValueError(f"requirement {package!r} is not installed here, so its version cannot be pinned.") from error
    return pins


def log_debiased_model(
    *,
    checkpoint: dict,
    head: dict,
    input_example: np.ndarray,
    name: str,
    registered_model_name: str | None,
    requirements: list[str],
    metadata: dict,
    model_config: dict | None = None,
):
    """Log the debiased model into the active MLflow run (and register it when a name is given).

    Returns MLflow's ``ModelInfo`` (``registered_model_version``, ``model_uri``, ``model_id``, ``run_id``).
    """
    input_spec = describe_inputs(input_example)
    example = pd.DataFrame({TEXT_COLUMN: np.asarray(input_example).astype(str)}) if input_spec["kind"] == TEXT else input_example
    n_classes = np.asarray(head["weight"]).shape[0]
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        torch.save(checkpoint, scratch / ARTIFACT_FILES["checkpoint"])
        with open(scratch / ARTIFACT_FILES["head"], "wb") as handle:
            np.savez(handle, **head)
        (scratch / ARTIFACT_FILES["input_spec"]).write_text(json.dumps(input_spec))
        package = scratch / "code" / "neurontune"
        shutil.copytree(Path(neurontune.__file__).parent, package, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        return mlflow.pyfunc.log_model(
            name=name,
            python_model=DebiasedPyfuncModel(),
            artifacts={key: str(scratch / filename) for key, filename in ARTIFACT_FILES.items()},
            code_paths=[str(package)],
            signature=model_signature(input_spec, n_classes),
            input_example=example,
            pip_requirements=pinned_requirements(requirements),
            metadata={**metadata, "input_spec": input_spec},
            model_config=model_config,
            registered_model_name=registered_model_name,
        )


def _raw_batch(model_input, input_spec: dict):
    """What MLflow hands ``predict`` (array, DataFrame, dict, list) → the raw batch."""
    text = input_spec["kind"] == TEXT
    if isinstance(model_input, pd.DataFrame):
        if not text or TEXT_COLUMN not in model_input.columns:
            expected = f"a {TEXT_COLUMN!r} column" if text else "one array under 'inputs'"
            raise ValueError(f"unexpected table with columns {list(model_input.columns)}; send {expected}.")
        return model_input[TEXT_COLUMN].to_numpy()
    if isinstance(model_input, dict):
        if len(model_input) != 1 or (text and TEXT_COLUMN not in model_input):
            raise ValueError(f"unexpected named inputs {list(model_input)}; send one batch.")
        return next(iter(model_input.values()))
    return model_input
