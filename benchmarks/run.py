"""Benchmark runner: benchmarks × validation regimes × seeds, NeuronTune beside its peers.

Each (benchmark, regime, seed) is one ``kedro run`` in a subprocess, logged as its own
MLflow run nested under one parent run; the report reads every number back from
those runs (test metrics from the ``reporting/metrics.json`` artifact, per-node wall
times from the ``timing.<node>_seconds`` metrics of :class:`neurontune.hooks.NodeTimingHook`)::

    python -m benchmarks.run                                   # colored_mnist, both regimes, 5 seeds
    python -m benchmarks.run --benchmarks colored_mnist,waterbirds_like --seeds 3
    python -m benchmarks.run --seed-list 0,7 --regimes correlated --params erm_training.modes.finetune.epochs=2
    python -m benchmarks.run --report-only                     # re-render from results/runs.csv
    python -m benchmarks.run --resume PARENT_RUN_ID            # keep finished child runs, run the rest

Writes ``<output>/REPORT.md``, ``<output>/worst_group_accuracy.png`` and
``<output>/runs.csv`` (one row per method per run).
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

#: benchmark name → Kedro environment (None = conf/base, the default benchmark).
BENCHMARK_ENVS = {"colored_mnist": None, "waterbirds_like": "waterbirds_like", "tweets_negation": "tweets_negation"}
#: validation regime → P(attribute = class) in validation (train keeps its own correlation).
REGIMES = {"balanced": 0.5, "correlated": 0.95}
REGIME_PARAMETER = "data_versioning.val_correlation"
#: every seed a run changes: the data, ERM, the validation halves, NeuronTune's and the baselines' retraining.
SEED_PARAMETERS = (
    "data_versioning.seed",
    "erm_training.seed",
    "neuron_identification.selection_split.seed",
    "neurontune_regulation.tuning.seed",
    "baselines.settings.seed",
)
#: nodes whose wall time is a method's own cost (identification + regulation for NeuronTune).
IDENTIFICATION_NODES = ("score_identification_neurons", "select_default_mask")
METHOD_NODES = {
    "erm": ("train_erm_model",),
    "class_balanced_retrain": ("regulate_class_balanced_retrain",),
    "neurontune": (*IDENTIFICATION_NODES, "regulate_neurontune"),
    "neurontune_dagger": (*IDENTIFICATION_NODES, "regulate_neurontune_dagger"),
    "dfr": ("fit_dfr",),
    "dfr_groupfree": ("fit_dfr_groupfree",),
    "jtt_last_layer": ("fit_jtt_last_layer",),
    "afr": ("fit_afr",),
    "group_balanced_oracle": ("fit_group_balanced_oracle",),
}
REFERENCE_METHOD = "neurontune"
REPORT_SPLIT = "test"


# ------------------------------------------------------------------------- running


def seed_parameters(seed: int, val_correlation: float) -> dict[str, object]:
    """Runtime parameters of one run."""
    return {**{name: seed for name in SEED_PARAMETERS}, REGIME_PARAMETER: val_correlation}


def kedro_command(env: str | None, params: dict[str, object], extra_params: list[str]) -> list[str]:
    """``python -m kedro run [--env ENV] --params k=v,...``."""
    command = [sys.executable, "-m", "kedro", "run"]
    if env:
        command += ["--env", env]
    pairs = [f"{key}={value}" for key, value in params.items()] + list(extra_params)
    return command + ["--params", ",".join(pairs)]


def run_one(client, experiment_id: str, parent_id: str, benchmark: str, regime: str, seed: int, *,
            extra_params: list[str], project_path: Path, tracking_uri: str, experiment: str, log_dir: Path) -> list[dict]:
    """One seeded ``kedro run`` as a child MLflow run; returns one row per evaluated method."""
    params = seed_parameters(seed, REGIMES[regime])
    tags = {"mlflow.parentRunId": parent_id, "benchmark": benchmark, "regime": regime, "seed": str(seed)}
    child = client.create_run(experiment_id, run_name=f"{benchmark}-{regime}-seed{seed}", tags=tags)
    run_id = child.info.run_id
    env = {**os.environ, "MLFLOW_RUN_ID": run_id, "MLFLOW_TRACKING_URI": tracking_uri,
           "NEURONTUNE_EXPERIMENT": experiment, "KEDRO_DISABLE_TELEMETRY": "true", "HF_HUB_OFFLINE": "1"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(PROJECT_ROOT / "src"), env.get("PYTHONPATH")]))
    command = kedro_command(BENCHMARK_ENVS.get(benchmark, benchmark), params, extra_params)
    log_path = log_dir / f"{benchmark}-{regime}-seed{seed}.log"
    started = time.perf_counter()
    with open(log_path, "w") as log:
        completed = subprocess.run(command, cwd=project_path, env=env, stdout=log, stderr=subprocess.STDOUT)
    wall = time.perf_counter() - started
    if completed.returncode != 0:
        if client.get_run(run_id).info.status == "RUNNING":
            client.set_terminated(run_id, "FAILED")
        tail = log_path.read_text().splitlines()[-15:]
        raise RuntimeError(f"{' '.join(command)} failed (exit {completed.returncode}); log {log_path}:\n" + "\n".join(tail))
    client.update_run(run_id, name=f"{benchmark}-{regime}-seed{seed}")  # kedro-mlflow renames it after the pipeline
    return collect_run(client, tracking_uri, run_id, benchmark, regime, seed, wall)


def collect_run(client, tracking_uri: str, run_id: str, benchmark: str, regime: str, seed: int, wall_seconds: float) -> list[dict]:
    """Rows (method × metrics × timings) read back from one finished MLflow run."""
    import mlflow

    with tempfile.TemporaryDirectory() as folder:
        metrics = json.loads(Path(mlflow.artifacts.download_artifacts(
            run_id=run_id, artifact_path="reporting/metrics.json", dst_path=folder,
            tracking_uri=tracking_uri)).read_text())
        labels = json.loads(Path(mlflow.artifacts.download_artifacts(
            run_id=run_id, artifact_path="reporting/method_labels_used.json", dst_path=folder,
            tracking_uri=tracking_uri)).read_text())
    timings = {name[len("timing."):-len("_seconds")]: value
               for name, value in client.get_run(run_id).data.metrics.items() if name.startswith("timing.")}
    stages = {f"stage_{stage}_seconds": _node_seconds(timings, nodes) for stage, nodes in stage_nodes().items()}
    rows = []
    for method, splits in metrics.items():
        test = splits[REPORT_SPLIT]
        rows.append({
            "benchmark": benchmark, "regime": regime, "seed": seed, "method": method,
            "labels_used": labels.get(method, "unknown"),
            "worst_group_accuracy": test["worst_group_accuracy"], "mean_accuracy": test["mean_accuracy"],
            "worst_class_accuracy": test["worst_class_accuracy"], "n_masked": test.get("n_masked", 0),
            "method_seconds": _node_seconds(timings, METHOD_NODES.get(method, ())),
            "erm_seconds": _node_seconds(timings, METHOD_NODES["erm"]),
            "neurontune_seconds": _node_seconds(timings, METHOD_NODES[REFERENCE_METHOD]),
            "run_wall_seconds": wall_seconds, "run_id": run_id, **stages,
        })
    return rows


def finished_children(client, tracking_uri: str, experiment_id: str, parent_id: str) -> tuple[dict, float]:
    """Rows of the finished child runs of ``parent_id`` keyed by (benchmark, regime, seed), and their total wall time.

    Children left RUNNING by an interrupted runner are marked KILLED.
    """
    children = client.search_runs([experiment_id], filter_string=f"tags.mlflow.parentRunId = '{parent_id}'")
    done, elapsed = {}, 0.0
    for child in children:
        if child.info.status == "RUNNING":
            client.set_terminated(child.info.run_id, "KILLED")
        if child.info.status != "FINISHED":
            continue
        key = (child.data.tags["benchmark"], child.data.tags["regime"], int(child.data.tags["seed"]))
        wall = (child.info.end_time - child.info.start_time) / 1000.0
        done[key] = collect_run(client, tracking_uri, child.info.run_id, *key, wall)
        elapsed += wall
    logger.info("resuming parent %s: %d finished runs kept", parent_id, len(done))
    return done, elapsed


def stage_nodes() -> dict[str, tuple[str, ...]]:
    """Node names of every pipeline stage of the project's DAG, in execution order."""
    from neurontune.pipeline_registry import STAGES

    return {name: tuple(node.name for node in module.create_pipeline().nodes) for name, module in STAGES.items()}


