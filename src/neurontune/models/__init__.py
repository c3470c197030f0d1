"""Backbones, the ERM training loop and embedding extraction (torch only; no Kedro, MLflow or paths)."""
