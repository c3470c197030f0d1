"""The promotion gate as a pure function."""

from __future__ import annotations

import math

import pytest

from neurontune.tracking.promotion import ALREADY_CHAMPION, PROMOTED, REFUSED, Candidate, decide_promotion

GATE = {"min_delta": 0.01, "max_mean_acc_drop": 0.02}


def candidate(version, wga, mean, digest="d"):
    return Candidate(version=version, worst_group_accuracy=wga, mean_accuracy=mean, data_digest=digest)


def test_first_model_becomes_champion():
    decision = decide_promotion(candidate(1, 0.3, 0.8), None, **GATE)
    assert decision.status == PROMOTED and decision.promote
    assert decision.champion_version is None and decision.worst_group_accuracy_gain is None


def test_promotes_when_wga_gain_and_mean_drop_both_hold():
    decision = decide_promotion(candidate(3, 0.85, 0.90), candidate(2, 0.80, 0.91), **GATE)
    assert decision.status == PROMOTED
    assert decision.worst_group_accuracy_gain == pytest.approx(0.05)
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
