"""GPU readings off the event loop: one worker thread, a stall detector, snapshots of bounded age.

NVML calls can block for seconds, or for good on a wedged GPU (known hangs
after XID 45, ``nvmlInit`` hanging on some drivers). Made on the daemon's
event loop they would stop everything: CPU pipelines, the control socket,
systemd's watchdog pings. So the loop never calls a :class:`GpuBackend`:

- :class:`GpuWorker` runs backend calls on one thread, one at a time. A
  call that never returns holds that thread only; nothing queues behind it
  but the next refresh, so threads never pile up.
- :class:`GpuReader` asks the worker for a *refresh*: one query per device
  (free memory, the only reading a scheduling decision needs), the process
  list of the GPUs it was asked about (budgets, share accounting) and the
  health events. The result is a :class:`GpuSnapshot`; the loop reads the
  latest one without waiting, and uses it only while it is younger than a
  bound (:data:`READ_MAX_AGE_S` for decisions). Health events are kept
  until taken.
- :meth:`GpuReader.stall` says when the worker has been inside one backend
  call for longer than :data:`CALL_TIMEOUT_S`: GPU work then waits with that
  sentence as its reason while everything else goes on.

``GpuReader(..., worker=None)`` runs every refresh inline, in the caller's
thread, at once: for the CLI without a daemon and for tests of the layers
above that do not exercise timing.
"""

from __future__ import annotations

import concurrent.futures
import logging
import queue
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import field
from typing import Any

from ...records import frozen
from ..model import NVML_ERROR_GPU_IS_LOST, GpuBackendError, GpuProcess, GpuReading, HealthEvent
from .backend import GpuBackend

log = logging.getLogger("edgeorch.resources")

READ_MAX_AGE_S = 2.0
"""A scheduling decision uses GPU readings at most this many seconds old."""

CALL_TIMEOUT_S = 10.0
"""A backend call running longer than this means NVML is not answering (see :meth:`GpuReader.stall`)."""


class GpuWorker:
    """One daemon thread that runs submitted calls in order.

    ``submit`` never blocks. ``current`` names the call running now and when
    it started (monotonic), for stall detection from another thread.
    """

    def __init__(self, name: str = "edgeorch-gpu", clock: Callable[[], float] = time.monotonic) -> None:
        self._q: queue.SimpleQueue[tuple[concurrent.futures.Future[Any], str, Callable[..., Any], tuple[Any, ...]]
                                   | None] = queue.SimpleQueue()
        self._clock = clock
        self.current: tuple[str, float] | None = None
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            item = self._q.get()
            if item is None:
                return
            fut, label, fn, args = item
            if not fut.set_running_or_notify_cancel():
                continue
            self.current = (label, self._clock())
            try:
                fut.set_result(fn(*args))
            except BaseException as exc:  # noqa: BLE001 - handed to whoever waits on the future
                fut.set_exception(exc)
            finally:
                self.current = None

    def submit(self, label: str, fn: Callable[..., Any], *args: Any) -> concurrent.futures.Future[Any]:
        fut: concurrent.futures.Future[Any] = concurrent.futures.Future()
        self._q.put((fut, label, fn, args))
        return fut

    def busy_for(self) -> tuple[str, float] | None:
        """(label, seconds) of the call running now, or None when idle."""
        cur = self.current
        return None if cur is None else (cur[0], self._clock() - cur[1])

    def close(self, timeout: float = 2.0) -> bool:
        """Stop after the queued calls; True when the thread ended within ``timeout`` (a wedged call keeps it)."""
        self._q.put(None)
        self._thread.join(timeout)
        return not self._thread.is_alive()


