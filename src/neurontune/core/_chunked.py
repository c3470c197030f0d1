"""Out-of-core building blocks: read an (N, M) embedding array a block of rows at a time.

The source is anything with ``shape``, ``dtype`` and row slicing (an ndarray, or the
``np.memmap`` the embedding store returns). A whole memory map is read with plain file
reads, so nothing is mapped into the process; resident memory stays at a few blocks
whatever N is (the data stay in the page cache, not in this process).

:func:`group_medians` gives the exact per-group, per-neuron medians that
``np.median`` would give, without holding the array in memory.
"""

from __future__ import annotations

import mmap
import os
import threading
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from itertools import chain

import numpy as np

#: bytes a column-block pass may hold (values of every selected row for a block of neurons)
BLOCK_BUDGET_BYTES = 256 << 20
#: float16 fast path: rows sampled to bracket each median, z-score of the bracket, widest bracket in keys
SAMPLE_ROWS = 16384
BRACKET_Z = 6.0
MAX_BRACKET_KEYS = 4096
#: in-bracket bin indices gathered before one ``np.bincount`` (amortises its zeroed output)
BINCOUNT_BATCH = 1 << 24
#: rows of a block counted together (int16 keys and two masks of CACHE_ROWS x M stay in the CPU cache)
CACHE_ROWS = 512
#: threads that count blocks in the float16 pass
WORKERS = min(4, os.cpu_count() or 1)


def check_row_source(source, name: str = "embeddings"):
    """Check a 2-D real array-like without reading it; finiteness is checked block by block."""
    shape, dtype = getattr(source, "shape", None), getattr(source, "dtype", None)
    if shape is None or dtype is None or not hasattr(source, "__getitem__"):
        raise TypeError(f"{name} must be an array-like with shape, dtype and row slicing (e.g. an np.memmap); "
                        f"got {type(source).__name__}.")
    if len(shape) != 2:
        raise ValueError(f"{name} must be a 2-D array (n_samples, n_neurons); got shape {tuple(shape)}.")
    if shape[0] == 0 or shape[1] == 0:
        raise ValueError(f"{name} is empty (shape {tuple(shape)}); expected at least one sample and one neuron.")
    dtype = np.dtype(dtype)
    if not np.issubdtype(dtype, np.number) or np.issubdtype(dtype, np.complexfloating):
        raise TypeError(f"{name} must hold real numbers; got dtype {dtype}.")
    return source


def check_chunk_size(chunk_size, name: str = "chunk_size") -> int:
    if not isinstance(chunk_size, (int, np.integer)) or isinstance(chunk_size, bool) or chunk_size < 1:
        raise ValueError(f"{name} must be a positive integer (rows per block); got {chunk_size!r}.")
    return int(chunk_size)


def compute_dtype(dtype) -> np.dtype:
    """The dtype the in-memory path computes in (see ``check_embeddings``): float64 stays, the rest become float32."""
    return np.dtype(np.float64 if np.dtype(dtype) == np.float64 else np.float32)


def check_finite_block(block: np.ndarray, name: str, start: int) -> None:
    if block.dtype.kind == "f" and not np.isfinite(block).all():
        bad = int(block.size - np.count_nonzero(np.isfinite(block)))
        raise ValueError(f"{name} contains {bad} NaN/inf values in rows {start}..{start + len(block) - 1}; "
                         "embeddings must be finite.")


def iter_row_chunks(source, chunk_rows: int, rows: slice | None = None):
    """Yield ``(start, block)`` for consecutive blocks of ``chunk_rows`` rows, in order.

    A whole ``np.memmap`` (what ``np.load(mmap_mode="r")`` returns) is read with plain
    file reads, the next block in a background thread while the caller works on this
    one: nothing is mapped into the process, and reading overlaps computing. A view of
    a memory map is copied block by block and its consumed pages are unmapped. An
    in-memory array yields views.
    """
    first, last = (0, source.shape[0]) if rows is None else (rows.start, rows.stop)
    starts = range(first, last, chunk_rows)
    spans = [(start, min(start + chunk_rows, last)) for start in starts]
    backing_file = _backing_file(source)
    if backing_file is not None:
        yield from _read_file_blocks(source, backing_file, spans)
        return
    backing = _backing_map(source)
    for start, stop in spans:
        if backing is None:
            yield start, np.asarray(source[start:stop])
            continue
        block = np.array(source[start:stop])
        _drop_pages(source, backing, start, stop)
        yield start, block


def _backing_file(source):
    """``(path, offset)`` of a whole, C-ordered ``np.memmap`` (not a view of one), else None."""
    if (isinstance(source, np.memmap) and isinstance(source.base, mmap.mmap) and source.flags.c_contiguous
            and getattr(source, "filename", None)):
        return source.filename, int(source.offset)
    return None


