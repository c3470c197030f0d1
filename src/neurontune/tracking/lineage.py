"""Lineage audit of a registered model: version → run → git commit → parameters → data digests
and DVC hashes → the ERM model and its run → the metrics; and a check of the data on disk.

Used by ``neurontune lineage``. Every link is resolved from MLflow (and ``dvc.lock``
when the project has one); nothing is inferred from file names.
"""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
from datetime import datetime, timezone
from pathlib import Path

import mlflow
import yaml
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from neurontune.tracking.registry import version_record

MANIFEST_ARTIFACT = "data/dataset_manifest.json"
ERM_ARTIFACT = "models/erm_model.pt"
RAW_INPUTS = Path("data/01_raw/inputs.npz")
RAW_METADATA = Path("data/01_raw/metadata.parquet")
LOCAL_MANIFEST = Path("data/01_raw/dataset_manifest.json")
_URI = re.compile(r"^models:/(?P<name>[^/@]+)(?:@(?P<alias>[^/]+)|/(?P<version>\d+))$")


def default_tracking_uri(project_dir: Path) -> str:
    """The project's embedded default (conf/base/mlflow.yml) for a project in ``project_dir``."""
    return f"sqlite:///{(project_dir / 'mlflow.db').resolve()}"


def resolve_lineage(model_uri: str, project_dir: Path, client: MlflowClient | None = None) -> dict:
    """The whole chain as plain data (JSON-serialisable)."""
    client = client or MlflowClient()
    match = _URI.match(model_uri)
    if match is None:
        raise ValueError(f"model URI must look like models:/NAME@ALIAS or models:/NAME/VERSION; got {model_uri!r}.")
    name = match["name"]
    try:
        version = match["version"] or client.get_model_version_by_alias(name, match["alias"]).version
    except MlflowException as error:
        raise ValueError(f"{model_uri} does not resolve in {mlflow.get_tracking_uri()}: {error.message}") from error
    model = version_record(client, name, version)
    run = client.get_run(model["run_id"])
    return {
        "model_uri": model_uri,
        "tracking_uri": mlflow.get_tracking_uri(),
        "model": {key: model[key] for key in ("registered_model_name", "version", "aliases", "source", "model_id",
                                              "created_at_ms", "tags")},
        "run": _run_summary(client, run),
        "code": _code(run.data.tags.get("git_commit"), project_dir),
        "parameters": dict(sorted(run.data.params.items())),
        "data": _data(client, run, model, project_dir),
        "erm_model": _erm_model(client, run, model["tags"].get("erm_checkpoint_digest")),
        "metrics": {"recorded_on_version": model["metrics"], "run": dict(sorted(run.data.metrics.items()))},
    }


def verify_data(lineage: dict, project_dir: Path) -> dict:
    """Recompute the digest of the data on disk and the DVC file hashes; compare with what the model saw."""
    from neurontune.data.tables import content_digest
    from neurontune.io.datasets import NpzDataset, ParquetTableDataset

    expected = lineage["data"]["digest"]
    checks = []
    inputs, metadata = project_dir / RAW_INPUTS, project_dir / RAW_METADATA
    check = {"check": "content_digest", "paths": [str(RAW_INPUTS), str(RAW_METADATA)], "expected": expected}
    if inputs.exists() and metadata.exists():
        try:
            actual = content_digest(NpzDataset(str(inputs)).load()["inputs"], ParquetTableDataset(str(metadata)).load())
            checks.append({**check, "actual": actual, "ok": actual == expected})
        except Exception as error:  # an unreadable file is a mismatch, reported, not a crash
            checks.append({**check, "actual": None, "ok": False, "note": f"unreadable: {error}"})
    else:
        checks.append({**check, "actual": None, "ok": False,
                       "note": "data missing on disk: run `dvc pull` (or `kedro run`) first"})
    manifest = project_dir / LOCAL_MANIFEST
    if manifest.exists():
        recorded = json.loads(manifest.read_text()).get("digest")
        checks.append({"check": "manifest", "paths": [str(LOCAL_MANIFEST)], "expected": expected, "actual": recorded,
                       "ok": recorded == expected})
    for out in lineage["data"]["dvc"]["outs"]:
        checks.extend(_verify_dvc_out(out, project_dir))
    return {"ok": all(check["ok"] for check in checks), "checks": checks}


