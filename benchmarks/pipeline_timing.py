"""Wall time per pipeline, and embedding throughput of embedding_caching against a bare inference loop.

Usage (from the project root, after `make run`)::

    .venv/bin/python -m benchmarks.pipeline_timing [--env ENV] [--repeats 3]

Prints the figures and writes them to ``benchmarks/results/pipeline_timing.md`` (``--output``).

The machine is shared and noisy, so speed is reported as ratios measured in one run,
never as absolute limits.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from neurontune.console import project_catalog
from neurontune.models.backbones import model_from_checkpoint
from neurontune.pipelines.embedding_caching.nodes import cache_embeddings
from neurontune.pipeline_registry import STAGES

PROJECT = Path(__file__).resolve().parents[1]


def time_pipelines(env: str) -> dict[str, float]:
    kedro = Path(sys.executable).parent / "kedro"
    environment = {**os.environ, "KEDRO_DISABLE_TELEMETRY": "true"}
    times = {}
    for name in STAGES:  # in execution order
        start = time.perf_counter()
        subprocess.run([str(kedro), "run", "--env", env, "--pipelines", name], cwd=PROJECT, env=environment,
                       check=True, capture_output=True)
        times[name] = time.perf_counter() - start
    return times


def bare_loop(model, inputs: np.ndarray, batch_size: int) -> None:
    with torch.inference_mode():
        for start in range(0, len(inputs), batch_size):
            batch = torch.from_numpy(inputs[start : start + batch_size]).float().div_(255.0)
            model.head(model.embed(batch))


def embedding_throughput(env: str, batch_size: int, repeats: int) -> tuple[float, float, int]:
    catalog = project_catalog(env)  # the run's own files, wherever the environment keeps them
    inputs, labels, checkpoint, early = (catalog.load(name) for name in ("raw_inputs", "class_labels", "erm_model",
                                                                         "erm_early_model"))
    models = [model_from_checkpoint(checkpoint)]
    if "frozen_backbone_digest" not in early:  # the node runs the fine-tuned early network too: so does the reference
        models.append(model_from_checkpoint(early))
    n = len(labels)
    node_times, bare_times = [], []
    for _ in range(repeats):  # interleaved so both see the same machine load
        start = time.perf_counter()
        cache_embeddings(inputs, labels, checkpoint, early, {"device": "cpu", "batch_size": batch_size})
        node_times.append(time.perf_counter() - start)
        start = time.perf_counter()
        for model in models:
            bare_loop(model, inputs["inputs"], batch_size)
        bare_times.append(time.perf_counter() - start)
    return n / statistics.median(node_times), n / statistics.median(bare_times), n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env", default="colored_mnist")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--skip-pipelines", action="store_true")
    parser.add_argument("--output", type=Path, default=PROJECT / "benchmarks" / "results" / "pipeline_timing.md")
    arguments = parser.parse_args()
    lines = [f"# Pipeline timing ({arguments.env})", "",
             f"`python -m benchmarks.pipeline_timing --env {arguments.env}` on {platform.machine()}, "
             f"{os.cpu_count()} CPU cores, {time.strftime('%Y-%m-%d %H:%M', time.gmtime())} UTC (load average at start: "
             f"{os.getloadavg()[0]:.1f}). Each pipeline is one `kedro run --pipelines NAME`, so each time includes "
             "Kedro's and MLflow's start-up.", ""]
    if not arguments.skip_pipelines:
        times = time_pipelines(arguments.env)
        total = sum(times.values())
        lines += ["| pipeline | wall s | share |", "|---|---|---|"]
        lines += [f"| {name} | {seconds:.1f} | {seconds / total:.0%} |" for name, seconds in times.items()]
        lines += ["", f"Total {total:.1f} s."]
        if "erm_training" in times:
            nt = times["neuron_identification"] + times["neurontune_regulation"]
            lines.append(f"Identification + regulation (every variant, full grids) / ERM training: {nt / times['erm_training']:.2f}.")
    node, bare, n = embedding_throughput(arguments.env, arguments.batch_size, arguments.repeats)
    lines += ["", f"Embedding throughput: `embedding_caching` {node:.0f} samples/s, a bare `torch.inference_mode()` loop "
              f"over the same model {bare:.0f} samples/s: **ratio {node / bare:.2f}** ({n} samples, batch "
              f"{arguments.batch_size}, median of {arguments.repeats} interleaved repeats).", ""]
    print("\n".join(lines))
    arguments.output.parent.mkdir(parents=True, exist_ok=True)
    arguments.output.write_text("\n".join(lines))


if __name__ == "__main__":
    main()