@frozen
class GpuSnapshot:
    """What one refresh read. Times are the reader's clock (monotonic seconds): the refresh began at
    ``taken_at`` and ended at ``finished_at`` (its age is counted from the end, so a slow refresh is
    still used rather than asked for again and again).

    ``free``: free bytes per device read; ``unreadable``: why a device could
    not be read (it gets nothing new); ``lost``: devices that fell off the
    bus; ``processes``: the process lists asked for (``process_errors`` for
    those that failed); ``readings``: full readings when asked for.
    """

    taken_at: float
    finished_at: float
    free: Mapping[str, int] = field(default_factory=dict)
    unreadable: Mapping[str, str] = field(default_factory=dict)
    lost: frozenset[str] = frozenset()
    processes: Mapping[str, tuple[GpuProcess, ...]] = field(default_factory=dict)
    process_errors: Mapping[str, str] = field(default_factory=dict)
    readings: Mapping[str, GpuReading | str] = field(default_factory=dict)


class GpuReader:
    """See the module docstring. The loop calls everything but the worker's job.

    ``on_update`` (set by the engine) is called from the worker thread after
    each refresh; it must only hand over to the loop (``call_soon_threadsafe``).
    """

    def __init__(self, backend: GpuBackend, uuids: Iterable[str], *, worker: GpuWorker | None = None,
                 clock: Callable[[], float] = time.monotonic, call_timeout: float = CALL_TIMEOUT_S) -> None:
        self.backend = backend
        self._uuids = tuple(uuids)
        self._worker = worker
        self._clock = clock
        self.call_timeout = call_timeout
        self.on_update: Callable[[], object] | None = None  # its return value is ignored
        self._lock = threading.Lock()
        self._latest: GpuSnapshot | None = None
        self._events: list[HealthEvent] = []
        self._inflight = False
        self._again: tuple[set[str], bool] | None = None
        self._current: tuple[str, float] | None = None
        self._bugs: set[str] = set()
        self._generation = 0  # bumped by invalidate(): a refresh begun before it is not fresh

    @property
    def threaded(self) -> bool:
        return self._worker is not None

    # -- loop side -------------------------------------------------------------------

    def request(self, processes_of: Iterable[str] = (), *, full: bool = False) -> None:
        """Refresh soon (now, when inline): free memory of every device, the process lists of
        ``processes_of``, health events; full readings when ``full``. A refresh already on its way
        takes the request on (one more runs after it), so requests never pile up."""
        procs = set(processes_of)
        with self._lock:
            if self._inflight:
                prev = self._again or (set(), False)
                self._again = (prev[0] | procs, prev[1] or full)
                return
            self._inflight = True
        self._start(procs, full)

    def _start(self, procs: set[str], full: bool) -> None:
        if self._worker is None:
            self._job(procs, full)
        else:
            self._worker.submit("GPU refresh", self._job, procs, full)

    def latest(self, max_age: float | None = None) -> GpuSnapshot | None:
        """The latest snapshot; None when there is none, or when it is older than ``max_age`` seconds."""
        snap = self._latest
        if snap is None or (max_age is not None and self._clock() - snap.finished_at > max_age):
            return None
        return snap

    def invalidate(self) -> None:
        """Forget the latest snapshot's freshness: the next decision asks for a new one (its full readings
        stay for the report). A refresh already under way when this is called reads partly before it,
        so its snapshot is stored as stale too (else it would make the invalidation a no-op)."""
        with self._lock:
            self._generation += 1
            if self._latest is not None:
                self._latest = GpuSnapshot(self._latest.taken_at, float("-inf"), self._latest.free,
                                           self._latest.unreadable, self._latest.lost, self._latest.processes,
                                           self._latest.process_errors, self._latest.readings)

    def age(self, snap: GpuSnapshot) -> float:
        """Seconds since ``snap``'s refresh began (how old its data may be)."""
        return max(0.0, self._clock() - snap.taken_at)

    def stall(self) -> str | None:
        """A sentence when a backend call has run longer than ``call_timeout``; else None."""
        cur = self._current
        if cur is None:
            return None
        waited = self._clock() - cur[1]
        if waited <= self.call_timeout:
            return None
        return f"NVML has not answered for {waited:.0f} s ({cur[0]}): the GPU or its driver is wedged"

    def take_events(self) -> list[HealthEvent]:
        """Health events read since the last call (each reported once by the backend)."""
        with self._lock:
            out, self._events = self._events, []
        return out

    def close(self, timeout: float = 2.0) -> None:
        """Close the backend on the worker (after what is queued), waiting at most ``timeout`` seconds."""
        if self._worker is None:
            self.backend.close()
            return
        fut = self._worker.submit("close", self.backend.close)
        try:
            fut.result(timeout)
        except concurrent.futures.TimeoutError:
            log.warning("GPU backend did not close within %.0f s (a wedged NVML call): left to the exiting process",
                        timeout)
        except Exception as exc:  # noqa: BLE001 - closing must not fail the stop
            log.warning("GPU backend close failed: %s", exc)
        self._worker.close(0.0)

    # -- worker side -----------------------------------------------------------------

    def _guard(self, label: str, fn: Callable[..., Any], *args: Any) -> Any:
        """One backend call, named for :meth:`stall`; an exception that is not a GpuBackendError
        (a backend bug) becomes one, logged once per kind."""
        self._current = (label, self._clock())
        try:
            return fn(*args)
        except GpuBackendError:
            raise
        except Exception as exc:  # noqa: BLE001 - a backend bug must not kill the worker or the engine
            kind = f"{label.split(' ')[0]}:{type(exc).__name__}"
            if kind not in self._bugs:
                self._bugs.add(kind)
                log.error("GPU backend raised %s in %s (a bug; treated as an NVML error)", type(exc).__name__,
                          label, exc_info=exc)
            raise GpuBackendError(f"{label}: {type(exc).__name__}: {exc}") from None
        finally:
            self._current = None

    def _job(self, procs: set[str], full: bool) -> None:
        while True:
            try:
                self._refresh(procs, full)
            finally:
                with self._lock:
                    again, self._again = self._again, None
                    self._inflight = again is not None
            cb = self.on_update
            if cb is not None:
                try:
                    cb()
                except Exception:  # noqa: BLE001 - e.g. the loop closed under us while stopping
                    log.debug("GPU reader update callback failed", exc_info=True)
            if again is None:
                return
            procs, full = again

    def _refresh(self, procs: set[str], full: bool) -> None:
        with self._lock:
            generation = self._generation
        taken = self._clock()
        b = self.backend
        free: dict[str, int] = {}
        unreadable: dict[str, str] = {}
        lost: set[str] = set()
        readings: dict[str, GpuReading | str] = {}
        for u in self._uuids:
            try:
                if full:
                    r = self._guard(f"reading of {u}", b.reading, u)
                    readings[u] = r
                    free[u] = r.memory_free
                else:
                    free[u] = self._guard(f"free memory of {u}", b.free_memory, u)
            except GpuBackendError as exc:
                unreadable[u] = exc.message
                readings[u] = exc.message
                if exc.nvml_code == NVML_ERROR_GPU_IS_LOST:
                    lost.add(u)
        plist: dict[str, tuple[GpuProcess, ...]] = {}
        perr: dict[str, str] = {}
        for u in sorted(procs):
            if u in unreadable:
                perr[u] = unreadable[u]
                continue
            try:
                plist[u] = self._guard(f"processes on {u}", b.processes, u)
            except GpuBackendError as exc:
                perr[u] = exc.message
        try:
            events = self._guard("health events", b.poll_health, 0)
        except GpuBackendError as exc:
            log.warning("GPU health poll failed: %s", exc.message)
            events = []
        done = self._clock()
        with self._lock:
            if generation != self._generation:  # invalidated while it read: usable for nothing but the report
                done = float("-inf")
            self._events += events
            prev = self._latest
            kept = readings if full or prev is None else prev.readings  # the last full readings, for the report
            self._latest = GpuSnapshot(taken, done, free, unreadable, frozenset(lost), plist, perr, kept)
