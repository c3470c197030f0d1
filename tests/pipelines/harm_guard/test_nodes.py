"""Do no harm: a retrained head worse than ERM is flagged by evaluation, caught by the label-free guard, and its
registered model keeps ERM's head."""

import json

import numpy as np
import pandas as pd
import pytest

from neurontune.methods import complete_variant
from neurontune.core import LinearHead, SelectionSet, group_report, head_predict, retrain_head, search_grid
from neurontune.core.head import head_logits
from neurontune.core.choice import HELD_OUT_PREDICTION
from neurontune.core.errors import pseudo_groups
from neurontune.methods import HARM, METHOD_CHOICE, NOT_FITTED, load_registry, method_entries
from neurontune.models.backbones import build_model
from neurontune.pipeline_registry import register_pipelines
from neurontune.pipelines.evaluation.nodes import assess_harm, flatten_metrics
from neurontune.pipelines.harm_guard.nodes import choose_method_to_ship, guard_against_harm
from neurontune.pipelines.model_promotion.nodes import package_debiased_model

GUARD = {"enabled": True, "criterion": "own", "margin": 0.0}
GATE = {"split": "test", "min_delta": 0.005, "max_mean_acc_drop": 0.01, "require_same_data": True, "fail_on_refusal": False}
HARM_SETTINGS = {"split": "test", "tolerance": 0.0}
AUTO = {"worst_class_tolerance": 0.02, "error_set": "auto", "candidates": "all"}
PACKAGING = {"method": "neurontune", "registered_model_name": "neurontune-{benchmark}", "input_example_size": 1,
             "requirements": ["numpy"], "serving": {"device": "cpu"}}


def split(rng, n, correlation):
    """Neuron 0 codes the class (noisy), neuron 1 the attribute; a = y with probability ``correlation``."""
    y = rng.integers(0, 2, n)
    a = np.where(rng.random(n) < correlation, y, 1 - y)
    x = np.column_stack([y + rng.normal(0, 0.5, n), a + rng.normal(0, 0.1, n)])
    return {"embeddings": x, "y": y, "a": a, "g": 2 * y + a}


@pytest.fixture(scope="module")
def harmed():
    """ERM learned the core neuron; the "debiased" head was retrained on the attribute neuron alone (worse)."""
    rng = np.random.default_rng(0)
    train, val, test = split(rng, 600, 0.95), split(rng, 400, 0.5), split(rng, 400, 0.5)
    erm = retrain_head(train["embeddings"], train["y"], 2, mask=np.array([False, True]), weight_decay=1e-3)
    erm = LinearHead.from_arrays(erm.weight, erm.bias)  # ERM's head as cached: nothing suppressed
    split_rows = {"ide": np.arange(200), "sel": np.arange(200, 400)}
    selection = SelectionSet.build(val["embeddings"][split_rows["sel"]], val["y"][split_rows["sel"]], 2)
    search = search_grid([{"weight_decay": 1e-3}], lambda candidate, fold: retrain_head(
        train["embeddings"], train["y"], 2, mask=np.array([True, False]), **candidate), [selection])
    heads = {"erm": erm, "neurontune": search.head}
    metrics = {name: {"test": group_report(test["y"], head_predict(test["embeddings"], head), test["g"], 2, 4)}
               for name, head in heads.items()}
    return {"val": val, "split": split_rows, "heads": heads, "candidates": pd.DataFrame(search.table), "metrics": metrics}


def guard(harmed, erm_head, settings, variants=None, **candidates):
    """The guard node on the toy data, with ERM's own validation errors as the only error set."""
    errors = {"val_erm": (head_predict(harmed["val"]["embeddings"], harmed["heads"]["erm"]) != harmed["val"]["y"]).astype(np.int8)}
    return guard_against_harm(harmed["val"], harmed["split"], erm_head, errors, variants or {}, settings, **candidates)