def _read_file_blocks(source, backing_file, spans):
    path, offset = backing_file
    row_bytes = int(np.prod(source.shape[1:], dtype=np.int64)) * source.dtype.itemsize

    def read(handle, span):
        start, stop = span
        block = np.empty((stop - start, *source.shape[1:]), dtype=source.dtype)
        handle.seek(offset + start * row_bytes)
        view, done = memoryview(block.reshape(-1).view(np.uint8)), 0
        while done < view.nbytes:
            got = handle.readinto(view[done:])
            if not got:
                raise EOFError(f"{path} ended before row {stop}; the file is shorter than its header says.")
            done += got
        return start, block

    with open(path, "rb", buffering=0) as handle, ThreadPoolExecutor(max_workers=1) as reader:
        pending = reader.submit(read, handle, spans[0]) if spans else None
        for index in range(len(spans)):
            result = pending.result()
            pending = reader.submit(read, handle, spans[index + 1]) if index + 1 < len(spans) else None
            yield result


def _backing_map(source):
    """The ``mmap.mmap`` under a view of an ``np.memmap``, else None."""
    base = source
    while isinstance(base, np.ndarray):
        base = base.base
    if isinstance(base, mmap.mmap) and hasattr(mmap, "MADV_DONTNEED") and source.flags.c_contiguous:
        return base
    return None


def _drop_pages(source, backing: mmap.mmap, start: int, stop: int) -> None:
    """Unmap the whole pages of rows [start, stop) from this process (they stay in the page cache)."""
    origin = np.frombuffer(backing, dtype=np.uint8).ctypes.data
    row_bytes = source.strides[0]
    first = source.ctypes.data - origin + start * row_bytes
    last = source.ctypes.data - origin + stop * row_bytes
    page = mmap.PAGESIZE
    begin, end = first - first % page, last - last % page  # keep the page the next block starts in
    if end > begin:
        backing.madvise(mmap.MADV_DONTNEED, begin, end - begin)


def group_medians(source, groups: np.ndarray, n_groups: int, chunk_rows: int, *, sample_rows: int = SAMPLE_ROWS,
                  bracket_z: float = BRACKET_Z, name: str = "embeddings") -> np.ndarray:
    """``np.median(source[groups == g], axis=0)`` for every group, reading ``source`` a block of rows at a time.

    Parameters
    ----------
    source : array-like, shape (N, M)
    groups : int array, shape (N,)
        Group of each row in ``[0, n_groups)``; -1 = row not used.
    n_groups : int
    chunk_rows : int
        Rows per block read.

    Returns
    -------
    medians : ndarray, shape (n_groups, M), in the dtype ``np.median`` computes in after
        ``check_embeddings`` (float32, or float64 for float64 input); NaN for an empty group.
        Equal to the in-memory result: medians are order statistics, so only which values
        sit at the middle ranks matters, never the order rows are read in.

    float16 sources (the compact cache) take one pass: a sample of rows brackets each
    median, the pass counts the values below each bracket and histograms the 16-bit
    values inside it, which pins the middle ranks exactly; the rare bracket that misses
    is recomputed by the column-block path. Other dtypes take column-block passes:
    all selected rows of a block of neurons at a time (``BLOCK_BUDGET_BYTES``).
    """
    groups = np.asarray(groups, dtype=np.int64)
    counts = np.bincount(groups[groups >= 0], minlength=n_groups)
    medians = np.full((n_groups, source.shape[1]), np.nan, dtype=compute_dtype(source.dtype))
    if not counts.any():
        return medians
    columns = np.arange(source.shape[1])
    if np.dtype(source.dtype) == np.float16:
        missed = _float16_medians(source, groups, counts, chunk_rows, medians, sample_rows, bracket_z, name)
        columns = np.flatnonzero(missed.any(axis=0))
    if columns.size:
        _column_block_medians(source, groups, counts, chunk_rows, columns, medians, name)
    return medians


