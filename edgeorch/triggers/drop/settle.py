"""When a file is complete (:class:`SettleTracker`) and how ready files group into batches
(:class:`Batcher`). Pure apart from the injected ``stat`` functions; injected time.

* A file is *ready* when it was renamed into the folder (``moved_to``:
  complete at once) or, written in place, was closed after writing and then
  kept the same (size, mtime_ns) for ``settle`` seconds.
"""

from __future__ import annotations

import heapq
import os
import stat as stat_mod
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

EventKind = Literal["created", "modified", "closed", "moved_to", "deleted", "scanned"]
Stat = tuple[int, int]
"""(size, mtime_ns) of a file; None when it is gone."""


def stat_of(path: Path) -> Stat | None:
    """``(size, mtime_ns)`` by ``lstat`` (no link following); None when the path is gone."""
    try:
        st = os.lstat(path)
    except OSError:
        return None
    return (st.st_size, st.st_mtime_ns)


def complete_at_once(path: Path) -> bool:
    """True when ``path`` appeared fully formed: not a regular file, or a hard link.

    Symlinks, FIFOs, sockets, folders and extra names of existing files get
    an ``IN_CREATE`` and never a close-after-write; they are ready at once (so
    that :func:`inspect` refuses them with a reason) instead of waiting forever.
    """
    try:
        st = os.lstat(path)
    except OSError:
        return False
    return not stat_mod.S_ISREG(st.st_mode) or st.st_nlink > 1


@dataclass
class _Pending:
    """A file being watched until it settles."""

    state: Literal["writing", "settling", "ready"]
    deadline: float = 0.0
    snapshot: Stat | None = None
    last_event: float = 0.0
    token: int = 0


DEFAULT_WRITING_TIMEOUT = 300.0


class SettleTracker:
    """Decides when files are complete. Pure apart from the injected ``stat`` functions.

    Times are seconds on one monotonic clock (the caller's: ``loop.time()``
    or a fake). Per path:

    * ``moved_to`` -> ready at once (a rename is atomic);
    * ``created`` -> ready at once if ``complete_at_once(path)`` (symlink,
      FIFO, hard link, ...: refused later, nothing to wait for), else writing;
    * ``modified`` -> writing: never ready until ``closed``;
    * ``closed`` / ``scanned`` -> settling: ready once ``stat`` returns the
      same (size, mtime_ns) at ``now >= deadline`` as when the deadline was
      set (``settle`` seconds after the event); a change restarts the wait.
      ``scanned`` does not disturb a file that events already describe,
      except one stuck in writing with no event for ``writing_timeout``
      seconds (its close event was lost in an inotify overflow);
    * ``deleted`` (also moved away) -> forgotten.

    ``ready(now)`` returns each ready path once and forgets it; a later event
    for the same name starts afresh (a new file). Costs are O(log n) per
    event and per ready file (a heap of deadlines), so a burst of tens of
    thousands of files stays cheap.
    """

    def __init__(self, settle: float, stat: Callable[[Path], Stat | None] = stat_of, *,
                 complete_at_once: Callable[[Path], bool] = complete_at_once,
                 writing_timeout: float = DEFAULT_WRITING_TIMEOUT) -> None:
        self.settle = settle
        self.stat = stat
        self.complete_at_once = complete_at_once
        self.writing_timeout = writing_timeout
        self._files: dict[Path, _Pending] = {}
        self._heap: list[tuple[float, int, Path]] = []
        self._seq = 0

    def __len__(self) -> int:
        return len(self._files)

    def _schedule(self, p: Path, entry: _Pending, deadline: float) -> None:
        self._seq += 1
        entry.deadline, entry.token = deadline, self._seq
        heapq.heappush(self._heap, (deadline, self._seq, p))

    def observe(self, kind: EventKind, path: Path | str, now: float) -> None:
        """Feed one event observed at ``now``."""
        p = path if isinstance(path, Path) else Path(path)  # Path(a Path) parses it again: twice per file in a burst
        cur = self._files.get(p)
        if kind == "deleted":
            self._files.pop(p, None)
        elif kind == "moved_to" or (kind == "created" and self.complete_at_once(p)):
            entry = _Pending("ready", last_event=now)
            self._files[p] = entry
            self._schedule(p, entry, now)
        elif kind in ("created", "modified"):
            if cur is None or kind == "created" or cur.state != "ready":
                self._files[p] = _Pending("writing", last_event=now)
        elif kind in ("closed", "scanned"):
            if kind == "scanned" and cur is not None and not (
                    cur.state == "writing" and now - cur.last_event >= self.writing_timeout):
                return  # events already describe it better than a scan
            entry = _Pending("settling", snapshot=self.stat(p), last_event=now)
            self._files[p] = entry
            self._schedule(p, entry, now + self.settle)
        else:
            raise ValueError(f"unknown event kind {kind!r}")

    def next_deadline(self) -> float | None:
        """Earliest time ``ready`` may return something new; None when nothing is pending.

        Files that are being written (no close seen yet) have no deadline.
        """
        heap = self._heap
        while heap:
            deadline, token, p = heap[0]
            entry = self._files.get(p)
            if entry is not None and entry.token == token and entry.state != "writing":
                return deadline
            heapq.heappop(heap)  # stale: superseded, forgotten or back to writing
        return None

    def ready(self, now: float) -> list[Path]:
        """Paths complete at ``now`` (sorted); each is returned once."""
        out: list[Path] = []
        heap = self._heap
        while heap and heap[0][0] <= now:
            _, token, p = heapq.heappop(heap)
            f = self._files.get(p)
            if f is None or f.token != token or f.state == "writing":
                continue
            if f.state == "ready":
                out.append(p)
                del self._files[p]
                continue
            current = self.stat(p)
            if current is None:
                del self._files[p]
            elif current == f.snapshot:
                out.append(p)
                del self._files[p]
            else:
                f.snapshot = current
                self._schedule(p, f, now + self.settle)
        return sorted(out)

    def pending(self) -> list[Path]:
        return sorted(self._files)


class Batcher:
    """Groups ready files for ``mode = "batch"``: a batch closes at ``batch_size`` files or
    ``batch_window`` seconds after its first file, whichever comes first. Pure; injected time.
    """

    def __init__(self, batch_size: int, batch_window: float) -> None:
        self.batch_size = batch_size
        self.batch_window = batch_window
        self._items: list[Any] = []
        self._opened: float | None = None

    def add(self, item: Any, now: float) -> list[Any] | None:
        """Add one item; returns the batch when this item fills it."""
        if not self._items:
            self._opened = now
        self._items.append(item)
        if len(self._items) >= self.batch_size:
            return self._take()
        return None

    def due(self, now: float) -> list[Any] | None:
        """The open batch when its window has passed, else None."""
        if self._items and self._opened is not None and now >= self._opened + self.batch_window:
            return self._take()
        return None

    def next_deadline(self) -> float | None:
        return self._opened + self.batch_window if self._items and self._opened is not None else None

    def close(self) -> list[Any]:
        """The open batch now, whatever its size and age (its watch went: it is not filled any more); [] if none."""
        return self._take()

    def __len__(self) -> int:
        """How many items the open batch holds (0: none is open)."""
        return len(self._items)

    def items(self) -> tuple[Any, ...]:
        """The open batch's items, in the order they joined it."""
        return tuple(self._items)

    def _take(self) -> list[Any]:
        items, self._items, self._opened = self._items, [], None
        return items
