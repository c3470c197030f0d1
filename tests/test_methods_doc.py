"""docs/methods.md's table of every registered method is the one the method registry generates."""

import copy

import pytest
import yaml

from docs import methods_table
from neurontune.methods import load_registry, registry_from_parameters
from tests.conftest import PROJECT_ROOT


def base_parameters() -> dict:
    parameters = {}
    for path in sorted((PROJECT_ROOT / "conf" / "base").glob("parameters*.yml")):
        parameters.update(yaml.safe_load(path.read_text()) or {})
    return parameters


def test_the_committed_methods_table_is_the_generated_one():
    document = (PROJECT_ROOT / "docs" / "methods.md").read_text()
    expected = methods_table.render(document, methods_table.methods_table(load_registry(PROJECT_ROOT)))
    assert document == expected, "docs/methods.md's methods table differs from the registry: run " \
                                 "`python -m docs.methods_table` and commit the result"


def test_every_registered_method_has_one_row_with_its_function_and_options():
    registry = load_registry(PROJECT_ROOT)
    rows = methods_table.methods_table(registry).splitlines()[2:]
    assert [row.split(" | ")[0] for row in rows] == [f"| `{name}`" for name in registry]
    self_row = rows[list(registry).index("self")]
    assert "`neurontune.core.baselines.self_disagreement`; reads erm_head, tune_erm_logits, tune_early_logits" in self_row
    assert "steps: 250" in self_row  # an option the entry leaves out, from the function's default


def test_a_changed_registry_changes_the_table():
    parameters = copy.deepcopy(base_parameters())
    parameters["baselines"]["methods"]["self_more_points"] = {
        "function": "self_disagreement", "labels_used": "none", "tune_set": "val_ide", "options": {"num_data": [50]}}
    parameters["neurontune_regulation"]["variants"]["neurontune"]["statistic"] = "lcb"
    before = methods_table.methods_table(registry_from_parameters(base_parameters()))
    after = methods_table.methods_table(registry_from_parameters(parameters))
    added = [row for row in after.splitlines() if row not in before.splitlines()]
    assert [row.split(" | ")[0] for row in added] == ["| `neurontune`", "| `self_more_points`"]
    assert "statistic: lcb" in added[0] and "num_data: [50]" in added[1]


def test_a_document_without_the_markers_is_refused():
    with pytest.raises(ValueError, match="no generated-table markers"):
        methods_table.render("# Methods\n", "| table |")
