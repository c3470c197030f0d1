"""The benchmark runner: benchmarks × ERM modes × validation regimes × seeds, NeuronTune beside its peers.

Each (benchmark, ERM mode, regime, seed) is one ``kedro run --env BENCHMARK`` in a subprocess,
logged as its own MLflow run nested under one parent run; the report reads every number back
from those runs: test metrics and the validity card from the ``reporting/metrics.json``
artifact, per-node wall times from the ``timing.<node>_seconds`` metrics of
:class:`neurontune.hooks.NodeTimingHook`. The methods, their labels and their nodes come from
the method registry (``neurontune.methods``). Run data go to ``data/benchmark_runs/<env>/``
(``NEURONTUNE_DATA_ROOT``), so a report never overwrites the project's own ``data/<env>/``::

    python -m benchmarks.run                                   # colored_mnist, both regimes, 5 seeds
    python -m benchmarks.run --benchmarks waterbirds_like --erm-modes linear_probe,finetune --seeds 3
    python -m benchmarks.run --seed-list 0,7 --regimes correlated --params erm_training.modes.finetune.epochs=2
    python -m benchmarks.run --report-only --output benchmarks/results/waterbirds_like
    python -m benchmarks.run --resume PARENT_RUN_ID            # keep finished child runs, run the rest

Writes ``<output>/REPORT.md``, ``<output>/worst_group_accuracy.png`` and ``<output>/runs.csv``
(one row per method per run) with ``runs_meta.json``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd

logger = logging.getLogger("benchmarks.run")

PROJECT_ROOT = Path(__file__).resolve().parents[1]

#: validation regime → P(attribute = class) in validation (train keeps its own correlation).
REGIMES = {"balanced": 0.5, "correlated": 0.95}
REGIME_PARAMETER = "data_versioning.val_correlation"
#: ERM modes; ``default`` keeps the benchmark environment's own mode.
ERM_MODES = ("default", "linear_probe", "finetune")
MODE_PARAMETER = "erm_training.mode"
#: every seed a run changes: the data, ERM, the validation halves, NeuronTune's and the baselines' retraining.
SEED_PARAMETERS = (
    "data_versioning.seed",
    "erm_training.seed",
    "neuron_identification.selection_split.seed",
    "neurontune_regulation.tuning.seed",
    "baselines.settings.seed",
)
IDENTIFICATION_NODE = "score_identification_neurons"
#: the cost reference of the speed ratios (the cheapest strong peer).
COST_REFERENCE = "dfr"
REPORT_SPLIT = "test"
#: paired differences the report shows (method, reference, what the difference measures).
PAIRED_DIFFERENCES = (
    ("neurontune", "class_balanced_retrain", "what the mask adds: NeuronTune − the same retraining without it (training split)"),
    ("neurontune_dagger", "class_balanced_retrain_val",
     "what the mask adds: NeuronTune† − the same retraining without it (identification half of validation)"),
    ("neurontune_dagger_crossfit", "neurontune_dagger", "cross-fitting: NeuronTune† on all validation − on half"),
    ("neurontune_dagger_crossfit", "dfr_groupfree", "cross-fitted NeuronTune† − group-free DFR (the same data)"),
)
VALIDITY_COLUMNS = ("erm_mean_accuracy", "erm_worst_group_accuracy", "oracle_worst_group_accuracy", "headroom")
#: run-row column → key of ``metrics["mask_quality"][method]`` (does the mask hit the shortcut?)
MASK_QUALITY_COLUMNS = {"mask_precision": "precision", "mask_recall": "recall", "mask_random_precision": "random_precision",
                        "mask_random_recall": "random_recall", "mask_core_share": "core_share",
                        "mask_random_core_share": "random_core_share", "mask_attribute_neurons": "n_attribute_neurons"}
GUARD_MARGIN_PARAMETER = "harm_guard.margin"
#: the method row standing for ``packaging.method: auto`` (the label-free choice among ERM and the label-free methods)
AUTO = "auto"


def registry():
    from neurontune.methods import load_registry

    return load_registry(PROJECT_ROOT)


def method_nodes() -> dict[str, tuple[str, ...]]:
    """Each registered method → the nodes whose wall time is its own cost (NeuronTune: scoring + its grid)."""
    nodes = {}
    for name, method in registry().items():
        nodes[name] = (IDENTIFICATION_NODE, method.node_name) if method.kind == "neurontune" else (method.node_name,)
    return nodes


# ------------------------------------------------------------------------- running


def run_parameters(seed: int, val_correlation: float, erm_mode: str = "default") -> dict[str, object]:
    """Runtime parameters of one run."""
    params = {**{name: seed for name in SEED_PARAMETERS}, REGIME_PARAMETER: val_correlation}
    if erm_mode != "default":
        params[MODE_PARAMETER] = erm_mode
    return params


def kedro_command(env: str, params: dict[str, object], extra_params: list[str]) -> list[str]:
    """``python -m kedro run --env ENV --params k=v,...``."""
    pairs = [f"{key}={value}" for key, value in params.items()] + list(extra_params)
    return [sys.executable, "-m", "kedro", "run", "--env", env, "--params", ",".join(pairs)]


def run_name(benchmark: str, erm_mode: str, regime: str, seed: int) -> str:
    return f"{benchmark} · {erm_mode} · {regime} · seed {seed}"


def run_one(client, experiment_id: str, parent_id: str, key: tuple, *, extra_params: list[str], project_path: Path,
            tracking_uri: str, experiment: str, log_dir: Path, data_root: Path) -> list[dict]:
    """One seeded ``kedro run`` as a child MLflow run; returns one row per evaluated method."""
    benchmark, erm_mode, regime, seed = key
    tags = {"mlflow.parentRunId": parent_id, "benchmark": benchmark, "erm_mode": erm_mode, "regime": regime,
            "seed": str(seed)}
    child = client.create_run(experiment_id, run_name=run_name(*key), tags=tags)
    run_id = child.info.run_id
    env = {**os.environ, "MLFLOW_RUN_ID": run_id, "MLFLOW_TRACKING_URI": tracking_uri, "NEURONTUNE_DATA_ROOT": str(data_root),
           "NEURONTUNE_EXPERIMENT": experiment, "KEDRO_DISABLE_TELEMETRY": "true", "HF_HUB_OFFLINE": "1"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(project_path / "src"), env.get("PYTHONPATH")]))
    command = kedro_command(benchmark, run_parameters(seed, REGIMES[regime], erm_mode), extra_params)
    log_path = log_dir / f"{benchmark}-{erm_mode}-{regime}-seed{seed}.log"
    started = time.perf_counter()
    with open(log_path, "w") as log:
        completed = subprocess.run(command, cwd=project_path, env=env, stdout=log, stderr=subprocess.STDOUT)
    wall = time.perf_counter() - started
    if completed.returncode != 0:
        if client.get_run(run_id).info.status == "RUNNING":
            client.set_terminated(run_id, "FAILED")
        tail = log_path.read_text().splitlines()[-15:]
        raise RuntimeError(f"{' '.join(command)} failed (exit {completed.returncode}); log {log_path}:\n" + "\n".join(tail))
    client.update_run(run_id, name=run_name(*key))  # kedro-mlflow renames it after the pipeline
    return collect_run(client, tracking_uri, run_id, key, wall)


def collect_run(client, tracking_uri: str, run_id: str, key: tuple, wall_seconds: float) -> list[dict]:
    """Rows (method × metrics × timings) read back from one finished MLflow run."""
    import mlflow

    from neurontune.core.metrics import is_measured, measured_or_nan
    from neurontune.methods import (ERROR_SET_QUALITY, HARM, MASK_QUALITY, METHOD_CHOICE, VALIDITY, method_entries,
                                    not_fitted_reason)

    with tempfile.TemporaryDirectory() as folder:
        report = json.loads(Path(mlflow.artifacts.download_artifacts(
            run_id=run_id, artifact_path="reporting/metrics.json", dst_path=folder,
            tracking_uri=tracking_uri)).read_text())
        labels = json.loads(Path(mlflow.artifacts.download_artifacts(
            run_id=run_id, artifact_path="reporting/method_labels_used.json", dst_path=folder,
            tracking_uri=tracking_uri)).read_text())
    run = client.get_run(run_id)
    timings = {name[len("timing."):-len("_seconds")]: value
               for name, value in run.data.metrics.items() if name.startswith("timing.")}
    stages = {f"stage_{stage}_seconds": _node_seconds(timings, nodes) for stage, nodes in stage_nodes().items()}
    card = report.get(VALIDITY, {}).get(REPORT_SPLIT, {})
    benchmark, erm_mode, regime, seed = key
    nodes = method_nodes()
    rows = []
    for method, splits in method_entries(report).items():
        test = splits[REPORT_SPLIT]
        unfitted = not_fitted_reason(test)
        # a number that was not measured (no group labels, a method not fitted) is NaN here and its note says why
        note = f"not fitted: {unfitted}" if unfitted else "" if is_measured(test["worst_group_accuracy"]) else test["worst_group_accuracy"]
        rows.append({
            "benchmark": benchmark, "erm_mode": run.data.params.get(MODE_PARAMETER, erm_mode), "regime": regime,
            "seed": seed, "method": method, "labels_used": labels.get(method, "unknown"),
            "worst_group_accuracy": measured_or_nan(test.get("worst_group_accuracy")), "wga_note": note,
            "mean_accuracy": measured_or_nan(test.get("mean_accuracy")),
            "worst_class_accuracy": measured_or_nan(test.get("worst_class_accuracy")), "n_masked": test.get("n_masked", 0),
            "method_seconds": _node_seconds(timings, nodes.get(method, ())),
            "erm_seconds": _node_seconds(timings, nodes.get("erm", ())),
            "reference_seconds": _node_seconds(timings, nodes.get(COST_REFERENCE, ())),
            **{f"validity_{name}": measured_or_nan(card.get(name)) for name in VALIDITY_COLUMNS},
            "validity_note": "" if is_measured(card.get("separates_methods", 0.0)) else card["separates_methods"],
            "run_wall_seconds": wall_seconds, "run_id": run_id, **stages,
            **mask_quality_columns(report.get(MASK_QUALITY, {}).get(method)),
            **harm_columns(report.get(HARM, {}).get(method), run.data.params.get(GUARD_MARGIN_PARAMETER)),
            **error_set_columns(report.get(ERROR_SET_QUALITY, {})),
        })
    return rows + auto_rows(rows, report.get(METHOD_CHOICE))


def error_set_columns(quality: dict) -> dict:
    """How well each label-free error set finds the minority groups (evaluation only), as run-row columns."""
    return {f"errorset_{name}_{key}": float(value) for name, values in quality.items() if isinstance(values, dict)
            for key, value in values.items()}


def auto_rows(rows: list[dict], choice: dict | None) -> list[dict]:
    """The row of ``auto`` (``packaging.method: auto``): the chosen method's numbers under the name ``auto``, with
    ``auto_choice`` naming it; none when the run recorded no choice."""
    if not choice:
        return []
    chosen = next(row for row in rows if row["method"] == choice["chosen"])
    return [{**chosen, "method": AUTO, "labels_used": "none", "auto_choice": choice["chosen"],
             "auto_reason": choice["reason"], "n_candidates": len(choice["candidates"])}]


def mask_quality_columns(quality: dict | None) -> dict:
    """``mask_<metric>`` columns of a run row from ``metrics["mask_quality"][method]`` (NaN without a mask)."""
    from neurontune.core.metrics import measured_or_nan

    return {column: measured_or_nan((quality or {}).get(name)) for column, name in MASK_QUALITY_COLUMNS.items()}


#: The guard's label-free criteria (parameters.HarmGuard.criterion): each run records what both would decide.
GUARD_CRITERIA = ("class", "own")


def harm_columns(harm: dict | None, margin: str | None) -> dict:
    """The harm report's test delta and the label-free guard's decision for a run row (NaN for ERM)."""
    from neurontune.core.metrics import measured_or_nan

    harm = harm or {}
    selection = harm.get("selection", {})
    return {"harm_delta_wga": measured_or_nan(harm.get(REPORT_SPLIT, {}).get("delta_worst_group_accuracy")),
            "harm_worse_than_erm": float(harm.get("worse_than_erm", float("nan"))),
            "guard_would_fire": float(selection.get("guard_would_fire", float("nan"))),
            "guard_fired": float(selection.get("guard_fired", float("nan"))),
            # the delta of the criterion the guard compared (worst-class or, for `own`, the method's own)
            "guard_delta_selection": measured_or_nan(next((value for key, value in selection.items()
                                                           if key.startswith("delta_worst_")), None)),
            **{f"guard_would_fire_by_{name}": float(selection.get(f"guard_would_fire_by_{name}", float("nan")))
               for name in GUARD_CRITERIA},
            "guard_margin": float(margin) if margin is not None else float("nan")}


def finished_children(client, tracking_uri: str, experiment_id: str, parent_id: str) -> tuple[dict, float]:
    """Rows of the finished child runs of ``parent_id`` keyed by (benchmark, ERM mode, regime, seed), and their total
    wall time. Children left RUNNING by an interrupted runner are marked KILLED."""
    children = client.search_runs([experiment_id], filter_string=f"tags.mlflow.parentRunId = '{parent_id}'")
    done, elapsed = {}, 0.0
    for child in children:
        if child.info.status == "RUNNING":
            client.set_terminated(child.info.run_id, "KILLED")
        if child.info.status != "FINISHED":
            continue
        tags = child.data.tags
        key = (tags["benchmark"], tags.get("erm_mode", "default"), tags["regime"], int(tags["seed"]))
        wall = (child.info.end_time - child.info.start_time) / 1000.0
        done[key] = collect_run(client, tracking_uri, child.info.run_id, key, wall)
        elapsed += wall
    logger.info("resuming parent %s: %d finished runs kept", parent_id, len(done))
    return done, elapsed


def stage_nodes() -> dict[str, tuple[str, ...]]:
    """Node names of every pipeline stage of the project's DAG, in execution order."""
    from neurontune.pipeline_registry import register_pipelines

    pipelines = register_pipelines()
    return {name: tuple(node.name for node in pipeline.nodes) for name, pipeline in pipelines.items()
            if name != "__default__"}


