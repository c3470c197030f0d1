"""Lineage audit of a registered model: version → run → git commit → parameters → data and the
digests of every file the run read and wrote → the ERM model and its run → the metrics → who
moved the aliases; and a check of the files on disk against those digests.

Used by ``neurontune lineage``. Every link is resolved from MLflow; file locations come from the
digests the run recorded (through the catalog), never from paths written here. ``dvc.lock`` is a
separate, informational comparison: it was written on whichever machine committed it.
"""

from __future__ import annotations

import json
import re
import subprocess
import tempfile
import urllib.parse
from datetime import datetime, timezone
from pathlib import Path

import yaml
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from neurontune.tracking.digests import DIGESTS_ARTIFACT, DIGESTS_TAG, artifact_of, document_digest, file_digest, verify_digests
from neurontune.tracking.audit import alias_history
from neurontune.tracking.registry import version_record

_URI = re.compile(r"^models:/(?P<name>[^/@]+)(?:@(?P<alias>[^/]+)|/(?P<version>\d+))$")


class LineageError(ValueError):
    """The model URI or the tracking store cannot be resolved (the command exits 2)."""


def default_tracking_uri(project_dir: Path) -> str:
    """The project's embedded default (conf/base/mlflow.yml) for a project in ``project_dir``."""
    return f"sqlite:///{(project_dir / 'mlflow.db').resolve()}"


def require_existing_store(tracking_uri: str) -> None:
    """Refuse a local store that does not exist: reading it would create an empty one."""
    parsed = urllib.parse.urlparse(tracking_uri)
    if parsed.scheme == "sqlite":
        path = Path(tracking_uri[len("sqlite:///"):]) if tracking_uri.startswith("sqlite:///") else None
        if path is not None and not path.is_file():
            raise LineageError(f"no MLflow store at {path}: run `kedro run` in the project first, or pass --tracking-uri.")
    elif parsed.scheme in ("", "file"):
        path = Path(parsed.path if parsed.scheme == "file" else tracking_uri)
        if not path.is_dir():
            raise LineageError(f"no MLflow store at {path}: run `kedro run` in the project first, or pass --tracking-uri.")


def resolve_lineage(model_uri: str, project_dir: Path, client: MlflowClient) -> dict:
    """The whole chain as plain data (JSON-serialisable); :class:`LineageError` when it does not resolve."""
    match = _URI.match(model_uri)
    if match is None:
        raise LineageError(f"model URI must look like models:/NAME@ALIAS or models:/NAME/VERSION; got {model_uri!r}.")
    name = match["name"]
    try:
        version = match["version"] or client.get_model_version_by_alias(name, match["alias"]).version
        model = version_record(client, name, version)
        run = client.get_run(model["run_id"])
        digests = _load_artifact_json(client, run.info.run_id, DIGESTS_ARTIFACT)
        return {
            "model_uri": model_uri,
            "tracking_uri": client.tracking_uri,
            "model": {key: model[key] for key in ("registered_model_name", "version", "aliases", "source", "model_id",
                                                  "created_at_ms", "description", "tags")},
            "run": _run_summary(client, run),
            "code": _code(run.data.tags.get("git_commit"), project_dir),
            "parameters": dict(sorted(run.data.params.items())),
            "data": _data(client, run, model, digests, project_dir),
            "erm_model": _erm_model(client, run, model["tags"].get("erm_checkpoint_digest")),
            "metrics": {"recorded_on_version": model["metrics"], "run": dict(sorted(run.data.metrics.items()))},
            "alias_history": alias_history(client, name),
        }
    except MlflowException as error:
        first_line = (error.message or str(error)).strip().splitlines()[0]
        raise LineageError(f"{model_uri} does not resolve in {client.tracking_uri}: {first_line}") from None


def verify_files(lineage: dict, project_dir: Path) -> dict:
    """Compare the files on disk with the digests recorded by the run that registered the model."""
    files = lineage["data"]["files"]
    if files is None:
        return {"ok": False, "checks": [], "note": f"the model's run recorded no {DIGESTS_ARTIFACT} (registered by an "
                                                   "older version of the project): nothing to verify against"}
    checks = verify_digests(files, project_dir)
    recorded = document_digest(files)
    pinned = lineage["model"]["tags"].get(DIGESTS_TAG)
    if pinned is not None and pinned != recorded:
        checks.append({"check": "digests document", "path": DIGESTS_ARTIFACT, "datasets": [], "role": "record",
                       "expected": pinned, "actual": recorded, "ok": False,
                       "note": "the run's digests artifact differs from the one pinned on the version"})
    return {"ok": bool(checks) and all(check["ok"] for check in checks), "checks": checks}


