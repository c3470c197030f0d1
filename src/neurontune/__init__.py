"""NeuronTune: post-hoc spurious-bias mitigation without group labels, as a Kedro project."""

__version__ = "0.1.0"