def _node_seconds(timings: dict[str, float], nodes) -> float:
    if not nodes or any(node not in timings for node in nodes):
        return float("nan")
    return float(sum(timings[node] for node in nodes))


# ------------------------------------------------------------------------- report


def summarise(rows: pd.DataFrame) -> pd.DataFrame:
    """Mean ± std over seeds per benchmark, regime and method, with per-run time ratios."""
    rows = rows.assign(
        ratio_to_neurontune=rows["method_seconds"] / rows["neurontune_seconds"],
        neurontune_to_erm=rows["neurontune_seconds"] / rows["erm_seconds"],
    )
    order = {method: rank for rank, method in enumerate(METHOD_NODES)}
    rows = rows.assign(_order=rows["method"].map(order).fillna(len(order))).sort_values("_order", kind="stable")
    rows = rows.sort_values(["benchmark", "regime"], key=_first_seen, kind="stable")
    grouped = rows.groupby(["benchmark", "regime", "method"], sort=False)
    summary = grouped.agg(
        labels_used=("labels_used", "first"), n_seeds=("seed", "nunique"),
        wga_mean=("worst_group_accuracy", "mean"), wga_std=("worst_group_accuracy", "std"),
        mean_accuracy=("mean_accuracy", "mean"), mean_accuracy_std=("mean_accuracy", "std"),
        worst_class_accuracy=("worst_class_accuracy", "mean"), worst_class_std=("worst_class_accuracy", "std"),
        n_masked=("n_masked", "mean"),
        seconds=("method_seconds", "mean"), ratio_to_neurontune=("ratio_to_neurontune", "mean"),
        ratio_std=("ratio_to_neurontune", "std"), neurontune_to_erm=("neurontune_to_erm", "mean"),
        neurontune_to_erm_std=("neurontune_to_erm", "std"), erm_seconds=("erm_seconds", "mean"),
        neurontune_seconds=("neurontune_seconds", "mean"),
    )
    return summary.reset_index()


