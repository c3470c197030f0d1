"""The promotion gate as a pure function."""

from __future__ import annotations

import math

import pytest

from neurontune.tracking.promotion import ALREADY_CHAMPION, PROMOTED, REFUSED, Candidate, decide_promotion, validate_gate

GATE = {"min_delta": 0.01, "max_mean_acc_drop": 0.02}


def candidate(version, wga, mean, digest="d"):
    return Candidate(version=version, score=wga, mean_accuracy=mean, data_digest=digest)


def test_first_model_without_erm_reference_becomes_champion():
    decision = decide_promotion(candidate(1, 0.3, 0.8), None, **GATE)
    assert decision.status == PROMOTED and decision.promote and decision.compared_with is None
    assert decision.champion_version is None and decision.score_gain is None


def test_first_model_must_beat_erm():
    """ERM is the implicit first champion: same min_delta and mean-accuracy rule."""
    erm = candidate(0, 0.60, 0.90)
    promoted = decide_promotion(candidate(1, 0.62, 0.89), None, **GATE, erm=erm)
    assert promoted.status == PROMOTED and promoted.compared_with == "erm" and promoted.champion_version is None
    assert promoted.score_gain == pytest.approx(0.02) and promoted.erm_score == 0.60
    for challenger, reason in ((candidate(1, 0.605, 0.95), "min_delta"), (candidate(1, 0.50, 0.95), "min_delta"),
                               (candidate(1, 0.70, 0.85), "max_mean_acc_drop")):
        refused = decide_promotion(challenger, None, **GATE, erm=erm)
        assert refused.status == REFUSED and not refused.promote
        assert "no champion yet" in refused.reason and "ERM" in refused.reason and reason in refused.reason
    nan_erm = decide_promotion(candidate(1, 0.9, 0.9), None, **GATE, erm=candidate(0, math.nan, 0.9))
    assert nan_erm.status == REFUSED and "ERM has no finite" in nan_erm.reason


def test_with_a_champion_erm_is_only_recorded():
    decision = decide_promotion(candidate(3, 0.85, 0.90), candidate(2, 0.80, 0.91), **GATE, erm=candidate(0, 0.9, 0.95))
    assert decision.status == PROMOTED and decision.compared_with == "champion v2"
    assert decision.erm_score == 0.9


def test_promotes_when_wga_gain_and_mean_drop_both_hold():
    decision = decide_promotion(candidate(3, 0.85, 0.90), candidate(2, 0.80, 0.91), **GATE)
    assert decision.status == PROMOTED
    assert decision.score_gain == pytest.approx(0.05)
    assert decision.mean_accuracy_drop == pytest.approx(0.01)


@pytest.mark.parametrize(
    ("challenger", "champion", "reason"),
    [
        (candidate(3, 0.805, 0.95), candidate(2, 0.80, 0.91), "min_delta"),          # gain too small
        (candidate(3, 0.70, 0.95), candidate(2, 0.80, 0.91), "min_delta"),           # worse
        (candidate(3, 0.90, 0.85), candidate(2, 0.80, 0.91), "max_mean_acc_drop"),   # mean falls too much
        (candidate(1, 0.99, 0.99), candidate(2, 0.80, 0.91), "never demotes"),       # older version
        (candidate(3, 0.90, 0.90, "x"), candidate(2, 0.80, 0.91, "y"), "different data"),
        (candidate(3, math.nan, 0.90), candidate(2, 0.80, 0.91), "challenger has no finite"),
        (candidate(3, 0.90, 0.90), candidate(2, math.nan, math.nan), "champion v2 has no finite"),
    ],
    ids=["small_gain", "worse", "mean_drop", "older", "other_data", "nan_challenger", "nan_champion"],
)
def test_refusals_name_their_reason(challenger, champion, reason):
    decision = decide_promotion(challenger, champion, **GATE)
    assert decision.status == REFUSED and not decision.promote
    assert reason in decision.reason
    assert decision.champion_version == champion.version


