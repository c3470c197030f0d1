"""Round trip of "debias your own model": the project's own ERM network, exported and imported back as a user's.

Usage (from the project root)::

    .venv/bin/python -m benchmarks.your_model_round_trip [--env ci] [--output benchmarks/results/your_model_round_trip.md]

1. ``kedro run --env ENV`` (an image benchmark: ``colored_mnist``, its reduced ``ci``, ``waterbirds_like``) in a
   temporary copy, with a fresh MLflow store: ERM trains, every NeuronTune variant retrains its head, evaluation
   reads the attribute.
2. The ERM network of that run is logged with ``mlflow.pytorch.log_model`` (MLflow's default pt2 serialization)
   and registered as ``ENV-erm@production``, as a user would log theirs; its preprocessing (image size, crop,
   mean, std) is what the user declares in ``conf/custom``.
3. The same images are written as a user's folder — PNG files and ``labels.csv`` with ``path,label,split`` and
   **no attribute column** — and imported: ``kedro run --env custom`` with ``erm_training.source`` set to that
   URI, up to ``neurontune_regulation`` (what follows needs group labels for now).
4. Each variant's debiased head is compared with the in-project one (weights, masks, test predictions), and the
   test worst-group accuracy of the imported run is computed afterwards from the attribute the import never saw.

Writes a Markdown table of the measured numbers. Minutes on a CPU; never timed in tests.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import yaml

from neurontune.core import LinearHead, group_report, head_predict
from neurontune.methods import load_registry
from neurontune.models.backbones import model_from_checkpoint

PROJECT = Path(__file__).resolve().parents[1]
COPIED = ("conf", "src", "pyproject.toml", ".telemetry")
IMPORT_PIPELINES = "data_versioning,erm_training,embedding_caching,neuron_identification,neurontune_regulation"


def copy_project(destination: Path) -> Path:
    for name in COPIED:
        source = PROJECT / name
        if source.is_dir():
            shutil.copytree(source, destination / name, ignore=shutil.ignore_patterns("local", "__pycache__"))
        elif source.exists():
            shutil.copy2(source, destination / name)
    (destination / "conf" / "local").mkdir(exist_ok=True)
    return destination


def kedro(project: Path, tracking_uri: str, *arguments: str) -> float:
    started = time.perf_counter()
    environment = {**{k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")},
                   "KEDRO_DISABLE_TELEMETRY": "true", "MLFLOW_TRACKING_URI": tracking_uri}
    result = subprocess.run([str(Path(sys.executable).parent / "kedro"), "run", *arguments], cwd=project,
                            env=environment, capture_output=True, text=True)
    if result.returncode:
        raise RuntimeError(f"kedro run {' '.join(arguments)} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return time.perf_counter() - started


def preprocessing_of(model, images: np.ndarray) -> dict:
    """What the network's own training fed it, as ``conf/custom`` declares it: a pretrained backbone's image size,
    crop and normalisation; the small CNN's pixels / 255 at the images' own size."""
    if hasattr(model, "mean"):
        # the project's arrays already have the model's size, so its training never cropped them (a crop applies to
        # image files only): the user's folder of the same pixels declares no crop
        size = model.config["image_size"]
        crop = 1.0 if images.shape[-1] == size else model.config["crop_fraction"]
        return {"image_size": size, "crop_fraction": crop, "mean": list(model.mean), "std": list(model.std)}
    return {"image_size": int(images.shape[-1]), "crop_fraction": 1.0, "mean": [0.0] * 3, "std": [1.0] * 3}


def log_erm_network(model, image_size: int, tracking_uri: str, name: str) -> str:
    """The run's ERM network as a user's MLflow model (pt2), registered as ``name@production``; returns its URI."""
    import mlflow

    shape = (2, 3, image_size, image_size)
    mlflow.set_tracking_uri(tracking_uri)
    with mlflow.start_run(run_name="the user's training code"):
        info = mlflow.pytorch.log_model(model, name="model", input_example=np.zeros(shape, np.float32),
                                        registered_model_name=name)
    mlflow.MlflowClient().set_registered_model_alias(name, "production", info.registered_model_version)
    return f"models:/{name}@production"


def write_user_folder(folder: Path, images: np.ndarray, metadata: pd.DataFrame) -> None:
    """PNG per image and labels.csv (path, label, split): the attribute and group columns are dropped."""
    from PIL import Image

    (folder / "images").mkdir(parents=True)
    paths = []
    for k, image in enumerate(images):
        paths.append(f"images/{k:05d}.png")
        Image.fromarray(np.ascontiguousarray(image.transpose(1, 2, 0))).save(folder / paths[-1])
    pd.DataFrame({"path": paths, "label": metadata["y"].astype(str), "split": metadata["split"]}).to_csv(
        folder / "labels.csv", index=False)


def configure_import(project: Path, reductions: dict, preprocessing: dict) -> None:
    """conf/custom as the user edits it: the classes and the preprocessing the ERM network reads."""
    conf = project / "conf" / "custom"
    data = yaml.safe_load((conf / "parameters_data_versioning.yml").read_text())
    data["data_versioning"]["classes"] = ["0", "1"]
    (conf / "parameters_data_versioning.yml").write_text(yaml.safe_dump(data))
    erm = yaml.safe_load((conf / "parameters_erm_training.yml").read_text())
    erm["erm_training"]["imported"]["preprocessing"].update(preprocessing)
    (conf / "parameters_erm_training.yml").write_text(yaml.safe_dump(erm))
    (conf / "parameters_run_settings.yml").write_text(yaml.safe_dump(reductions))


def compare(original: Path, imported: Path, metadata: pd.DataFrame, metrics: dict) -> pd.DataFrame:
    """Per variant: head and mask agreement, test prediction agreement, WGA in-project vs computed afterwards."""
    caches = {run: dict(np.load(root / "04_feature" / "embeddings_test.npz")) for run, root in
              (("original", original), ("imported", imported))}
    test = metadata[metadata["split"] == "test"]
    groups = test["group"].to_numpy()
    n_groups = int(metadata["group"].max()) + 1
    rows = []
    for name, method in load_registry().items():
        if not method.head_dataset.startswith("neurontune_regulation.") and name != "erm":
            continue
        relative = Path("04_feature/erm_head.npz") if name == "erm" else Path(
            "06_models/neurontune_regulation") / f"{name}_head.npz"
        heads = {run: dict(np.load(root / relative)) for run, root in (("original", original), ("imported", imported))}
        predictions = {}
        for run, head in heads.items():
            linear = LinearHead.from_arrays(head["weight"], head["bias"], head.get("keep"))
            predictions[run] = head_predict(caches[run]["embeddings"], linear)
        report = group_report(test["y"].to_numpy(), predictions["imported"], groups, 2, n_groups)
        keep = {run: heads[run].get("keep", np.ones_like(heads[run]["weight"])) for run in heads}
        rows.append({
            "method": name,
            "masked (in-project / imported)": f"{_n_masked(keep['original'])} / {_n_masked(keep['imported'])}",
            "same mask": bool(np.array_equal(keep["original"], keep["imported"])),
            "max |Δ weight|": float(np.abs(heads["original"]["weight"] - heads["imported"]["weight"]).max()),
            "test predictions agreeing": float((predictions["original"] == predictions["imported"]).mean()),
            "test WGA in-project": metrics[name]["test"]["worst_group_accuracy"],
            "test WGA imported (attribute read afterwards)": report["worst_group_accuracy"],
            "test mean acc in-project": metrics[name]["test"]["mean_accuracy"],
            "test mean acc imported": report["mean_accuracy"],
        })
    return pd.DataFrame(rows)


def _n_masked(keep: np.ndarray) -> int:
    """Neurons suppressed in at least one class row (keep (M,) or (C, M))."""
    return int((np.atleast_2d(keep) == 0).any(axis=0).sum())


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", default="ci")
    parser.add_argument("--output", default=str(PROJECT / "benchmarks" / "results" / "your_model_round_trip.md"))
    arguments = parser.parse_args(argv)
    scratch = Path(tempfile.mkdtemp(prefix="round_trip_"))
    tracking_uri = f"sqlite:///{scratch / 'mlflow.db'}"
    original_project = copy_project(scratch / "in_project")
    seconds = {"in-project run": kedro(original_project, tracking_uri, "--env", arguments.env)}
    data_root = yaml.safe_load((PROJECT / "conf" / arguments.env / "globals.yml").read_text())["data_root"].rsplit("/", 1)[1]
    original = original_project / "data" / data_root
    metadata = pd.read_parquet(original / "01_raw" / "metadata.parquet")
    images = np.load(original / "01_raw" / "inputs.npz")["inputs"]
    started = time.perf_counter()
    network = model_from_checkpoint(torch.load(original / "06_models" / "erm_model.pt", weights_only=True))
    preprocessing = preprocessing_of(network, images)
    uri = log_erm_network(network, preprocessing["image_size"], tracking_uri, f"{arguments.env}-erm".replace("_", "-"))
    seconds["log the ERM network (pt2)"] = time.perf_counter() - started
    write_user_folder(scratch / "user_folder", images, metadata)
    imported_project = copy_project(scratch / "imported")
    environment = yaml.safe_load((PROJECT / "conf" / arguments.env / "parameters.yml").read_text()) if (
        PROJECT / "conf" / arguments.env / "parameters.yml").is_file() else {}
    configure_import(imported_project, {key: environment[key] for key in ("neurontune_regulation", "baselines")
                                        if key in environment}, preprocessing)
    seconds["imported run"] = kedro(imported_project, tracking_uri, "--env", "custom", "--pipelines", IMPORT_PIPELINES,
                                    "--params", f"data_versioning.root={scratch / 'user_folder'},erm_training.source={uri}")
    metrics = json.loads((original / "08_reporting" / "metrics.json").read_text())
    table = compare(original, imported_project / "data" / "custom", metadata, metrics)
    embeddings = [np.load(root / "04_feature" / "embeddings_test.npz")["embeddings"]
                  for root in (original, imported_project / "data" / "custom")]
    gap = float(np.abs(embeddings[0] - embeddings[1]).max())
    text = "\n".join([
        "# Round trip: the project's ERM network imported as a user's model",
        "",
        f"`python -m benchmarks.your_model_round_trip --env {arguments.env}` ({arguments.env}, seed 0, one run each).",
        "The in-project run trains ERM and debiases it; its ERM network is logged with `mlflow.pytorch.log_model` "
        f"(pt2) and imported with `erm_training.source={uri}` from a PNG folder whose labels.csv has no attribute "
        f"column, declaring the preprocessing {preprocessing}. The imported run has no early checkpoint, so its "
        "`early` error set is the cross-fitted one (with a fine-tuned ERM, `neurontune_plus` and the levers that "
        "read `auto` differ by design; with a linear probe `auto` is the cross-fitted set in both runs).",
        "",
        f"Largest |embedding difference| on test between the two runs: {gap:.2e}.",
        "",
        table.to_markdown(index=False, floatfmt=".4f"),
        "",
        "Wall time (s): " + ", ".join(f"{key} {value:.0f}" for key, value in seconds.items()) + ".",
        "",
    ])
    Path(arguments.output).write_text(text)
    print(text)


if __name__ == "__main__":
    main()
