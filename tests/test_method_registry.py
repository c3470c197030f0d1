"""The method registry: a method declared in configuration alone is fitted, evaluated, labelled and reported."""

import json
import shutil

import pytest
import yaml

from neurontune.methods import LABEL_KINDS, load_registry, registry_from_parameters
from tests.conftest import copy_project, kedro

TOY_BASELINE = {"function": "dfr_groupfree", "labels_used": "none", "tune_set": "val_ide",
                "options": {"c_grid": [1.0], "n_refits": 1}}
TOY_VARIANT = {"tune_set": "val_ide", "use_mask": True, "grid": {"threshold": [0.0], "rule": ["any"]}}


@pytest.fixture(scope="module")
def extended_project(ci_project, tmp_path_factory):
    """The ci project's data with one baseline and one NeuronTune variant added to conf/base only."""
    project = copy_project(tmp_path_factory.mktemp("registry"))
    shutil.copytree(ci_project / "data" / "ci", project / "data" / "ci")
    for name, block, key, entry in (("parameters_baselines.yml", "baselines", "methods", {"toy_baseline": TOY_BASELINE}),
                                    ("parameters_neurontune_regulation.yml", "neurontune_regulation", "variants",
                                     {"toy_variant": TOY_VARIANT})):
        path = project / "conf" / "base" / name
        parameters = yaml.safe_load(path.read_text())
        parameters[block][key].update(entry)
        path.write_text(yaml.safe_dump(parameters, sort_keys=False))
    kedro(project, "run", "--env", "ci", "--pipelines", "neurontune_regulation,baselines,harm_guard,evaluation")
    return project


def test_a_configured_method_is_fitted_evaluated_labelled_and_summarised(extended_project):
    reporting = extended_project / "data" / "ci" / "08_reporting"
    metrics = json.loads((reporting / "metrics.json").read_text())
    assert {"toy_baseline", "toy_variant"} <= set(metrics)
    assert 0.0 <= metrics["toy_baseline"]["test"]["worst_group_accuracy"] <= 1.0
    assert json.loads((reporting / "method_labels_used.json").read_text())["toy_baseline"] == "none"
    assert (reporting / "baselines" / "toy_baseline_candidates.parquet").exists()
    assert (extended_project / "data" / "ci" / "06_models" / "neurontune_regulation" / "toy_variant_head.npz").exists()
    summary = kedro_free_summary(extended_project)
    assert "toy_baseline" in summary and "toy_variant" in summary


def kedro_free_summary(project) -> str:
    from neurontune.console import summarise

    return summarise(project / "data" / "ci" / "08_reporting" / "metrics.json")


def test_the_registry_orders_erm_variants_then_baselines():
    registry = load_registry()
    kinds = [method.kind for method in registry.values()]
    assert kinds[0] == "reference" and kinds == sorted(kinds, key=["reference", "neurontune", "baseline"].index)
    assert {method.labels_used for method in registry.values()} <= set(LABEL_KINDS)
    assert {name for name, method in registry.items() if method.labels_used != "none"} == {"dfr", "group_balanced_oracle",
                                                                                      "self_val_groups"}


@pytest.mark.parametrize(("change", "match"), [
    ({"baselines": {"methods": {"x": {"function": "dfr", "labels_used": "all", "tune_set": "train"}}}}, "x.labels_used: must be one of"),
    ({"baselines": {"methods": {"x": {"function": "dfr", "labels_used": "none"}}}}, "x.tune_set: missing"),
    ({"neurontune_regulation": {"variants": {"x": {"tune_set": "test", "use_mask": True}}}}, "x.tune_set: must be one of"),
    ({"neurontune_regulation": {"variants": {}}}, "needs a non-empty mapping neurontune_regulation.variants"),
])
def test_bad_registry_entries_are_named(change, match):
    parameters = {"neurontune_regulation": {"variants": {"neurontune": {"tune_set": "train", "use_mask": True}}},
                  "baselines": {"methods": {"dfr": {"function": "dfr", "labels_used": "val_groups", "tune_set": "val_ide"}}}}
    for block, section in change.items():
        key = next(iter(section))
        parameters[block][key] = section[key] if not section[key] else {**parameters[block][key], **section[key]}
    with pytest.raises(ValueError, match=match):
        registry_from_parameters(parameters)
