"""What a registered model suppresses, from its run's recorded artifacts alone (``neurontune explain``).

The run logged the method's head (``heads/``), the identification scores (``identification/``),
the per-neuron AUROC table and the metrics report (``reporting/``) and the evidence galleries
(``mask_evidence/``). From these the masked-neuron table is rebuilt (δ, attribute and core AUROC
per masked neuron) and mask precision / recall recomputed and checked against the recorded
numbers; the galleries are copied beside it. Nothing is rerun.
"""

from __future__ import annotations

import json
import re
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
from mlflow.artifacts import download_artifacts
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from neurontune.core import LinearHead
from neurontune.core.metrics import NOT_MEASURABLE, mask_hits
from neurontune.core.roles import scores_of
from neurontune.methods import mask_role
from neurontune.parameters import Variant
from neurontune.tracking.registry import version_record

_URI = re.compile(r"^models:/(?P<name>[^/@]+)(?:@(?P<alias>[^/]+)|/(?P<version>\d+))$")
#: Run parameters read back: the variant's tuning set (which δ its mask was selected from) and the
#: AUROC threshold of an attribute neuron.
VARIANT_PARAMETERS = "neurontune_regulation.variants.{method}."
THRESHOLD_PARAMETER = "evaluation.mask_quality.auroc_threshold"


def explain_model(model_uri: str, output: Path, run_id: str | None = None, client: MlflowClient | None = None) -> dict:
    """Rebuild the evidence of ``model_uri`` into ``output``; return what ``format_explanation`` prints.

    The evidence is read from the run that registered the version, or from ``run_id`` (a version
    registered by a promotion-only run has its heads and galleries in the run that fitted them).

    Returns
    -------
    dict with ``model`` (name, version, method, run id, guard tags), ``masked`` (the rebuilt table of
    masked neurons, largest δ first), ``recomputed`` and ``recorded`` mask quality, and ``files``
    (paths of the copied galleries and the written table).
    """
    client = client or MlflowClient()
    model = _model_version(client, model_uri)
    method, run_id = model["tags"].get("method"), run_id or model["run_id"]
    if not method or not run_id:
        raise ValueError(f"{model_uri} carries no method tag or run id; register it with the model_promotion pipeline.")
    run = client.get_run(run_id)
    output.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as folder:
        fetched = {name: _download(run_id, path, Path(folder)) for name, path in (
            ("head", f"heads/{method}_head.npz"), ("scores", "identification/neuron_scores.npz"),
            ("aurocs", "reporting/neuron_aurocs.parquet"), ("metrics", "reporting/metrics.json"))}
        files = [shutil.copy2(path, output / path.name) for path in _gallery_files(run_id, method, Path(folder))]
        masked, recomputed = _rebuild(fetched, run.data.params, method)
        recorded = json.loads(fetched["metrics"].read_text()).get("mask_quality", {}).get(method) if fetched["metrics"] else None
    table = output / f"{method}_masked_neurons.csv"
    if masked is not None:
        masked.to_csv(table, index=False)
        files.append(table)
    return {"model": {"name": model["registered_model_name"], "version": model["version"], "aliases": model["aliases"],
                      "method": method, "run_id": run_id,
                      "guard": {key[len("guard."):]: value for key, value in model["tags"].items() if key.startswith("guard.")}},
            "masked": masked, "recomputed": recomputed, "recorded": recorded, "files": [str(path) for path in files]}


def format_explanation(explanation: dict, n_rows: int = 15) -> str:
    """A plain-text account: the model, the guard, mask precision / recall, the masked neurons, the files."""
    model, guard = explanation["model"], explanation["model"]["guard"]
    aliases = "".join(f" @{alias}" for alias in model["aliases"])
    lines = [f"{model['name']} v{model['version']}{aliases}: method {model['method']}, run {model['run_id']}"]
    if guard:
        lines.append(f"do-no-harm guard: {guard.get('reason', '?')}")
        if guard.get("fired") == "true":
            lines.append(f"the registered head is ERM's: it suppresses nothing; below, what {model['method']} would have masked")
    recomputed, recorded = explanation["recomputed"], explanation["recorded"]
    if recomputed is None:
        lines.append(f"run {model['run_id']} has no head or neuron AUROC table of {model['method']} among its artifacts "
                     "(a promotion-only run?): name the run that fitted it with --run-id")
    elif "not_measurable" in recomputed:
        lines.append(f"mask: {recomputed['n_masked']} of {recomputed['n_neurons']} neurons; does the mask hit the "
                     f"shortcut? {recomputed['not_measurable']}")
    else:
        lines.append(f"mask: {recomputed['n_masked']} of {recomputed['n_neurons']} neurons; attribute neurons "
                     f"(AUROC >= {recomputed['auroc_threshold']:.2f} or <= {1 - recomputed['auroc_threshold']:.2f}): "
                     f"{recomputed['n_relevant']}")
        lines.append(f"does the mask hit the shortcut? precision {recomputed['precision']:.3f} (random mask "
                     f"{recomputed['random_precision']:.3f}), recall {recomputed['recall']:.3f} (random "
                     f"{recomputed['random_recall']:.3f})")
        if recorded is not None:
            same = all(np.isclose(recorded[key], recomputed[key], equal_nan=True) for key in ("precision", "recall"))
            lines.append("recorded in metrics.json: " + ("the same" if same else
                         f"precision {recorded['precision']:.3f}, recall {recorded['recall']:.3f} (differs!)"))
    masked = explanation["masked"]
    if masked is not None and len(masked):
        aurocs = "attribute_auroc" in masked.columns  # measured only where evaluation had group labels
        lines += ["", f"masked neurons (largest δ first; {min(n_rows, len(masked))} of {len(masked)}):",
                  f"{'neuron':>7}{'δ':>9}" + (f"{'attribute AUROC':>17}{'core AUROC':>12}" if aurocs else "")]
        lines += [f"{row.neuron:>7d}{row.delta:>+9.3f}" + (f"{row.attribute_auroc:>17.3f}{row.core_auroc:>12.3f}" if aurocs else "")
                  for row in masked.head(n_rows).itertuples()]
    lines += ["", "files:"] + [f"  {path}" for path in explanation["files"]] if explanation["files"] else []
    return "\n".join(lines)


