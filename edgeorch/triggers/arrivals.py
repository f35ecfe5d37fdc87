"""The drop-folder loop: watcher events + rescans -> settle tracker -> ``on_ready``.

:class:`ArrivalLoop` runs on the daemon's event loop. For every watched
folder it keeps a :class:`SettleTracker`; it arms ONE ``loop.call_at`` timer
for the earliest settle deadline (no polling), rescans every folder at start,
after an inotify overflow and every ``rescan_interval`` seconds, and calls
``on_ready(spec, path)`` once for each complete candidate file. What happens
next (inspect, claim, record, start a run) is the caller's: see
``docs/triggers.md``.

A file handed to ``on_ready`` that is still in the folder afterwards (it was
refused, or the claim failed) is not handed over again by rescans until it
changes (another inode, size or mtime) or a new event names it.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable
from pathlib import Path

from .dropfolder import SettleTracker, WatchSpec, is_candidate, scan, stat_of
from .watcher import FolderWatcher, WatchEvent

log = logging.getLogger(__name__)

DEFAULT_RESCAN_INTERVAL = 60.0


class ArrivalLoop:
    """Turns events and rescans into exactly one ``on_ready`` call per complete file.

    ``on_ready`` runs on the loop thread and should be quick (claiming is a
    rename and a hash; hash big files in an executor if needed). Exceptions
    from it are logged; the file is then left for the next rescan.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, specs: list[WatchSpec],
                 on_ready: Callable[[WatchSpec, Path], None], *,
                 rescan_interval: float = DEFAULT_RESCAN_INTERVAL, watch: bool = True) -> None:
        self.loop = loop
        self.specs = {Path(os.path.abspath(s.folder)): s for s in specs}
        self.on_ready = on_ready
        self.rescan_interval = rescan_interval
        self.trackers = {f: SettleTracker(s.settle) for f, s in self.specs.items()}
        self.watcher = FolderWatcher(loop, self._on_event) if watch else None
        self._timer: asyncio.TimerHandle | None = None
        self._rescan: asyncio.TimerHandle | None = None
        self._handed: dict[Path, tuple[int, int, int, int]] = {}
        self.rescans = 0
        self.overflows = 0

    def start(self) -> None:
        """Watch every folder, then rescan (files that arrived while nothing watched)."""
        if self.watcher is not None:
            for folder in self.specs:
                self.watcher.add(folder)
            self.watcher.start()
        self.rescan()

    def stop(self) -> None:
        if self.watcher is not None:
            self.watcher.stop()
        for h in (self._timer, self._rescan):
            if h is not None:
                h.cancel()
        self._timer = self._rescan = None

    def rescan(self) -> None:
        """Feed every candidate file of every folder to its tracker (``scanned``), then re-arm."""
        self.rescans += 1
        now = self.loop.time()
        for folder, spec in self.specs.items():
            tracker = self.trackers[folder]
            for path in scan(folder, spec.patterns):
                if self._handed.get(path) == _identity(path):
                    continue
                tracker.observe("scanned", path, now)
        if self._rescan is not None:
            self._rescan.cancel()
        self._rescan = self.loop.call_later(self.rescan_interval, self.rescan)
        self._drain()

    def _on_event(self, ev: WatchEvent) -> None:
        if ev.kind == "overflow":
            self.overflows += 1
            log.warning("inotify queue overflowed: rescanning the drop folders")
            self.rescan()
            return
        assert ev.path is not None and ev.folder is not None
        spec = self.specs.get(ev.folder)
        if spec is None or not is_candidate(ev.path.name, spec.patterns):
            return
        self._handed.pop(ev.path, None)
        self.trackers[ev.folder].observe(ev.kind, ev.path, ev.at)  # type: ignore[arg-type]
        self._drain()

    def _drain(self) -> None:
        now = self.loop.time()
        for folder, tracker in self.trackers.items():
            spec = self.specs[folder]
            for path in tracker.ready(now):
                self._handed[path] = _identity(path)
                try:
                    self.on_ready(spec, path)
                except Exception:
                    log.exception("on_ready failed for %s", path)
                if not os.path.lexists(path):
                    self._handed.pop(path, None)
        self._arm()

    def _arm(self) -> None:
        deadlines = [d for t in self.trackers.values() if (d := t.next_deadline()) is not None]
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if deadlines:
            self._timer = self.loop.call_at(max(min(deadlines), self.loop.time()), self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self._drain()

    def pending(self) -> int:
        """Files seen but not yet complete (being written or settling)."""
        return sum(len(t) for t in self.trackers.values())


def _identity(path: Path) -> tuple[int, int, int, int]:
    try:
        st = os.lstat(path)
    except OSError:
        return (-1, -1, -1, -1)
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


__all__ = ["DEFAULT_RESCAN_INTERVAL", "ArrivalLoop", "stat_of"]
