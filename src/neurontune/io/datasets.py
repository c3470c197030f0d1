"""Catalog datasets with atomic writes.

kedro-datasets writes files in place, so a run that dies mid-save leaves a
truncated artifact behind; these write to a temporary file beside the target
and ``os.replace`` it, so a failed run leaves the previous output intact.
"""

from __future__ import annotations

import io
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd
import torch
from kedro.io import AbstractDataset, DatasetError


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


class _FileDataset(AbstractDataset):
    """One local file; subclasses implement ``_read(path)`` and ``_write(data, path)``."""

    def __init__(self, filepath: str, metadata: dict[str, Any] | None = None):
        self._filepath = Path(filepath)
        self.metadata = metadata

    def load(self) -> Any:
        if not self._filepath.exists():
            raise DatasetError(f"{self._filepath} does not exist; run the pipeline that produces it first.")
        try:
            return self._read(self._filepath)
        except Exception as error:  # re-raised with the file named
            raise DatasetError(f"could not read {self._filepath}: {error}") from error

    def save(self, data: Any) -> None:
        write_atomically(self._filepath, lambda temporary: self._write(data, temporary))

    def _exists(self) -> bool:
        return self._filepath.exists()

    def _describe(self) -> dict[str, Any]:
        return {"filepath": str(self._filepath)}

    def _read(self, path: Path) -> Any:
        raise NotImplementedError

    def _write(self, data: Any, path: Path) -> None:
        raise NotImplementedError


class NpzDataset(_FileDataset):
    """A dict of numpy arrays in an uncompressed ``.npz`` (no pickled objects)."""

    def _read(self, path: Path) -> dict[str, np.ndarray]:
        with np.load(path, allow_pickle=False) as arrays:
            return {key: arrays[key] for key in arrays.files}

    def _write(self, data: dict[str, np.ndarray], path: Path) -> None:
        with open(path, "wb") as handle:
            np.savez(handle, **data)


class ParquetTableDataset(_FileDataset):
    """A pandas table in Parquet; ``columns`` restricts what is read (e.g. class labels without groups)."""

    def __init__(self, filepath: str, columns: list[str] | None = None, metadata: dict[str, Any] | None = None):
        super().__init__(filepath, metadata)
        self._columns = columns

    def _read(self, path: Path) -> pd.DataFrame:
        return pd.read_parquet(path, columns=self._columns)

    def _write(self, data: pd.DataFrame, path: Path) -> None:
        data.to_parquet(path, index=False)


class JsonDataset(_FileDataset):
    """A JSON document, indented, keys in the order the node built them (e.g. methods in report
    order: ERM, NeuronTune, then the baselines); nodes build dicts deterministically."""

    def _read(self, path: Path) -> Any:
        return json.loads(path.read_text())

    def _write(self, data: Any, path: Path) -> None:
        path.write_text(json.dumps(data, indent=2) + "\n")


class TorchCheckpointDataset(_FileDataset):
    """A ``{"config": dict, "state_dict": ...}`` checkpoint, loaded with ``weights_only=True``."""

    def _read(self, path: Path) -> dict:
        return torch.load(path, map_location="cpu", weights_only=True)

    def _write(self, data: dict, path: Path) -> None:
        # torch names the archive's root folder after the file it writes to; saving to a buffer
        # keeps the (random) temporary name out, so identical weights give identical bytes for DVC
        buffer = io.BytesIO()
        torch.save(data, buffer)
        path.write_bytes(buffer.getvalue())


class FigureDataset(_FileDataset):
    """A matplotlib figure saved as PNG (write-only; the figure is closed after saving)."""

    def _read(self, path: Path) -> bytes:
        return path.read_bytes()

    def _write(self, data, path: Path) -> None:
        import matplotlib.pyplot as plt

        data.savefig(path, format="png", dpi=120, bbox_inches="tight")
        plt.close(data)


class TextDataset(_FileDataset):
    """A UTF-8 text file (Markdown reports)."""

    def _read(self, path: Path) -> str:
        return path.read_text(encoding="utf-8")

    def _write(self, data: str, path: Path) -> None:
        path.write_text(data, encoding="utf-8")