def _node_seconds(timings: dict[str, float], nodes) -> float:
    if not nodes or any(node not in timings for node in nodes):
        return float("nan")
    return float(sum(timings[node] for node in nodes))


# ------------------------------------------------------------------------- report

GROUPING = ["benchmark", "erm_mode", "regime"]


def summarise(rows: pd.DataFrame) -> pd.DataFrame:
    """Mean ± std over seeds per benchmark, ERM mode, regime and method, with per-run cost ratios."""
    rows = _ordered(rows.assign(ratio_to_reference=rows["method_seconds"] / rows["reference_seconds"]))
    if "wga_note" not in rows.columns:  # runs.csv written before notes existed: every WGA was measured
        rows = rows.assign(wga_note="")
    grouped = rows.groupby([*GROUPING, "method"], sort=False)
    summary = grouped.agg(
        labels_used=("labels_used", "first"), n_seeds=("seed", "nunique"),
        wga_note=("wga_note", lambda notes: next((note for note in notes.fillna("") if note), "")),
        wga_mean=("worst_group_accuracy", "mean"), wga_std=("worst_group_accuracy", "std"),
        mean_accuracy=("mean_accuracy", "mean"), mean_accuracy_std=("mean_accuracy", "std"),
        worst_class_accuracy=("worst_class_accuracy", "mean"), worst_class_std=("worst_class_accuracy", "std"),
        n_masked=("n_masked", "mean"), seconds=("method_seconds", "mean"),
        ratio_to_reference=("ratio_to_reference", "mean"), ratio_std=("ratio_to_reference", "std"),
        erm_seconds=("erm_seconds", "mean"),
    )
    return summary.reset_index()


