"""model_promotion: register the debiased model as the challenger and gate its promotion to champion."""

from .pipeline import create_pipeline

__all__ = ["create_pipeline"]