def check_dvc_lock(project_dir: Path) -> dict:
    """md5 of each file out in ``dvc.lock`` against the disk. Informational: ``dvc.lock`` records the
    machine that committed it, and float results differ across CPUs."""
    dvc = dvc_hashes(project_dir)
    checks = [check for out in dvc["outs"] for check in _verify_dvc_out(out, project_dir)]
    return {"lock_file": dvc["lock_file"], "ok": all(check["ok"] for check in checks), "checks": checks}


def format_lineage(lineage: dict, method: str | None = None) -> str:
    """Human-readable chain, one link per block."""
    model, run, code, data, erm = (lineage[key] for key in ("model", "run", "code", "data", "erm_model"))
    method = method or model["tags"].get("method", "neurontune")
    aliases = ", ".join(f"@{alias}" for alias in model["aliases"]) or "no alias"
    files = data["files"]
    lines = [
        f"model       {model['registered_model_name']} v{model['version']} ({aliases})  {model['source']}",
        f"run         {run['run_id']}  {run['run_name']!r}  experiment {run['experiment_name']!r}  {run['status']}  "
        f"started {run['start_time']}",
        f"code        git {code['git_commit']}  " + {True: "(commit found in this repository)",
                                                     False: "(commit NOT found in this repository)",
                                                     None: "(no git repository to check against)"}[code["resolves"]],
        f"parameters  {len(lineage['parameters'])} logged: "
        + ", ".join(f"{k}={v}" for k, v in list(lineage["parameters"].items())[:6]) + (" …" if len(lineage["parameters"]) > 6 else ""),
        f"data        {data['name']}  digest {data['digest']}",
        "            MLflow dataset inputs: "
        + (", ".join(f"{d['name']} ({d['digest']})" for d in data["dataset_inputs"]) or "none"),
        "            manifest artifact: " + ("not logged by this run (an input here)" if data["manifest"] is None else
                                             "digest matches" if data["manifest_digest"] == data["digest"] else
                                             f"digest {data['manifest_digest']} DIFFERS"),
        "files       " + ("no digests recorded by this run" if files is None else
                          f"{len(files['files'])} files recorded in {DIGESTS_ARTIFACT} "
                          f"({sum(e['role'] == 'input' for e in files['files'].values())} inputs, "
                          f"{sum(e['role'] == 'output' for e in files['files'].values())} outputs)"),
    ]
    lines.append(
        f"erm model   checkpoint {str(erm['checkpoint_digest'])[:16]}…  trained in run {erm['run_id'] or 'NOT FOUND'}"
        + (f"  ({erm['artifact']})" if erm["artifact"] else "")
    )
    source = {key[len("source_model."):]: value for key, value in model["tags"].items() if key.startswith("source_model.")}
    if source:  # an imported classifier: where it came from
        lines.append(f"source      {source.get('uri')}  {source.get('name')} v{source.get('version', '?')}  "
                     f"weights {source.get('weights_digest', '?')[:16]}…  head {source.get('head')!r}")
    for split, values in sorted(model_metrics(lineage).items()):
        lines.append(f"metrics     {method} {split}: " + "  ".join(f"{k} {int(v) if k == 'n_masked' else format(v, '.4f')}" for k, v in sorted(values.items())))
    decision = {k[len("promotion."):]: v for k, v in model["tags"].items() if k.startswith("promotion.")}
    if decision:
        lines.append(f"promotion   {decision.get('status')}: {decision.get('reason')}")
    lines.append("history     " + ("no alias moves recorded" if not lineage["alias_history"] else
                                   f"{len(lineage['alias_history'])} alias moves of {model['registered_model_name']}:"))
    for move in lineage["alias_history"]:
        source = "" if move["from_version"] is None else f" (was v{move['from_version']})"
        lines.append(f"            {move['at']}  @{move['alias']} → v{move['version']}{source}  by {move['by']}  "
                     f"run {str(move['run_id'])[:12]}  git {str(move['git_commit'])[:12]}  {move['decision']}: {move['reason']}")
    if "verification" in lineage:
        verification = lineage["verification"]
        lines.append(f"verify      {'OK' if verification['ok'] else 'MISMATCH'} — files on disk against the digests "
                     "recorded by the model's run" + (f": {verification['note']}" if verification.get("note") else ""))
        for check in verification["checks"]:
            if not check["ok"]:
                lines.append(f"            MISMATCH {check['path']} ({', '.join(check['datasets']) or check['check']}): "
                             f"expected sha256 {check['expected'][:16]}… got {str(check['actual'])[:16]}…"
                             + (f" ({check['note']})" if check.get("note") else ""))
        ok = sum(check["ok"] for check in verification["checks"])
        lines.append(f"            {ok} of {len(verification['checks'])} files match")
    if "dvc_lock" in lineage:
        dvc = lineage["dvc_lock"]
        if dvc["lock_file"] is None:
            lines.append("dvc.lock    (informational) no dvc.lock in the project")
        else:
            bad = [check for check in dvc["checks"] if not check["ok"]]
            lines.append(f"dvc.lock    (informational, does not decide the exit code: written on the machine that "
                         f"committed it) {len(dvc['checks']) - len(bad)} of {len(dvc['checks'])} outs match")
            lines += [f"            differs  {check['path']} ({check['stage']})" + (f" ({check['note']})" if check.get("note") else "")
                      for check in bad]
    return "\n".join(lines)


