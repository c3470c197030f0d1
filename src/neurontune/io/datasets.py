"""Catalog datasets with atomic writes, on local disk or any fsspec file system (S3, GCS, …).

kedro-datasets writes files in place, so a run that dies mid-save leaves a
truncated artifact behind. On local disk these write to a temporary file beside
the target and ``os.replace`` it; on an object store one PUT of the complete
object is already atomic (readers see the old object or the new one, never a
part), so the bytes are written to a local staging file first and then uploaded.
Either way a failed save leaves the previous output intact.

``filepath`` may carry a protocol (``s3://bucket/prefix/01_raw/inputs.npz``);
``credentials`` and ``fs_args`` are passed to ``fsspec.filesystem`` as in
kedro-datasets. Without them the file system's own defaults apply: for S3 the
standard ``AWS_*`` variables (``AWS_ENDPOINT_URL`` for an S3-compatible server)
and whatever :func:`apply_storage_options` installed from ``credentials.yml``.
"""

from __future__ import annotations

import io
import json
import os
import tempfile
from copy import deepcopy
from pathlib import Path, PurePath, PurePosixPath
from typing import IO, Any, Callable

import fsspec
import numpy as np
import pandas as pd
import torch
from kedro.io import AbstractDataset, DatasetError
from kedro.io.core import get_protocol_and_path

LOCAL_PROTOCOLS = ("file", "local")