def _ordered(rows: pd.DataFrame) -> pd.DataFrame:
    """Methods in registry order, benchmarks/modes/regimes in the order they were run."""
    order = {method: rank for rank, method in enumerate(method_nodes())}
    rows = rows.assign(_order=rows["method"].map(order).fillna(len(order))).sort_values("_order", kind="stable")
    return rows.sort_values(GROUPING, key=_first_seen, kind="stable").drop(columns="_order")


def paired_differences(rows: pd.DataFrame) -> pd.DataFrame:
    """Per benchmark, ERM mode and regime: test-WGA and mean-accuracy differences of :data:`PAIRED_DIFFERENCES`,
    paired by seed (mean, std, min, max over seeds)."""
    records = []
    for keys, table in _ordered(rows).groupby(GROUPING, sort=False):
        by_method = table.set_index(["method", "seed"])
        for method, reference, meaning in PAIRED_DIFFERENCES:
            if method not in table["method"].values or reference not in table["method"].values:
                continue
            record = dict(zip(GROUPING, keys), method=method, reference=reference, meaning=meaning)
            for column, short in (("worst_group_accuracy", "wga"), ("mean_accuracy", "mean")):
                difference = (by_method.loc[method, column] - by_method.loc[reference, column]).dropna()
                record.update({f"{short}_diff_mean": difference.mean(), f"{short}_diff_std": difference.std(),
                               f"{short}_diff_min": difference.min(), f"{short}_diff_max": difference.max(),
                               "n_seeds": len(difference)})
            records.append(record)
    return pd.DataFrame(records)


def validity_summary(rows: pd.DataFrame) -> pd.DataFrame:
    """The validity card per benchmark, ERM mode and regime: mean ± std over seeds."""
    per_run = _ordered(rows).drop_duplicates("run_id")
    aggregations = {}
    for name in VALIDITY_COLUMNS:
        aggregations[f"{name}_mean"] = (f"validity_{name}", "mean")
        aggregations[f"{name}_std"] = (f"validity_{name}", "std")
    if "validity_note" in per_run.columns:
        aggregations["validity_note"] = ("validity_note", lambda notes: next((note for note in notes.fillna("") if note), ""))
    return per_run.groupby(GROUPING, sort=False).agg(n_seeds=("seed", "nunique"), **aggregations).reset_index()


def _planned(meta: dict) -> str:
    planned = meta.get("planned_runs")
    return f" (of {planned} planned)" if planned and planned != meta["n_runs"] else ""


def _first_seen(column: pd.Series) -> pd.Series:
    """Sort key keeping benchmarks, modes and regimes in the order they were run."""
    return column.map({value: rank for rank, value in enumerate(dict.fromkeys(column))})


def _pm(mean: float, std: float, digits: int = 3, sign: str = "") -> str:
    if not np.isfinite(mean):
        return "n/a"
    return f"{mean:{sign}.{digits}f} ± {std:.{digits}f}" if np.isfinite(std) else f"{mean:{sign}.{digits}f}"


def _range(low: float, high: float) -> str:
    return f"[{low:+.3f}, {high:+.3f}]" if np.isfinite(low) else "n/a"


def _wga_cell(mean: float, std: float, note: str) -> str:
    """Mean ± std of a measured WGA; where no seed measured it, the note saying why (e.g. no group labels)."""
    return note if not np.isfinite(mean) and note else _pm(mean, std)


def _heading(benchmark: str, erm_mode: str, regime: str) -> str:
    return f"{benchmark} — ERM {erm_mode} — {regime} validation ({REGIME_PARAMETER} = {REGIMES.get(regime, '?')})"