def _column_block_medians(source, groups, counts, chunk_rows, columns, medians, name) -> None:
    """Exact medians of ``columns``, holding every used row of a block of columns at a time."""
    used = groups >= 0
    n_used = int(used.sum())
    dtype = medians.dtype
    width = max(1, BLOCK_BUDGET_BYTES // (n_used * dtype.itemsize))
    used_groups = groups[used]
    members = [np.flatnonzero(used_groups == g) for g in range(len(counts))]
    for first in range(0, columns.size, width):
        block_columns = columns[first : first + width]
        values = np.empty((n_used, block_columns.size), dtype=dtype)
        filled = 0
        for start, block in iter_row_chunks(source, chunk_rows):
            check_finite_block(block, name, start)
            part = block[used[start : start + len(block)]][:, block_columns]
            values[filled : filled + len(part)] = part
            filled += len(part)
        for group, rows in enumerate(members):
            if rows.size:
                medians[group, block_columns] = np.median(values[rows], axis=0)


# ---- float16: order-preserving 16-bit keys, one counting pass -----------------------------------------------------
# key = bits for x >= +0, bits with the magnitude flipped for x <= -0: int16 order = float order (-0 just below +0,
# which np.median treats as equal: either gives the same median). Finite float16 keys lie in [-31744, 31743].
_FINITE_KEYS = (-31744, 31743)


def _keys(block: np.ndarray, name: str, start: int) -> np.ndarray:
    """Order-preserving int16 keys of a float16 block; raises on NaN/inf."""
    bits = np.ascontiguousarray(block).view(np.int16)
    low, high = bits.min(), bits.max()
    if low >= 0:  # no negative value (ReLU embeddings): the bits already order like the values
        keys = bits
    else:
        keys = bits >> 15
        keys &= np.int16(0x7FFF)
        keys ^= bits
        low, high = keys.min(), keys.max()
    if low < _FINITE_KEYS[0] or high > _FINITE_KEYS[1]:
        bad = int(np.count_nonzero((keys < _FINITE_KEYS[0]) | (keys > _FINITE_KEYS[1])))
        raise ValueError(f"{name} contains {bad} NaN/inf values in rows {start}..{start + len(keys) - 1}; "
                         "embeddings must be finite.")
    return keys


def _values(keys: np.ndarray) -> np.ndarray:
    keys = np.asarray(keys, dtype=np.int16)
    return (keys ^ ((keys >> 15) & np.int16(0x7FFF))).view(np.float16)


def _middle_ranks(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """0-based ranks of the two middle values (equal for an odd count), as ``np.median`` averages them."""
    return (counts - 1) // 2, counts // 2


def _sample_brackets(source, groups, counts, chunk_rows, sample_rows, bracket_z, name):
    """Per (group, neuron): the lowest key ``lo`` and the width of a key range that holds both middle ranks
    with high probability, from evenly spaced blocks of rows (at most ``sample_rows`` per group are sorted)."""
    n_rows, n_neurons = source.shape
    n_pieces = 64
    piece = max(1, min(max(sample_rows, n_rows // 32), n_rows) // n_pieces)
    starts = np.unique(np.linspace(0, n_rows - piece, n_pieces).astype(np.int64))
    keys, sample_groups = [], []
    for start in starts:
        for first, block in iter_row_chunks(source, chunk_rows, slice(int(start), int(start) + piece)):
            keys.append(_keys(block, name, first))
            sample_groups.append(groups[first : first + len(block)])
    keys, sample_groups = np.concatenate(keys), np.concatenate(sample_groups)
    n_groups = len(counts)
    lo = np.full((n_groups, n_neurons), _FINITE_KEYS[0], dtype=np.int16)
    width = np.zeros((n_groups, n_neurons), dtype=np.int64)
    low_rank, high_rank = _middle_ranks(counts)
    for group in np.flatnonzero(counts):
        members = np.flatnonzero(sample_groups == group)
        members = members[:: max(1, -(-members.size // sample_rows))]
        if members.size == 0:
            width[group] = MAX_BRACKET_KEYS  # nothing sampled: a miss is recomputed exactly
            continue
        ordered = np.sort(np.ascontiguousarray(keys[members].T), axis=1)  # (M, s)
        size = ordered.shape[1]
        spread = bracket_z * np.sqrt(size * 0.25) + 1
        scale = (size - 1) / max(counts[group] - 1, 1)
        first = int(np.clip(np.floor(low_rank[group] * scale - spread), 0, size - 1))
        last = int(np.clip(np.ceil(high_rank[group] * scale + spread), 0, size - 1))
        lower, upper = ordered[:, first].astype(np.int64), ordered[:, last].astype(np.int64)
        wide = upper - lower + 1 > MAX_BRACKET_KEYS  # cap the histogram: centre the window on the sample median
        centre = ordered[:, (first + last) // 2].astype(np.int64)
        lo[group] = np.where(wide, np.maximum(centre - MAX_BRACKET_KEYS // 2, _FINITE_KEYS[0]), lower)
        width[group] = np.where(wide, MAX_BRACKET_KEYS, upper - lower + 1)
    return lo, width


def _float16_medians(source, groups, counts, chunk_rows, medians, sample_rows, bracket_z, name) -> np.ndarray:
    """Fill ``medians`` where the brackets hold the middle ranks; return the (group, neuron) misses.

    Blocks are counted by ``WORKERS`` threads (numpy releases the GIL in its loops); the
    counts are integer sums, so the result does not depend on which thread counted what.
    """
    n_groups, n_neurons = medians.shape
    lo, width = _sample_brackets(source, groups, counts, chunk_rows, sample_rows, bracket_z, name)
    offsets = np.concatenate([[0], np.cumsum(width.ravel())])  # each (group, neuron) owns bins [offset, offset + width)
    column_offsets = offsets[:-1].reshape(n_groups, n_neurons)
    hi = np.minimum(lo.astype(np.int64) + width, np.iinfo(np.int16).max).astype(np.int16)  # exclusive; keys < 31744
    present = np.flatnonzero(counts)

    scratch = threading.local()  # per-thread buffers, reused from one block to the next

    def buffer(key, shape, dtype):
        held = getattr(scratch, key, None)
        size = int(np.prod(shape))
        if held is None or held.size < size:
            held = np.empty(size, dtype=dtype)
            setattr(scratch, key, held)
        return held[:size].reshape(shape)

    def count(start, block):
        keys = _keys(block, name, start)
        block_groups = groups[start : start + len(block)]
        below, bins = np.zeros((n_groups, n_neurons), dtype=np.int64), []
        for first in range(0, len(keys), CACHE_ROWS):  # a few rows at a time: the temporaries stay in cache
            sub_keys, sub_groups = keys[first : first + CACHE_ROWS], block_groups[first : first + CACHE_ROWS]
            for group in present:
                rows = np.flatnonzero(sub_groups == group)
                if rows.size == 0:
                    continue
                shape = (rows.size, n_neurons)
                group_keys = np.take(sub_keys, rows, axis=0, out=buffer("keys", shape, np.int16))
                at_least = np.greater_equal(group_keys, lo[group], out=buffer("at_least", shape, bool))
                below[group] += rows.size - np.add.reduce(at_least.view(np.int8), axis=0, dtype=np.int32)
                inside = np.less(group_keys, hi[group], out=buffer("inside", shape, bool))
                inside = np.flatnonzero(np.logical_and(inside, at_least, out=inside))
                column = inside % n_neurons
                bins.append(column_offsets[group][column] + (group_keys.ravel()[inside] - lo[group][column]))
        return below, bins

    histogram = np.zeros(int(offsets[-1]), dtype=np.int64)
    below = np.zeros((n_groups, n_neurons), dtype=np.int64)
    pending, n_pending = [], 0
    with ThreadPoolExecutor(max_workers=WORKERS) as pool:
        running = deque()
        blocks = iter_row_chunks(source, chunk_rows)
        for item in chain(blocks, [None] * WORKERS):
            if item is not None:
                running.append(pool.submit(count, *item))
            if running and (item is None or len(running) >= WORKERS):
                block_below, bins = running.popleft().result()
                below += block_below
                pending += bins
                n_pending += sum(part.size for part in bins)
            if n_pending >= BINCOUNT_BATCH or (item is None and not running and pending):
                histogram += np.bincount(np.concatenate(pending), minlength=histogram.size)
                pending, n_pending = [], 0
    return _medians_from_histogram(histogram, offsets, lo, below, counts, medians)


def _medians_from_histogram(histogram, offsets, lo, below, counts, medians) -> np.ndarray:
    """Read the middle ranks off the in-bracket histograms; return where a rank fell outside its bracket."""
    n_groups, n_neurons = medians.shape
    column_offsets = offsets[:-1].reshape(n_groups, n_neurons)
    cumulative = np.cumsum(histogram, out=histogram)  # in place: the histogram is the largest array here

    def counted_before(positions):
        return np.where(positions > 0, cumulative[np.maximum(positions - 1, 0)], 0).reshape(n_groups, n_neurons)

    start_count = counted_before(offsets[:-1])
    inside_count = counted_before(offsets[1:]) - start_count
    scored = counts[:, None] > 0
    missed = np.zeros((n_groups, n_neurons), dtype=bool)
    middle = []
    for rank in _middle_ranks(counts):
        local = rank[:, None] - below  # rank among the values inside the bracket
        hit = (local >= 0) & (local < inside_count) & scored
        missed |= ~hit & scored
        position = np.searchsorted(cumulative, np.where(hit, start_count + local, 0), side="right")
        keys = np.where(hit, lo.astype(np.int64) + position - column_offsets, 0)
        middle.append(_values(keys).astype(medians.dtype))
    for group in np.flatnonzero(counts):
        pair = np.stack([middle[0][group], middle[1][group]])
        value = np.mean(pair[:1] if counts[group] % 2 else pair, axis=0)  # what np.median does with the middle
        medians[group] = np.where(missed[group], np.nan, value)
    return missed
