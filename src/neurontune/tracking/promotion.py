"""The promotion gate as a pure function: should the challenger replace the champion?

ERM is the implicit first champion: with no ``@champion`` yet, the challenger must beat
ERM's own numbers by the same margins. The gate decides on worst-group accuracy where the gate
split has group labels, else on worst-class accuracy (``model_promotion.gate.metric``), and says
which. No MLflow here; :mod:`neurontune.tracking.registry` applies the decision.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from neurontune.core.metrics import AUTO, GATE_METRICS

PROMOTED = "promoted"
REFUSED = "refused"
ALREADY_CHAMPION = "already_champion"

#: Model version tags of a method chosen by ``packaging.method: auto``: the packaging node sets them, the registry
#: reads the reason back into the version's description.
CHOICE_TAG_PREFIX = "choice."
CHOICE_REASON_TAG = CHOICE_TAG_PREFIX + "reason"


class PromotionRefused(RuntimeError):
    """Raised by the gate when the challenger is refused and the run must fail (CI gating)."""


#: The numbers the gate may decide on (``model_promotion.gate.metric``); ``auto`` = worst-group accuracy where the
#: gate split has group labels, else worst-class accuracy (class labels only).
METRIC_LABELS = {"worst_group_accuracy": "worst-group accuracy", "worst_class_accuracy": "worst-class accuracy"}


@dataclass(frozen=True)
class Candidate:
    """A registered model version and the evaluation numbers the gate compares: ``score`` is its value of the
    gate metric (NaN when not recorded)."""

    version: int
    score: float
    mean_accuracy: float
    data_digest: str | None = None


@dataclass(frozen=True)
class PromotionDecision:
    """The gate's decision. ``to_dict`` names the score fields after ``metric`` (``challenger_worst_class_accuracy``,
    ``worst_class_accuracy_gain``, ``erm_worst_class_accuracy`` …), so every record and tag says what was compared."""

    status: str  # promoted | refused | already_champion
    reason: str
    challenger_version: int
    champion_version: int | None
    challenger_score: float
    champion_score: float | None
    score_gain: float | None
    challenger_mean_accuracy: float
    champion_mean_accuracy: float | None
    mean_accuracy_drop: float | None
    min_delta: float
    max_mean_acc_drop: float
    compared_with: str | None = None  # "champion vN", "erm" (no champion yet) or None (nothing to compare)
    erm_score: float | None = None
    erm_mean_accuracy: float | None = None
    metric: str = GATE_METRICS[0]

    @property
    def promote(self) -> bool:
        return self.status == PROMOTED

    def to_dict(self) -> dict:
        named = {"challenger_score": f"challenger_{self.metric}", "champion_score": f"champion_{self.metric}",
                 "score_gain": f"{self.metric}_gain", "erm_score": f"erm_{self.metric}"}
        return {named.get(key, key): value for key, value in asdict(self).items()} | {"promote": self.promote}


def resolve_gate_metric(setting: str, reference: dict, split: str = "the gate split") -> str:
    """The metric the gate decides on: ``setting`` (``model_promotion.gate.metric``), with ``auto`` resolved by
    ``reference`` — one method's numbers on the gate split: worst-group accuracy where it was measured (the split
    has group labels), else worst-class accuracy. Asking for worst-group accuracy on a split without group
    labels is an error."""
    from neurontune.core.metrics import is_measured

    if setting not in (AUTO, *GATE_METRICS):
        raise ValueError(f"model_promotion.gate.metric must be one of {[AUTO, *GATE_METRICS]}; got {setting!r}.")
    labelled = is_measured(reference.get("worst_group_accuracy"))
    if setting == GATE_METRICS[0] and not labelled:
        raise ValueError(f"model_promotion.gate.metric is worst_group_accuracy, but {split} has no worst-group accuracy "
                         f"({reference.get('worst_group_accuracy', 'not recorded')}); set metric: auto or "
                         "worst_class_accuracy, or a gate split with group labels.")
    if setting == AUTO:
        return GATE_METRICS[0] if labelled else GATE_METRICS[1]
    return setting


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
    metric: str = GATE_METRICS[0],
) -> PromotionDecision:
    """Promote only when the gate metric (the candidates' ``score``: worst-group accuracy, or worst-class
    accuracy on data without group labels) rises by at least ``min_delta`` and mean accuracy
    falls by at most ``max_mean_acc_drop``, against the champion or, when there is none yet,
    against ERM (the implicit first champion). An older version than the champion is never
    promoted (no automatic demotion).

    Parameters
    ----------
    challenger, champion : Candidate
        ``champion`` is None when no version holds the champion alias yet.
    min_delta : float >= 0
        Required gain in the gate metric (challenger − reference >= min_delta).
    max_mean_acc_drop : float >= 0
        Largest allowed fall in mean accuracy (reference − challenger <= max_mean_acc_drop).
    require_same_data : bool
        Refuse when both data digests are known and differ: numbers on different
        test sets are not comparable.
    erm : Candidate, optional
        ERM's numbers on the same split and data (``version`` is ignored): the reference
        when there is no champion. Without it a first challenger is promoted unchecked.
    metric : one of :data:`GATE_METRICS`
        What ``score`` holds; named in the decision and its reasons.
    """
    if metric not in GATE_METRICS:
        raise ValueError(f"metric must be one of {list(GATE_METRICS)}; got {metric!r}.")
    label = METRIC_LABELS[metric]
    for name, value in {"min_delta": min_delta, "max_mean_acc_drop": max_mean_acc_drop}.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
            raise ValueError(f"{name} must be a finite number >= 0; got {value!r}.")
    base = {
        "challenger_version": int(challenger.version),
        "challenger_score": float(challenger.score),
        "challenger_mean_accuracy": float(challenger.mean_accuracy),
        "min_delta": float(min_delta),
        "max_mean_acc_drop": float(max_mean_acc_drop),
        "erm_score": None if erm is None else float(erm.score),
        "erm_mean_accuracy": None if erm is None else float(erm.mean_accuracy),
        "metric": metric,
    }
    if not _finite(challenger.score, challenger.mean_accuracy):
        return _decision(REFUSED, f"challenger has no finite {label.removesuffix(' accuracy')} / mean accuracy recorded",
                         base, champion)
    if champion is None:
        if erm is None:
            return _decision(PROMOTED, "no champion yet and no ERM reference: the first model becomes champion", base, None)
        if not _finite(erm.score, erm.mean_accuracy):
            return _decision(REFUSED, "no champion yet and ERM has no finite metrics to compare with", base, None, "erm")
        verdict, reason = _compare(challenger, erm, min_delta, max_mean_acc_drop, label)
        return _decision(verdict, f"no champion yet, so ERM is the reference (the implicit first champion): {reason}",
                         base, None, "erm")
    compared = f"champion v{champion.version}"
    if int(champion.version) == int(challenger.version):
        return _decision(ALREADY_CHAMPION, f"version {challenger.version} already holds the champion alias", base, champion)
    if int(challenger.version) < int(champion.version):
        return _decision(REFUSED, f"challenger v{challenger.version} is older than champion v{champion.version}; "
                                  "the gate never demotes", base, champion, compared)
    if not _finite(champion.score, champion.mean_accuracy):
        return _decision(REFUSED, f"champion v{champion.version} has no finite metrics recorded; promote by hand "
                                  "after checking it", base, champion, compared)
    if require_same_data and challenger.data_digest and champion.data_digest and challenger.data_digest != champion.data_digest:
        return _decision(REFUSED, f"evaluated on different data (digest {challenger.data_digest[:12]} vs champion "
                                  f"{champion.data_digest[:12]}); metrics are not comparable", base, champion, compared)
    verdict, reason = _compare(challenger, champion, min_delta, max_mean_acc_drop, label)
    return _decision(verdict, reason, base, champion, compared)


def _compare(challenger: Candidate, reference: Candidate, min_delta: float, max_mean_acc_drop: float,
             label: str) -> tuple[str, str]:
    gain = challenger.score - reference.score
    drop = reference.mean_accuracy - challenger.mean_accuracy
    # A tolerance of 1e-12 so a gain of exactly min_delta is not lost to float rounding.
    if gain + 1e-12 < min_delta:
        return REFUSED, f"{label} gain {gain:+.4f} < min_delta {min_delta:.4f}"
    if drop - 1e-12 > max_mean_acc_drop:
        return REFUSED, f"mean accuracy drop {drop:.4f} > max_mean_acc_drop {max_mean_acc_drop:.4f} ({label} gain {gain:+.4f})"
    return PROMOTED, (f"{label} gain {gain:+.4f} >= {min_delta:.4f} and mean accuracy drop {drop:.4f} "
                      f"<= {max_mean_acc_drop:.4f}")


def _decision(status: str, reason: str, base: dict, champion: Candidate | None, compared_with: str | None = None) -> PromotionDecision:
    rest = dict.fromkeys(("champion_version", "champion_score", "score_gain", "champion_mean_accuracy", "mean_accuracy_drop"))
    if champion is not None:
        rest.update(champion_version=int(champion.version), champion_score=float(champion.score),
                    champion_mean_accuracy=float(champion.mean_accuracy))
    reference = {"erm": (base["erm_score"], base["erm_mean_accuracy"])}.get(
        compared_with, (rest["champion_score"], rest["champion_mean_accuracy"]))
    if compared_with is not None and _finite(*reference):
        rest["score_gain"] = float(base["challenger_score"] - reference[0])
        rest["mean_accuracy_drop"] = float(reference[1] - base["challenger_mean_accuracy"])
    return PromotionDecision(status=status, reason=reason, compared_with=compared_with, **base, **rest)


def _finite(*values) -> bool:
    return all(value is not None and math.isfinite(float(value)) for value in values)
