"""``neurontune ci-summary``: the run as Markdown for a CI job summary, a merge request note or a file.

:func:`format_ci_summary` is pure (plain dicts and lists in, a string out); :func:`gather_ci_inputs`
reads what it needs through the project's catalog, after a ``kedro run``. What a reviewer gets:
the before/after table (ERM against the packaged method, on worst-group accuracy where the data
has groups, worst-class accuracy otherwise), the gate's decision and its reason, the benchmark's
validity verdict, the masked neurons with a link to their evidence gallery, and the lineage URI.
"""

from __future__ import annotations

import math
import urllib.parse
from pathlib import Path

from neurontune.core.metrics import is_measured
from neurontune.methods import REFERENCE, VALIDITY

_VERDICTS = {"promoted": "promoted", "refused": "refused", "already_champion": "already champion"}
_WOULD = {"promoted": "would promote", "refused": "would refuse", "already_champion": "already champion"}


def headline_metric(split_metrics: dict) -> tuple[str, str]:
    """``(key, label)`` of the number to compare: worst-group accuracy when the split has groups, else
    worst-class accuracy (data evaluated without group labels has no finite worst-group accuracy)."""
    if is_measured(split_metrics.get("worst_group_accuracy")):
        return "worst_group_accuracy", "worst-group accuracy (WGA)"
    return "worst_class_accuracy", "worst-class accuracy"


def format_ci_summary(metrics: dict, decision: dict | None, method: str, *, split: str = "test",
                      masked: list[int] | None = None, n_neurons: int | None = None, gallery: str | None = None,
                      model_page: str | None = None) -> str:
    """The Markdown summary.

    Parameters
    ----------
    metrics : dict
        ``metrics.json``: ``{method: {split: {metric: value}}}`` and the report sections.
    decision : dict or None
        ``promotion_decision.json`` (None when the gate did not run).
    method : str
        The packaged method (``model_promotion.packaging.method``).
    masked : list of int, optional
        Indices of the neurons the method's head suppresses; ``n_neurons`` is the embedding width.
    gallery, model_page : str, optional
        Links: the evidence gallery, and the version's page on the tracking server.
    """
    if method not in metrics or REFERENCE not in metrics:
        raise ValueError(f"metrics has no {method!r} or {REFERENCE!r} entry (methods: "
                         f"{sorted(k for k in metrics if isinstance(metrics[k], dict) and split in metrics[k])}); "
                         "run `kedro run` first, with the same environment.")
    if split not in metrics[method] or split not in metrics[REFERENCE]:
        raise ValueError(f"metrics has no {split!r} split for {method!r}; evaluated: {sorted(metrics[method])}.")
    erm, ours = metrics[REFERENCE][split], metrics[method][split]
    name = (decision or {}).get("registered_model_name", f"{method}")
    lines = [f"## NeuronTune · {name}", "", *_gate_lines(decision), "", *_table(erm, ours, method, split),
             "", *_validity_lines(metrics.get(VALIDITY, {}).get(split)), "",
             *_mask_lines(masked, n_neurons, gallery, method), "", *_lineage_lines(decision, model_page)]
    guard = (metrics.get("harm", {}).get(method, {}).get("selection") or {})
    if guard.get("guard_fired"):
        lines += ["", f"The do-no-harm guard fired for `{method}`: the registered model keeps ERM's head."]
    return "\n".join(lines).rstrip() + "\n"


def _gate_lines(decision: dict | None) -> list[str]:
    if decision is None:
        return ["**Gate:** did not run (no promotion decision recorded)."]
    dry = bool(decision.get("dry_run"))
    verdict = (_WOULD if dry else _VERDICTS).get(decision["status"], decision["status"])
    prefix = "**Gate (dry run — nothing registered, no alias moved):**" if dry else "**Gate:**"
    against = {"erm": "ERM, as there is no champion yet", None: "nothing"}.get(decision.get("compared_with"),
                                                                              decision.get("compared_with"))
    return [f"{prefix} {verdict} v{decision['challenger_version']} (against {against}, {decision['split']} split) — "
            f"{decision['reason']}.", f"Registration: {decision.get('registration', 'unknown')}."]


def _table(erm: dict, ours: dict, method: str, split: str) -> list[str]:
    key, label = headline_metric(erm)
    rows = [(label, key), ("mean accuracy", "mean_accuracy"), ("neurons masked", "n_masked")]
    lines = [f"| {split} split | ERM (before) | {method} (after) | change |", "|---|---:|---:|---:|"]
    for title, metric in rows:
        before, after = erm.get(metric), ours.get(metric)
        lines.append(f"| {title} | {_number(before, metric)} | {_number(after, metric)} | {_change(before, after, metric)} |")
    return lines


def _number(value, metric: str) -> str:
    if value is None or not math.isfinite(float(value)):
        return "n/a"
    return f"{int(value)}" if metric == "n_masked" else f"{float(value):.3f}"


def _change(before, after, metric: str) -> str:
    if before is None or after is None or not (math.isfinite(float(before)) and math.isfinite(float(after))):
        return "n/a"
    difference = float(after) - float(before)
    return f"{int(difference):+d}" if metric == "n_masked" else f"{difference:+.3f}"


