"""How identification and regulation cost grows with N: synthetic caches of N x 2048 float16 embeddings.

Usage (from the project root)::

    nice -n 5 .venv/bin/python -m benchmarks.scale [--sizes 10000 100000 1000000] [--workdir DIR]

For each N it writes a cache with the embedding store (``NpyStoreDataset``, float16) holding
one planted spurious neuron, then measures, each phase in a fresh subprocess (wall time and
peak RSS from ``resource.getrusage``): one sequential read of the embeddings file, chunked
identification (``score_neurons(chunk_size=...)``), in-memory identification (today's path),
and one regulation fit with the in-memory ``lbfgs`` solver and with ``lbfgs_chunked``. Reads and
identifications alternate (``--repeats``) with the file evicted from the page cache before each
(``posix_fadvise(DONTNEED)``), so each starts from storage; medians are reported. In-memory phases
are skipped where they would not fit next to other users of this machine (``--memory-limit-gb``).
Writes ``benchmarks/results/SCALE.md`` and deletes the caches unless ``--keep``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

import numpy as np

PROJECT = Path(__file__).resolve().parents[1]
WIDTH = 2048
PLANTED = 1234  # the spurious neuron: fires with the attribute a, which the ERM predictions follow
N_CORE = 8  # neurons 0..7 carry the class, weakly
BLOCK = 8192  # rows generated (and seeded) together
CHUNK_ROWS = 16384  # rows per block read by the chunked paths
CORRELATION = 0.9  # P(a = y)
THRESHOLD = 0.25  # λ of the reported mask (rule "any")


class SyntheticEmbeddings:
    """A lazy (N, M) float32 array: ReLU(noise) plus a weak class signal and one attribute neuron, made block by block."""

    def __init__(self, y: np.ndarray, a: np.ndarray, width: int, seed: int):
        self.y, self.a, self.seed = y, a, seed
        self.shape, self.dtype, self.ndim = (len(y), width), np.dtype(np.float32), 2

    def __getitem__(self, rows: slice) -> np.ndarray:
        start, stop = rows.start or 0, min(rows.stop, self.shape[0])
        first = start - start % BLOCK
        blocks = [self._block(begin) for begin in range(first, stop, BLOCK)]
        return np.concatenate(blocks)[start - first : stop - first]

    def _block(self, start: int) -> np.ndarray:
        stop = min(start + BLOCK, self.shape[0])
        rng = np.random.default_rng([self.seed, start // BLOCK])
        values = rng.standard_normal((stop - start, self.shape[1]), dtype=np.float32)
        values += 0.3
        values[:, :N_CORE] += 0.8 * self.y[start:stop, None]
        values[:, PLANTED] = 0.5 * values[:, PLANTED] + 2.0 * self.a[start:stop]
        return np.maximum(values, 0.0, out=values)


def phase_write(directory: Path, options) -> dict:
    """Labels, an attribute correlated with them, ERM logits that follow the attribute, and the embeddings (float16)."""
    from neurontune.io.embedding_store import NpyStoreDataset

    n, seed = options.n, options.n
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    a = np.where(rng.random(n) < CORRELATION, y, 1 - y)
    margin = 3.0 * (a - 0.5) + 1.0 * (y - 0.5) + rng.normal(0.0, 1.0, n)  # a biased ERM head: mostly the attribute
    logits = np.stack([np.zeros(n), margin], axis=1).astype(np.float32)
    start = time.perf_counter()
    NpyStoreDataset(str(directory), dtypes={"embeddings": "float16"}).save(
        {"embeddings": SyntheticEmbeddings(y, a, WIDTH, seed), "y": y, "logits": logits})
    return {"wall_s": time.perf_counter() - start, "error_rate": float(np.mean(logits.argmax(1) != y))}


# ---- phases, each run in a fresh interpreter --------------------------------------------------------------------

def phase_read(store: Path, _options) -> dict:
    buffer = bytearray(64 << 20)
    view, total = memoryview(buffer), 0
    start, cpu = time.perf_counter(), time.process_time()
    with open(store / "embeddings.npy", "rb", buffering=0) as handle:
        while got := handle.readinto(view):
            total += got
    return {"wall_s": time.perf_counter() - start, "cpu_s": time.process_time() - cpu, "bytes": total}


def phase_identify(store: Path, options) -> dict:
    from neurontune.core import score_neurons, select_biased_neurons
    from neurontune.io.embedding_store import NpyStoreDataset

    start, cpu = time.perf_counter(), time.process_time()
    cache = NpyStoreDataset(str(store)).load()
    embeddings = cache["embeddings"] if options.chunked else np.array(cache["embeddings"])
    y, y_pred = np.asarray(cache["y"]), np.asarray(cache["logits"]).argmax(axis=1)
    scores = score_neurons(embeddings, y, y_pred, 2, chunk_size=CHUNK_ROWS if options.chunked else None)
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    strongest = np.nanmax(scores.scores, axis=0)
    mask = select_biased_neurons(scores.scores, THRESHOLD, "any")
    np.save(options.result, scores.scores)
    return {"wall_s": wall, "cpu_s": cpu, "planted_rank": int(np.sum(strongest > strongest[PLANTED])) + 1,
            "planted_selected": bool(mask[PLANTED]), "n_selected": int(mask.sum())}


def phase_regulate(store: Path, options) -> dict:
    from neurontune.core import retrain_head
    from neurontune.io.embedding_store import NpyStoreDataset

    start, cpu = time.perf_counter(), time.process_time()
    cache = NpyStoreDataset(str(store)).load()
    embeddings = cache["embeddings"] if options.chunked else np.array(cache["embeddings"])
    mask = np.zeros(WIDTH, dtype=bool)
    mask[PLANTED] = True
    head = retrain_head(embeddings, np.asarray(cache["y"]), 2, mask, solver="lbfgs_chunked" if options.chunked else "lbfgs",
                        epochs=options.epochs, weight_decay=1e-3, chunk_size=CHUNK_ROWS)
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    np.savez(options.result, weight=head.weight, bias=head.bias)
    return {"wall_s": wall, "cpu_s": cpu}


def phase_imports(store: Path, _options) -> dict:
    """What the other phases hold before touching data: the interpreter, numpy, torch, Kedro (the store's base class)."""
    import neurontune.core  # noqa: F401
    import neurontune.io.embedding_store  # noqa: F401

    return {"wall_s": 0.0}


PHASES = {"write": phase_write, "read": phase_read, "identify": phase_identify, "regulate": phase_regulate,
          "imports": phase_imports}


def run_phase(phase: str, store: Path, *, chunked: bool = False, output: Path | None = None, epochs: int = 1,
              cold: bool = True, n: int = 0) -> dict:
    """One phase in a fresh interpreter. This parent stays small (numpy only): Linux carries a parent's peak RSS
    into a child's ``ru_maxrss`` across fork and exec, so a large parent would inflate every figure."""
    if cold:
        evict(store / "embeddings.npy")
    command = [sys.executable, "-m", "benchmarks.scale", "--phase", phase, "--store", str(store), "--epochs", str(epochs),
               "--n", str(n), "--result", str(output or store.parent / "unused.npy")] + (["--chunked"] if chunked else [])
    result = subprocess.run(command, cwd=PROJECT, capture_output=True, text=True,
                            env={**os.environ, "PYTHONPATH": str(PROJECT / "src")})
    if result.returncode != 0:
        raise RuntimeError(f"phase {phase} failed:\n{result.stderr[-4000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def evict(path: Path) -> None:
    """Drop ``path`` from the page cache, so the next read comes from storage."""
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fdatasync(descriptor)
        os.posix_fadvise(descriptor, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(descriptor)


def peak_resident_kb() -> int:
    """VmHWM of this process (Linux): the peak of its own address space, a cross-check of ``ru_maxrss``."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return -1


def load_average() -> str:
    return " ".join(f"{value:.1f}" for value in os.getloadavg())


def measure(n: int, workdir: Path, repeats: int, memory_limit_gb: float, epochs: int) -> dict:
    store = workdir / f"cache_{n}"
    row = {"n": n, "load_before": load_average()}
    row["write"] = run_phase("write", store, cold=False, n=n)
    row["cache_gb"] = (store / "embeddings.npy").stat().st_size / 1e9
    in_memory_gb = 3 * n * WIDTH * 4 / 1e9  # float16 + float32 copies and temporaries (2.2 GB per 100k rows measured)
    row["in_memory_fits"] = in_memory_gb <= memory_limit_gb
    reads, identifications = [], []
    for _ in range(repeats):  # alternate, so both see the same machine load
        reads.append(run_phase("read", store))
        identifications.append(run_phase("identify", store, chunked=True, output=workdir / "chunked.npy"))
    row["imports"] = run_phase("imports", store, cold=False)
    row["read"] = reads
    row["identify_chunked"] = identifications
    if row["in_memory_fits"]:
        row["identify_in_memory"] = run_phase("identify", store, output=workdir / "in_memory.npy")
        chunked, in_memory = np.load(workdir / "chunked.npy"), np.load(workdir / "in_memory.npy")
        row["scores_identical"] = bool(np.array_equal(chunked, in_memory, equal_nan=True))
        row["regulate_in_memory"] = run_phase("regulate", store, output=workdir / "head_memory.npz", epochs=epochs)
    row["regulate_chunked"] = run_phase("regulate", store, chunked=True, output=workdir / "head_chunked.npz",
                                        epochs=epochs)
    if row["in_memory_fits"]:
        memory, chunked = np.load(workdir / "head_memory.npz"), np.load(workdir / "head_chunked.npz")
        row["head_max_abs_diff"] = float(np.abs(memory["weight"] - chunked["weight"]).max())
        row["head_scale"] = float(np.abs(memory["weight"]).max())
    row["load_after"] = load_average()
    return row


def gb(kilobytes: float) -> str:
    return f"{kilobytes / 1024**2:.2f}"


def walls(rows: list[dict]) -> str:
    return ", ".join(f"{row['wall_s']:.2f}" for row in rows)


def median(rows: list[dict], key: str) -> float:
    return statistics.median(row[key] for row in rows)


def report(rows: list[dict], arguments) -> str:
    lines = [
        "# Scale: identification and regulation from a memory-mapped float16 cache",
        "",
        f"Measured {date.today().isoformat()} with `nice -n 5 python -m benchmarks.scale "
        f"--sizes {' '.join(str(r['n']) for r in rows)} --repeats {arguments.repeats} --epochs {arguments.epochs}` "
        f"on {platform.machine()}, {os.cpu_count()} cores shared with other jobs (load average before/after each N "
        "in the last table). Synthetic caches: N x 2048 float16 embeddings (`NpyStoreDataset`), two classes, "
        f"an attribute a with P(a = y) = {CORRELATION}, ERM predictions that follow a (error rate in the last table), "
        f"and neuron {PLANTED} planted to fire with a. Every phase runs in a fresh process; peak RSS is "
        f"`ru_maxrss` of that process ({gb(rows[0]['imports']['max_rss_kb'])} GB of it is the interpreter with numpy, torch "
        "and Kedro imported, before any data). "
        "Before each sequential read and each identification the file is evicted from the page cache, so both "
        f"start from storage; figures are medians of {arguments.repeats} alternating repeats. Identification reads "
        f"{CHUNK_ROWS:,} rows per block. \"CPU s\" is the process's CPU time over the same span, all threads: "
        "with other jobs on the cores, wall time is largely waiting for a core, which the sequential read (I/O) "
        "hardly does.",
        "",
        "| N | cache GB | sequential read s | identification (chunked) s | its CPU s | peak RSS GB (VmHWM) | / read "
        "| s per 1M rows | in memory s | in memory RSS GB | scores identical | planted rank | selected (λ=0.25, any) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        read, ident = median(row["read"], "wall_s"), median(row["identify_chunked"], "wall_s")
        rss = max(r["max_rss_kb"] for r in row["identify_chunked"])
        hwm = max(r["vm_hwm_kb"] for r in row["identify_chunked"])
        first = row["identify_chunked"][0]
        memory = row.get("identify_in_memory")
        memory_cells = (f"{memory['wall_s']:.2f} | {gb(memory['max_rss_kb'])} | {'yes' if row['scores_identical'] else 'NO'}"
                        if memory else "skipped¹ | skipped¹ | –")
        lines.append(
            f"| {row['n']:,} | {row['cache_gb']:.2f} | {read:.2f} | {ident:.2f} | {median(row['identify_chunked'], 'cpu_s'):.1f} | "
            f"{gb(rss)} ({gb(hwm)}) | {ident / read:.2f} | "
            f"{ident / row['n'] * 1e6:.1f} | {memory_cells} | {first['planted_rank']} | "
            f"{'yes' if first['planted_selected'] else 'NO'} ({first['n_selected']} neurons) |")
    lines += [
        "",
        f"One regulation fit (class-balanced L2 logistic regression, λ_wd = 1e-3, the planted neuron masked, "
        f"`epochs={arguments.epochs}`: at most {20 * arguments.epochs} L-BFGS iterations; `lbfgs_chunked` reads the "
        "cache once per function evaluation):",
        "",
        "| N | `lbfgs` in memory s (CPU s) | RSS GB | `lbfgs_chunked` s (CPU s) | RSS GB | max abs weight difference (largest weight) |",
        "|---|---|---|---|---|---|",
    ]
    for row in rows:
        chunked = row["regulate_chunked"]
        memory = row.get("regulate_in_memory")
        memory_cells = (f"{memory['wall_s']:.1f} ({memory['cpu_s']:.0f}) | {gb(memory['max_rss_kb'])}" if memory
                        else "skipped¹ | skipped¹")
        difference = (f"{row['head_max_abs_diff']:.1e} ({row['head_scale']:.2f})" if memory else "–")
        lines.append(f"| {row['n']:,} | {memory_cells} | {chunked['wall_s']:.1f} ({chunked['cpu_s']:.0f}) | "
                     f"{gb(chunked['max_rss_kb'])} | {difference} |")
    lines += [
        "",
        f"¹ Skipped where the in-memory path would need more than {arguments.memory_limit_gb:g} GB (about "
        "3 x N x 2048 x 4 bytes: the float16 array, its float32 copy and the temporaries; 25 GB at 1M, extrapolating "
        "the 100k row) on a 24 GB machine shared with other jobs.",
        "",
        "| N | write s (peak RSS) | ERM error rate | every read s | every chunked identification s | load before | load after |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        lines.append(f"| {row['n']:,} | {row['write']['wall_s']:.1f} ({gb(row['write']['max_rss_kb'])} GB) | "
                     f"{row['write']['error_rate']:.3f} | {walls(row['read'])} | "
                     f"{walls(row['identify_chunked'])} | {row['load_before']} | {row['load_after']} |")
    return "\n".join(lines) + "\n"


def output_problem(output: Path, workdir: Path, keep: bool) -> str | None:
    """Why the report cannot be written at ``output`` after the run (None when it can)."""
    output, workdir = output.resolve(), workdir.resolve()
    if not keep and output.is_relative_to(workdir):
        return (f"--output {output} lies inside --workdir {workdir}, which is deleted at the end of the run; "
                "write the report elsewhere (or pass --keep).")
    parent = next((folder for folder in (output.parent, *output.parent.parents) if folder.exists()), None)
    if output.is_dir() or parent is None or not os.access(parent, os.W_OK):
        return f"--output {output} cannot be written (a folder, or no write permission under {parent})."
    return None


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--workdir", type=Path, default=PROJECT / "data" / "scale_benchmark")
    parser.add_argument("--output", type=Path, default=PROJECT / "benchmarks" / "results" / "SCALE.md")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=1, help="retrain_head epochs (SGD only: L-BFGS runs to convergence, at most max_iter = 400 iterations; "
                             "docs/scaling.md, what the chunked fit costs)")
    parser.add_argument("--memory-limit-gb", type=float, default=8.0)
    parser.add_argument("--keep", action="store_true", help="keep the caches")
    parser.add_argument("--phase", choices=sorted(PHASES), help=argparse.SUPPRESS)
    parser.add_argument("--store", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--chunked", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--result", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--n", type=int, help=argparse.SUPPRESS)
    arguments = parser.parse_args(argv)
    if arguments.phase:  # a child: one phase, one JSON line
        result = PHASES[arguments.phase](arguments.store, arguments)
        result["max_rss_kb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        result["vm_hwm_kb"] = peak_resident_kb()
        print(json.dumps(result))
        return 0
    problem = output_problem(arguments.output, arguments.workdir, arguments.keep)
    if problem:  # before any work: a report that cannot be written is minutes (hours at 1e6) lost
        parser.error(problem)
    needed = max(arguments.sizes) * WIDTH * 2 / 1e9 * 1.1
    free = shutil.disk_usage(arguments.workdir.parent if not arguments.workdir.exists() else arguments.workdir).free / 1e9
    if needed > free:
        parser.error(f"the largest cache needs about {needed:.1f} GB but only {free:.1f} GB are free under {arguments.workdir}.")
    arguments.workdir.mkdir(parents=True, exist_ok=True)
    rows = []
    try:
        for n in arguments.sizes:
            print(f"N = {n:,} (load {load_average()})", flush=True)
            rows.append(measure(n, arguments.workdir, arguments.repeats, arguments.memory_limit_gb, arguments.epochs))
            print(json.dumps(rows[-1]), flush=True)
            if not arguments.keep:
                shutil.rmtree(arguments.workdir / f"cache_{n}")
    finally:
        if not arguments.keep:
            shutil.rmtree(arguments.workdir, ignore_errors=True)
    arguments.output.write_text(report(rows, arguments))
    print(f"wrote {arguments.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