def _planned(meta: dict) -> str:
    planned = meta.get("planned_runs")
    return f" (of {planned} planned)" if planned and planned != meta["n_runs"] else ""


def _first_seen(column: pd.Series) -> pd.Series:
    """Sort key keeping benchmarks and regimes in the order they were run."""
    return column.map({value: rank for rank, value in enumerate(dict.fromkeys(column))})


def _pm(mean: float, std: float, digits: int = 3) -> str:
    if not np.isfinite(mean):
        return "n/a"
    return f"{mean:.{digits}f} ± {std:.{digits}f}" if np.isfinite(std) else f"{mean:.{digits}f}"


def render_report(rows: pd.DataFrame, meta: dict, plot_name: str) -> str:
    """The Markdown report: one table per benchmark and regime, then timing, then the run metadata."""
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
        "*Neurons masked* = mean number of suppressed embedding neurons (NeuronTune only). *Time* = wall time of the method's own nodes (NeuronTune: neuron scoring + mask selection + the "
        "regulation grid search; ERM: training the network), measured by the node-timing hook in the same run; "
        "*× NeuronTune* = that time divided by NeuronTune's in the same run, averaged over runs. The machine is "
        "shared with other jobs, so times are noisy: read the ± on the ratios.",
        "",
        f"![worst-group accuracy per method]({plot_name})",
        "",
    ]
    for (benchmark, regime), table in summary.groupby(["benchmark", "regime"], sort=False):
        lines += [f"## {benchmark} — {regime} validation ({REGIME_PARAMETER} = {REGIMES.get(regime, '?')})", ""]
        lines += ["| method | labels used | WGA | mean acc. | worst-class acc. | neurons masked | time (s) | × NeuronTune |",
                  "|---|---|---|---|---|---|---|---|"]
        for row in table.itertuples():
            lines.append(
                f"| {row.method} | {row.labels_used} | {_pm(row.wga_mean, row.wga_std)} | "
                f"{_pm(row.mean_accuracy, row.mean_accuracy_std)} | {_pm(row.worst_class_accuracy, row.worst_class_std)} | "
                f"{row.n_masked:.1f} | {row.seconds:.2f} | {_pm(row.ratio_to_neurontune, row.ratio_std, 2)} |")
        reference = table.iloc[0]
        lines += ["", f"Seeds: {int(table['n_seeds'].max())}. ERM training {reference.erm_seconds:.1f} s; NeuronTune "
                  f"identification + regulation {reference.neurontune_seconds:.2f} s = "
                  f"{_pm(reference.neurontune_to_erm, reference.neurontune_to_erm_std, 3)} × ERM training (per-run ratio).", ""]
    stage_columns = [column for column in rows.columns if column.startswith("stage_")]
    if stage_columns:
        per_run = rows.drop_duplicates("run_id").groupby(["benchmark", "regime"], sort=False)[stage_columns].mean()
        lines += ["## Wall time per pipeline stage (s, mean over runs)", "",
                  "| benchmark | regime | " + " | ".join(c[len("stage_"):-len("_seconds")] for c in stage_columns) + " |",
                  "|---|---|" + "---|" * len(stage_columns)]
        for (benchmark, regime), values in per_run.iterrows():
            lines.append(f"| {benchmark} | {regime} | " + " | ".join(f"{v:.1f}" for v in values) + " |")
        lines.append("")
    if meta.get("failures"):
        lines += ["## Runs that did not complete", ""] + [f"- {failure}" for failure in meta["failures"]] + [""]
    lines += ["## Per-seed results", "", "`runs.csv` beside this report holds every run's numbers and MLflow run id.", ""]
    return "\n".join(lines)


