"""Real inotify events for drop folders, posted onto the asyncio loop.

One watchdog ``InotifyObserver`` (full move events, so a rename from outside
the folder is a ``moved_to`` and not a ``created``) watches every folder, not
recursively. Its thread never touches state: it appends each event to a
queue and, when the queue was empty, wakes the loop once
(``loop.call_soon_threadsafe``); there the queued events are delivered to
``post`` in order, each as a :class:`WatchEvent` stamped with ``loop.time()``,
and then ``flushed()`` is called once. A burst of thousands of files thus
costs the loop one wake-up per batch, not one per event, and the owner can
act once per batch (the arrival loop hands over ready files then).

Event kinds: ``created``, ``modified``, ``closed`` (closed after writing),
``moved_to``, ``deleted`` (also: moved out), ``overflow`` (the kernel queue
overflowed and events were lost: the caller must rescan every folder) and
``folder_gone`` (the watched folder itself was deleted: inotify's
``IN_DELETE_SELF``; its watch is dead until :meth:`FolderWatcher.rearm`). The
overflow signal is taken from watchdog's own warning, as watchdog has no API
for it; the periodic rescan covers the case where even that is missed.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Literal, TypeVar

from watchdog.events import (
    DirCreatedEvent,
    DirDeletedEvent,
    DirMovedEvent,
    FileClosedEvent,
    FileCreatedEvent,
    FileDeletedEvent,
    FileModifiedEvent,
    FileMovedEvent,
    FileSystemEvent,
    FileSystemEventHandler,
)
from watchdog.observers.api import ObservedWatch
from watchdog.observers.inotify import InotifyObserver

from ..records import frozen

_T = TypeVar("_T")
WatchKind = Literal["created", "modified", "closed", "moved_to", "deleted", "overflow", "folder_gone"]

log = logging.getLogger(__name__)

_OVERFLOW_LOGGER = "watchdog.observers.inotify_c"
BATCH_MAX = 1000
"""Events delivered per loop callback at most: a longer queue is delivered over several
callbacks, so a burst never holds the loop (control requests, the engine) for long."""
_EVENT_FILTER = [FileCreatedEvent, FileModifiedEvent, FileClosedEvent, FileMovedEvent, FileDeletedEvent,
                 DirDeletedEvent, DirCreatedEvent, DirMovedEvent]


@frozen
class WatchEvent:
    """One file event: ``path`` is absolute (None for ``overflow``), ``folder`` the watched folder
    it belongs to (None for ``overflow``), ``at`` the loop time it was delivered."""

    kind: WatchKind
    path: Path | None
    folder: Path | None
    at: float


class _Handler(FileSystemEventHandler):
    def __init__(self, watcher: FolderWatcher, folder: Path) -> None:
        self.watcher = watcher
        self.folder = str(folder)

    def on_any_event(self, event: FileSystemEvent) -> None:
        send = self.watcher._send
        if isinstance(event, (DirDeletedEvent, FileDeletedEvent)) and _text(event.src_path) == self.folder:
            send("folder_gone", self.folder)  # IN_DELETE_SELF: watchdog stops this folder's emitter
            return
        if event.is_directory:
            # A folder made or moved into the watched folder: handed over as a file is, so one under a
            # candidate's name is refused ("not a regular file") now, not at the next rescan or start.
            if isinstance(event, DirMovedEvent) and event.dest_path \
                    and os.path.dirname(_text(event.dest_path)) == self.folder:
                send("moved_to", _text(event.dest_path))
            elif isinstance(event, DirCreatedEvent) and os.path.dirname(_text(event.src_path)) == self.folder:
                send("created", _text(event.src_path))
            return
        if isinstance(event, FileMovedEvent):
            if event.src_path:
                send("deleted", _text(event.src_path))
            if event.dest_path:
                send("moved_to", _text(event.dest_path))
        elif isinstance(event, FileClosedEvent):
            send("closed", _text(event.src_path))
        elif isinstance(event, FileCreatedEvent):
            send("created", _text(event.src_path))
        elif isinstance(event, FileModifiedEvent):
            send("modified", _text(event.src_path))
        elif isinstance(event, FileDeletedEvent):
            send("deleted", _text(event.src_path))


class _OverflowHook(logging.Handler):
    def __init__(self, watcher: FolderWatcher) -> None:
        super().__init__(logging.WARNING)
        self.watcher = watcher

    def emit(self, record: logging.LogRecord) -> None:
        if "overflow" in record.getMessage().lower():
            self.watcher._send("overflow", None)


def _unpaired(to_event: _T) -> _T:
    """A move in, as it is: never paired with a move out (see :meth:`FolderWatcher._no_move_pairing`)."""
    return to_event


def _no_source(cookie: int) -> None:
    """No move out is looked up for a move in (see :meth:`FolderWatcher._no_move_pairing`)."""
    return None


def _text(path: str | bytes) -> str:
    return os.fsdecode(path)


class FolderWatcher:
    """Watch several folders with one observer thread; deliver events on ``loop``.

    ``post(event)`` runs on the loop thread, in the order inotify reported
    the events; ``flushed()`` (optional) after each batch of them (at most
    :data:`BATCH_MAX`), also on the loop thread. Contract: call :meth:`add`
    for each folder (before or after :meth:`start`), :meth:`stop` once at
    shutdown (joins the thread; events already handed to the loop may still
    be delivered). Events for paths in folders that were not added (moves
    out to an unwatched place) are dropped.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, post: Callable[[WatchEvent], None], *,
                 flushed: Callable[[], None] | None = None) -> None:
        self.loop = loop
        self.post = post
        self.flushed = flushed
        self._queue: list[tuple[WatchKind, str | None]] = []
        self._lock = threading.Lock()  # the queue is shared by the observer thread and the loop
        self._woken = False  # a _flush is scheduled on the loop and will take what is queued
        self._folder_of: dict[str, Path] = {}  # the text of a watched folder -> that folder
        self.observer = InotifyObserver(generate_full_events=True)
        self.folders: set[Path] = set()
        self._watches: dict[Path, tuple[ObservedWatch, tuple[int, int]]] = {}
        self._hook = _OverflowHook(self)
        self._started = False

    def add(self, folder: Path | str) -> None:
        """Watch ``folder`` (must exist; not recursive)."""
        f = Path(os.path.abspath(folder))
        if f in self.folders:
            return
        self.folders.add(f)
        self._schedule(f)

    def _schedule(self, f: Path) -> None:
        st = os.stat(f)
        watch = self.observer.schedule(_Handler(self, f), str(f), recursive=False, event_filter=_EVENT_FILTER)
        self._watches[f] = (watch, (st.st_dev, st.st_ino))
        if self._started:
            self._no_move_pairing()

    def watching(self, folder: Path) -> bool:
        """Is ``folder``'s watch alive: the folder exists and is the very folder (inode) that was watched?

        A folder deleted and re-created (or moved away and replaced) is another inode: its old
        watch sees nothing. Cheap (one ``stat``): the periodic check calls it for every folder.
        """
        f = Path(os.path.abspath(folder))
        entry = self._watches.get(f)
        try:
            st = os.stat(f)
        except OSError:
            return False
        return entry is not None and entry[1] == (st.st_dev, st.st_ino)

    def rearm(self, folder: Path) -> None:
        """Drop ``folder``'s dead watch and watch the folder now at that path (raises OSError if none)."""
        f = Path(os.path.abspath(folder))
        old = self._watches.pop(f, None)
        if old is not None:
            try:
                self.observer.unschedule(old[0])
            except (KeyError, OSError, RuntimeError):  # already gone with its emitter
                pass
        self.folders.add(f)
        self._schedule(f)

    def start(self) -> None:
        logging.getLogger(_OVERFLOW_LOGGER).addHandler(self._hook)
        self.observer.start()
        self._started = True
        self._no_move_pairing()

    def _no_move_pairing(self) -> None:
        """Stop watchdog holding and pairing ``IN_MOVED_FROM`` events (internal attributes, checked).

        Its queue is FIFO, so every claim (a rename out of the folder) would
        delay the events behind it by half a second; and each ``IN_MOVED_TO``
        looks for its ``IN_MOVED_FROM`` by scanning the whole queue twice,
        which in a burst (the claims' moves out queue behind the arrivals)
        grows with the square of the burst. We need neither: a move out is a
        ``deleted`` and a move in a ``moved_to``, paired or not (the handler
        sends both for a pair), and the watches are not recursive, so no
        watched folder moves with its pair. If the internals change, only
        latency and CPU suffer (a warning says so).
        """
        for emitter in self.observer.emitters:
            group = getattr(emitter, "_inotify", None)
            grouper = getattr(group, "_move_event_grouper", None)
            queue = getattr(grouper, "_queue", None)
            if (grouper is not None and queue is not None and hasattr(queue, "delay")
                    and hasattr(grouper, "_group_moved_to_event") and hasattr(grouper, "get_queued_moved_from_event")):
                queue.delay = 0.0
                grouper._group_moved_to_event = _unpaired
                grouper.get_queued_moved_from_event = _no_source
            else:  # pragma: no cover - watchdog internals changed
                log.warning("cannot disable watchdog's move pairing: arrivals may lag by 0.5 s")

    def stop(self) -> None:
        logging.getLogger(_OVERFLOW_LOGGER).removeHandler(self._hook)
        if self._started:
            self.observer.stop()
            self.observer.join(timeout=10)
            self._started = False

    def _send(self, kind: WatchKind, path: str | None) -> None:
        # Runs on the observer thread: queue only, never touch state here; wake the loop only when
        # no wake-up is pending (one per batch, however many events the batch holds).
        with self._lock:
            self._queue.append((kind, path))
            if self._woken:
                return
            self._woken = True
        try:
            self.loop.call_soon_threadsafe(self._flush)
        except RuntimeError:  # loop closed during shutdown
            pass

    def _flush(self) -> None:
        """On the loop: deliver what is queued (at most BATCH_MAX, the rest in the next callback), then ``flushed``."""
        with self._lock:
            batch, self._queue = self._queue[:BATCH_MAX], self._queue[BATCH_MAX:]
            more = bool(self._queue)
            self._woken = more  # still woken: the rest is ours, delivered by the callback armed below
        if more:
            self.loop.call_soon(self._flush)  # after whatever else the loop has ready: it stays responsive
        for kind, path in batch:
            try:
                self._deliver(kind, path)
            except Exception:  # one event's failure must not drop the rest of the batch
                log.exception("handling the %s event of %s failed", kind, path)
        if self.flushed is not None:
            self.flushed()

    def _deliver(self, kind: WatchKind, path: str | None) -> None:
        if path is None:
            self.post(WatchEvent(kind, None, None, self.loop.time()))
            return
        if kind == "folder_gone":
            p = Path(path)
            self.post(WatchEvent(kind, p, p, self.loop.time()))
            return
        parent = os.path.dirname(path)
        folder = self._folder_of.get(parent)  # two events per file in a burst: no Path parsing for the folder
        if folder is None:
            folder = Path(parent)
            if folder not in self.folders:
                return
            self._folder_of[parent] = folder  # folders are only ever added, so this stays true
        self.post(WatchEvent(kind, Path(path), folder, self.loop.time()))