def render_validity(rows: pd.DataFrame) -> list[str]:
    from neurontune.core.metrics import validity_warning

    lines = ["## Benchmark validity", "",
             "Can each benchmark separate debiasing methods? ERM against the group-balanced oracle (the best last-layer "
             "head validation group labels can buy), test split, mean ± std over seeds. A benchmark separates methods "
             "when the oracle reaches ≥ 0.80 worst-group accuracy and the headroom (oracle WGA − ERM WGA) is ≥ 0.10.", "",
             "| benchmark | ERM mode | regime | seeds | ERM mean acc. | ERM WGA | oracle WGA | headroom | verdict |",
             "|---|---|---|---|---|---|---|---|---|"]
    for row in validity_summary(rows).itertuples():
        card = {name: getattr(row, f"{name}_mean") for name in VALIDITY_COLUMNS}
        card["separates_methods"] = float(card["oracle_worst_group_accuracy"] >= 0.80 and card["headroom"] >= 0.10)
        note = getattr(row, "validity_note", "")
        warning = validity_warning(card) if np.isfinite(card["headroom"]) else note or "no validity card recorded"
        verdict = ("separates methods" if not warning else f"**{note}**" if warning == note
                   else "**" + warning.split(": ", 1)[0] + "**")
        lines.append(f"| {row.benchmark} | {row.erm_mode} | {row.regime} | {row.n_seeds} | "
                     + " | ".join(_pm(getattr(row, f"{name}_mean"), getattr(row, f"{name}_std"), sign="+" if name == "headroom" else "")
                                  for name in VALIDITY_COLUMNS) + f" | {verdict} |")
    return lines + [""]


def render_paired(rows: pd.DataFrame) -> list[str]:
    table = paired_differences(rows)
    if table.empty:
        return []
    lines = ["## Paired differences", "",
             "Test WGA and mean accuracy of a method minus a reference, paired by seed (same data, ERM and validation "
             "halves): mean ± std over seeds, [min, max].", "",
             "| benchmark | ERM mode | regime | difference | Δ WGA | Δ WGA range | Δ mean acc. | seeds |",
             "|---|---|---|---|---|---|---|---|"]
    for row in table.itertuples():
        lines.append(f"| {row.benchmark} | {row.erm_mode} | {row.regime} | {row.method} − {row.reference} | "
                     f"{_pm(row.wga_diff_mean, row.wga_diff_std, sign='+')} | {_range(row.wga_diff_min, row.wga_diff_max)} | "
                     f"{_pm(row.mean_diff_mean, row.mean_diff_std, sign='+')} | {row.n_seeds} |")
    meanings = dict.fromkeys(f"- `{m} − {r}`: {meaning}" for m, r, meaning in PAIRED_DIFFERENCES
                             if ((table["method"] == m) & (table["reference"] == r)).any())
    return lines + [""] + list(meanings) + [""]


