"""The project's real pipelines, run by Kedro's SequentialRunner on an in-memory catalog.

The DAG under test is the one ``pipeline_registry.py`` ships (no hand wiring): a tiny
colored_mnist goes through every stage but model promotion, once per session.
"""

import operator
import warnings
from functools import reduce

import pytest
from kedro.config import OmegaConfigLoader
from kedro.io import DataCatalog, MemoryDataset
from kedro.runner import SequentialRunner

from neurontune.data.tables import CLASS_LABEL_COLUMNS
from neurontune.methods import complete_parameters
from neurontune.pipeline_registry import STAGES, register_pipelines
from neurontune.settings import CONFIG_LOADER_ARGS
from tests.conftest import PROJECT_ROOT

#: every stage of the shipped DAG, in order, but model promotion (the registry)
TINY_STAGES = tuple(name for name in STAGES if name != "model_promotion")


class KeptMemoryDataset(MemoryDataset):
    """An in-memory dataset the runner cannot release, so tests can read every intermediate.

    Values are passed by reference (``copy_mode="assign"``): Kedro's default deep-copies every dict and list at
    each save and load, which was most of a tiny run's time (lists of images). The nodes are pure functions that
    never change their inputs in place, so sharing is safe."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, copy_mode="assign", **kwargs)

    def _release(self) -> None:
        pass


def environment_parameters(env: str | None) -> dict:
    """The parameters ``kedro run --env ENV`` would see: completed by the method registry, as the session hook does."""
    return complete_parameters(OmegaConfigLoader(str(PROJECT_ROOT / "conf"), env=env, **CONFIG_LOADER_ARGS)["parameters"])


def parameter_feed(parameters: dict) -> dict:
    """``params:a.b.c`` entries for every nested key, as Kedro's session provides them."""
    feed = {"parameters": parameters}

    def walk(prefix: str, value) -> None:
        feed[f"params:{prefix}"] = value
        if isinstance(value, dict):
            for key, item in value.items():
                walk(f"{prefix}.{key}", item)

    for key, value in parameters.items():
        walk(key, value)
    return feed


def run_pipelines(names, parameters: dict, inputs: dict | None = None) -> dict:
    """Run the registered pipelines ``names`` on an in-memory catalog; return every dataset's value."""
    registered = register_pipelines()
    pipeline = reduce(operator.add, (registered[name] for name in names))
    feed = {**parameter_feed(parameters), **(inputs or {})}
    datasets = {name: KeptMemoryDataset(feed.get(name)) if name in feed else KeptMemoryDataset()
                for name in pipeline.datasets()}
    catalog = DataCatalog(datasets=datasets)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        SequentialRunner().run(pipeline, catalog)
    return {name: catalog.load(name) for name in pipeline.datasets()
            if name in feed or any(name in node.outputs for node in pipeline.nodes)}


@pytest.fixture(scope="session")
def parameters():
    """The suite's ``ci`` configuration with a smaller benchmark."""
    params = environment_parameters("ci")
    params["data_versioning"]["split_sizes"] = {"train": 240, "val": 160, "test": 120}
    params["erm_training"]["device"] = "cpu"
    params["erm_training"]["modes"]["finetune"]["epochs"] = 2
    return params


@pytest.fixture(scope="session")
def tiny_run(parameters):
    """Every dataset of a tiny colored_mnist run through the real DAG (model promotion aside)."""
    built = run_pipelines(TINY_STAGES[:1], parameters)
    # on disk `class_labels` is the metadata file read without the group columns
    built["class_labels"] = built["raw_metadata"][list(CLASS_LABEL_COLUMNS)]
    return {**built, **run_pipelines(TINY_STAGES[1:], parameters, inputs=built)}
