"""Benchmarks: NeuronTune beside its peers across benchmarks, validation regimes and seeds (`python -m benchmarks.run`)."""
