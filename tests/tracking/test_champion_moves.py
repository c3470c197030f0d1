"""The gate's decision applied to a real (local SQLite) registry: a better version takes @champion from
the current one, and a champion moved between the decision and its application stops the run.

Versions are registered straight from the client with their evaluation tags (no model is logged):
what is under test is the decision node and ``apply_decision``, not packaging (tests/tracking/test_registry.py
runs the whole pipeline for that).
"""

from __future__ import annotations

import mlflow
import pytest
from mlflow import MlflowClient

from neurontune.pipelines.model_promotion.nodes import decide_on_challenger
from neurontune.tracking.audit import alias_history
from neurontune.tracking.registry import alias_version, apply_decision, version_record

NAME = "neurontune-planted"
GATE = {"split": "val", "min_delta": 0.01, "max_mean_acc_drop": 0.02, "require_same_data": True}
ERM = {"erm": {"val": {"worst_group_accuracy": 0.40, "mean_accuracy": 0.90}}}


@pytest.fixture
def client(tmp_path):
    """A fresh SQLite store as this process's tracking and registry URI (tests/conftest.py undoes both)."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    store = MlflowClient(uri, uri)
    store.create_registered_model(NAME)
    return store


def register(client, tmp_path, worst_group_accuracy: float, mean_accuracy: float) -> str:
    source = tmp_path / f"model-{worst_group_accuracy}"
    source.mkdir(exist_ok=True)
    version = client.create_model_version(NAME, str(source), tags={
        "eval.val.worst_group_accuracy": str(worst_group_accuracy), "eval.val.mean_accuracy": str(mean_accuracy),
        "data_digest": "same-data", "method": "neurontune"})
    return str(version.version)


def decide(client, challenger: str) -> dict:
    champion = alias_version(client, NAME, "champion")
    model = {"registered_model_name": NAME, "reused": False, "challenger": version_record(client, NAME, challenger),
             "champion": None if champion is None else version_record(client, NAME, champion)}
    return decide_on_challenger(model, GATE, ERM)


def test_a_better_version_takes_champion_from_the_current_one(client, tmp_path):
    first = register(client, tmp_path, 0.60, 0.90)
    apply_decision(decide(client, first))
    assert alias_version(client, NAME, "champion") == first
    second = register(client, tmp_path, 0.70, 0.89)
    decision = decide(client, second)
    assert decision["status"] == "promoted" and decision["compared_with"] == f"champion v{first}"
    assert decision["worst_group_accuracy_gain"] == pytest.approx(0.10)
    apply_decision(decision)
    assert alias_version(client, NAME, "champion") == second
    moves = [(entry["alias"], entry["from_version"], entry["version"]) for entry in alias_history(client, NAME)]
    assert moves == [("champion", None, first), ("champion", first, second)]
    assert client.get_model_version(NAME, second).tags["promotion.status"] == "promoted"
    # a third version no better than the new champion is refused and the alias stays
    third = register(client, tmp_path, 0.705, 0.89)
    refused = decide(client, third)
    assert refused["status"] == "refused" and "min_delta" in refused["reason"]
    apply_decision(refused)
    assert alias_version(client, NAME, "champion") == second


def test_a_champion_moved_between_decision_and_apply_stops_the_promotion(client, tmp_path):
    first = register(client, tmp_path, 0.60, 0.90)
    apply_decision(decide(client, first))
    second = register(client, tmp_path, 0.70, 0.90)
    decision = decide(client, second)  # decided against v1 ...
    assert decision["promote"] and decision["champion_version"] == int(first)
    other = register(client, tmp_path, 0.80, 0.90)
    client.set_registered_model_alias(NAME, "champion", other)  # ... while another run promoted v3
    with pytest.raises(RuntimeError, match=rf"@champion of {NAME} moved from v{first} to v{other} while this run decided"):
        apply_decision(decision)
    assert alias_version(client, NAME, "champion") == other
    assert not any(key.startswith("promotion.") for key in client.get_model_version(NAME, second).tags)


def test_a_champion_appearing_after_a_first_decision_stops_it_too(client, tmp_path):
    first = register(client, tmp_path, 0.60, 0.90)
    decision = decide(client, first)  # no champion yet: decided against ERM
    assert decision["promote"] and decision["champion_version"] is None
    other = register(client, tmp_path, 0.50, 0.90)
    client.set_registered_model_alias(NAME, "champion", other)
    with pytest.raises(RuntimeError, match=rf"moved from vNone to v{other}"):
        apply_decision(decision)
    assert alias_version(client, NAME, "champion") == other


def test_an_unchanged_model_reuses_any_earlier_identical_version(client, tmp_path, monkeypatch):
    """Issue 28: packaging method A, then B, then A again registered A a second time (only the latest version's digest
    was compared). Now A's earlier version is reused and @challenger points back at it; nothing is registered."""
    from neurontune.tracking import registry

    for digest in ("digest-of-A", "digest-of-B"):
        version = register(client, tmp_path, 0.6, 0.9)
        client.set_model_version_tag(NAME, version, registry.MODEL_DIGEST_TAG, digest)
    monkeypatch.setattr(registry, "model_content_digest", lambda bundle: "digest-of-A")
    record = registry.register_debiased_model({"registered_model_name": NAME}, alias="challenger")
    assert record["reused"] and record["version"] == "1"
    assert alias_version(client, NAME, "challenger") == "1"
    assert [str(version.version) for version in client.search_model_versions(f"name = '{NAME}'")] in (["2", "1"], ["1", "2"])