def test_boundaries_are_inclusive():
    """A gain of exactly min_delta and a drop of exactly max_mean_acc_drop still promote."""
    decision = decide_promotion(candidate(3, 0.81, 0.89), candidate(2, 0.80, 0.91), **GATE)
    assert decision.status == PROMOTED


def test_same_version_is_not_a_refusal():
    decision = decide_promotion(candidate(2, 0.8, 0.9), candidate(2, 0.8, 0.9), **GATE)
    assert decision.status == ALREADY_CHAMPION and not decision.promote


def test_different_data_allowed_when_not_required():
    decision = decide_promotion(candidate(3, 0.9, 0.9, "x"), candidate(2, 0.8, 0.9, "y"), **GATE, require_same_data=False)
    assert decision.status == PROMOTED


@pytest.mark.parametrize("bad", [{"min_delta": -0.1}, {"max_mean_acc_drop": math.inf}, {"min_delta": "0.1"}])
def test_rejects_bad_thresholds(bad):
    with pytest.raises(ValueError, match="must be a finite number >= 0"):
        decide_promotion(candidate(2, 0.8, 0.9), None, **{**GATE, **bad})


def test_decision_serialises_with_every_number():
    record = decide_promotion(candidate(3, 0.85, 0.90), candidate(2, 0.80, 0.91), **GATE).to_dict()
    assert record["promote"] is True
    assert {"challenger_worst_group_accuracy", "champion_worst_group_accuracy", "challenger_mean_accuracy",
            "champion_mean_accuracy", "min_delta", "max_mean_acc_drop", "reason"} <= set(record)


VALID_GATE = {"split": "test", "min_delta": 0.005, "max_mean_acc_drop": 0.01, "require_same_data": True,
              "fail_on_refusal": False}


@pytest.mark.parametrize(("change", "message"), [
    ({"min_delt": 0.1}, "gate.min_delt: unknown key; did you mean 'min_delta'\\?"),
    ({"min_delta": "abc"}, "gate.min_delta: must be a number; got 'abc'"),
    ({"max_mean_acc_drop": -1}, "gate.max_mean_acc_drop: must be >= 0.0; got -1"),
    ({"min_delta": True}, "gate.min_delta: must be a number; got True"),
    ({"fail_on_refusal": "yes"}, "gate.fail_on_refusal: must be true or false; got 'yes'"),
    ({"split": "tset"}, "gate.split: must be one of \\['train', 'val', 'test'\\]; got 'tset'; did you mean 'test'\\?"),
    ({"split": "train"}, "split must be one of the evaluated splits \\['test', 'val'\\]; got 'train'"),
], ids=["typo", "text", "negative", "bool_number", "text_bool", "split_typo", "split_not_evaluated"])
def test_validate_gate_names_the_setting(change, message):
    gate = {key: value for key, value in VALID_GATE.items() if not (key == "min_delta" and "min_delt" in change)}
    with pytest.raises(ValueError, match=message):
        validate_gate({**gate, **change}, ["val", "test"])


def test_validate_gate_accepts_the_shipped_settings():
    import yaml

    from tests.conftest import PROJECT_ROOT

    shipped = yaml.safe_load((PROJECT_ROOT / "conf/base/parameters_model_promotion.yml").read_text())
    assert validate_gate(shipped["model_promotion"]["gate"], ["train", "val", "test"]) == shipped["model_promotion"]["gate"]
    with pytest.raises(ValueError, match="gate.fail_on_refusal: missing"):
        validate_gate({k: v for k, v in VALID_GATE.items() if k != "fail_on_refusal"}, ["test"])


# Exact reasons and fields: the decision is recorded on the version and read by people (mutation testing found
# these unpinned; docs/testing.md).