def format_lineage(lineage: dict, method: str | None = None) -> str:
    """Human-readable chain, one link per block."""
    model, run, code, data, erm = (lineage[key] for key in ("model", "run", "code", "data", "erm_model"))
    method = method or model["tags"].get("method", "neurontune")
    aliases = ", ".join(f"@{alias}" for alias in model["aliases"]) or "no alias"
    lines = [
        f"model       {model['registered_model_name']} v{model['version']} ({aliases})  {model['source']}",
        f"run         {run['run_id']}  experiment {run['experiment_name']!r}  {run['status']}  started {run['start_time']}",
        f"code        git {code['git_commit']}  " + {True: "(commit found in this repository)",
                                                     False: "(commit NOT found in this repository)",
                                                     None: "(no git repository to check against)"}[code["resolves"]],
        f"parameters  {len(lineage['parameters'])} logged: "
        + ", ".join(f"{k}={v}" for k, v in list(lineage["parameters"].items())[:6]) + (" …" if len(lineage["parameters"]) > 6 else ""),
        f"data        {data['name']}  digest {data['digest']}",
        f"            MLflow dataset inputs: "
        + (", ".join(f"{d['name']} ({d['digest']})" for d in data["dataset_inputs"]) or "none"),
        f"            manifest artifact: {'digest matches' if data['manifest_digest'] == data['digest'] else data['manifest_digest']}",
    ]
    dvc = data["dvc"]
    if dvc["lock_file"] is None:
        lines.append("dvc         no dvc.lock in the project: no DVC hashes to report")
    else:
        lines += [f"dvc         {dvc['lock_file']}"] + [f"            {o['stage']}: {o['path']}  md5 {o['md5']}" for o in dvc["outs"]]
    lines.append(
        f"erm model   checkpoint {str(erm['checkpoint_digest'])[:16]}…  trained in run {erm['run_id'] or 'NOT FOUND'}"
        + (f"  ({erm['artifact']})" if erm["artifact"] else "")
    )
    for split, values in sorted(model_metrics(lineage).items()):
        lines.append(f"metrics     {method} {split}: " + "  ".join(f"{k} {int(v) if k == 'n_masked' else format(v, '.4f')}" for k, v in sorted(values.items())))
    decision = {k[len("promotion."):]: v for k, v in model["tags"].items() if k.startswith("promotion.")}
    if decision:
        lines.append(f"promotion   {decision.get('status')}: {decision.get('reason')}")
    if "verification" in lineage:
        verification = lineage["verification"]
        lines.append(f"verify      {'OK' if verification['ok'] else 'MISMATCH'}")
        for check in verification["checks"]:
            status = "ok" if check["ok"] else "MISMATCH"
            paths = ", ".join(check["paths"])
            lines.append(f"            {status:<8} {check['check']} {paths}: expected {check['expected']} got {check['actual']}"
                         + (f" ({check['note']})" if check.get("note") else ""))
    return "\n".join(lines)


def model_metrics(lineage: dict) -> dict:
    return lineage["metrics"]["recorded_on_version"]


