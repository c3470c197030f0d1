"""MLflow integration: the registered pyfunc model, registry aliases and the promotion gate,
Kedro datasets that log and register, and the lineage audit.

Importing this package loads nothing heavy: :mod:`~neurontune.tracking.promotion` is pure
Python; the other modules import MLflow.
"""
