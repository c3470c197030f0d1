"""The ``neurontune`` console script: small tools around the Kedro project."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from neurontune.tracking.cli import add_tracking_commands


def summarise(metrics_path: Path, split: str = "test") -> str:
    """A plain-text table of per-group accuracy, WGA and mean accuracy for each method."""
    metrics = json.loads(metrics_path.read_text())
    groups = sorted({k for m in metrics.values() for k in m[split] if k.startswith("accuracy_group_")})
    header = f"{'method':<24}" + "".join(f"{'g' + g.rsplit('_', 1)[1]:>7}" for g in groups)
    header += f"{'WGA':>7}{'mean':>7}{'w-mean':>8}{'w-class':>8}{'masked':>7}"
    lines = [f"{split} split (w-mean = group accuracies weighted by training proportions)", header]
    for method, splits in metrics.items():
        row = splits[split]
        line = f"{method:<24}" + "".join(f"{row.get(g, float('nan')):>7.3f}" for g in groups)
        line += f"{row['worst_group_accuracy']:>7.3f}{row['mean_accuracy']:>7.3f}"
        line += f"{row.get('mean_accuracy_train_weighted', float('nan')):>8.3f}{row['worst_class_accuracy']:>8.3f}{row['n_masked']:>7d}"
        lines.append(line)
    return "\n".join(lines)


def export_embeddings(output: Path, env: str | None = None) -> dict:
    """Load the run's caches, metadata and ERM head through the project's catalog and write one ``.npz``.

    Reads the catalog configuration of the project in the working directory directly,
    so exporting starts no Kedro session and no MLflow run.
    """
    from kedro.config import OmegaConfigLoader
    from kedro.io import DataCatalog

    from neurontune.data.export import embedding_export
    from neurontune.data.tables import SPLITS
    from neurontune.io.datasets import NpzDataset
    from neurontune.settings import CONFIG_LOADER_ARGS

    loader = OmegaConfigLoader(conf_source=str(Path.cwd() / "conf"), env=env, **CONFIG_LOADER_ARGS)
    catalog = DataCatalog.from_config(loader["catalog"])
    caches = {split: catalog.load(f"embeddings_{split}") for split in SPLITS}
    arrays = embedding_export(caches, catalog.load("raw_metadata"), catalog.load("erm_head"))
    NpzDataset(str(output)).save(arrays)
    return arrays


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="neurontune", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    summary = commands.add_parser("summary", help="print the per-group accuracy table from metrics.json")
    summary.add_argument("metrics", nargs="?", default="data/08_reporting/metrics.json", type=Path)
    summary.add_argument("--split", default="test", choices=["train", "val", "test"])
    add_tracking_commands(commands)
    export = commands.add_parser(
        "export-embeddings",
        help="write one .npz with x_/y_/g_{train,val,test} and the ERM head w0, b0 (run `kedro run` first)")
    export.add_argument("--output", default="data/07_model_output/embeddings_export.npz", type=Path)
    export.add_argument("--env", default=None, help="Kedro environment of the run to export (a benchmark)")
    arguments = parser.parse_args(argv)
    if hasattr(arguments, "handler"):
        return arguments.handler(arguments, parser)
    if arguments.command == "summary":
        if not arguments.metrics.exists():
            parser.error(f"{arguments.metrics} does not exist; run `kedro run` first.")
        print(summarise(arguments.metrics, arguments.split))
    elif arguments.command == "export-embeddings":
        arrays = export_embeddings(arguments.output, arguments.env)
        shapes = ", ".join(f"{key} {value.shape}" for key, value in arrays.items() if key[0] in "xwb")
        print(f"wrote {arguments.output}: {shapes}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