def test_every_reason_is_stated_exactly():
    champion = candidate(2, 0.80, 0.91, "0123456789abcdef")
    cases = [
        (decide_promotion(candidate(1, 0.3, 0.8), None, **GATE),
         "no champion yet and no ERM reference: the first model becomes champion"),
        (decide_promotion(candidate(3, math.nan, 0.9), champion, **GATE),
         "challenger has no finite worst-group / mean accuracy recorded"),
        (decide_promotion(candidate(1, 0.9, 0.9), None, **GATE, erm=candidate(0, math.nan, 0.9)),
         "no champion yet and ERM has no finite metrics to compare with"),
        (decide_promotion(candidate(2, 0.8, 0.9), champion, **GATE), "version 2 already holds the champion alias"),
        (decide_promotion(candidate(1, 0.99, 0.99), champion, **GATE),
         "challenger v1 is older than champion v2; the gate never demotes"),
        (decide_promotion(candidate(3, 0.9, 0.9), candidate(2, math.nan, 0.9), **GATE),
         "champion v2 has no finite metrics recorded; promote by hand after checking it"),
        (decide_promotion(candidate(3, 0.9, 0.9, "fedcba9876543210"), champion, **GATE),
         "evaluated on different data (digest fedcba987654 vs champion 0123456789ab); metrics are not comparable"),
    ]
    for decision, reason in cases:
        assert decision.reason == reason


def test_what_each_refusal_was_compared_with():
    champion = candidate(2, 0.80, 0.91)
    assert decide_promotion(candidate(1, 0.9, 0.9), None, **GATE, erm=candidate(0, math.nan, 0.9)).compared_with == "erm"
    for challenger, reference in ((candidate(1, 0.99, 0.99), champion), (candidate(3, 0.9, 0.9), candidate(2, math.nan, 0.9)),
                                  (candidate(3, 0.9, 0.9, "x"), candidate(2, 0.8, 0.9, "y"))):
        assert decide_promotion(challenger, reference, **GATE).compared_with == "champion v2"
    already = decide_promotion(candidate(2, 0.8, 0.9), champion, **GATE)
    assert already.champion_version == 2 and already.champion_score == 0.80
    unscored = decide_promotion(candidate(3, math.nan, 0.9), champion, **GATE)  # nothing compared: no gain or drop
    assert unscored.compared_with is None and unscored.score_gain is None and unscored.mean_accuracy_drop is None


@pytest.mark.parametrize(("challenger", "champion"), [
    (candidate(3, 0.9, math.nan), candidate(2, 0.8, 0.9)),   # a challenger without mean accuracy
    (candidate(3, 0.9, 0.9), candidate(2, math.nan, 0.9)),   # a champion without worst-group accuracy
    (candidate(3, 0.9, 0.9), candidate(2, 0.8, math.nan)),   # a champion without mean accuracy
], ids=["challenger_mean", "champion_wga", "champion_mean"])
def test_any_missing_number_refuses(challenger, champion):
    assert decide_promotion(challenger, champion, **GATE).status == REFUSED
    no_champion = decide_promotion(candidate(3, 0.9, 0.9), None, **GATE, erm=candidate(0, 0.5, math.nan))
    assert no_champion.status == REFUSED and no_champion.compared_with == "erm"


def test_the_tolerance_is_on_the_promoting_side_at_both_limits():
    """A gain short of min_delta by the 1e-12 tolerance, and a drop over max_mean_acc_drop by it, still promote."""
    gain = decide_promotion(candidate(3, 0.5 - 1e-12, 0.9), candidate(2, 0.0, 0.9), min_delta=0.5, max_mean_acc_drop=0.0)
    assert gain.status == PROMOTED
    drop = decide_promotion(candidate(3, 0.9, 0.0), candidate(2, 0.0, 1e-12), min_delta=0.0, max_mean_acc_drop=0.0)
    assert drop.status == PROMOTED


