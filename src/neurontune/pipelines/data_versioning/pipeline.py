"""data_versioning: build the benchmark into data/01_raw and record its digest."""

from kedro.pipeline import Pipeline, node

from .nodes import build_benchmark, describe_dataset


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline(
        [
            node(build_benchmark, "params:data_versioning", ["raw_inputs", "raw_metadata"], name="build_benchmark"),
            node(
                describe_dataset,
                ["raw_inputs", "raw_metadata", "params:data_versioning"],
                "dataset_manifest",
                name="describe_dataset",
            ),
        ]
    )