def test_the_guard_catches_a_head_worse_than_erm_without_group_labels(harmed):
    erm_head = harmed["heads"]["erm"].to_dict()
    decision = guard(harmed, erm_head, GUARD, neurontune=harmed["candidates"])
    entry = decision["methods"]["neurontune"]
    assert entry["fired"] and entry["would_fire"] and entry["kept_head"] == "erm"
    assert entry["delta_sel_worst_class_accuracy"] < -0.2 and entry["reason"].startswith("kept ERM's head")
    off = guard(harmed, erm_head, {**GUARD, "enabled": False},
                             neurontune=harmed["candidates"])["methods"]["neurontune"]
    assert off["would_fire"] and not off["fired"] and off["kept_head"] == "neurontune"
    assert entry["would_fire_by"] == {"class": True, "own": True}  # neurontune selects by worst class: the same
    with pytest.raises(ValueError, match="must be a label-free partition"):
        guard(harmed, erm_head, {**GUARD, "criterion": "group"}, neurontune=harmed["candidates"])


def test_own_criterion_judges_a_pseudo_group_variant_on_the_same_pseudo_groups(harmed):
    """A variant selected by worst pseudo-group accuracy is compared with ERM on those pseudo-groups (here ERM's
    own validation errors, where ERM scores 0 by construction); `class` judges it by worst class. Both recorded."""
    erm_head = harmed["heads"]["erm"].to_dict()
    val, sel = harmed["val"], harmed["split"]["sel"]
    in_errors = head_predict(val["embeddings"], harmed["heads"]["erm"]) != val["y"]
    selection = SelectionSet.build(val["embeddings"][sel], val["y"][sel], 2,
                                   pseudo_group=pseudo_groups(val["y"][sel], in_errors[sel]))
    table = pd.DataFrame(search_grid([{"weight_decay": 1e-3}], lambda candidate, fold: harmed["heads"]["neurontune"],
                                     [selection]).table)
    variants = {"toy_plus": complete_variant({"tune_set": "train", "use_mask": True, "criterion": "pseudo_group",
                                              "pseudo_groups": "erm"})}
    entry = guard(harmed, erm_head, GUARD, variants, toy_plus=table)["methods"]["toy_plus"]
    assert entry["erm_sel_worst_pseudo_group_accuracy"] == 0.0
    assert entry["delta_sel_worst_pseudo_group_accuracy"] == table.loc[0, "sel_worst_pseudo_group_accuracy"] > 0
    assert not entry["would_fire"] and entry["would_fire_by"] == {"class": True, "own": False}
    by_class = guard(harmed, erm_head, {**GUARD, "criterion": "class"}, variants, toy_plus=table)["methods"]["toy_plus"]
    assert by_class["fired"] and by_class["delta_sel_worst_class_accuracy"] < -0.2


def test_evaluation_flags_the_harm_and_promotion_ships_the_erm_head(harmed, caplog):
    erm_head = harmed["heads"]["erm"].to_dict()
    decision = guard(harmed, erm_head, GUARD, neurontune=harmed["candidates"])
    harm = assess_harm(harmed["metrics"], decision, HARM_SETTINGS)
    assert harm["neurontune"]["worse_than_erm"] and harm["neurontune"]["test"]["delta_worst_group_accuracy"] < -0.2
    assert harm["neurontune"]["selection"]["guard_fired"] and "neurontune is worse than ERM on test" in caplog.text
    flat = flatten_metrics({**harmed["metrics"], HARM: harm})
    assert flat["harm.neurontune.worse_than_erm"]["value"] == 1.0 and set(method_entries({**harmed["metrics"], HARM: harm})) == {"erm", "neurontune"}
    heads = {"erm_head": erm_head, "neurontune_head": harmed["heads"]["neurontune"].to_dict()}
    model = build_model({"architecture": "small_cnn", "n_classes": 2, "in_channels": 3, "embedding_dim": 2, "width": 2})
    checkpoint = {"config": model.config, "state_dict": model.state_dict(), "data_digest": None}
    bundle = package_debiased_model(checkpoint, {"inputs": np.zeros((2, 3, 8, 8), np.uint8)},
                                    {**harmed["metrics"], HARM: harm}, {"digest": "d", "class_label_digest": "d"},
                                    "toy", PACKAGING, GATE, decision, **heads)
    assert bundle["head"].keys() == heads["erm_head"].keys() and bundle["head"]["weight"] is heads["erm_head"]["weight"]
    assert bundle["evaluation"] == harmed["metrics"]["erm"]
    assert bundle["method"] == "neurontune" and bundle["version_tags"]["guard.fired"] == "true"
    assert bundle["version_tags"]["guard.kept_head"] == "erm" and "selection half" in bundle["version_tags"]["guard.reason"]


