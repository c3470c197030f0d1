"""The ``neuron_identification`` pipeline."""

from .pipeline import create_pipeline

__all__ = ["create_pipeline"]
