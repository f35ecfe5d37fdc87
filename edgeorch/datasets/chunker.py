"""Content-defined chunking (FastCDC with a gear hash): where a file is cut into chunks.

A cut depends only on the bytes since the previous cut, so an insert, a
deletion or an append changes the chunks around the edit and never the ones
before it (and, after an insert or deletion, the cuts fall back into step a
chunk or two later). That is what lets a daily batch that grew by appends store
only its new tail (plus the old last chunk, whose end was the end of the file).

The algorithm (Xia et al., "FastCDC", USENIX ATC 2016), per chunk: skip
``min_size`` bytes, then roll a gear hash ``h = (h << 1) + GEAR[byte]`` and cut
after the first byte where the hash's top bits under a mask are all zero; a
stricter mask (more bits) before ``avg_size`` and a looser one after it pull
the sizes towards the average ("normalised chunking"); cut at ``max_size``
whatever the hash says. The gear table is fixed (derived from sha256), so the
same bytes are cut the same way by every edgeorch version and machine: a
change to it or to :data:`DEFAULT` would stop new versions deduplicating
against stored ones (never corrupt them).

The loop is compiled by numba (``nogil``: a worker thread chunks while the
event loop runs); see benchmarks/README.md for its speed.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from typing import BinaryIO

from ..kernels.cache import use_numba_cache_dir
from ..records import frozen

use_numba_cache_dir()  # before numba decorates anything (edgeorch/kernels/cache.py)

import numba  # noqa: E402
import numpy as np  # noqa: E402


@frozen
class ChunkParams:
    """Chunk sizes in bytes: ``min_size <= avg_size <= max_size``, ``avg_size`` a power of two.

    Every chunk but a file's last is at least ``min_size`` and at most
    ``max_size`` long; the sizes average about ``avg_size``.
    """

    min_size: int
    avg_size: int
    max_size: int

    def __post_init__(self) -> None:
        if not (64 <= self.min_size <= self.avg_size <= self.max_size):
            raise ValueError(f"chunk sizes must satisfy 64 <= min <= avg <= max: {self}")
        if self.avg_size & (self.avg_size - 1):
            raise ValueError(f"avg_size must be a power of two: {self.avg_size}")

    @property
    def masks(self) -> tuple[int, int]:
        """(strict, loose) masks: the top ``log2(avg) + 2`` and ``log2(avg) - 2`` bits of the 64-bit hash."""
        bits = self.avg_size.bit_length() - 1
        strict, loose = min(bits + 2, 63), max(bits - 2, 1)
        return (((1 << strict) - 1) << (64 - strict)), (((1 << loose) - 1) << (64 - loose))


DEFAULT = ChunkParams(min_size=64 * 1024, avg_size=256 * 1024, max_size=1024 * 1024)
"""Chunks of 64 KiB to 1 MiB, about 256 KiB on average. An edit or an append costs about one
chunk, so smaller chunks store less per change: on benchmarks/bench_datasets.py's daily batches
(12 days) a 256 KiB average stored 140 MB where 1 MiB stored 210 MB (a table re-exported with
scattered edits: 42 against 101 MB), for 1.5 times the objects (a folder of small files is one
object per file either way). Files smaller than ``min_size`` are one chunk each."""


def _gear_table() -> np.ndarray:
    seeds = [int.from_bytes(hashlib.sha256(b"edgeorch-gear-%d" % i).digest()[:8], "little") for i in range(256)]
    return np.array(seeds, dtype=np.uint64)


GEAR = _gear_table()


@numba.njit(cache=True, nogil=True)
def _cuts(buf, n, eof, min_size, avg_size, max_size, mask_s, mask_l, gear, out):  # pragma: no cover - compiled
    """Write the end offsets of the chunks found in ``buf[:n]`` into ``out``; return how many.

    Without ``eof``, the bytes after the last cut found are left for the
    caller to carry into the next buffer (they may belong to a longer chunk).
    """
    count = 0
    start = 0
    while start < n:
        left = n - start
        if left <= min_size:
            if eof:
                out[count] = n
                count += 1
            return count
        end = start + max_size if left > max_size else n
        normal = start + avg_size if start + avg_size < end else end
        h = np.uint64(0)
        i = start + min_size
        cut = -1
        while i < normal:
            h = (h << np.uint64(1)) + gear[buf[i]]
            i += 1
            if h & mask_s == 0:
                cut = i
                break
        if cut < 0:
            while i < end:
                h = (h << np.uint64(1)) + gear[buf[i]]
                i += 1
                if h & mask_l == 0:
                    cut = i
                    break
        if cut < 0:
            if end - start == max_size or eof:
                cut = end
            else:
                return count  # ran out of data before a cut: the rest waits for more
        out[count] = cut
        count += 1
        start = cut
    return count


def cut_points(data: bytes | bytearray | memoryview | np.ndarray, params: ChunkParams = DEFAULT, *,
               eof: bool = True) -> list[int]:
    """The end offset of every chunk of ``data`` (the last is ``len(data)`` when ``eof``); [] for no data."""
    buf = np.frombuffer(data, dtype=np.uint8) if not isinstance(data, np.ndarray) else data
    out = np.empty(len(buf) // params.min_size + 2, dtype=np.int64)
    mask_s, mask_l = params.masks
    k = _cuts(buf, len(buf), eof, params.min_size, params.avg_size, params.max_size,
              np.uint64(mask_s), np.uint64(mask_l), GEAR, out)
    return [int(x) for x in out[:k]]


READ_SIZE = 16 * 1024 * 1024
"""Bytes read from a file per step (a multiple of every chunk's max size keeps a buffer's carry small)."""


def iter_chunks(f: BinaryIO, params: ChunkParams = DEFAULT, *, read_size: int = READ_SIZE,
                size_hint: int | None = None) -> Iterator[memoryview]:
    """The chunks of a file object, in order, as views valid until the next item is asked for.

    Reads ``read_size`` bytes at a time (at least ``2 * max_size``); a chunk is
    exactly what :func:`cut_points` over the whole content would give. An
    empty file has no chunk. ``size_hint`` (the file's size, when known) keeps
    the buffer of a small file small: a folder of small files would otherwise
    allocate ``read_size`` per file. A file that outgrows its hint still gets
    every chunk (the buffer grows).
    """
    full = max(read_size, 2 * params.max_size)
    size = full if size_hint is None else min(full, size_hint + 1)
    buf = bytearray(size)
    filled = 0
    eof = False
    mask_s, mask_l = np.uint64(params.masks[0]), np.uint64(params.masks[1])
    out = np.empty(full // params.min_size + 2, dtype=np.int64)
    while True:
        view = memoryview(buf)
        arr = np.frombuffer(buf, dtype=np.uint8)
        while not eof and filled < size:
            got = f.readinto(view[filled:])  # type: ignore[attr-defined]
            if not got:
                eof = True
            else:
                filled += got
        if not filled:
            return
        k = _cuts(arr, filled, eof, params.min_size, params.avg_size, params.max_size, mask_s, mask_l, GEAR, out)
        start = 0
        for j in range(k):
            end = int(out[j])
            yield view[start:end]
            start = end
        if eof and start == filled:
            return
        if start:  # carry the bytes after the last cut to the front
            buf[: filled - start] = buf[start:filled]
            filled -= start
        elif size < full:  # the file is larger than its hint said: read on into a full-size buffer
            grown = bytearray(full)  # a new one: the caller may still hold a view of the old
            grown[:filled] = buf[:filled]
            buf, size = grown, full
        else:  # pragma: no cover - a full buffer of 2 * max_size always holds a cut
            raise AssertionError("no cut in a full buffer")
