"""Scratch folders for a benchmark's rounds, all removed when the benchmark ends, never between rounds.

Why not one ``TemporaryDirectory`` per round: on ext4 without a journal (the
development VM's disk: ``/proc/fs/ext4/<dev>/options`` lists no journal,
``/sys/fs/ext4/<dev>/journal_task`` says ``<none>``), the inode allocator
skips every inode freed in the last one to five minutes
(``recently_deleted()`` in ``fs/ext4/ialloc.c``: inode numbers are not
reused soon where no journal orders the writes), and each skip is a lookup
in the buffer cache. Right after a round removed its ~10,000 files and
folders, creating a file or a folder cost 0.12-0.26 ms instead of 0.01 ms
(``perf``: ``recently_deleted`` and ``find_get_block_common`` under
``__ext4_new_inode``, 19 % of the machine's CPU), and the next round of
``bench_engine.py`` took 3.3 s instead of 1.8 s. Measured that way, the
rounds after the first measured the previous round's clean-up. Journaled
ext4, xfs and tmpfs have no such window.

:func:`create_cost_ms` measures what a file create costs in the benchmark's
folder right now, so a result can say which state it was taken in. A
benchmark started within a few minutes of another one's clean-up still
pays for it: wait, or look at that figure, or run the benchmarks one after
another with ``EDGEORCH_BENCH_KEEP=1`` (each leaves its scratch folder, and
says where, for a removal when the measurements are done).
"""

from __future__ import annotations

import atexit
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

_root: Path | None = None


def scratch(prefix: str = "round-") -> Path:
    """A new empty folder under this process's scratch root (in ``TMPDIR``); removed at the process's exit
    (kept with ``EDGEORCH_BENCH_KEEP`` set)."""
    global _root
    if _root is None:
        _root = Path(tempfile.mkdtemp(prefix="edgeorch-bench-"))
        if os.environ.get("EDGEORCH_BENCH_KEEP"):
            atexit.register(print, f"scratch files kept in {_root} (EDGEORCH_BENCH_KEEP)")
        else:
            atexit.register(shutil.rmtree, _root, True)
    return Path(tempfile.mkdtemp(prefix=prefix, dir=_root))


def create_cost_ms(files: int = 200) -> float:
    """Median wall time of creating an empty file and a folder in a fresh scratch folder, in milliseconds.

    About 0.01-0.05 ms on this VM's disk at rest, 0.1-0.3 ms within minutes of
    a large removal (see the module docstring). Nothing is removed here.
    """
    folder = scratch("probe-")
    times = []
    for i in range(files):
        t0 = time.perf_counter()
        os.close(os.open(folder / f"f{i}", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644))
        os.mkdir(folder / f"d{i}")
        times.append((time.perf_counter() - t0) / 2)
    return statistics.median(times) * 1e3