def render_mask_quality(rows: pd.DataFrame) -> list[str]:
    """Does the mask hit the shortcut? Mask precision / recall for the attribute neurons beside a random mask of
    the same size, per benchmark, ERM mode, regime and masking method (mean ± std over seeds)."""
    if "mask_precision" not in rows.columns or not rows["mask_recall"].notna().any():
        notes = rows.loc[rows["method"] == "erm", "wga_note"].dropna() if "wga_note" in rows.columns else pd.Series([], dtype=str)
        unmeasured = next((note for note in notes if note), "")
        return ["## Does the mask hit the shortcut?", "", f"Mask precision and recall: {unmeasured} (finding attribute "
                "neurons needs the attribute).", ""] if unmeasured else []
    masked = _ordered(rows[rows["mask_recall"].notna()])
    lines = ["## Does the mask hit the shortcut?", "",
             "Attribute neurons: within-class AUROC of a neuron's test activation for the spurious attribute ≥ 0.7 or "
             "≤ 0.3 (evaluation reads the attribute; nothing else does). Precision = share of masked neurons that are "
             "attribute neurons; recall = share of attribute neurons that are masked; *random* = the expected value "
             "for a random mask of the same size. Core share = share of masked neurons whose within-attribute AUROC "
             "for the class is as extreme (masking those costs core evidence). Mean ± std over seeds; a seed whose "
             "head masks nothing has no precision.", "",
             "| benchmark | ERM mode | regime | method | precision | random | recall | random | core share | random "
             "| attribute neurons | masked |", "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for keys, table in masked.groupby([*GROUPING, "method"], sort=False):
        cells = [_pm(table[column].mean(), table[column].std()) for column in
                 ("mask_precision", "mask_random_precision", "mask_recall", "mask_random_recall", "mask_core_share",
                  "mask_random_core_share")]
        lines.append("| " + " | ".join(keys) + " | " + " | ".join(cells) +
                     f" | {table['mask_attribute_neurons'].mean():.1f} | {table['n_masked'].mean():.1f} |")
    return lines + [""]


def harm_table(rows: pd.DataFrame) -> pd.DataFrame:
    """Per benchmark, ERM mode, regime and label-free method: seeds below ERM's test WGA, the worst and mean
    difference, and the label-free guard's record (fired, rightly = the method was below ERM on test, wrongly,
    missed; the WGA it saved where right and cost where wrong)."""
    rows = _ordered(rows)
    erm = rows[rows["method"] == "erm"].set_index("run_id")["worst_group_accuracy"]
    candidates = rows[(rows["labels_used"] == "none") & (rows["method"] != "erm")]
    candidates = candidates.assign(delta=candidates["worst_group_accuracy"] - candidates["run_id"].map(erm))
    candidates = candidates[candidates["delta"].notna()]  # runs without group labels have no WGA to be harmed in
    if "guard_would_fire" not in candidates.columns:
        candidates = candidates.assign(guard_would_fire=np.nan, guard_margin=np.nan)
    # auto is guarded by its own worst-class floor: the guard's columns it copied from the chosen method are not its
    candidates.loc[candidates["method"] == AUTO, ["guard_would_fire", "guard_margin"]] = np.nan
    candidates = candidates.assign(guard_would_fire=candidates["guard_would_fire"].astype(float))
    records = []
    for keys, table in candidates.groupby([*GROUPING, "method"], sort=False):
        below, fired = table["delta"] < 0, table["guard_would_fire"] == 1
        records.append({**dict(zip([*GROUPING, "method"], keys)), "n_seeds": len(table), "n_below": int(below.sum()),
                        "worst_delta": table["delta"].min(), "mean_delta": table["delta"].mean(),
                        "guard_known": bool(table["guard_would_fire"].notna().all()), "n_fired": int(fired.sum()),
                        "n_right": int((fired & below).sum()), "n_wrong": int((fired & ~below).sum()),
                        "n_missed": int((~fired & below).sum()), "saved": (-table.loc[fired & below, "delta"]).sum(),
                        "cost": table.loc[fired & ~below, "delta"].sum(), "margins": sorted(table["guard_margin"].dropna().unique())})
    return pd.DataFrame(records)


#: how close to the best label-free method ``auto`` must come (test WGA, mean over seeds) and how far below ERM a seed may fall
AUTO_TOLERANCE = 0.02


def auto_table(rows: pd.DataFrame) -> pd.DataFrame:
    """Per benchmark, ERM mode and regime: ``auto``'s test WGA beside the best label-free method of that row (by mean
    test WGA over seeds, ``auto`` and ERM excluded), its regret against that method and against the best label-free
    method of each seed, its harm against ERM, and what it chose."""
    rows = _ordered(rows)
    if AUTO not in set(rows["method"]):
        return pd.DataFrame()
    records = []
    for keys, table in rows.groupby(GROUPING, sort=False):
        auto = table[table["method"] == AUTO].set_index("seed")
        if auto.empty or auto["worst_group_accuracy"].isna().all():
            continue
        label_free = table[(table["labels_used"] == "none") & ~table["method"].isin([AUTO, "erm"])]
        wga = label_free.pivot_table(index="seed", columns="method", values="worst_group_accuracy")
        means = wga.mean()
        best = means.idxmax()
        erm = table[table["method"] == "erm"].set_index("seed")["worst_group_accuracy"]
        against_erm = auto["worst_group_accuracy"] - erm.reindex(auto.index)
        per_seed_best = wga.max(axis=1).reindex(auto.index)
        chosen = auto["auto_choice"].value_counts()
        records.append({**dict(zip(GROUPING, keys)), "n_seeds": len(auto),
                        "auto_mean": auto["worst_group_accuracy"].mean(), "auto_std": auto["worst_group_accuracy"].std(),
                        "best": best, "best_mean": means[best], "regret": means[best] - auto["worst_group_accuracy"].mean(),
                        "seed_regret": (per_seed_best - auto["worst_group_accuracy"]).mean(),
                        "n_picked_best": int((auto["auto_choice"] == best).sum()),
                        "n_picked_seed_best": int(sum(wga.loc[seed, choice] == per_seed_best[seed]
                                                      for seed, choice in auto["auto_choice"].items() if choice in wga)),
                        "erm_mean": erm.mean(), "worst_vs_erm": against_erm.min(),
                        "n_harmed": int((against_erm < -AUTO_TOLERANCE).sum()), "n_below_erm": int((against_erm < 0).sum()),
                        "chosen": ", ".join(f"{method} ×{count}" for method, count in chosen.items())})
    return pd.DataFrame(records)


def render_auto(rows: pd.DataFrame) -> list[str]:
    """``packaging.method: auto`` beside the best label-free method of every row: regret, harm, what it chose."""
    table = auto_table(rows)
    if table.empty:
        return []
    lines = ["## auto: the method shipped without group labels", "",
             "`packaging.method: auto` (the default) chooses among ERM and every label-free method on the selection half "
             "of validation, by each method's head fitted without that half: the highest worst pseudo-group accuracy "
             "(class × the label-free `auto` error set) among the methods whose worst-class accuracy there is at most "
             f"0.02 below ERM's (docs/methods.md#auto). *Best label-free* = the label-free method with the highest mean "
             f"{REPORT_SPLIT} WGA in the row (known only afterwards, with group labels); *regret* = its mean − auto's; "
             f"*seed regret* = mean over seeds of (best label-free method of that seed − auto); *picked best* = seeds in "
             f"which auto chose the row's best / that seed's best; *harmed* = seeds in which auto's {REPORT_SPLIT} WGA "
             f"is more than {AUTO_TOLERANCE} below ERM's (below ERM at all in brackets); *worst Δ ERM* = its lowest "
             "seed difference against ERM.", "",
             "| benchmark | ERM mode | regime | auto WGA | best label-free | regret | seed regret | picked best | "
             "ERM WGA | harmed | worst Δ ERM | chosen (seeds) |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for row in table.itertuples():
        within = "✓" if row.regret <= AUTO_TOLERANCE else "✗"
        lines.append(f"| {row.benchmark} | {row.erm_mode} | {row.regime} | {_pm(row.auto_mean, row.auto_std)} | "
                     f"{row.best} {row.best_mean:.3f} | {row.regret:+.3f} {within} | {row.seed_regret:+.3f} | "
                     f"{row.n_picked_best} / {row.n_picked_seed_best} of {row.n_seeds} | {row.erm_mean:.3f} | "
                     f"{row.n_harmed} ({row.n_below_erm}) of {row.n_seeds} | {row.worst_vs_erm:+.3f} | {row.chosen} |")
    met = int((table["regret"] <= AUTO_TOLERANCE).sum())
    lines += ["", f"auto is within {AUTO_TOLERANCE} of the best label-free method in {met} of {len(table)} rows, and more "
                  f"than {AUTO_TOLERANCE} below ERM in {int(table['n_harmed'].sum())} of {int(table['n_seeds'].sum())} seeds.", ""]
    return lines


#: error sets shown in the report's error-set table: the ERM model's errors, the early checkpoint's, cross-fitted heads'
REPORTED_ERROR_SETS = ("erm", "early", "crossfit", "auto")


def render_error_sets(rows: pd.DataFrame) -> list[str]:
    """How well each label-free error set finds the minority groups (evaluation reads the groups; nothing else)."""
    columns = [f"errorset_{split}_{source}_precision" for split in ("train", "val") for source in REPORTED_ERROR_SETS]
    if not any(column in rows.columns for column in columns):
        return []
    per_run = _ordered(rows).drop_duplicates("run_id")
    lines = ["## Do the error sets find the minority groups?", "",
             "Each label-free error set measured against the groups, in evaluation only: *precision* = share of its "
             "samples in a minority group (a group smaller than its class's largest in training), *recall* = share of "
             "the split's minority samples it holds; the minority's share of the split (a random set's precision) in "
             "brackets. `erm` = the final ERM model's errors, `early` = the early checkpoint's, `crossfit` = held-out "
             "errors of plain heads on the embeddings (training split: 5-fold; validation: a head fitted on training), "
             "`auto` = what the label-free levers use (`early` when ERM fine-tuned the backbone, else `crossfit`). "
             "Mean over seeds.", "",
             "| benchmark | ERM mode | regime | split | error set | size | precision | recall |", "|---|---|---|---|---|---|---|---|"]
    for keys, table in per_run.groupby(GROUPING, sort=False):
        for split in ("train", "val"):
            for source in REPORTED_ERROR_SETS:
                prefix = f"errorset_{split}_{source}_"
                if f"{prefix}precision" not in table.columns or table[f"{prefix}precision"].isna().all():
                    continue
                lines.append(f"| {' | '.join(keys)} | {split} | {source} | {table[f'{prefix}size'].mean():.0f} | "
                             f"{table[f'{prefix}precision'].mean():.3f} ({table[f'{prefix}minority_share'].mean():.3f}) | "
                             f"{table[f'{prefix}recall'].mean():.3f} |")
    return lines + [""]


def render_harm(rows: pd.DataFrame) -> list[str]:
    """The harm rate per label-free method, then what the do-no-harm guard did and cost."""
    table = harm_table(rows)
    if table.empty:
        return []
    lines = ["## Harm rate: label-free methods below ERM", "",
             f"Seeds in which the method's {REPORT_SPLIT} WGA fell below ERM's (same run), the worst and the mean "
             "difference (method − ERM).", "",
             "| benchmark | ERM mode | regime | method | seeds below ERM | worst Δ WGA | mean Δ WGA |", "|---|---|---|---|---|---|---|"]
    lines += [f"| {row.benchmark} | {row.erm_mode} | {row.regime} | {row.method} | {row.n_below} / {row.n_seeds} | "
              f"{row.worst_delta:+.3f} | {row.mean_delta:+.3f} |" for row in table.itertuples()]
    known = table[table["guard_known"]]
    if known.empty:
        return lines + [""]
    margins = sorted({margin for values in known["margins"] for margin in values})
    lines += ["", "## The do-no-harm guard", "",
              "Label-free: a method fires the guard when its selection-half criterion (`harm_guard.criterion`) "
              f"does not beat ERM's on the same half by the margin ({', '.join(f'{m:g}' for m in margins) or 'n/a'}); its registered model "
              f"then keeps ERM's head. *Rightly*: the method was below ERM on {REPORT_SPLIT} WGA; *wrongly*: it was not; "
              f"*missed*: below ERM but the guard did not fire. *Saved* = {REPORT_SPLIT} WGA points the guard kept "
              "where right (sum over seeds), *cost* = points it gave up where wrong; *net* = saved − cost.", "",
              "| benchmark | ERM mode | regime | method | fired | rightly | wrongly | missed | saved | cost | net |",
              "|---|---|---|---|---|---|---|---|---|---|---|"]
    lines += [f"| {row.benchmark} | {row.erm_mode} | {row.regime} | {row.method} | {row.n_fired} / {row.n_seeds} | "
              f"{row.n_right} | {row.n_wrong} | {row.n_missed} | {row.saved:.3f} | {row.cost:.3f} | {row.saved - row.cost:+.3f} |"
              for row in known.itertuples()]
    total = known[["n_seeds", "n_fired", "n_right", "n_wrong", "n_missed", "saved", "cost"]].sum()
    lines += ["", f"In all: the guard fired in {int(total.n_fired)} of {int(total.n_seeds)} method-seeds, rightly in "
              f"{int(total.n_right)}, wrongly in {int(total.n_wrong)}, and missed {int(total.n_missed)}; it saved "
              f"{total.saved:.3f} and cost {total.cost:.3f} WGA points (net {total.saved - total.cost:+.3f}, "
              f"{(total.saved - total.cost) / max(int(total.n_seeds), 1):+.4f} per method-seed).", ""]
    return lines + render_guard_criteria(rows)


def render_guard_criteria(rows: pd.DataFrame) -> list[str]:
    """What each label-free guard criterion would have decided in the same runs (every run records both)."""
    columns = [f"guard_would_fire_by_{name}" for name in GUARD_CRITERIA]
    if not set(columns) <= set(rows.columns):
        return []
    erm = rows[rows["method"] == "erm"].set_index("run_id")["worst_group_accuracy"]
    candidates = rows[(rows["labels_used"] == "none") & (rows["method"] != "erm")].dropna(subset=columns)
    if candidates.empty:
        return []
    delta = candidates["worst_group_accuracy"] - candidates["run_id"].map(erm)
    lines = ["Each criterion on the same runs (`harm_guard.criterion`; `class` = worst-class accuracy for every "
             "method, `own` = the criterion each method was selected by — worst pseudo-group accuracy for the "
             "variants that select by it):", "",
             "| benchmark | ERM mode | regime | criterion | fired | rightly | wrongly | missed | net |", "|---|---|---|---|---|---|---|---|---|"]
    for keys, table in candidates.groupby(GROUPING, sort=False):
        below = delta[table.index] < 0
        for name, column in zip(GUARD_CRITERIA, columns):
            fired = table[column] == 1
            net = (-delta[table.index][fired & below]).sum() - delta[table.index][fired & ~below].sum()
            lines.append(f"| {' | '.join(keys)} | {name} | {int(fired.sum())} / {len(table)} | {int((fired & below).sum())} | "
                         f"{int((fired & ~below).sum())} | {int((~fired & below).sum())} | {net:+.3f} |")
    return lines + [""]


#: NeuronTune+ and its one-lever ablations (docs/neurontune_plus.md), beside the paper's recipe they start from.
LEVER_ABLATION = (("neurontune", "the paper's recipe (training split)"),
                  ("plus_lever_errors", "lever 1 alone: identify on the training split, label-free errors"),
                  ("plus_lever_scores", "lever 2 alone: bootstrap lower bound of the scaled δ"),
                  ("plus_lever_selection", "lever 3 alone: select by worst pseudo-group accuracy"),
                  ("plus_lever_balance", "lever 4 alone: pseudo-group-balanced retraining"),
                  ("neurontune_plus", "all four levers"))


def render_lever_ablation(rows: pd.DataFrame) -> list[str]:
    """Each lever of neurontune_plus alone and combined, both regimes side by side, and plus's cost vs neurontune's."""
    present = [(method, meaning) for method, meaning in LEVER_ABLATION if method in set(rows["method"])]
    if len(present) < 2:
        return []
    summary = summarise(rows).set_index([*GROUPING, "method"])
    lines = ["## NeuronTune+ — each lever alone and combined", "",
             "Test WGA and mean accuracy (mean ± std over seeds); every lever is label-free. The configuration of "
             "`neurontune_plus` was fixed before any of its test numbers existed (docs/neurontune_plus.md).", ""]
    for (benchmark, erm_mode), table in _ordered(rows).groupby(["benchmark", "erm_mode"], sort=False):
        regimes = list(dict.fromkeys(table["regime"]))
        lines += [f"**{benchmark}, ERM {erm_mode}**", "",
                  "| variant | what it changes | " + " | ".join(f"WGA ({r}) | mean acc. ({r})" for r in regimes) + " |",
                  "|---|---|" + "---|---|" * len(regimes)]
        for method, meaning in present:
            cells = []
            for regime in regimes:
                key = (benchmark, erm_mode, regime, method)
                if key in summary.index:
                    row = summary.loc[key]
                    cells += [_pm(row["wga_mean"], row["wga_std"]), _pm(row["mean_accuracy"], row["mean_accuracy_std"])]
                else:
                    cells += ["n/a", "n/a"]
            lines.append(f"| {method} | {meaning} | " + " | ".join(cells) + " |")
        ratio = _cost_ratio(table, "neurontune_plus", "neurontune")
        if ratio is not None:
            lines += ["", f"Identification + regulation time of `neurontune_plus` / `neurontune`, per run: "
                          f"{_pm(*ratio, 2)}."]
        lines.append("")
    return lines


def _cost_ratio(table: pd.DataFrame, method: str, reference: str) -> tuple[float, float] | None:
    by_run = table.pivot_table(index="run_id", columns="method", values="method_seconds")
    if method not in by_run or reference not in by_run:
        return None
    ratio = (by_run[method] / by_run[reference]).dropna()
    return (float(ratio.mean()), float(ratio.std())) if len(ratio) else None


def render_report(rows: pd.DataFrame, meta: dict, plot_name: str) -> str:
    """The Markdown report: validity first, one table per benchmark/mode/regime, paired differences, timing."""
    summary = summarise(rows)
    lines = [
        "# NeuronTune beside its peers",
        "",
        f"Produced by `{meta['command']}` on {meta['finished']} (git `{meta['git_commit']}`, {meta['machine']}); "
        f"{meta['n_runs']} runs{_planned(meta)}, {meta['total_seconds'] / 60:.1f} min of wall time in all. "
        f"MLflow parent run `{meta['parent_run_id']}` in experiment `{meta['experiment']}`.",
        "",
        f"Metrics are on the **{REPORT_SPLIT}** split, mean ± standard deviation over seeds (each seed changes the "
        "data sample, ERM training, the validation halves and every method's retraining). WGA = worst-group "
        "accuracy; mean acc. = plain accuracy over test samples; worst-class = lowest per-class accuracy. "
        "*Labels used*: `none` = class labels only, `val_groups` = validation group labels. "
        "*Neurons masked* = mean number of suppressed embedding neurons. *Time* = wall time of the method's own "
        f"nodes (NeuronTune variants: neuron scoring + the variant's grid search; ERM: training the network), measured "
        f"by the node-timing hook in the same run; *× {COST_REFERENCE.upper()}* = that time divided by "
        f"{COST_REFERENCE.upper()}'s fit time in the same run, averaged over runs. The machine is shared with other "
        "jobs, so times are noisy: read the ± on the ratios.",
        "",
    ]
    lines += render_validity(rows)
    lines += [f"![worst-group accuracy per method]({plot_name})", ""]
    for keys, table in summary.groupby(GROUPING, sort=False):
        lines += [f"## {_heading(*keys)}", "",
                  f"| method | labels used | WGA | mean acc. | worst-class acc. | neurons masked | time (s) | × {COST_REFERENCE.upper()} |",
                  "|---|---|---|---|---|---|---|---|"]
        for row in table.itertuples():
            lines.append(
                f"| {row.method} | {row.labels_used} | {_wga_cell(row.wga_mean, row.wga_std, row.wga_note)} | "
                f"{_pm(row.mean_accuracy, row.mean_accuracy_std)} | {_pm(row.worst_class_accuracy, row.worst_class_std)} | "
                f"{row.n_masked:.1f} | {row.seconds:.2f} | {_pm(row.ratio_to_reference, row.ratio_std, 2)} |")
        lines += ["", f"Seeds: {int(table['n_seeds'].max())}. ERM training {table['erm_seconds'].iloc[0]:.1f} s.", ""]
    lines += render_paired(rows)
    lines += render_lever_ablation(rows)
    lines += render_auto(rows)
    lines += render_mask_quality(rows)
    lines += render_error_sets(rows)
    lines += render_harm(rows)
    stage_columns = [column for column in rows.columns if column.startswith("stage_")]
    if stage_columns:
        per_run = _ordered(rows).drop_duplicates("run_id").groupby(GROUPING, sort=False)[stage_columns].mean()
        lines += ["## Wall time per pipeline stage (s, mean over runs)", "",
                  "| benchmark | ERM mode | regime | " + " | ".join(c[len("stage_"):-len("_seconds")] for c in stage_columns) + " |",
                  "|---|---|---|" + "---|" * len(stage_columns)]
        for keys, values in per_run.iterrows():
            lines.append("| " + " | ".join(keys) + " | " + " | ".join(f"{v:.1f}" for v in values) + " |")
        lines.append("")
    if meta.get("failures"):
        lines += ["## Runs that did not complete", ""] + [f"- {failure}" for failure in meta["failures"]] + [""]
    lines += ["## Per-seed results", "", "`runs.csv` beside this report holds every run's numbers and MLflow run id.", ""]
    return "\n".join(lines)


def plot_worst_group_accuracy(rows: pd.DataFrame):
    """One panel per benchmark, ERM mode and regime: WGA mean ± std per method, coloured by the labels it used."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    summary = summarise(rows)
    panels = list(summary.groupby(GROUPING, sort=False))
    colours = {"none": "tab:blue", "val_groups": "tab:orange", "train_groups": "tab:red"}
    columns = min(len(panels), 4)
    n_rows = int(np.ceil(len(panels) / columns))
    figure, axes = plt.subplots(n_rows, columns, figsize=(5.5 * columns, 4.6 * n_rows), squeeze=False, sharey=True)
    for axis in axes.flat[len(panels):]:
        axis.set_visible(False)
    for axis, ((benchmark, erm_mode, regime), table) in zip(axes.flat, panels):
        positions = np.arange(len(table))
        bars = axis.bar(positions, table["wga_mean"], yerr=table["wga_std"].fillna(0), capsize=3,
                        color=[colours.get(kind, "grey") for kind in table["labels_used"]],
                        hatch=["//" if method.startswith("neurontune") else "" for method in table["method"]])
        axis.bar_label(bars, labels=[f"{value:.2f}" if np.isfinite(value) else "n/m" for value in table["wga_mean"]],
                       fontsize=7, padding=2)
        axis.set_xticks(positions, table["method"], rotation=55, ha="right", fontsize=7)
        unmeasured = next((note for note in table["wga_note"] if note and not note.startswith("not fitted")), "")
        axis.set(title=f"{benchmark}, ERM {erm_mode}\n{regime} validation" + (f"\nWGA {unmeasured}" if unmeasured else ""),
                 ylim=(0, 1.08))
        axis.grid(axis="y", alpha=0.3)
    for axis in axes[:, 0]:
        axis.set_ylabel(f"worst-group accuracy ({REPORT_SPLIT})")
    handles = [plt.Rectangle((0, 0), 1, 1, color=colour) for colour in colours.values()]
    handles.append(plt.Rectangle((0, 0), 1, 1, facecolor="white", edgecolor="black", hatch="//"))
    figure.legend(handles, [f"labels used: {kind}" for kind in colours] + ["NeuronTune variants"], fontsize=8,
                  loc="upper center", ncol=4, bbox_to_anchor=(0.5, 1.03))
    figure.tight_layout()
    return figure


def write_outputs(rows: pd.DataFrame, meta: dict, output: Path) -> Path:
    output.mkdir(parents=True, exist_ok=True)
    rows.to_csv(output / "runs.csv", index=False)
    (output / "runs_meta.json").write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
    figure = plot_worst_group_accuracy(rows)
    figure.savefig(output / "worst_group_accuracy.png", dpi=110, bbox_inches="tight")
    report = output / "REPORT.md"
    report.write_text(render_report(rows, meta, "worst_group_accuracy.png"))
    return report


# --------------------------------------------------------------------------- CLI


def _git_commit(project_path: Path) -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=project_path, capture_output=True,
                              text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def parse_arguments(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--benchmarks", default="colored_mnist",
                        help="comma-separated Kedro environments (bundled: colored_mnist, waterbirds_like, "
                             "tweets_negation; `ci` is the suite's reduced colored_mnist). Default: colored_mnist")
    parser.add_argument("--erm-modes", default="default",
                        help=f"comma-separated, from {list(ERM_MODES)}; default keeps each environment's mode")
    parser.add_argument("--regimes", default="balanced,correlated", help=f"comma-separated, from {list(REGIMES)}")
    parser.add_argument("--seeds", type=int, default=5, help="number of seeds, 0..N-1 (default 5)")
    parser.add_argument("--seed-list", default=None, help="explicit comma-separated seeds (overrides --seeds)")
    parser.add_argument("--params", action="append", default=[], metavar="KEY=VALUE",
                        help="extra Kedro runtime parameter for every run (repeatable)")
    parser.add_argument("--output", type=Path, default=PROJECT_ROOT / "benchmarks" / "results")
    parser.add_argument("--project-path", type=Path, default=PROJECT_ROOT,
                        help="the Kedro project to run (its mlflow.db is used; run data go to data/benchmark_runs)")
    parser.add_argument("--data-root", type=Path, default=None,
                        help="where run data go (NEURONTUNE_DATA_ROOT); default <project>/data/benchmark_runs")
    parser.add_argument("--tracking-uri", default=None,
                        help="MLflow tracking URI; default $MLFLOW_TRACKING_URI or <project>/mlflow.db")
    parser.add_argument("--experiment", default="neurontune-benchmarks")
    parser.add_argument("--report-only", action="store_true", help="re-render REPORT.md and the plot from runs.csv")
    parser.add_argument("--resume", default=None, metavar="PARENT_RUN_ID",
                        help="continue an interrupted report: finished child runs of this parent are read back, not rerun")
    arguments = parser.parse_args(argv)
    for option, values, known in (("regime", arguments.regimes, REGIMES), ("ERM mode", arguments.erm_modes, ERM_MODES)):
        unknown = sorted(set(values.split(",")) - set(known))
        if unknown:
            parser.error(f"unknown {option}(s) {unknown}; choose from {list(known)}.")
    return arguments


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    arguments = parse_arguments(argv)
    if arguments.report_only:
        meta = json.loads((arguments.output / "runs_meta.json").read_text())
        report = write_outputs(pd.read_csv(arguments.output / "runs.csv"), meta, arguments.output)
        logger.info("wrote %s", report)
        return 0
    from mlflow.tracking import MlflowClient

    project_path = arguments.project_path.resolve()
    tracking_uri = arguments.tracking_uri or os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{project_path / 'mlflow.db'}"
    data_root = (arguments.data_root or project_path / "data" / "benchmark_runs").resolve()
    client = MlflowClient(tracking_uri)
    experiment = client.get_experiment_by_name(arguments.experiment)
    experiment_id = experiment.experiment_id if experiment else client.create_experiment(arguments.experiment)
    seeds = ([int(s) for s in arguments.seed_list.split(",")] if arguments.seed_list else list(range(arguments.seeds)))
    benchmarks, modes, regimes = (arguments.benchmarks.split(","), arguments.erm_modes.split(","),
                                  arguments.regimes.split(","))
    command = "python -m benchmarks.run " + " ".join(argv if argv is not None else sys.argv[1:])
    if arguments.resume:
        parent = client.get_run(arguments.resume)
        command = f"{parent.data.tags.get('command', '?')}` resumed by `{command}"
        done, elapsed = finished_children(client, tracking_uri, experiment_id, parent.info.run_id)
    else:
        parent = client.create_run(experiment_id, run_name=f"benchmarks-{datetime.now(timezone.utc):%Y%m%dT%H%M%S}",
                                   tags={"benchmarks": ",".join(benchmarks), "erm_modes": ",".join(modes),
                                         "regimes": ",".join(regimes), "seeds": ",".join(map(str, seeds)),
                                         "command": command})
        done, elapsed = {}, 0.0
    log_dir = data_root / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    rows, failures, started = [], [], time.perf_counter() - elapsed
    # seed-major order: an interrupted report still covers every mode and regime evenly
    plan = [(benchmark, mode, regime, seed) for benchmark in benchmarks for seed in seeds for mode in modes
            for regime in regimes]

    def describe() -> dict:
        return {
            "command": command, "finished": f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M UTC}",
            "git_commit": _git_commit(project_path), "machine": f"{platform.machine()}, {os.cpu_count()} CPU cores",
            "n_runs": len({row["run_id"] for row in rows}), "total_seconds": time.perf_counter() - started,
            "parent_run_id": parent.info.run_id, "experiment": arguments.experiment, "failures": failures,
            "extra_params": arguments.params, "planned_runs": len(plan),
        }

    for key in plan:
        if key in done:
            rows += done[key]
            continue
        logger.info("running %s", run_name(*key))
        try:
            rows += run_one(client, experiment_id, parent.info.run_id, key, extra_params=arguments.params,
                            project_path=project_path, tracking_uri=tracking_uri, experiment=arguments.experiment,
                            log_dir=log_dir, data_root=data_root)
        except RuntimeError as error:
            logger.error("%s", error)
            failures.append(f"{run_name(*key)}: {str(error).splitlines()[0]}")
        if rows:  # the report is rewritten after every run, so an interrupted benchmark is still reported
            write_outputs(pd.DataFrame(rows), describe(), arguments.output)
    if not rows:
        client.set_terminated(parent.info.run_id, "FAILED")
        logger.error("no run completed; nothing to report.")
        return 1
    meta = describe()
    report = write_outputs(pd.DataFrame(rows), meta, arguments.output)
    for path in (report, arguments.output / "worst_group_accuracy.png", arguments.output / "runs.csv"):
        client.log_artifact(parent.info.run_id, str(path), artifact_path="benchmark_report")
    client.set_terminated(parent.info.run_id, "FINISHED" if not failures else "FAILED")
    logger.info("wrote %s (%d runs, %d failed) in %.1f min", report, meta["n_runs"], len(failures),
                meta["total_seconds"] / 60)
    return 0 if not failures else 2


if __name__ == "__main__":
    sys.exit(main())