@pytest.mark.parametrize("name", ["min_delta", "max_mean_acc_drop"])
def test_zero_thresholds_are_allowed_and_bad_ones_are_named(name):
    zero = decide_promotion(candidate(3, 0.9, 0.9), candidate(2, 0.9, 0.9), **{"min_delta": 0.0, "max_mean_acc_drop": 0.0})
    assert zero.status == PROMOTED  # no gain and no drop pass zero thresholds
    with pytest.raises(ValueError, match=rf"^{name} must be a finite number >= 0; got -1"):
        decide_promotion(candidate(3, 0.9, 0.9), None, **{**GATE, name: -1})


def test_gate_errors_name_the_full_parameter_path():
    with pytest.raises(ValueError, match=r"model_promotion\.gate\.min_delta: must be a number"):
        validate_gate({**VALID_GATE, "min_delta": "abc"}, ["test"])


# Groups optional (issue 24): the gate decides on worst-class accuracy where the gate split has no group labels.

from neurontune.tracking.promotion import resolve_gate_metric  # noqa: E402

NO_GROUPS = {"worst_group_accuracy": "not measurable: no group labels", "worst_class_accuracy": 0.7, "mean_accuracy": 0.8}
WITH_GROUPS = {"worst_group_accuracy": 0.6, "worst_class_accuracy": 0.7, "mean_accuracy": 0.8}


def test_auto_picks_worst_group_accuracy_only_where_it_was_measured():
    assert resolve_gate_metric("auto", WITH_GROUPS) == "worst_group_accuracy"
    assert resolve_gate_metric("auto", NO_GROUPS) == "worst_class_accuracy"
    assert resolve_gate_metric("auto", {"worst_class_accuracy": 0.7}) == "worst_class_accuracy"
    assert resolve_gate_metric("worst_class_accuracy", WITH_GROUPS) == "worst_class_accuracy"
    with pytest.raises(ValueError, match=r"gate.metric is worst_group_accuracy, but test has no worst-group accuracy "
                                         r"\(not measurable: no group labels\); set metric: auto"):
        resolve_gate_metric("worst_group_accuracy", NO_GROUPS, "test")
    with pytest.raises(ValueError, match=r"gate.metric must be one of \['auto', 'worst_group_accuracy', "
                                         r"'worst_class_accuracy'\]; got 'wga'"):
        resolve_gate_metric("wga", WITH_GROUPS)


def test_a_worst_class_decision_names_its_metric_in_every_field_and_reason():
    erm = candidate(0, 0.60, 0.90)
    decision = decide_promotion(candidate(1, 0.62, 0.89), None, **GATE, erm=erm, metric="worst_class_accuracy")
    assert decision.status == PROMOTED and decision.metric == "worst_class_accuracy"
    assert decision.reason == ("no champion yet, so ERM is the reference (the implicit first champion): worst-class "
                               "accuracy gain +0.0200 >= 0.0100 and mean accuracy drop 0.0100 <= 0.0200")
    record = decision.to_dict()
    assert record["worst_class_accuracy_gain"] == pytest.approx(0.02) and record["erm_worst_class_accuracy"] == 0.60
    assert record["challenger_worst_class_accuracy"] == 0.62 and record["champion_worst_class_accuracy"] is None
    assert not [key for key in record if "worst_group" in key]
    refused = decide_promotion(candidate(3, 0.9, 0.8), candidate(2, 0.8, 0.9), **GATE, metric="worst_class_accuracy")
    assert refused.reason == ("mean accuracy drop 0.1000 > max_mean_acc_drop 0.0200 (worst-class accuracy gain +0.1000)")
    unscored = decide_promotion(candidate(3, math.nan, 0.9), None, **GATE, metric="worst_class_accuracy")
    assert unscored.reason == "challenger has no finite worst-class / mean accuracy recorded"
    assert decide_promotion(candidate(3, 0.9, 0.9), None, **GATE).metric == "worst_group_accuracy"  # the default
    with pytest.raises(ValueError, match=r"metric must be one of \['worst_group_accuracy', 'worst_class_accuracy'\]"):
        decide_promotion(candidate(3, 0.9, 0.9), None, **GATE, metric="auto")
