"""Benchmark builders: pure functions from source data to (inputs, metadata)."""