def plot_worst_group_accuracy(rows: pd.DataFrame):
    """One panel per benchmark and regime: WGA mean ± std per method, coloured by the labels it used."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    summary = summarise(rows)
    panels = list(summary.groupby(["benchmark", "regime"], sort=False))
    colours = {"none": "tab:blue", "val_groups": "tab:orange", "train_groups": "tab:red"}
    figure, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels), 4.2), squeeze=False, sharey=True)
    for axis, ((benchmark, regime), table) in zip(axes[0], panels):
        positions = np.arange(len(table))
        bars = axis.bar(positions, table["wga_mean"], yerr=table["wga_std"].fillna(0), capsize=3,
                        color=[colours.get(kind, "grey") for kind in table["labels_used"]],
                        hatch=["//" if method.startswith("neurontune") else "" for method in table["method"]])
        axis.bar_label(bars, labels=[f"{value:.2f}" for value in table["wga_mean"]], fontsize=7, padding=2)
        axis.set_xticks(positions, table["method"], rotation=45, ha="right", fontsize=8)
        axis.set(title=f"{benchmark}, {regime} validation", ylim=(0, 1.08))
        axis.grid(axis="y", alpha=0.3)
    axes[0][0].set_ylabel(f"worst-group accuracy ({REPORT_SPLIT})")
    handles = [plt.Rectangle((0, 0), 1, 1, color=colour) for colour in colours.values()]
    handles.append(plt.Rectangle((0, 0), 1, 1, facecolor="white", edgecolor="black", hatch="//"))
    figure.legend(handles, [f"labels used: {kind}" for kind in colours] + ["NeuronTune variants"], fontsize=8,
                  loc="upper center", ncol=4, bbox_to_anchor=(0.5, 1.06))
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
                        help=f"comma-separated names; known: {', '.join(BENCHMARK_ENVS)} (another name is used as the "
                             "Kedro --env). Default: colored_mnist")
    parser.add_argument("--regimes", default="balanced,correlated", help=f"comma-separated, from {list(REGIMES)}")
    parser.add_argument("--seeds", type=int, default=5, help="number of seeds, 0..N-1 (default 5)")
    parser.add_argument("--seed-list", default=None, help="explicit comma-separated seeds (overrides --seeds)")
    parser.add_argument("--params", action="append", default=[], metavar="KEY=VALUE",
                        help="extra Kedro runtime parameter for every run (repeatable)")
    parser.add_argument("--output", type=Path, default=PROJECT_ROOT / "benchmarks" / "results")
    parser.add_argument("--project-path", type=Path, default=PROJECT_ROOT,
                        help="the Kedro project to run in (its data/ and mlflow.db are used)")
    parser.add_argument("--tracking-uri", default=None,
                        help="MLflow tracking URI; default $MLFLOW_TRACKING_URI or <project>/mlflow.db")
    parser.add_argument("--experiment", default="neurontune-benchmarks")
    parser.add_argument("--report-only", action="store_true", help="re-render REPORT.md and the plot from runs.csv")
    parser.add_argument("--resume", default=None, metavar="PARENT_RUN_ID",
                        help="continue an interrupted report: finished child runs of this parent are read back, not rerun")
    arguments = parser.parse_args(argv)
    unknown = sorted(set(arguments.regimes.split(",")) - set(REGIMES))
    if unknown:
        parser.error(f"unknown regime(s) {unknown}; choose from {list(REGIMES)}.")
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
    client = MlflowClient(tracking_uri)
    experiment = client.get_experiment_by_name(arguments.experiment)
    experiment_id = experiment.experiment_id if experiment else client.create_experiment(arguments.experiment)
    seeds = ([int(s) for s in arguments.seed_list.split(",")] if arguments.seed_list else list(range(arguments.seeds)))
    benchmarks, regimes = arguments.benchmarks.split(","), arguments.regimes.split(",")
    command = "python -m benchmarks.run " + " ".join(argv if argv is not None else sys.argv[1:])
    if arguments.resume:
        parent = client.get_run(arguments.resume)
        command = f"{parent.data.tags.get('command', '?')}` resumed by `{command}"
        done, elapsed = finished_children(client, tracking_uri, experiment_id, parent.info.run_id)
    else:
        parent = client.create_run(experiment_id, run_name=f"benchmarks-{datetime.now(timezone.utc):%Y%m%dT%H%M%S}",
                                   tags={"benchmarks": ",".join(benchmarks), "regimes": ",".join(regimes),
                                         "seeds": ",".join(map(str, seeds)), "command": command})
        done, elapsed = {}, 0.0
    log_dir = project_path / "data" / "08_reporting" / "benchmark_logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    rows, failures, started = [], [], time.perf_counter() - elapsed

    def describe() -> dict:
        return {
            "command": command, "finished": f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M UTC}",
            "git_commit": _git_commit(project_path), "machine": f"{platform.machine()}, {os.cpu_count()} CPU cores",
            "n_runs": len({row["run_id"] for row in rows}), "total_seconds": time.perf_counter() - started,
            "parent_run_id": parent.info.run_id, "experiment": arguments.experiment, "failures": failures,
            "extra_params": arguments.params, "planned_runs": len(plan),
        }

    # seed-major order: an interrupted report still covers every regime evenly
    plan = [(benchmark, regime, seed) for benchmark in benchmarks for seed in seeds for regime in regimes]
    for benchmark, regime, seed in plan:
        if (benchmark, regime, seed) in done:
            rows += done[(benchmark, regime, seed)]
            continue
        logger.info("running %s / %s / seed %d", benchmark, regime, seed)
        try:
            rows += run_one(client, experiment_id, parent.info.run_id, benchmark, regime, seed,
                            extra_params=arguments.params, project_path=project_path,
                            tracking_uri=tracking_uri, experiment=arguments.experiment, log_dir=log_dir)
        except RuntimeError as error:
            logger.error("%s", error)
            failures.append(f"{benchmark} / {regime} / seed {seed}: {str(error).splitlines()[0]}")
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
