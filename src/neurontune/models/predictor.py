"""The debiased classifier as one predictor: raw inputs → frozen backbone → suppressed, retrained head.

It chains the functions the pipelines score with — :func:`embed_and_predict`
(embedding_caching) and :func:`head_logits` (evaluation) — so a served model
and the evaluation report cannot drift apart. No MLflow here: the pyfunc
wrapper lives in :mod:`neurontune.tracking.pyfunc_model`.
"""

from __future__ import annotations


import numpy as np
import torch
from torch import nn

from neurontune.core.head import LinearHead, head_logits
from neurontune.models.backbones import model_from_checkpoint
from neurontune.models.batching import embed_and_predict
from neurontune.models.weights import checkpoint_digest  # noqa: F401  (the model promotion digests it)

TEXT = "text"
TENSOR = "tensor"


def describe_inputs(example) -> dict:
    """The input contract of a backbone, inferred from a batch of its raw inputs.

    Returns ``{"kind": "tensor", "dtype": "uint8", "shape": [3, 28, 28]}`` for
    arrays (per-sample shape, batch axis excluded) or ``{"kind": "text"}`` for a
    1-d batch of strings.
    """
    example = np.asarray(example)
    if example.ndim == 0 or example.shape[0] == 0:
        raise ValueError(f"the input example must be a non-empty batch; got shape {example.shape}.")
    if _is_text(example):
        if example.ndim != 1:
            raise ValueError(f"a text input example must be a 1-d batch of strings; got shape {example.shape}.")
        return {"kind": TEXT}
    if example.dtype.kind not in "biuf":
        raise TypeError(f"the input example must hold numbers or strings; got dtype {example.dtype}.")
    return {"kind": TENSOR, "dtype": example.dtype.name, "shape": list(example.shape[1:])}


def check_raw_batch(raw, input_spec: dict) -> np.ndarray:
    """Validate one request batch against ``input_spec``; return it as the array ``preprocess`` expects.

    Raises ``ValueError`` for an empty batch or a wrong per-sample shape and
    ``TypeError`` for a wrong dtype, each naming what was expected.
    """
    raw = np.asarray(raw)
    if raw.ndim == 0 or raw.shape[0] == 0:
        expected = "strings" if input_spec["kind"] == TEXT else f"{input_spec['dtype']} arrays of shape {tuple(input_spec['shape'])}"
        raise ValueError(f"empty batch: send at least one input ({expected}); got shape {raw.shape}.")
    if input_spec["kind"] == TEXT:
        if raw.ndim != 1 or not _is_text(raw):
            raise TypeError(f"this model takes a 1-d batch of strings; got {raw.dtype} of shape {raw.shape}.")
        return raw.astype(str)
    expected_dtype = np.dtype(input_spec["dtype"])
    if raw.dtype != expected_dtype:
        raise TypeError(
            f"inputs must have dtype {expected_dtype} (raw values, e.g. 0-255 pixels, not normalised floats); "
            f"got {raw.dtype}."
        )
    if list(raw.shape[1:]) != list(input_spec["shape"]):
        raise ValueError(
            f"each input must have shape {tuple(input_spec['shape'])} (batch shape (B, "
            f"{', '.join(map(str, input_spec['shape']))})); got a batch of shape {raw.shape}."
        )
    return raw


class DebiasedClassifier:
    """Backbone ``e`` (frozen ERM) and a :class:`LinearHead` with its suppression mask.

    Parameters
    ----------
    backbone : nn.Module
        A model from :mod:`neurontune.models.backbones` (``preprocess``, ``embed``, ``head``).
    head : LinearHead
        The retrained head, weight shape (C, M) with M = the backbone's embedding size.
    input_spec : dict
        From :func:`describe_inputs`.
    batch_size : int
    device : torch.device or str
    """

    def __init__(self, backbone: nn.Module, head: LinearHead, input_spec: dict, *, batch_size: int = 256,
                 device: torch.device | str = "cpu"):
        n_neurons = backbone.head.in_features
        if head.weight.shape[1] != n_neurons:
            raise ValueError(f"head has {head.weight.shape[1]} inputs but the backbone embeds into {n_neurons} neurons.")
        if input_spec.get("kind") not in (TEXT, TENSOR):
            raise ValueError(f"input_spec['kind'] must be {TEXT!r} or {TENSOR!r}; got {input_spec.get('kind')!r}.")
        self.device = torch.device(device)
        self.backbone = backbone.to(self.device).eval()
        self.head = head
        self.input_spec = input_spec
        self.batch_size = int(batch_size)

    @classmethod
    def from_artifacts(cls, checkpoint: dict, head_arrays: dict, input_spec: dict, **kwargs) -> "DebiasedClassifier":
        """Rebuild from the ERM checkpoint and a ``{weight, bias, keep[, mask]}`` head as the pipelines store them."""
        head = LinearHead.from_arrays(head_arrays["weight"], head_arrays["bias"], head_arrays.get("keep"))
        return cls(model_from_checkpoint(checkpoint), head, input_spec, **kwargs)

    @property
    def n_classes(self) -> int:
        return self.head.n_classes

    def logits(self, raw) -> np.ndarray:
        """Head logits, shape (N, C), for a batch of N raw inputs."""
        raw = check_raw_batch(raw, self.input_spec)
        embeddings, _ = embed_and_predict(self.backbone, raw, self.batch_size, self.device)
        return head_logits(embeddings, self.head)

    def predict(self, raw) -> dict[str, np.ndarray]:
        """``{"prediction": (N,) class ids, "probabilities": (N, C) softmax}``; prediction = evaluation's argmax."""
        logits = self.logits(raw)
        shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
        return {"prediction": logits.argmax(axis=1), "probabilities": shifted / shifted.sum(axis=1, keepdims=True)}


def _is_text(values: np.ndarray) -> bool:
    if values.dtype.kind in "US":
        return True
    return values.dtype == object and all(isinstance(value, str) for value in values.ravel())
