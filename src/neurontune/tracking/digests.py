"""SHA-256 digests of every file a run read or wrote, found through the catalog (no path is hard-coded).

The lineage hook records them at the end of each ``kedro run`` as the run artifact
:data:`DIGESTS_ARTIFACT`; ``neurontune lineage --verify`` compares the files on disk with them.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

DIGESTS_ARTIFACT = "lineage/digests.json"
#: Model version tag: the SHA-256 of the digests document of the run that registered the version.
DIGESTS_TAG = "lineage.digests_sha256"
SCHEMA = 1


def dataset_file(dataset) -> Path | None:
    """The local file behind a catalog dataset; None for memory datasets, remote storage and the
    registry's own records (which describe the registry, not the model's data)."""
    path = getattr(dataset, "_filepath", None)
    if path is None or getattr(dataset, "_protocol", "file") not in ("file", "local", None):
        return None
    return Path(str(path))


def pipeline_files(catalog, pipeline, project_dir: Path) -> dict[str, dict]:
    """``{relative path: {datasets, role, artifact_path}}`` for every file dataset of ``pipeline``.

    ``role`` is ``input`` for the pipeline's free inputs, ``output`` for what it writes;
    ``artifact_path`` is where an ``MlflowArtifactDataset`` also logs the file in the run.
    """
    free_inputs = pipeline.inputs()
    files: dict[str, dict] = {}
    for name in sorted(pipeline.datasets()):
        if name == "parameters" or name.startswith("params:"):
            continue
        dataset = catalog.get(name)
        path = None if dataset is None else dataset_file(dataset)
        if path is None:
            continue
        key = _relative(path, project_dir)
        entry = files.setdefault(key, {"datasets": [], "role": "input", "artifact_path": None})
        entry["datasets"].append(name)
        if name not in free_inputs:
            entry["role"] = "output"
        artifact = getattr(dataset, "artifact_path", None)
        if artifact is not None:
            entry["artifact_path"] = f"{artifact.rstrip('/')}/{path.name}" if artifact else path.name
    return files


def record_digests(files: dict[str, dict], project_dir: Path) -> dict:
    """The digests document: each existing file with its SHA-256 and size (missing files are listed apart)."""
    recorded, missing = {}, []
    for key, entry in sorted(files.items()):
        path = project_dir / key
        if path.is_file():
            recorded[key] = {**entry, "sha256": file_digest(path), "bytes": path.stat().st_size}
        else:
            missing.append(key)
    return {"schema": SCHEMA, "files": recorded, "not_written": missing}


def verify_digests(document: dict, project_dir: Path) -> list[dict]:
    """One check per recorded file: the SHA-256 of the file on disk now against the recorded one."""
    checks = []
    for key, entry in sorted(document.get("files", {}).items()):
        path = project_dir / key
        actual = file_digest(path) if path.is_file() else None
        check = {"check": "sha256", "path": key, "datasets": entry["datasets"], "role": entry["role"],
                 "expected": entry["sha256"], "actual": actual, "ok": actual == entry["sha256"]}
        if actual is None:
            check["note"] = "missing on disk: run `dvc pull` (or `kedro run`) first"
        checks.append(check)
    return checks


def artifact_of(document: dict | None, dataset: str) -> str | None:
    """Where the run logged ``dataset``'s file as an artifact (from the recorded digests)."""
    for entry in (document or {}).get("files", {}).values():
        if dataset in entry["datasets"] and entry.get("artifact_path"):
            return entry["artifact_path"]
    return None


def document_digest(document: dict) -> str:
    """SHA-256 of a digests document (what a registered version pins, tag :data:`DIGESTS_TAG`)."""
    return hashlib.sha256(json.dumps(document, sort_keys=True).encode()).hexdigest()


def file_digest(path: Path, algorithm: str = "sha256") -> str:
    """Hex digest of a file's bytes, read in 1 MiB chunks (``algorithm="md5"`` for DVC's hashes)."""
    digest = hashlib.new(algorithm)
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _relative(path: Path, project_dir: Path) -> str:
    absolute = path if path.is_absolute() else project_dir / path
    try:
        return absolute.resolve().relative_to(project_dir.resolve()).as_posix()
    except ValueError:
        return absolute.resolve().as_posix()