def _run_summary(client: MlflowClient, run) -> dict:
    experiment = client.get_experiment(run.info.experiment_id)
    started = datetime.fromtimestamp(run.info.start_time / 1000, tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
    return {"run_id": run.info.run_id, "experiment_id": run.info.experiment_id, "experiment_name": experiment.name,
            "status": run.info.status, "start_time": started, "artifact_uri": run.info.artifact_uri}


def _code(git_commit: str | None, project_dir: Path) -> dict:
    sha = (git_commit or "unknown").removesuffix("-dirty")
    resolves = None
    if re.fullmatch(r"[0-9a-f]{40}", sha):
        try:
            check = subprocess.run(["git", "-C", str(project_dir), "cat-file", "-e", f"{sha}^{{commit}}"],
                                   capture_output=True, text=True)
            inside = subprocess.run(["git", "-C", str(project_dir), "rev-parse", "--git-dir"], capture_output=True)
            resolves = (check.returncode == 0) if inside.returncode == 0 else None
        except OSError:
            resolves = None
    return {"git_commit": git_commit, "dirty": bool(git_commit and git_commit.endswith("-dirty")), "resolves": resolves}


def _data(client: MlflowClient, run, model: dict, project_dir: Path) -> dict:
    digest = run.data.tags.get("data_digest") or model["data_digest"]
    manifest = _load_artifact_json(run.info.run_id, MANIFEST_ARTIFACT)
    inputs = [{"name": d.dataset.name, "digest": d.dataset.digest, "source": d.dataset.source,
               "tags": {t.key: t.value for t in d.tags}} for d in run.inputs.dataset_inputs]
    return {
        "name": (manifest or {}).get("name") or model["tags"].get("benchmark"),
        "digest": digest,
        "model_version_digest": model["data_digest"],
        "manifest_digest": (manifest or {}).get("digest"),
        "manifest": manifest,
        "dataset_inputs": inputs,
        "dvc": dvc_hashes(project_dir),
    }


def dvc_hashes(project_dir: Path) -> dict:
    """Every stage's outs (path, md5) from ``dvc.lock``; ``lock_file`` None when the project has none."""
    lock = project_dir / "dvc.lock"
    if not lock.exists():
        return {"lock_file": None, "outs": []}
    stages = (yaml.safe_load(lock.read_text()) or {}).get("stages", {})
    outs = [
        {"stage": stage, "path": out["path"], "md5": out.get("md5") or out.get("hash")}
        for stage, body in stages.items() for out in body.get("outs", [])
    ]
    return {"lock_file": str(lock), "outs": outs}


def _verify_dvc_out(out: dict, project_dir: Path) -> list[dict]:
    path = project_dir / out["path"]
    base = {"check": f"dvc md5 ({out['stage']})", "paths": [out["path"]], "expected": out["md5"]}
    if not str(out["md5"]).endswith(".dir"):
        actual = _md5(path) if path.is_file() else None
        return [{**base, "actual": actual, "ok": actual == out["md5"]}]
    # A directory out: compare each file with the listing in the DVC cache, when the cache has it.
    listing = project_dir / ".dvc" / "cache" / "files" / "md5" / out["md5"][:2] / out["md5"][2:]
    if not listing.exists():
        return [{**base, "actual": None, "ok": True, "note": "directory listing not in the local DVC cache; not checked"}]
    checks = []
    for entry in json.loads(listing.read_text()):
        file = path / entry["relpath"]
        actual = _md5(file) if file.is_file() else None
        checks.append({"check": f"dvc md5 ({out['stage']})", "paths": [f"{out['path']}/{entry['relpath']}"],
                       "expected": entry["md5"], "actual": actual, "ok": actual == entry["md5"]})
    return checks


def _erm_model(client: MlflowClient, run, digest: str | None) -> dict:
    """The run that trained the backbone: tagged ``erm_checkpoint_digest`` by the lineage hook."""
    found = None
    if digest:
        if run.data.tags.get("erm_checkpoint_digest") == digest:
            found = run
        else:
            experiments = [e.experiment_id for e in client.search_experiments()]
            runs = client.search_runs(experiments, f"tags.erm_checkpoint_digest = '{digest}'",
                                      order_by=["attributes.start_time ASC"], max_results=1)
            found = runs[0] if runs else None
    artifact = None
    if found is not None:
        listed = {item.path for item in client.list_artifacts(found.info.run_id, str(Path(ERM_ARTIFACT).parent))}
        artifact = f"runs:/{found.info.run_id}/{ERM_ARTIFACT}" if ERM_ARTIFACT in listed else None
    return {"checkpoint_digest": digest, "run_id": None if found is None else found.info.run_id, "artifact": artifact,
            "same_run_as_model": found is not None and found.info.run_id == run.info.run_id}


def _load_artifact_json(run_id: str, path: str) -> dict | None:
    try:
        return mlflow.artifacts.load_dict(f"runs:/{run_id}/{path}")
    except (MlflowException, OSError, ValueError):
        return None


def _md5(path: Path) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