def _model_version(client: MlflowClient, model_uri: str) -> dict:
    match = _URI.match(model_uri)
    if match is None:
        raise ValueError(f"model URI must look like models:/NAME@ALIAS or models:/NAME/VERSION; got {model_uri!r}.")
    try:
        version = match["version"] or client.get_model_version_by_alias(match["name"], match["alias"]).version
        return version_record(client, match["name"], version)
    except MlflowException as error:
        raise ValueError(f"{model_uri} does not resolve: {error.message}") from error


def _download(run_id: str, artifact_path: str, folder: Path) -> Path | None:
    try:
        return Path(download_artifacts(run_id=run_id, artifact_path=artifact_path, dst_path=str(folder)))
    except (MlflowException, OSError):
        return None


def _gallery_files(run_id: str, method: str, folder: Path) -> list[Path]:
    names = (f"{method}_gallery.png", f"{method}_gallery.md", f"{method}_evidence.parquet")
    return [path for path in (_download(run_id, f"mask_evidence/{name}", folder) for name in names) if path is not None]


def _rebuild(fetched: dict, params: dict, method: str) -> tuple[pd.DataFrame | None, dict | None]:
    """The masked neurons with δ and AUROCs, and mask precision / recall recomputed from head and AUROC table."""
    if fetched["head"] is None or fetched["aurocs"] is None:
        return None, None
    with np.load(fetched["head"]) as head:
        masked = LinearHead.from_arrays(head["weight"], head["bias"], head["keep"]).suppressed
    aurocs = pd.read_parquet(fetched["aurocs"])
    if "attribute_neuron" not in aurocs.columns:  # evaluated without group labels: no attribute to compare with
        quality = {"n_masked": int(masked.sum()), "n_neurons": int(masked.size), "not_measurable": NOT_MEASURABLE}
        table = aurocs.loc[masked, ["neuron"]].copy()
    else:
        quality = {**mask_hits(masked, aurocs["attribute_neuron"].to_numpy(dtype=bool)),
                   "auroc_threshold": float(params.get(THRESHOLD_PARAMETER, "nan"))}
        table = aurocs.loc[masked, ["neuron", "attribute_auroc", "core_auroc"]].copy()
    role = mask_role(_variant(params, method))
    table.insert(1, "delta", _deltas(fetched["scores"], role, masked))
    return table.sort_values("delta", ascending=False, kind="stable").reset_index(drop=True), quality


def _variant(params: dict, method: str) -> dict:
    """The levers that decide the variant's scoring role, from its run's flattened parameters (as logged: text).
    A run logs every lever since the registry completes the settings; an older run's missing lever is the
    schema's default."""
    prefix = VARIANT_PARAMETERS.format(method=method)
    logged = {key[len(prefix):]: value for key, value in params.items() if key.startswith(prefix)}
    variant = {**Variant.defaults(), "tune_set": "val_ide", **logged}
    variant["relu_before_scoring"] = str(variant["relu_before_scoring"]) == "True"
    return variant


def _deltas(scores_path: Path | None, role: str, masked: np.ndarray) -> np.ndarray:
    """Max-over-classes δ of the masked neurons on the scored role the variant's mask was selected on."""
    if scores_path is None:
        return np.full(int(masked.sum()), np.nan)
    with np.load(scores_path) as scores:
        delta = scores_of({key: scores[key] for key in scores.files}, role).scores[:, masked]
    scored = np.isfinite(delta).any(axis=0)
    return np.where(scored, np.max(np.where(np.isfinite(delta), delta, -np.inf), axis=0), np.nan)
