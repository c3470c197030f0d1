"""``neurontune ci-summary``'s Markdown from literal metrics and decisions."""

from __future__ import annotations

import pytest

from neurontune.ci_summary import format_ci_summary, headline_metric, model_version_page
from neurontune.core.metrics import NOT_MEASURABLE

GROUPS = {"accuracy_group_0": 0.9, "accuracy_group_1": 0.5}
METRICS = {
    "erm": {"test": {**GROUPS, "worst_group_accuracy": 0.5, "mean_accuracy": 0.9, "worst_class_accuracy": 0.8,
                     "n_masked": 0}},
    "neurontune": {"test": {"accuracy_group_0": 0.85, "accuracy_group_1": 0.8, "worst_group_accuracy": 0.8,
                            "mean_accuracy": 0.88, "worst_class_accuracy": 0.84, "n_masked": 3}},
    "validity": {"test": {"erm_mean_accuracy": 0.9, "erm_worst_group_accuracy": 0.5, "oracle_worst_group_accuracy": 0.9,
                          "headroom": 0.4, "separates_methods": 1.0}},
}
DECISION = {"registered_model_name": "neurontune-planted", "split": "test", "registration": "registered v3",
            "status": "promoted", "reason": "worst-group accuracy gain +0.1000 >= 0.0050", "challenger_version": 3,
            "champion_version": 2, "compared_with": "champion v2", "dry_run": False, "method": "neurontune"}


def test_headline_is_worst_group_accuracy_where_groups_exist_else_worst_class():
    assert headline_metric(METRICS["erm"]["test"])[0] == "worst_group_accuracy"
    no_groups = {"worst_group_accuracy": NOT_MEASURABLE, "mean_accuracy": 0.9, "worst_class_accuracy": 0.8}
    assert headline_metric(no_groups) == ("worst_class_accuracy", "worst-class accuracy")
    assert headline_metric({**no_groups, "worst_group_accuracy": float("nan")})[0] == "worst_class_accuracy"


def test_summary_of_a_promotion():
    text = format_ci_summary(METRICS, DECISION, "neurontune", masked=[1, 4, 7], n_neurons=16,
                             gallery="https://ci.example/artifacts/neurontune_gallery.png",
                             model_page="http://mlflow.internal/#/models/neurontune-planted/versions/3")
    assert text.startswith("## NeuronTune · neurontune-planted\n")
    assert ("**Gate:** promoted v3 (against champion v2, test split) — worst-group accuracy gain +0.1000 >= 0.0050."
            in text)
    assert "| worst-group accuracy (WGA) | 0.500 | 0.800 | +0.300 |" in text
    assert "| mean accuracy | 0.900 | 0.880 | -0.020 |" in text and "| neurons masked | 0 | 3 | +3 |" in text
    assert "**Validity:** the benchmark can separate debiasing methods (ERM WGA 0.500" in text
    assert ("**Masked neurons** (3 of 16): 1, 4, 7 — [evidence gallery](https://ci.example/artifacts/"
            "neurontune_gallery.png)") in text
    assert ("**Lineage:** `models:/neurontune-planted/3` ([in MLflow](http://mlflow.internal/#/models/neurontune-planted"
            "/versions/3)) — `neurontune lineage models:/neurontune-planted/3 --verify`") in text


def test_summary_of_a_dry_run_says_what_would_happen_and_registers_nothing():
    decision = {**DECISION, "status": "refused", "reason": "worst-group accuracy gain -0.0100 < min_delta 0.0050",
                "dry_run": True, "registration": "dry run: would have registered v3"}
    text = format_ci_summary(METRICS, decision, "neurontune", masked=[], n_neurons=16)
    assert "**Gate (dry run — nothing registered, no alias moved):** would refuse v3" in text
    assert "Registration: dry run: would have registered v3." in text
    assert "**Lineage:** not registered (dry run); `models:/neurontune-planted/2` (the current champion)." in text
    assert "**Masked neurons:** none of 16." in text


def test_summary_without_groups_compares_worst_class_accuracy_and_says_validity_is_not_measurable():
    metrics = {method: {"test": {**{key: value for key, value in values["test"].items()
                                    if not key.startswith("accuracy_group_")}, "worst_group_accuracy": NOT_MEASURABLE}}
               for method, values in METRICS.items() if method != "validity"}
    metrics["validity"] = {"test": {name: NOT_MEASURABLE for name in METRICS["validity"]["test"]}}
    text = format_ci_summary(metrics, None, "neurontune")
    assert "| worst-class accuracy | 0.800 | 0.840 | +0.040 |" in text and "WGA" not in text.split("**Validity")[0]
    assert "**Gate:** did not run (no promotion decision recorded)." in text
    assert f"**Validity:** {NOT_MEASURABLE}." in text
    metrics["validity"] = {"test": {**METRICS["validity"]["test"], "oracle_worst_group_accuracy": 0.6,
                                    "headroom": 0.1, "separates_methods": 0.0}}
    assert "**Validity:** ⚠️ this benchmark cannot separate debiasing methods" in format_ci_summary(metrics, None,
                                                                                                  "neurontune")
    assert "**Masked neurons:** `neurontune` has no neuron mask." in text


def test_summary_notes_a_fired_guard():
    metrics = {**METRICS, "harm": {"neurontune": {"selection": {"guard_fired": True}}}}
    assert "the registered model keeps ERM's head" in format_ci_summary(metrics, DECISION, "neurontune")


def test_summary_names_a_method_that_was_not_evaluated():
    with pytest.raises(ValueError, match="metrics has no 'dfr' or 'erm' entry .*run `kedro run` first"):
        format_ci_summary(METRICS, DECISION, "dfr")
    with pytest.raises(ValueError, match="no 'val' split for 'neurontune'"):
        format_ci_summary(METRICS, DECISION, "neurontune", split="val")


def test_model_page_only_for_an_http_server_and_never_with_its_password():
    assert model_version_page("sqlite:///mlflow.db", "m", 1) is None
    page = model_version_page("https://promoter:s3cret@mlflow.internal:5000/", "neurontune-colored_mnist", 4)
    assert page == "https://mlflow.internal:5000/#/models/neurontune-colored_mnist/versions/4"