def _validity_lines(card: dict | None) -> list[str]:
    from neurontune.core.metrics import validity_warning

    if not card:
        return ["**Validity:** no validity card in metrics.json."]
    if not is_measured(card.get("headroom")):  # no group labels: the card holds the reason, not numbers
        return [f"**Validity:** {card.get('headroom') or 'not measurable'}."]
    numbers = (f"ERM WGA {card['erm_worst_group_accuracy']:.3f}, group-balanced oracle WGA "
               f"{card['oracle_worst_group_accuracy']:.3f}, headroom {card['headroom']:+.3f}")
    warning = validity_warning(card)
    return [f"**Validity:** ⚠️ {warning} ({numbers})" if warning else
            f"**Validity:** the benchmark can separate debiasing methods ({numbers})."]


def _mask_lines(masked: list[int] | None, n_neurons: int | None, gallery: str | None, method: str) -> list[str]:
    if masked is None:
        return [f"**Masked neurons:** `{method}` has no neuron mask."]
    if not masked:
        return [f"**Masked neurons:** none of {n_neurons}."]
    link = f" — [evidence gallery]({gallery})" if gallery else ""
    return [f"**Masked neurons** ({len(masked)} of {n_neurons}): {', '.join(str(index) for index in masked)}{link}"]


def _lineage_lines(decision: dict | None, model_page: str | None) -> list[str]:
    if decision is None:
        return []
    name, version = decision["registered_model_name"], decision["challenger_version"]
    if decision.get("dry_run"):
        champion = decision.get("champion_version")
        current = f"`models:/{name}/{champion}` (the current champion)" if champion is not None else "no champion yet"
        return [f"**Lineage:** not registered (dry run); {current}."]
    page = f" ([in MLflow]({model_page}))" if model_page else ""
    return [f"**Lineage:** `models:/{name}/{version}`{page} — `neurontune lineage models:/{name}/{version} --verify`"]


def model_version_page(tracking_uri: str | None, name: str, version) -> str | None:
    """The MLflow UI page of a model version on an HTTP(S) server (user and password stripped), else None."""
    parts = urllib.parse.urlsplit(tracking_uri or "")
    if parts.scheme not in ("http", "https"):
        return None
    host = parts.hostname + (f":{parts.port}" if parts.port else "")
    base = urllib.parse.urlunsplit((parts.scheme, host, parts.path.rstrip("/"), "", ""))
    return f"{base}/#/models/{urllib.parse.quote(name)}/versions/{version}"


def gather_ci_inputs(env: str | None, artifacts_url: str | None = None, project_dir: Path | None = None) -> dict:
    """The keyword arguments of :func:`format_ci_summary` (except ``split`` and ``model_page``), read through the
    catalog of Kedro environment ``env``. ``artifacts_url``: where the CI job's artifacts are browsable
    (links become ``<artifacts_url>/<path relative to the project>``)."""
    from neurontune.stage_status import environment_catalog
    from neurontune.core import LinearHead
    from neurontune.methods import load_registry

    project_dir = project_dir or Path.cwd()
    catalog = environment_catalog(Path.cwd(), env)
    decision = catalog.load("promotion_decision") if catalog.exists("promotion_decision") else None
    method = (decision or {}).get("method") or _packaged_method(env)
    registry = load_registry(project_dir)
    if method not in registry:
        raise ValueError(f"unknown packaged method {method!r}; known: {sorted(registry)}.")
    head = catalog.load(registry[method].head_dataset)
    suppressed = LinearHead.from_arrays(head["weight"], head["bias"], head.get("keep")).suppressed  # (M,) bool
    masked = None if "keep" not in head else [int(index) for index in suppressed.nonzero()[0]]
    gallery_name = f"mask_evidence.{method}_gallery"
    gallery = None
    if masked and catalog.exists(gallery_name):
        path = str(catalog.get(gallery_name)._describe().get("dataset", {}).get("filepath")
                   or catalog.get(gallery_name)._describe().get("filepath"))
        gallery = _link(path, artifacts_url, project_dir)
    return {"metrics": catalog.load("metrics"), "decision": decision, "method": method, "masked": masked,
            "n_neurons": int(head["weight"].shape[1]), "gallery": gallery}


def _packaged_method(env: str | None) -> str:
    from kedro.config import OmegaConfigLoader

    from neurontune.settings import CONFIG_LOADER_ARGS

    loader = OmegaConfigLoader(conf_source=str(Path.cwd() / "conf"), env=env, **CONFIG_LOADER_ARGS)
    return loader["parameters"]["model_promotion"]["packaging"]["method"]


def _link(path: str, artifacts_url: str | None, project_dir: Path) -> str:
    if "://" in path:
        return path
    relative = Path(path).resolve().relative_to(project_dir.resolve()) if Path(path).is_absolute() else Path(path)
    return f"{artifacts_url.rstrip('/')}/{relative.as_posix()}" if artifacts_url else relative.as_posix()
