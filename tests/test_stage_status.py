"""`neurontune status` on a two-stage toy DAG: missing, up to date, stale by data, by parameters, by upstream."""

import os

from kedro.io import DataCatalog
from kedro.pipeline import Pipeline, node

from neurontune.io.datasets import JsonDataset
from neurontune.stage_status import all_up_to_date, format_status, stage_statuses


def identity(value, settings=None):
    return value


def toy(tmp_path):
    files = {name: tmp_path / "data" / f"{name}.json" for name in ("raw", "features", "model")}
    catalog = DataCatalog(datasets={name: JsonDataset(str(path)) for name, path in files.items()})
    stages = {"featurise": Pipeline([node(identity, ["raw", "params:featurise"], "features")]),
              "fit": Pipeline([node(identity, ["features", "params:fit"], "model")])}
    settings = {"featurise": [tmp_path / "conf" / "featurise.yml"], "fit": [tmp_path / "conf" / "fit.yml"]}
    for path in settings["featurise"] + settings["fit"]:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("{}")
    return files, catalog, stages, settings


def touch(path, when):
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        path.write_text("{}")
    os.utime(path, ns=(when, when))


def states(tmp_path, catalog, stages, settings):
    found = stage_statuses(stages, catalog, settings, tmp_path)
    return {status.name: status.state for status in found}, found


def test_states_follow_file_times_and_upstream_stages(tmp_path):
    files, catalog, stages, settings = toy(tmp_path)
    for path in settings["featurise"] + settings["fit"]:
        touch(path, 1_000)
    touch(files["raw"], 2_000)
    assert states(tmp_path, catalog, stages, settings)[0] == {"featurise": "missing", "fit": "missing"}

    touch(files["features"], 3_000)
    touch(files["model"], 4_000)
    found, statuses = states(tmp_path, catalog, stages, settings)
    assert found == {"featurise": "up to date", "fit": "up to date"} and all_up_to_date(statuses)
    assert format_status(statuses, "ci").endswith("every stage is up to date")

    touch(settings["fit"][0], 5_000)  # a parameter of the second stage changed
    found, statuses = states(tmp_path, catalog, stages, settings)
    assert found == {"featurise": "up to date", "fit": "stale"}
    assert statuses[1].reasons == ["conf/fit.yml changed after its outputs were written"]

    touch(files["model"], 6_000)
    touch(files["raw"], 7_000)  # new raw data: the first stage is stale, and so is everything after it
    found, statuses = states(tmp_path, catalog, stages, settings)
    assert found == {"featurise": "stale", "fit": "stale"} and not all_up_to_date(statuses)
    assert statuses[1].reasons == ["reads data/features.json, which stage featurise has to rewrite"]
    assert "kedro run --env ci --pipelines featurise,fit" in format_status(statuses, "ci")


def test_a_stage_with_remote_outputs_is_not_judged(tmp_path):
    files, _, stages, settings = toy(tmp_path)
    catalog = DataCatalog(datasets={"raw": JsonDataset(str(files["raw"])), "features": JsonDataset("s3://bucket/f.json"),
                                    "model": JsonDataset(str(files["model"]))})
    touch(files["raw"], 2_000)
    touch(files["model"], 4_000)
    for path in settings["featurise"] + settings["fit"]:
        touch(path, 1_000)
    found, statuses = states(tmp_path, catalog, stages, settings)
    assert found == {"featurise": "not checked", "fit": "up to date"} and all_up_to_date(statuses)


def test_times_are_compared_node_by_node_and_through_memory(tmp_path):
    """One `kedro run` interleaves stages: fit's report is written after audit ran, its model before. And an
    in-memory intermediate passes its inputs' times on."""
    files = {name: tmp_path / f"{name}.json" for name in ("features", "model", "audit", "report")}
    catalog = DataCatalog(datasets={name: JsonDataset(str(path)) for name, path in files.items()})
    stages = {"fit": Pipeline([node(identity, "features", "memory", name="a"), node(identity, "memory", "model", name="b"),
                               node(identity, ["model", "audit"], "report", name="c")]),
              "audit": Pipeline([node(identity, "model", "audit", name="d")])}
    for when, name in enumerate(("features", "model", "audit", "report"), start=1):
        touch(files[name], when * 1_000)
    found, _ = states(tmp_path, catalog, stages, {})
    assert found == {"fit": "up to date", "audit": "up to date"}  # stage-wide, model (2 000) < audit (3 000)
    touch(files["features"], 5_000)  # read through the in-memory dataset by the node writing the model
    found, statuses = states(tmp_path, catalog, stages, {})
    assert found == {"fit": "stale", "audit": "stale"}
    assert statuses[0].reasons == ["features.json changed after its outputs were written",
                                   "reads audit.json, which stage audit has to rewrite"]
    assert statuses[1].reasons == ["reads model.json, which stage fit has to rewrite"]


def test_a_stage_reading_what_a_rerun_stage_rewrites_reruns_too(tmp_path):
    """A stale stage rewrites all its outputs, even those a reader is up to date with (Kedro runs whole pipelines)."""
    files = {name: tmp_path / f"{name}.json" for name in ("raw", "split", "extra", "scores", "head")}
    catalog = DataCatalog(datasets={name: JsonDataset(str(path)) for name, path in files.items()})
    stages = {"identify": Pipeline([node(identity, "raw", "split", name="a"), node(identity, "extra", "scores", name="b")]),
              "fit": Pipeline([node(identity, "split", "head", name="c")])}
    for when, name in enumerate(("raw", "extra", "split", "scores", "head"), start=1):
        touch(files[name], when * 1_000)
    touch(files["extra"], 9_000)
    found, statuses = states(tmp_path, catalog, stages, {})
    assert found == {"identify": "stale", "fit": "up to date"} and [status.rerun for status in statuses] == [True, True]
    report = format_status(statuses, None)
    assert "reruns too" in report and report.endswith("kedro run --pipelines identify,fit")
