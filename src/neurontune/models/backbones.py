"""Classifiers ``f = h ∘ e``: a backbone ``e`` producing non-negative embeddings and a linear head ``h``.

Every model here has ``embed(x) -> (B, M)``, ``head`` (``nn.Linear``), a
``preprocess(raw) -> tensor`` that turns a batch of raw inputs (uint8 images,
image paths or unicode texts) into model input, and a ``config`` dict from which :func:`build_model` rebuilds it.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch
from torch import nn


class SmallCNN(nn.Module):
    """Two conv blocks and a ReLU bottleneck, trained from scratch; embedding = bottleneck activations."""

    def __init__(self, n_classes: int = 2, in_channels: int = 3, embedding_dim: int = 64, width: int = 16):
        super().__init__()
        self.config = {
            "architecture": "small_cnn",
            "n_classes": n_classes,
            "in_channels": in_channels,
            "embedding_dim": embedding_dim,
            "width": width,
        }
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, width, kernel_size=3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(width, 2 * width, kernel_size=3, padding=1),
            nn.ReLU(),
            nn.AdaptiveAvgPool2d(4),
            nn.Flatten(),
            nn.Linear(2 * width * 16, embedding_dim),
            nn.ReLU(),
        )
        self.head = nn.Linear(embedding_dim, n_classes)

    def preprocess(self, raw: np.ndarray) -> torch.Tensor:
        """uint8 images (B, C, H, W) in 0–255 → float tensor in [0, 1]."""
        if raw.dtype != np.uint8 or raw.ndim != 4 or raw.shape[1] != self.config["in_channels"]:
            raise ValueError(
                f"small_cnn expects uint8 images of shape (B, {self.config['in_channels']}, H, W); "
                f"got {raw.dtype} {raw.shape}."
            )
        return torch.from_numpy(raw).float().div_(255.0)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.embed(x))


def _efficientnet_lite0(**config) -> nn.Module:
    from neurontune.models.image import EfficientNetLite0

    return EfficientNetLite0(**config)


def _resnet50(**config) -> nn.Module:
    from neurontune.models.image import ResNet50

    return ResNet50(**config)


def _all_minilm_l6_v2(**config) -> nn.Module:
    from neurontune.models.text import AllMiniLML6V2

    return AllMiniLML6V2(**config)


def _bert_base_uncased(**config) -> nn.Module:
    from neurontune.models.text import BertBaseUncased

    return BertBaseUncased(**config)


#: Pretrained backbones are imported on first use (timm/transformers take seconds to import).
ARCHITECTURES: dict[str, Callable[..., nn.Module]] = {
    "small_cnn": SmallCNN,
    "efficientnet_lite0": _efficientnet_lite0,
    "resnet50": _resnet50,
    "all_minilm_l6_v2": _all_minilm_l6_v2,
    "bert_base_uncased": _bert_base_uncased,
}


def build_model(config: dict) -> nn.Module:
    """Build an untrained model from its config (``architecture`` plus that class's arguments; null ones are dropped)."""
    architecture = config.get("architecture")
    if architecture not in ARCHITECTURES:
        raise ValueError(f"unknown architecture {architecture!r}; available: {sorted(ARCHITECTURES)}.")
    # null = unset: a benchmark environment soft-merged over conf/base unsets the base architecture's keys
    arguments = {key: value for key, value in config.items() if key != "architecture" and value is not None}
    return ARCHITECTURES[architecture](**arguments)


def model_checkpoint(model: nn.Module, frozen_backbone: bool = False) -> dict:
    """``{"config", "state_dict"}`` of a trained model.

    With ``frozen_backbone`` (a pretrained backbone that training left untouched) only
    the head is stored, with the digest of the pretrained weights it was trained on:
    :func:`model_from_checkpoint` rebuilds the backbone from those weights and refuses
    if they changed, so the rebuilt model is exactly the trained one.
    """
    if not frozen_backbone:
        return {"config": model.config, "state_dict": model.state_dict()}
    if not hasattr(model, "weights_digest"):
        raise ValueError(f"{model.config['architecture']} has no pretrained weights; its backbone must be stored.")
    head = {f"head.{name}": tensor for name, tensor in model.head.state_dict().items()}
    return {"config": model.config, "state_dict": head, "frozen_backbone_digest": model.weights_digest}


def model_from_checkpoint(checkpoint: dict) -> nn.Module:
    """Rebuild a trained model from ``{"config": ..., "state_dict": ...}`` (see :func:`model_checkpoint`)."""
    for key in ("config", "state_dict"):
        if key not in checkpoint:
            raise ValueError(f"model checkpoint is missing {key!r}; expected keys 'config' and 'state_dict'.")
    if checkpoint["config"].get("architecture") == "imported":  # a classifier the project did not train
        from neurontune.models.imported import imported_from_checkpoint

        return imported_from_checkpoint(checkpoint)
    model = build_model(checkpoint["config"])
    expected_digest = checkpoint.get("frozen_backbone_digest")
    if expected_digest is None:
        model.load_state_dict(checkpoint["state_dict"])
        return model.eval()
    if model.weights_digest != expected_digest:
        raise ValueError(
            f"the checkpoint's head was trained on {model.config['architecture']} weights with digest {expected_digest[:12]}, "
            f"but the configured weights have digest {model.weights_digest[:12]}; provide the original weights."
        )
    model.head.load_state_dict({name.removeprefix("head."): tensor for name, tensor in checkpoint["state_dict"].items()})
    return model.eval()
