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

A watched folder that is deleted (inotify ``IN_DELETE_SELF``), or found
missing or replaced by another inode at a rescan, is reported through
``on_folder(folder, True)``; while any folder is missing it is looked for
every ``FOLDER_POLL`` seconds, and once it is back it is watched again
(:meth:`FolderWatcher.rearm`), rescanned, and ``on_folder(folder, False)``; one back whose path another user
could change (:mod:`.drop.trust`) is not, and ``on_folder(folder, True, why)`` says so.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable
from pathlib import Path

from .drop import SettleTracker, WatchSpec, is_candidate, scan, stat_of
from .drop.trust import untrusted_path
from .watcher import FolderWatcher, WatchEvent

log = logging.getLogger(__name__)

DEFAULT_RESCAN_INTERVAL = 60.0
FOLDER_POLL = 1.0
"""Seconds between looks for a missing watched folder (only while one is missing)."""


class ArrivalLoop:
    """Turns events and rescans into exactly one ``on_ready`` call per complete file.

    ``on_ready`` runs on the loop thread and should be quick (claiming is a
    rename and a hash; hash big files in an executor if needed). Exceptions
    from it are logged; the file is then left for the next rescan.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, specs: list[WatchSpec],
                 on_ready: Callable[[WatchSpec, Path], None], *,
                 rescan_interval: float = DEFAULT_RESCAN_INTERVAL, watch: bool = True,
                 on_folder: Callable[[Path, bool, str | None], None] | None = None) -> None:
        self.loop = loop
        self.specs = {Path(os.path.abspath(s.folder)): s for s in specs}
        self.on_ready = on_ready
        self.rescan_interval = rescan_interval
        self.trackers = {f: SettleTracker(s.settle) for f, s in self.specs.items()}
        # Events are fed to the trackers one by one; ready files are handed over once per batch of
        # events (``flushed``), not after every event: a burst costs one pass, not one per file.
        self.watcher = FolderWatcher(loop, self._on_event, flushed=self._drain) if watch else None
        self._timer: asyncio.TimerHandle | None = None
        self._rescan: asyncio.TimerHandle | None = None
        self._poll: asyncio.TimerHandle | None = None
        self.on_folder = on_folder
        self.missing: set[Path] = set()
        self._untrusted: dict[Path, str] = {}  # folders back but not watched again (trust.py): what was said
        self._handed: dict[Path, tuple[int, int, int, int]] = {}
        self.rescans = 0
        self.overflows = 0

    def start(self) -> None:
        """Watch every folder, then rescan (files that arrived while nothing watched)."""
        if self.watcher is not None:
            missing = []
            for folder in self.specs:
                try:
                    self.watcher.add(folder)
                except FileNotFoundError:  # not there yet: looked for until it appears, then watched
                    missing.append(folder)
            self.watcher.start()
            for folder in missing:
                self._lost(folder, "missing at start")
        self.rescan()

    def stop(self) -> None:
        if self.watcher is not None:
            self.watcher.stop()
        for h in (self._timer, self._rescan, self._poll):
            if h is not None:
                h.cancel()
        self._timer = self._rescan = self._poll = None

    # -- the folders themselves -------------------------------------------------------

    def check_folders(self) -> None:
        """Find folders whose watch is dead (missing, or another inode) and re-arm those that are back.

        One ``stat`` per folder: called at every rescan, every :data:`FOLDER_POLL` while a folder is
        missing, and by the daemon's periodic path check (a folder moved away and another made at its path
        is watched within seconds, not at the next rescan).
        """
        if self.watcher is None:
            return
        for folder in self.specs:
            alive = self.watcher.watching(folder)
            if alive and folder not in self.missing:
                continue
            if not alive and folder not in self.missing:
                self._lost(folder, "found missing or replaced at a check")
            if os.path.isdir(folder):
                self._rearm(folder)
        if self.missing and self._poll is None:
            self._poll = self.loop.call_later(FOLDER_POLL, self._poll_folders)

    def _poll_folders(self) -> None:
        self._poll = None  # this poll has fired: check_folders arms the next one while a folder is missing
        self.check_folders()

    def _lost(self, folder: Path, how: str) -> None:
        if folder in self.missing:
            return
        self.missing.add(folder)
        self.trackers[folder] = SettleTracker(self.specs[folder].settle)  # its pending files are gone with it
        log.warning("watched folder %s is gone (%s): watching for it to come back", folder, how)
        self._notify(folder, True)
        if self._poll is None:
            self._poll = self.loop.call_later(FOLDER_POLL, self._poll_folders)

    def _rearm(self, folder: Path) -> None:
        assert self.watcher is not None
        untrusted = untrusted_path(folder)
        if untrusted:  # a link put in its place by someone else: never followed (it stays missing, and is looked at)
            if self._untrusted.get(folder) != untrusted:
                self._untrusted[folder] = untrusted
                log.error("watched folder %s: not watched again: %s", folder, untrusted)
                self._notify(folder, True, untrusted)  # said where users look, not "does not exist"
            return
        self._untrusted.pop(folder, None)
        try:
            self.watcher.rearm(folder)
        except OSError as exc:
            log.warning("watched folder %s: cannot watch it yet: %s", folder, exc.strerror)
            return
        was_missing = folder in self.missing
        self.missing.discard(folder)
        if was_missing:
            log.warning("watched folder %s is back: watched again", folder)
        self._notify(folder, False)
        self._scan_folder(folder, self.loop.time())  # files that arrived while it was not watched
        self._drain()

    def _notify(self, folder: Path, missing: bool, why: str | None = None) -> None:
        if self.on_folder is not None:
            try:
                self.on_folder(folder, missing, why)
            except Exception:
                log.exception("on_folder failed for %s", folder)

    def rescan(self) -> None:
        """Feed every candidate file of every folder to its tracker (``scanned``), then re-arm."""
        self.rescans += 1
        now = self.loop.time()
        self.check_folders()
        for folder in self.specs:
            self._scan_folder(folder, now)
        if self._rescan is not None:
            self._rescan.cancel()
        self._rescan = self.loop.call_later(self.rescan_interval, self.rescan)
        self._drain()

    def _scan_folder(self, folder: Path, now: float) -> None:
        spec, tracker = self.specs[folder], self.trackers[folder]
        try:
            paths = scan(folder, spec.patterns)
        except OSError as exc:  # EMFILE, EIO...: the next rescan tries again
            log.error("cannot scan %s: %s", folder, exc.strerror)
            return
        present = set(paths)
        for gone in [p for p in self._handed if p.parent == folder and p not in present]:
            del self._handed[gone]  # left the folder (claimed) with no event seen (an overflow): forget it
        for path in paths:
            if self._handed.get(path) == _identity(path):
                continue
            tracker.observe("scanned", path, now)

    def _on_event(self, ev: WatchEvent) -> None:
        if ev.kind == "folder_gone":
            assert ev.folder is not None
            if ev.folder in self.specs:
                self._lost(ev.folder, "deleted")
                if os.path.isdir(ev.folder):  # already re-created
                    self._rearm(ev.folder)
            return
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
        # No _drain here: the watcher calls it once its batch of events is delivered.

    def _drain(self) -> None:
        now = self.loop.time()
        for folder, tracker in self.trackers.items():
            spec = self.specs[folder]
            for path in tracker.ready(now):
                # Remembered until an event names the path again (its claim's move out is one) or a
                # rescan finds it gone: a file handed over and still here is not handed over again
                # by rescans until it changes.
                self._handed[path] = _identity(path)
                try:
                    self.on_ready(spec, path)
                except Exception:
                    log.exception("on_ready failed for %s", path)
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
