"""Kedro datasets for the project's artifacts. Every save is atomic (write to a temp file, then rename)."""