def test_a_method_missing_from_the_guard_is_an_error(harmed):
    with pytest.raises(ValueError, match=r"harm_guard has no decision for \['neurontune'\]"):
        assess_harm(harmed["metrics"], {"methods": {}}, HARM_SETTINGS)


def test_the_guard_covers_every_method_of_the_registry_and_reads_no_group_labels(tiny_run):
    pipeline = register_pipelines()["harm_guard"]
    assert "raw_metadata" not in pipeline.inputs()
    assert set(tiny_run["harm_guard"]["methods"]) == set(load_registry()) - {"erm"}
    assert set(tiny_run["metrics"][HARM]) == set(load_registry()) - {"erm"}


def test_summary_flags_harm_and_the_guard(harmed, tmp_path):
    from neurontune.console import summarise

    erm_head = harmed["heads"]["erm"].to_dict()
    decision = guard(harmed, erm_head, GUARD, neurontune=harmed["candidates"])
    metrics = {name: {"test": {**values["test"], "n_masked": 0}} for name, values in harmed["metrics"].items()}
    path = tmp_path / "metrics.json"
    path.write_text(json.dumps({**metrics, HARM: assess_harm(harmed["metrics"], decision, HARM_SETTINGS)}))
    lines = summarise(path).splitlines()
    (row,) = [line for line in lines if line.startswith("neurontune ")]
    assert row.endswith("WORSE THAN ERM; guard: ERM head")
    assert not [line for line in lines if line.startswith("erm ")][0].endswith("ERM head")
    assert "kept ERM's head for: neurontune" in lines[-1]


def test_a_method_that_was_not_fitted_has_nothing_to_guard(harmed):
    table = pd.DataFrame({"method": ["dfr"], "labels_used": ["val_groups"], "selected": [False],
                          "not_fitted": ["no validation group labels"]})
    decision = guard(harmed, harmed["heads"]["erm"].to_dict(), GUARD, neurontune=harmed["candidates"], dfr=table)
    assert decision["methods"]["dfr"] == {"not_fitted": "no validation group labels",
                                          "reason": "not fitted: no validation group labels"}
    assert decision["methods"]["neurontune"]["fired"]


# ---------------------------------------------------------------- packaging.method: auto (choose_method_to_ship)


def choice_inputs(harmed) -> tuple[dict, dict]:
    """The validation cache (with ERM's logits) and ERM's own validation errors as the ``auto`` error set."""
    val = {**harmed["val"], "logits": head_logits(harmed["val"]["embeddings"], harmed["heads"]["erm"])}
    erm_errors = (val["logits"].argmax(axis=1) != val["y"]).astype(np.int8)
    return val, {"val_auto": erm_errors, "val_erm": erm_errors}