def model_metrics(lineage: dict) -> dict:
    return lineage["metrics"]["recorded_on_version"]


def _run_summary(client: MlflowClient, run) -> dict:
    experiment = client.get_experiment(run.info.experiment_id)
    started = datetime.fromtimestamp(run.info.start_time / 1000, tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
    return {"run_id": run.info.run_id, "run_name": run.info.run_name, "experiment_id": run.info.experiment_id,
            "experiment_name": experiment.name, "status": run.info.status, "start_time": started,
            "artifact_uri": run.info.artifact_uri}


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


def _data(client: MlflowClient, run, model: dict, digests: dict | None, project_dir: Path) -> dict:
    digest = run.data.tags.get("data_digest") or model["data_digest"]
    manifest_artifact = artifact_of(digests, "dataset_manifest")
    manifest = _load_artifact_json(client, run.info.run_id, manifest_artifact) if manifest_artifact else None
    inputs = [{"name": d.dataset.name, "digest": d.dataset.digest, "source": d.dataset.source,
               "tags": {t.key: t.value for t in d.tags}} for d in run.inputs.dataset_inputs]
    return {
        "name": (manifest or {}).get("name") or model["tags"].get("benchmark"),
        "digest": digest,
        "model_version_digest": model["data_digest"],
        "manifest_digest": (manifest or {}).get("digest"),
        "manifest": manifest,
        "dataset_inputs": inputs,
        "files": digests,
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
    base = {"check": "dvc md5", "stage": out["stage"], "path": out["path"], "expected": out["md5"]}
    if not str(out["md5"]).endswith(".dir"):
        actual = file_digest(path, "md5") if path.is_file() else None
        return [{**base, "actual": actual, "ok": actual == out["md5"]}]
    # A directory out: compare each file with the listing in the DVC cache, when the cache has it.
    listing = project_dir / ".dvc" / "cache" / "files" / "md5" / out["md5"][:2] / out["md5"][2:]
    if not listing.exists():
        return [{**base, "actual": None, "ok": True, "note": "directory listing not in the local DVC cache; not checked"}]
    checks = []
    for entry in json.loads(listing.read_text()):
        file = path / entry["relpath"]
        actual = file_digest(file, "md5") if file.is_file() else None
        checks.append({**base, "path": f"{out['path']}/{entry['relpath']}", "expected": entry["md5"], "actual": actual,
                       "ok": actual == entry["md5"]})
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
        path = artifact_of(_load_artifact_json(client, found.info.run_id, DIGESTS_ARTIFACT), "erm_model")
        artifact = None if path is None else f"runs:/{found.info.run_id}/{path}"
    return {"checkpoint_digest": digest, "run_id": None if found is None else found.info.run_id, "artifact": artifact,
            "same_run_as_model": found is not None and found.info.run_id == run.info.run_id}


def _load_artifact_json(client: MlflowClient, run_id: str, path: str) -> dict | None:
    with tempfile.TemporaryDirectory() as folder:
        try:
            return json.loads(Path(client.download_artifacts(run_id, path, folder)).read_text())
        except (MlflowException, OSError, ValueError):
            return None
