"""Closing numbers for the bundled real-data benchmarks: `kedro run --env NAME` per regime and seed.

Every run is one ``kedro run`` process under ``/usr/bin/time -v`` (wall time, CPU time,
peak resident memory); per-stage wall times come from the node timestamps of
``benchmarks/timing_logging.yml``. The metrics are read from
``data/08_reporting/metrics.json`` that the run wrote. One JSON per run lands in
``--out``, with ``class_balanced_retrain_val``: NeuronTune†'s retraining without the mask
(an ablation this script computes from the run's cached embeddings). ``--summarise`` prints the Markdown tables of docs/benchmarks_real.md.

    python -m benchmarks.real_benchmarks --envs waterbirds_like tweets_negation \
        --val-correlations 0.5 0.95 --seeds 0 1 2 --out benchmarks/results/real
    python -m benchmarks.real_benchmarks --summarise --out benchmarks/results/real
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import numpy as np

from benchmarks.run import seed_parameters

ROOT = Path(__file__).resolve().parents[1]
METHODS = ("erm", "class_balanced_retrain", "neurontune", "neurontune_dagger")
#: NeuronTune†'s no-mask ablation, computed by this script from each run's cached embeddings.
ABLATION = "class_balanced_retrain_val"
NODE_LINE = re.compile(r"^(\S+) kedro\S* INFO (Running|Completed) node: ([A-Za-z0-9_]+)")


def run_one(env: str, correlation: float, seed: int, out: Path, kedro: str, threads: str) -> dict:
    # the same seeded parameters as the report runner, so both drive identical runs
    params = ",".join(f"{key}={value}" for key, value in seed_parameters(seed, correlation).items())
    command = [kedro, "run", "--env", env, "--params", params]
    log, rusage = out / f"{env}_val{correlation}_seed{seed}.log", out / f"{env}_val{correlation}_seed{seed}.time"
    environment = {**os.environ, "KEDRO_DISABLE_TELEMETRY": "true", "HF_HUB_OFFLINE": "1", "TQDM_DISABLE": "1",
                   "KEDRO_LOGGING_CONFIG": str(ROOT / "benchmarks" / "timing_logging.yml"), "OMP_NUM_THREADS": threads}
    started = time.time()
    with open(log, "w") as handle:
        status = subprocess.run(["/usr/bin/time", "-v", "-o", str(rusage), *command], cwd=ROOT, env=environment,
                                stdout=handle, stderr=subprocess.STDOUT).returncode
    result = {"env": env, "val_correlation": correlation, "seed": seed, "command": " ".join(command[1:]), "threads": threads,
              "returncode": status, "wall_s": time.time() - started, **_resource_usage(rusage),
              "stage_wall_s": _stage_times(log)}
    if status == 0:
        metrics = json.loads((ROOT / "data" / "08_reporting" / "metrics.json").read_text())
        metrics[ABLATION] = _validation_retrain_without_mask(env, seed)
        result["metrics"] = {m: {split: metrics[m][split] for split in ("val", "test")} for m in (*METHODS, ABLATION)}
    (out / f"{env}_val{correlation}_seed{seed}.json").write_text(json.dumps(result, indent=2, sort_keys=True) + "\n")
    return result


def _validation_retrain_without_mask(env: str, seed: int) -> dict:
    """NeuronTune†'s ablation: the same class-balanced retraining on the same validation half, with no mask.

    Not a pipeline method: it tells whether NeuronTune†'s gain comes from the mask or from
    retraining on validation data. Reads the run's persisted outputs; no group labels
    enter the retraining (evaluation alone reads them).
    """
    from kedro.config import OmegaConfigLoader

    from neurontune.io.datasets import NpzDataset, ParquetTableDataset
    from neurontune.pipelines.evaluation.nodes import compute_group_metrics, predict_with_heads
    from neurontune.pipelines.neurontune_regulation.nodes import regulate_head
    from neurontune.settings import CONFIG_LOADER_ARGS

    tuning = OmegaConfigLoader(str(ROOT / "conf"), env=env, **CONFIG_LOADER_ARGS)["parameters"]["neurontune_regulation"]["tuning"]
    tuning["seed"] = seed
    data = ROOT / "data"
    cache = {split: NpzDataset(str(data / "04_feature" / f"embeddings_{split}.npz")).load() for split in ("train", "val", "test")}
    head, _ = regulate_head(cache["train"], cache["val"], NpzDataset(str(data / "05_model_input" / "validation_split.npz")).load(),
                            NpzDataset(str(data / "04_feature" / "erm_head.npz")).load(),
                            {"tune_set": "val_ide", "use_mask": False}, tuning)
    predictions = predict_with_heads(cache["train"], cache["val"], cache["test"], **{ABLATION: head})
    return compute_group_metrics(predictions, ParquetTableDataset(str(data / "01_raw" / "metadata.parquet")).load())[ABLATION]


def _resource_usage(path: Path) -> dict:
    text = path.read_text() if path.exists() else ""
    def number(label):
        match = re.search(rf"{label}: ([0-9.]+)", text)
        return float(match.group(1)) if match else float("nan")
    return {"peak_rss_mb": number(r"Maximum resident set size \(kbytes\)") / 1024,
            "cpu_s": number(r"User time \(seconds\)") + number(r"System time \(seconds\)")}


def _stage_times(log: Path) -> dict[str, float]:
    from neurontune.pipeline_registry import STAGES

    stage_of = {node.name: stage for stage, module in STAGES.items() for node in module.create_pipeline().nodes}
    started, totals = {}, {}
    for line in log.read_text(errors="replace").splitlines():
        match = NODE_LINE.match(line)
        if not match:
            continue
        moment, event, name = datetime.fromisoformat(match.group(1)).timestamp(), match.group(2), match.group(3)
        if event == "Running":
            started[name] = moment
        elif name in started:
            stage = stage_of.get(name, "other")
            totals[stage] = totals.get(stage, 0.0) + moment - started.pop(name)
    return totals


def summarise(out: Path) -> str:
    runs = [json.loads(p.read_text()) for p in sorted(out.glob("*.json"))]
    runs = [r for r in runs if r.get("returncode") == 0]
    lines = []
    for env in sorted({r["env"] for r in runs}):
        for correlation in sorted({r["val_correlation"] for r in runs if r["env"] == env}):
            chosen = [r for r in runs if r["env"] == env and r["val_correlation"] == correlation]
            seeds = sorted(r["seed"] for r in chosen)
            lines += [f"\n### {env}, validation correlation {correlation} (seeds {seeds})\n",
                      "| method | test WGA | test mean acc | val WGA | neurons masked |", "|---|---|---|---|---|"]
            for method in (*METHODS, ABLATION):
                def stat(split, key):
                    values = np.array([r["metrics"][method][split][key] for r in chosen])
                    return f"{values.mean():.3f} ± {values.std(ddof=1) if len(values) > 1 else 0:.3f}"
                masked = [r["metrics"][method]["test"]["n_masked"] for r in chosen]
                lines.append(f"| {method} | {stat('test', 'worst_group_accuracy')} | {stat('test', 'mean_accuracy')} | "
                             f"{stat('val', 'worst_group_accuracy')} | {', '.join(map(str, masked))} |")
            stages = sorted({s for r in chosen for s in r["stage_wall_s"]})
            lines += ["", "| " + " | ".join(["wall s (total)", "CPU s", "peak RSS MB", *stages]) + " |",
                      "|" + "---|" * (3 + len(stages))]
            lines.append("| " + " | ".join(
                [f"{np.mean([r['wall_s'] for r in chosen]):.0f}", f"{np.mean([r['cpu_s'] for r in chosen]):.0f}",
                 f"{np.max([r['peak_rss_mb'] for r in chosen]):.0f}"]
                + [f"{np.mean([r['stage_wall_s'].get(s, 0) for r in chosen]):.0f}" for s in stages]) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--envs", nargs="+", default=["waterbirds_like", "tweets_negation"])
    parser.add_argument("--val-correlations", nargs="+", type=float, default=[0.5, 0.95])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "real")
    parser.add_argument("--kedro", default=str(Path(sys.executable).with_name("kedro")))
    parser.add_argument("--threads", default="2", help="OMP_NUM_THREADS of each run (1 is faster on a shared, busy CPU)")
    parser.add_argument("--resume", action="store_true", help="skip runs whose complete result is already in --out")
    parser.add_argument("--summarise", action="store_true", help="only print the tables of the runs in --out")
    arguments = parser.parse_args()
    os.environ["OMP_NUM_THREADS"] = arguments.threads  # also for the ablation computed in this process
    sys.path.insert(0, str(ROOT / "src"))
    arguments.out.mkdir(parents=True, exist_ok=True)
    if not arguments.summarise:
        for correlation in arguments.val_correlations:
            for env in arguments.envs:
                for seed in arguments.seeds:
                    done = arguments.out / f"{env}_val{correlation}_seed{seed}.json"
                    if arguments.resume and done.exists() and ABLATION in json.loads(done.read_text()).get("metrics", {}):
                        continue
                    result = run_one(env, correlation, seed, arguments.out, arguments.kedro, arguments.threads)
                    print(env, correlation, seed, "rc", result["returncode"], f"{result['wall_s']:.0f} s", flush=True)
    print(summarise(arguments.out))


if __name__ == "__main__":
    main()
