"""The promotion gate as a pure function: should the challenger replace the champion?

ERM is the implicit first champion: with no ``@champion`` yet, the challenger must beat
ERM's own numbers by the same margins. No MLflow here; :mod:`neurontune.tracking.registry`
applies the decision.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

PROMOTED = "promoted"
REFUSED = "refused"
ALREADY_CHAMPION = "already_champion"


class PromotionRefused(RuntimeError):
    """Raised by the gate when the challenger is refused and the run must fail (CI gating)."""


@dataclass(frozen=True)
class Candidate:
    """A registered model version and the evaluation numbers the gate compares."""

    version: int
    worst_group_accuracy: float
    mean_accuracy: float
    data_digest: str | None = None


@dataclass(frozen=True)
class PromotionDecision:
    status: str  # promoted | refused | already_champion
    reason: str
    challenger_version: int
    champion_version: int | None
    challenger_worst_group_accuracy: float
    champion_worst_group_accuracy: float | None
    worst_group_accuracy_gain: float | None
    challenger_mean_accuracy: float
    champion_mean_accuracy: float | None
    mean_accuracy_drop: float | None
    min_delta: float
    max_mean_acc_drop: float
    compared_with: str | None = None  # "champion vN", "erm" (no champion yet) or None (nothing to compare)
    erm_worst_group_accuracy: float | None = None
    erm_mean_accuracy: float | None = None

    @property
    def promote(self) -> bool:
        return self.status == PROMOTED

    def to_dict(self) -> dict:
        return {**asdict(self), "promote": self.promote}


def validate_gate(gate: dict, splits) -> dict:
    """Check every gate setting before anything is registered; return them as a plain dict.

    Parameters
    ----------
    gate : dict
        ``model_promotion.gate``; its keys, types and ranges are :class:`neurontune.parameters.Gate`.
    splits : iterable of str
        The splits the challenger was evaluated on; ``split`` must be one of them.
    """
    from neurontune.parameters import Gate, validate_block

    validate_block(Gate, gate, ("model_promotion", "gate"))
    splits = sorted(splits)
    if gate["split"] not in splits:
        raise ValueError(f"model_promotion.gate.split must be one of the evaluated splits {splits}; got {gate['split']!r}.")
    return dict(gate)


def decide_promotion(
    challenger: Candidate,
    champion: Candidate | None,
    *,
    min_delta: float,
    max_mean_acc_drop: float,
    require_same_data: bool = True,
    erm: Candidate | None = None,
) -> PromotionDecision:
    """Promote only when worst-group accuracy rises by at least ``min_delta`` and mean accuracy
    falls by at most ``max_mean_acc_drop``, against the champion or, when there is none yet,
    against ERM (the implicit first champion). An older version than the champion is never
    promoted (no automatic demotion).

    Parameters
    ----------
    challenger, champion : Candidate
        ``champion`` is None when no version holds the champion alias yet.
    min_delta : float >= 0
        Required gain in worst-group accuracy (challenger − reference >= min_delta).
    max_mean_acc_drop : float >= 0
        Largest allowed fall in mean accuracy (reference − challenger <= max_mean_acc_drop).
    require_same_data : bool
        Refuse when both data digests are known and differ: numbers on different
        test sets are not comparable.
    erm : Candidate, optional
        ERM's numbers on the same split and data (``version`` is ignored): the reference
        when there is no champion. Without it a first challenger is promoted unchecked.
    """
    for name, value in {"min_delta": min_delta, "max_mean_acc_drop": max_mean_acc_drop}.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
            raise ValueError(f"{name} must be a finite number >= 0; got {value!r}.")
    base = {
        "challenger_version": int(challenger.version),
        "challenger_worst_group_accuracy": float(challenger.worst_group_accuracy),
        "challenger_mean_accuracy": float(challenger.mean_accuracy),
        "min_delta": float(min_delta),
        "max_mean_acc_drop": float(max_mean_acc_drop),
        "erm_worst_group_accuracy": None if erm is None else float(erm.worst_group_accuracy),
        "erm_mean_accuracy": None if erm is None else float(erm.mean_accuracy),
    }
    if not _finite(challenger.worst_group_accuracy, challenger.mean_accuracy):
        return _decision(REFUSED, "challenger has no finite worst-group / mean accuracy recorded", base, champion)
    if champion is None:
        if erm is None:
            return _decision(PROMOTED, "no champion yet and no ERM reference: the first model becomes champion", base, None)
        if not _finite(erm.worst_group_accuracy, erm.mean_accuracy):
            return _decision(REFUSED, "no champion yet and ERM has no finite metrics to compare with", base, None, "erm")
        verdict, reason = _compare(challenger, erm, min_delta, max_mean_acc_drop)
        return _decision(verdict, f"no champion yet, so ERM is the reference (the implicit first champion): {reason}",
                         base, None, "erm")
    compared = f"champion v{champion.version}"
    if int(champion.version) == int(challenger.version):
        return _decision(ALREADY_CHAMPION, f"version {challenger.version} already holds the champion alias", base, champion)
    if int(challenger.version) < int(champion.version):
        return _decision(REFUSED, f"challenger v{challenger.version} is older than champion v{champion.version}; "
                                  "the gate never demotes", base, champion, compared)
    if not _finite(champion.worst_group_accuracy, champion.mean_accuracy):
        return _decision(REFUSED, f"champion v{champion.version} has no finite metrics recorded; promote by hand "
                                  "after checking it", base, champion, compared)
    if require_same_data and challenger.data_digest and champion.data_digest and challenger.data_digest != champion.data_digest:
        return _decision(REFUSED, f"evaluated on different data (digest {challenger.data_digest[:12]} vs champion "
                                  f"{champion.data_digest[:12]}); metrics are not comparable", base, champion, compared)
    verdict, reason = _compare(challenger, champion, min_delta, max_mean_acc_drop)
    return _decision(verdict, reason, base, champion, compared)


def _compare(challenger: Candidate, reference: Candidate, min_delta: float, max_mean_acc_drop: float) -> tuple[str, str]:
    gain = challenger.worst_group_accuracy - reference.worst_group_accuracy
    drop = reference.mean_accuracy - challenger.mean_accuracy
    # A tolerance of 1e-12 so a gain of exactly min_delta is not lost to float rounding.
    if gain + 1e-12 < min_delta:
        return REFUSED, f"worst-group accuracy gain {gain:+.4f} < min_delta {min_delta:.4f}"
    if drop - 1e-12 > max_mean_acc_drop:
        return REFUSED, f"mean accuracy drop {drop:.4f} > max_mean_acc_drop {max_mean_acc_drop:.4f} (WGA gain {gain:+.4f})"
    return PROMOTED, (f"worst-group accuracy gain {gain:+.4f} >= {min_delta:.4f} and mean accuracy drop {drop:.4f} "
                      f"<= {max_mean_acc_drop:.4f}")


def _decision(status: str, reason: str, base: dict, champion: Candidate | None, compared_with: str | None = None) -> PromotionDecision:
    rest = dict.fromkeys(("champion_version", "champion_worst_group_accuracy", "worst_group_accuracy_gain",
                          "champion_mean_accuracy", "mean_accuracy_drop"))
    if champion is not None:
        rest.update(champion_version=int(champion.version), champion_worst_group_accuracy=float(champion.worst_group_accuracy),
                    champion_mean_accuracy=float(champion.mean_accuracy))
    reference = {"erm": (base["erm_worst_group_accuracy"], base["erm_mean_accuracy"])}.get(
        compared_with, (rest["champion_worst_group_accuracy"], rest["champion_mean_accuracy"]))
    if compared_with is not None and _finite(*reference):
        rest["worst_group_accuracy_gain"] = float(base["challenger_worst_group_accuracy"] - reference[0])
        rest["mean_accuracy_drop"] = float(reference[1] - base["challenger_mean_accuracy"])
    return PromotionDecision(status=status, reason=reason, compared_with=compared_with, **base, **rest)


def _finite(*values) -> bool:
    return all(value is not None and math.isfinite(float(value)) for value in values)