def write_atomically(path: Path, write: Callable[[Path], None]) -> None:
    """Call ``write(temporary_path)`` then move the result onto ``path`` in one step."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(handle)
    try:
        write(Path(temporary))
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)


def apply_storage_options(options: dict[str, dict[str, Any]]) -> None:
    """Make ``{protocol: storage_options}`` the defaults of every file system opened afterwards.

    This is how ``credentials.yml``'s ``object_store`` entry reaches every catalog dataset
    (nested ones included) without a ``credentials:`` key on each entry; a dataset's own
    ``credentials`` still take precedence.
    """
    if not isinstance(options, dict) or not all(isinstance(value, dict) for value in options.values()):
        raise DatasetError(
            "object store options must map a protocol to its storage options, e.g. "
            f"{{'s3': {{'key': ..., 'secret': ..., 'endpoint_url': ...}}}}; got {options!r:.200}."
        )
    for protocol, storage_options in options.items():
        fsspec.config.conf.setdefault(protocol, {}).update(storage_options)


class _FileDataset(AbstractDataset):
    """One file; subclasses implement ``_read(handle)`` and ``_write(data, handle)`` on binary handles."""

    def __init__(self, filepath: str, credentials: dict[str, Any] | None = None,
                 fs_args: dict[str, Any] | None = None, metadata: dict[str, Any] | None = None):
        self._location = str(filepath)
        self._protocol, path = get_protocol_and_path(self._location)  # kedro-datasets' attribute names
        self._remote = self._protocol not in LOCAL_PROTOCOLS
        self._path = path
        self._fs = None
        if self._remote:
            self._fs = fsspec.filesystem(self._protocol, **deepcopy(credentials or {}), **deepcopy(fs_args or {}))
        self._staging: tempfile.TemporaryDirectory | None = None
        self.metadata = metadata

    # kedro-mlflow's artifact wrapper logs the local file named by ``_get_save_path()`` after a save
    # (it asks before the save, and only when ``_version`` exists, as on kedro's versioned datasets)
    _version = None

    @property
    def _filepath(self) -> PurePath:
        """The target: a local path, or ``bucket/key`` on an object store (as in kedro-datasets)."""
        return Path(self._path) if not self._remote else PurePosixPath(self._path)

    def _get_save_path(self) -> Path:
        """Where a save leaves the bytes on local disk: the target itself, or on an object store the
        staged copy of the last upload (its folder is made on first use, removed with the dataset)."""
        if not self._remote:
            return Path(self._path)
        if self._staging is None:
            self._staging = tempfile.TemporaryDirectory(prefix="neurontune-staging-")
        return Path(self._staging.name) / PurePosixPath(self._path).name

    def load(self) -> Any:
        if not self._exists():
            raise DatasetError(f"{self._location} does not exist; run the pipeline that produces it first.")
        try:
            if not self._remote:
                with open(self._path, "rb") as handle:
                    return self._read(handle)
            return self._read(io.BytesIO(self._fs.cat_file(self._path)))
        except Exception as error:  # re-raised with the file named
            raise DatasetError(f"could not read {self._location}: {error}") from error

    def save(self, data: Any) -> None:
        if not self._remote:
            write_atomically(Path(self._path), lambda temporary: self._write_file(data, temporary))
            return
        staged = self._get_save_path()
        self._write_file(data, staged)  # fails before anything is uploaded
        try:
            self._fs.put_file(str(staged), self._path)
        except Exception as error:
            raise DatasetError(f"could not write {self._location}: {error}") from error
        self._fs.invalidate_cache(self._path)

    def _exists(self) -> bool:
        if not self._remote:
            return Path(self._path).exists()
        self._fs.invalidate_cache(self._path)  # another worker may have written it since
        return self._fs.exists(self._path)

    def _describe(self) -> dict[str, Any]:
        return {"filepath": self._location}

    def _write_file(self, data: Any, path: Path) -> None:
        with open(path, "wb") as handle:
            self._write(data, handle)

    def _read(self, handle: IO[bytes]) -> Any:
        raise NotImplementedError

    def _write(self, data: Any, handle: IO[bytes]) -> None:
        raise NotImplementedError


class NpzDataset(_FileDataset):
    """A dict of numpy arrays in an uncompressed ``.npz`` (no pickled objects)."""

    def _read(self, handle: IO[bytes]) -> dict[str, np.ndarray]:
        with np.load(handle, allow_pickle=False) as arrays:
            return {key: arrays[key] for key in arrays.files}

    def _write(self, data: dict[str, np.ndarray], handle: IO[bytes]) -> None:
        np.savez(handle, **data)


class ParquetTableDataset(_FileDataset):
    """A pandas table in Parquet; ``columns`` restricts what is read (e.g. class labels without groups)."""

    def __init__(self, filepath: str, columns: list[str] | None = None, credentials: dict[str, Any] | None = None,
                 fs_args: dict[str, Any] | None = None, metadata: dict[str, Any] | None = None):
        super().__init__(filepath, credentials, fs_args, metadata)
        self._columns = columns

    def _read(self, handle: IO[bytes]) -> pd.DataFrame:
        return pd.read_parquet(handle, columns=self._columns)

    def _write(self, data: pd.DataFrame, handle: IO[bytes]) -> None:
        data.to_parquet(handle, index=False)


class JsonDataset(_FileDataset):
    """A JSON document, indented, keys in the order the node built them (e.g. methods in report
    order: ERM, NeuronTune, then the baselines); nodes build dicts deterministically."""

    def _read(self, handle: IO[bytes]) -> Any:
        return json.loads(handle.read())

    def _write(self, data: Any, handle: IO[bytes]) -> None:
        handle.write((json.dumps(data, indent=2) + "\n").encode())


class TorchCheckpointDataset(_FileDataset):
    """A ``{"config": dict, "state_dict": ...}`` checkpoint, loaded with ``weights_only=True``."""

    def _read(self, handle: IO[bytes]) -> dict:
        return torch.load(handle, map_location="cpu", weights_only=True)

    def _write(self, data: dict, handle: IO[bytes]) -> None:
        # torch names the archive's root folder after the file it writes to; saving to a buffer
        # keeps the (random) temporary name out, so identical weights give identical bytes for DVC
        buffer = io.BytesIO()
        torch.save(data, buffer)
        handle.write(buffer.getvalue())


class FigureDataset(_FileDataset):
    """A matplotlib figure saved as PNG (write-only; the figure is closed after saving)."""

    def _read(self, handle: IO[bytes]) -> bytes:
        return handle.read()

    def _write(self, data, handle: IO[bytes]) -> None:
        import matplotlib.pyplot as plt

        data.savefig(handle, format="png", dpi=120, bbox_inches="tight")
        plt.close(data)


class TextDataset(_FileDataset):
    """A UTF-8 text file (Markdown reports)."""

    def _read(self, handle: IO[bytes]) -> str:
        return handle.read().decode("utf-8")

    def _write(self, data: str, handle: IO[bytes]) -> None:
        handle.write(data.encode("utf-8"))
