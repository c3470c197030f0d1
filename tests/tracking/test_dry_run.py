"""``model_promotion.gate.dry_run`` on a real (local SQLite) registry: the registry datasets decide against the
champion exactly as a real run would, and register nothing, move no alias, tag no version."""

from __future__ import annotations

import json

import mlflow
import numpy as np
import pytest

from neurontune.pipelines.model_promotion.nodes import decide_on_challenger, enforce_promotion_gate
from neurontune.tracking.datasets import PromotionDecisionDataset, RegisteredModelDataset
from neurontune.tracking.dry_run import preview_registration
from neurontune.tracking.promotion import PromotionRefused
from neurontune.tracking.registry import MODEL_DIGEST_TAG, model_content_digest
from tests.tracking.test_champion_moves import ERM, GATE, NAME, client, register  # noqa: F401  (client: fixture)


def bundle(worst_group_accuracy: float, mean_accuracy: float, weight: float = 1.0) -> dict:
    """What ``package_debiased_model`` hands the registry dataset, with the dry run on."""
    return {"registered_model_name": NAME, "benchmark": "planted", "method": "neurontune", "erm_checkpoint_digest": "c",
            "data_digest": "same-data", "serving": {}, "requirements": ["numpy"],
            "head": {"weight": np.full((2, 3), weight), "bias": np.zeros(2)},
            "evaluation": {"val": {"worst_group_accuracy": worst_group_accuracy, "mean_accuracy": mean_accuracy,
                                   "n_masked": 1, "accuracy_group_0": 0.5}},
            "dry_run": True}


def registry_state(store) -> list:
    return sorted((version.version, sorted(version.aliases), dict(version.tags))
                  for version in store.search_model_versions(f"name = '{NAME}'"))


def test_a_dry_run_decides_against_the_champion_and_changes_nothing(client, tmp_path):  # noqa: F811
    champion = register(client, tmp_path, 0.60, 0.90)
    client.set_registered_model_alias(NAME, "champion", champion)
    before = registry_state(client)

    registered = RegisteredModelDataset(str(tmp_path / "registered_model.json"))
    registered.save(bundle(0.75, 0.90))
    state = registered.load()
    assert state["dry_run"] and state["champion"]["version"] == champion
    assert state["challenger"]["version"] == "2" and state["challenger"]["metrics"]["val"] == {
        "worst_group_accuracy": 0.75, "mean_accuracy": 0.90, "n_masked": 1.0}  # what the eval.* tags would carry
    decision = decide_on_challenger(state, GATE, ERM)
    assert decision["status"] == "promoted" and decision["compared_with"] == f"champion v{champion}"
    assert decision["dry_run"] and decision["method"] == "neurontune"
    assert decision["registration"] == "dry run: would have registered v2"

    with mlflow.start_run() as run:
        PromotionDecisionDataset(str(tmp_path / "promotion_decision.json")).save(decision)
    assert registry_state(client) == before, "a dry run registered, moved or tagged something"
    recorded = mlflow.MlflowClient().get_run(run.info.run_id)
    assert recorded.data.tags["promotion.status"] == "promoted" and recorded.data.tags["promotion.dry_run"] == "true"
    logged = mlflow.artifacts.load_dict(f"runs:/{run.info.run_id}/promotion/decision.json")
    assert logged["dry_run"] and json.loads((tmp_path / "promotion_decision.json").read_text()) == logged

    with pytest.raises(PromotionRefused, match=r"\(dry run: nothing was registered and no alias moved\)"):
        enforce_promotion_gate({**decision, "status": "refused"}, fail_on_refusal=True)


def test_a_dry_run_of_an_unchanged_model_names_the_version_it_would_reuse(client, tmp_path):  # noqa: F811
    unchanged = bundle(0.75, 0.90)
    source = tmp_path / "model"
    source.mkdir()
    latest = client.create_model_version(NAME, str(source), tags={MODEL_DIGEST_TAG: model_content_digest(unchanged)})
    preview = preview_registration(unchanged)
    assert preview["reused"] and preview["version"] == str(latest.version)
    changed = preview_registration(bundle(0.75, 0.90, weight=2.0))
    assert not changed["reused"] and changed["version"] == str(int(latest.version) + 1)


def test_a_dry_run_on_an_empty_registry_creates_no_model(client, tmp_path):  # noqa: F811
    client.delete_registered_model(NAME)
    preview = preview_registration(bundle(0.75, 0.90))
    assert preview["version"] == "1" and not preview["reused"]
    assert client.search_registered_models() == []
