"""The promotion gate as a pure function: should the challenger replace the champion?

No MLflow here; :mod:`neurontune.tracking.registry` applies the decision.
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

    @property
    def promote(self) -> bool:
        return self.status == PROMOTED

    def to_dict(self) -> dict:
        return {**asdict(self), "promote": self.promote}


def decide_promotion(
    challenger: Candidate,
    champion: Candidate | None,
    *,
    min_delta: float,
    max_mean_acc_drop: float,
    require_same_data: bool = True,
) -> PromotionDecision:
    """Promote only when worst-group accuracy rises by at least ``min_delta`` and mean accuracy
    falls by at most ``max_mean_acc_drop``. The first model (no champion) is promoted; an older
    version than the champion never is (no automatic demotion).

    Parameters
    ----------
    challenger, champion : Candidate
        ``champion`` is None when no version holds the champion alias yet.
    min_delta : float >= 0
        Required gain in worst-group accuracy (challenger − champion >= min_delta).
    max_mean_acc_drop : float >= 0
        Largest allowed fall in mean accuracy (champion − challenger <= max_mean_acc_drop).
    require_same_data : bool
        Refuse when both data digests are known and differ: numbers on different
        test sets are not comparable.
    """
    for name, value in {"min_delta": min_delta, "max_mean_acc_drop": max_mean_acc_drop}.items():
        if not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
            raise ValueError(f"{name} must be a finite number >= 0; got {value!r}.")
    base = {
        "challenger_version": int(challenger.version),
        "challenger_worst_group_accuracy": float(challenger.worst_group_accuracy),
        "challenger_mean_accuracy": float(challenger.mean_accuracy),
        "min_delta": float(min_delta),
        "max_mean_acc_drop": float(max_mean_acc_drop),
    }
    if not _finite(challenger.worst_group_accuracy, challenger.mean_accuracy):
        return _decision(REFUSED, "challenger has no finite worst-group / mean accuracy recorded", base, champion)
    if champion is None:
        return _decision(PROMOTED, "no champion yet: the first model becomes champion", base, None)
    if int(champion.version) == int(challenger.version):
        return _decision(ALREADY_CHAMPION, f"version {challenger.version} already holds the champion alias", base, champion)
    if int(challenger.version) < int(champion.version):
        return _decision(REFUSED, f"challenger v{challenger.version} is older than champion v{champion.version}; "
                                  "the gate never demotes", base, champion)
    if not _finite(champion.worst_group_accuracy, champion.mean_accuracy):
        return _decision(REFUSED, f"champion v{champion.version} has no finite metrics recorded; promote by hand "
                                  "after checking it", base, champion)
    if require_same_data and challenger.data_digest and champion.data_digest and challenger.data_digest != champion.data_digest:
        return _decision(REFUSED, f"evaluated on different data (digest {challenger.data_digest[:12]} vs champion "
                                  f"{champion.data_digest[:12]}); metrics are not comparable", base, champion)
    gain = challenger.worst_group_accuracy - champion.worst_group_accuracy
    drop = champion.mean_accuracy - challenger.mean_accuracy
    # A tolerance of 1e-12 so a gain of exactly min_delta is not lost to float rounding.
    if gain + 1e-12 < min_delta:
        reason = f"worst-group accuracy gain {gain:+.4f} < min_delta {min_delta:.4f}"
        return _decision(REFUSED, reason, base, champion)
    if drop - 1e-12 > max_mean_acc_drop:
        reason = f"mean accuracy drop {drop:.4f} > max_mean_acc_drop {max_mean_acc_drop:.4f} (WGA gain {gain:+.4f})"
        return _decision(REFUSED, reason, base, champion)
    reason = f"worst-group accuracy gain {gain:+.4f} >= {min_delta:.4f} and mean accuracy drop {drop:.4f} <= {max_mean_acc_drop:.4f}"
    return _decision(PROMOTED, reason, base, champion)


def _decision(status: str, reason: str, base: dict, champion: Candidate | None) -> PromotionDecision:
    if champion is None:
        rest = dict.fromkeys(("champion_version", "champion_worst_group_accuracy", "worst_group_accuracy_gain",
                              "champion_mean_accuracy", "mean_accuracy_drop"))
    else:
        rest = {
            "champion_version": int(champion.version),
            "champion_worst_group_accuracy": float(champion.worst_group_accuracy),
            "champion_mean_accuracy": float(champion.mean_accuracy),
            "worst_group_accuracy_gain": float(base["challenger_worst_group_accuracy"] - champion.worst_group_accuracy),
            "mean_accuracy_drop": float(champion.mean_accuracy - base["challenger_mean_accuracy"]),
        }
    return PromotionDecision(status=status, reason=reason, **base, **rest)


def _finite(*values) -> bool:
    return all(value is not None and math.isfinite(float(value)) for value in values)
