"""Device resolution shared by training and extraction."""

from __future__ import annotations

import torch

DEVICE_CHOICES = ("auto", "cpu", "cuda")


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``auto`` picks CUDA when present, else CPU; ``cuda`` without a GPU is an error."""
    name = str(device)
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} was requested but CUDA is not available; use 'auto' or 'cpu'.")
    if not (name == "cpu" or name.startswith("cuda")):
        raise ValueError(f"device must be one of {list(DEVICE_CHOICES)} (or 'cuda:N'); got {name!r}.")
    return torch.device(name)