def test_auto_keeps_erm_when_the_only_candidate_harms_and_the_registered_model_says_why(harmed):
    val, error_sets = choice_inputs(harmed)
    harmful = {**harmed["heads"]["neurontune"].to_dict(), HELD_OUT_PREDICTION: head_predict(
        val["embeddings"][harmed["split"]["sel"]], harmed["heads"]["neurontune"])}
    unfitted = {NOT_FITTED: np.array("no early checkpoint")}
    choice = choose_method_to_ship(val, harmed["split"], error_sets, AUTO, neurontune=harmful, self=unfitted)
    assert choice["chosen"] == "erm" and "not eligible: neurontune" in choice["reason"]
    assert choice["not_candidates"] == {"self": "not fitted: no early checkpoint"}
    heads = {"erm_head": harmed["heads"]["erm"].to_dict(), "neurontune_head": harmful}
    model = build_model({"architecture": "small_cnn", "n_classes": 2, "in_channels": 3, "embedding_dim": 2, "width": 2})
    bundle = package_debiased_model({"config": model.config, "state_dict": model.state_dict(), "data_digest": None},
                                    {"inputs": np.zeros((2, 3, 8, 8), np.uint8)}, harmed["metrics"],
                                    {"digest": "d", "class_label_digest": "d"}, "toy", {**PACKAGING, "method": "auto"},
                                    GATE, method_choice=choice, **heads)
    assert bundle["method"] == "erm" and bundle["version_tags"]["choice.method"] == "erm"
    assert bundle["version_tags"]["choice.reason"] == choice["reason"] and "neurontune" in bundle["version_tags"]["choice.candidates"]
    assert bundle["evaluation"] == harmed["metrics"]["erm"] and HELD_OUT_PREDICTION not in bundle["head"]


def test_auto_ships_a_method_that_helps_and_only_the_listed_candidates(harmed):
    """Roles swapped: ERM leans on the attribute neuron, a candidate on the core neuron: the candidate ships."""
    sel, shortcut, core = harmed["split"]["sel"], harmed["heads"]["neurontune"], harmed["heads"]["erm"]
    val = {**harmed["val"], "logits": head_logits(harmed["val"]["embeddings"], shortcut)}
    errors = (val["logits"].argmax(axis=1) != val["y"]).astype(np.int8)
    heads = {"dfr_groupfree": {**core.to_dict(), HELD_OUT_PREDICTION: head_predict(val["embeddings"][sel], core)}}
    assert choose_method_to_ship(val, harmed["split"], {"val_auto": errors}, AUTO, **heads)["chosen"] == "dfr_groupfree"
    only_erm = choose_method_to_ship(val, harmed["split"], {"val_auto": errors}, {**AUTO, "candidates": ["erm"]}, **heads)
    assert only_erm["chosen"] == "erm" and [row["method"] for row in only_erm["candidates"]] == ["erm"]


def test_auto_names_a_head_without_held_out_predictions_and_an_unknown_error_set(harmed):
    val, error_sets = choice_inputs(harmed)
    with pytest.raises(ValueError, match="neurontune's head has no 'held_out_prediction'"):
        choose_method_to_ship(val, harmed["split"], error_sets, AUTO, neurontune=harmed["heads"]["neurontune"].to_dict())
    with pytest.raises(ValueError, match="error_set must name an error set of neuron_identification"):
        choose_method_to_ship(val, harmed["split"], error_sets, {**AUTO, "error_set": "early"})


def test_summary_says_what_auto_chose_and_why(harmed, tmp_path):
    from neurontune.console import summarise

    val, error_sets = choice_inputs(harmed)
    harmful = {**harmed["heads"]["neurontune"].to_dict(), HELD_OUT_PREDICTION: head_predict(
        val["embeddings"][harmed["split"]["sel"]], harmed["heads"]["neurontune"])}
    choice = choose_method_to_ship(val, harmed["split"], error_sets, AUTO, neurontune=harmful)
    metrics = {name: {"test": {**values["test"], "n_masked": 0}} for name, values in harmed["metrics"].items()}
    path = tmp_path / "metrics.json"
    path.write_text(json.dumps({**metrics, METHOD_CHOICE: choice}))
    lines = summarise(path).splitlines()
    assert f"auto (packaging.method: auto, no group labels) chose erm: {choice['reason']}" in lines
    assert lines[-1].startswith("neurontune ") and lines[-1].endswith("not eligible")
