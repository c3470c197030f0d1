"""An embedding cache that later stages read in blocks of rows instead of loading it whole.

:class:`NpyStoreDataset` keeps a dict of arrays as a directory with one ``.npy`` file per
array. Loading memory-maps them (``np.load(mmap_mode="r")``): a stage that indexes a
split gets just those rows, and the chunked core paths (``score_neurons(chunk_size=...)``,
``retrain_head(solver="lbfgs_chunked")``) read a block at a time with plain file reads, so
memory stays flat as N grows. Embeddings can be stored as float16 to halve the bytes read.

Why ``.npy`` per array rather than Zarr or Parquet: a row block of a C-ordered ``.npy``
is one contiguous byte range, readable with a plain ``read`` and memory-mappable by numpy
with no extra dependency; every numpy user can open it. Parquet is columnar (a row block
of a 2048-wide matrix touches 2048 column chunks) and Zarr's chunking and compression help
object storage but add a dependency and decode work the local sequential read does not
need. DVC tracks the directory as one output.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import uuid
from pathlib import Path
from typing import Any

import numpy as np
from kedro.io import AbstractDataset, DatasetError

#: bytes copied per step when writing, so saving a memory-mapped (or lazy) array never loads it whole
WRITE_BLOCK_BYTES = 64 << 20
_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def replace_directory(path: Path, write) -> None:
    """Call ``write(temporary_directory)`` then swap it in for ``path``.

    Two renames: the old directory moves aside, the new one takes its name, the old one is
    deleted. A failure while writing leaves the previous output untouched.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp"))
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(temporary, 0o777 & ~umask)  # mkdtemp's 0700 would hide the cache from a team sharing the storage
    try:
        write(temporary)
        if path.exists():
            aside = path.with_name(f".{path.name}.{uuid.uuid4().hex}.old")
            os.replace(path, aside)
            os.replace(temporary, path)
            shutil.rmtree(aside)
        else:
            os.replace(temporary, path)
    finally:
        if temporary.exists():
            shutil.rmtree(temporary)


def write_npy(path: Path, array, dtype=None) -> None:
    """Write ``array`` (any array-like, e.g. a memmap) to ``path`` as ``.npy``, block by block, cast to ``dtype``.

    Plain file writes, not a writable memory map: the written pages go to the page cache
    and never count against this process, however large the array.
    """
    array = array if hasattr(array, "shape") and hasattr(array, "dtype") else np.asarray(array)
    dtype = np.dtype(array.dtype if dtype is None else dtype)
    if array.ndim == 0 or array.dtype.hasobject or dtype.hasobject:
        np.save(path, np.asarray(array, dtype=dtype), allow_pickle=False)
        return
    header = {"descr": np.lib.format.dtype_to_descr(dtype), "fortran_order": False, "shape": tuple(array.shape)}
    with open(path, "wb") as handle:
        try:
            np.lib.format.write_array_header_1_0(handle, header)
        except ValueError:  # a header over 64 KiB (very many dimensions) needs format 2.0
            handle.seek(0)
            np.lib.format.write_array_header_2_0(handle, header)
        row_bytes = max(1, int(np.prod(array.shape[1:], dtype=np.int64)) * max(array.dtype.itemsize, dtype.itemsize))
        step = max(1, WRITE_BLOCK_BYTES // row_bytes)
        for start in range(0, array.shape[0], step):
            block = np.asarray(array[start : start + step])
            handle.write(memoryview(np.ascontiguousarray(_cast(block, dtype, path.stem, start))).cast("B"))


def _cast(block: np.ndarray, dtype: np.dtype, key: str, start: int) -> np.ndarray:
    if dtype.kind == "f" and block.dtype.kind == "f" and dtype.itemsize < block.dtype.itemsize:
        limit = np.finfo(dtype).max
        too_large = np.isfinite(block) & (np.abs(block) > limit)
        if too_large.any():
            raise ValueError(f"{key}: {int(too_large.sum())} values from row {start} exceed the {dtype} range "
                             f"(|x| > {limit:g}); store {key!r} in a wider dtype.")
    return block.astype(dtype, copy=False)


class NpyStoreDataset(AbstractDataset):
    """A dict of arrays as ``<filepath>/<key>.npy``; loaded memory-mapped (read-only).

    Parameters
    ----------
    filepath : str
        The directory.
    dtypes : dict, optional
        Storage dtype per key, e.g. ``{"embeddings": "float16"}`` (values beyond float16's
        ±65504 are refused, not turned into inf). Other keys keep their dtype.
    mmap : bool
        True (default): arrays load as ``np.memmap``; False: read into memory.
    """

    def __init__(self, filepath: str, dtypes: dict[str, str] | None = None, mmap: bool = True,
                 metadata: dict[str, Any] | None = None):
        self._filepath = Path(filepath)
        self._dtypes = {key: np.dtype(value) for key, value in (dtypes or {}).items()}
        self._mmap = bool(mmap)
        self.metadata = metadata

    def load(self) -> dict[str, np.ndarray]:
        if not self._filepath.is_dir():
            raise DatasetError(f"{self._filepath} does not exist (expected a directory of .npy files); "
                               "run the pipeline that produces it first.")
        arrays = {}
        for path in sorted(self._filepath.glob("*.npy")):
            try:
                arrays[path.stem] = np.load(path, mmap_mode="r" if self._mmap else None, allow_pickle=False)
            except Exception as error:  # re-raised with the file named
                raise DatasetError(f"could not read {path}: {error}") from error
        if not arrays:
            raise DatasetError(f"{self._filepath} holds no .npy files; run the pipeline that produces it first.")
        return arrays

    def save(self, data: dict[str, Any]) -> None:
        if not isinstance(data, dict) or not data:
            raise DatasetError(f"{self._filepath}: expected a non-empty dict of arrays; got {type(data).__name__}.")
        bad = [key for key in data if not isinstance(key, str) or not _KEY.match(key)]
        if bad:
            raise DatasetError(f"{self._filepath}: keys must be identifiers (they become file names); got {bad}.")
        unknown = sorted(set(self._dtypes) - set(data))
        if unknown:
            raise DatasetError(f"{self._filepath}: dtypes names {unknown}, which the data do not have ({sorted(data)}).")

        def write(directory: Path) -> None:
            for key, array in data.items():
                write_npy(directory / f"{key}.npy", array, self._dtypes.get(key))

        try:
            replace_directory(self._filepath, write)
        except ValueError as error:
            raise DatasetError(f"could not save {self._filepath}: {error}") from error

    def _exists(self) -> bool:
        return self._filepath.is_dir()

    def _describe(self) -> dict[str, Any]:
        return {"filepath": str(self._filepath), "dtypes": {k: str(v) for k, v in self._dtypes.items()}, "mmap": self._mmap}
