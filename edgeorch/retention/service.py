"""The daemon's side of retention: one gc at a time, and the periodic ``[retention]`` sweep.

:class:`RunRetention` serves the ``gc`` ops and, when ``[retention] runs``
is set, sweeps on its own timer (first at start, then every
:func:`sweep_interval` of the bound: hourly for a bound of two hours or
more). Each gc plans and commits on the loop (nothing else can write
between the two) and removes or measures folders in a worker thread; a lock
keeps two gcs (an op and the sweep) from overlapping. A failed sweep is
logged and tried again at the next one: retention is housekeeping, never
fatal.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from ..events import Event, RunsRemoved
from .gc import PAGE_RUNS, GcRequest, finish, human_duration, merge, prepare

if TYPE_CHECKING:  # pragma: no cover
    from ..config import RetentionConfig
    from ..store import Store

log = logging.getLogger("edgeorch.retention")

SWEEP_ACTOR = "retention"
"""The actor recorded for the periodic sweep's removals."""


def sweep_interval(keep: float) -> float:
    """Seconds between two sweeps for a bound of ``keep``: what is past the bound outlives it by at most about
    half of it (and by at most an hour), without a sweep more than twice a second.

    The one cadence of every retention rule (``[inbox] keep`` and ``[retention] runs``).
    """
    return min(max(keep / 2.0, 0.5), 3600.0)


class RunRetention:
    """Garbage collection of old runs in the daemon: ``store`` on ``loop``, folders under ``runs_dir``.

    ``publish`` receives a :class:`~edgeorch.events.RunsRemoved` after each commit that removed runs.
    """

    def __init__(self, *, store: "Store", runs_dir: Path, config: "RetentionConfig",
                 loop: asyncio.AbstractEventLoop, publish: Callable[[Event], None]) -> None:
        self.store = store
        self.runs_dir = runs_dir
        self.config = config
        self.loop = loop
        self.publish = publish
        self._lock = asyncio.Lock()
        self._timer: asyncio.TimerHandle | None = None
        self._sweep: asyncio.Task[None] | None = None
        self._started = False
        self._said_unsealed = False

    async def collect(self, request: GcRequest) -> dict[str, Any]:
        """One gc (a dry run unless ``request.apply``); its report (:func:`edgeorch.retention.gc.finish`).

        Page by page (:data:`~edgeorch.retention.gc.PAGE_RUNS` candidates): each page is planned
        and committed on the loop with no ``await`` in between, its folders handled in a worker
        thread; the loop serves everything else between two pages.
        """
        async with self._lock:
            reports = []
            before: int | None = None
            gone: frozenset[int] = frozenset()
            while True:
                prepared = prepare(self.store, self.runs_dir, request, before=before, limit=PAGE_RUNS, gone=gone)
                if request.apply and prepared.removed:
                    self.publish(RunsRemoved(prepared.now, tuple(sorted(prepared.removed)),
                                             request.actor or SWEEP_ACTOR))
                reports.append(await asyncio.to_thread(finish, prepared, strays=prepared.complete))
                if prepared.complete:
                    return merge(reports)
                before, gone = prepared.last_id, gone | prepared.removed

    # -- the periodic sweep ---------------------------------------------------------------------

    def start(self) -> None:
        """Arm the sweep (at once) when ``[retention] runs`` is set."""
        self._started = True
        self._arm(0.0)

    def stop(self) -> None:
        """No more sweeps; a folder removal already in its worker thread finishes on its own."""
        self._started = False
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._sweep is not None:
            self._sweep.cancel()
            self._sweep = None

    def reconfigure(self, config: "RetentionConfig") -> None:
        """A reloaded ``[retention]``: applies from now on (a sweep at once when it changed)."""
        if config == self.config:
            return
        self.config = config
        if self._started:
            self._arm(0.0)

    def _bound(self) -> float | None:
        """The shortest retention bound in force (runs, audit records), which paces the sweep; None: no sweep."""
        bounds = [b for b in (self.config.runs, self.config.audit, self.config.inputs) if b is not None]
        return min(bounds) if bounds else None

    def _arm(self, delay: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._started and self._bound() is not None:
            self._timer = self.loop.call_later(delay, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        if self._sweep is None or self._sweep.done():
            self._sweep = self.loop.create_task(self._run_sweep())

    async def _run_sweep(self) -> None:
        runs, audit = self.config.runs, self.config.audit
        try:
            if runs is not None:
                await self.collect(GcRequest(older_than=runs, keep_last=self.config.keep_last, apply=True,
                                             actor=SWEEP_ACTOR))
            if audit is not None:
                self.prune_audit(audit)
            if self.config.inputs is not None:
                removed = self.store.inputs.prune(self.store.clock() - self.config.inputs, actor=SWEEP_ACTOR)
                if removed:
                    log.info("input retention: removed the records of %d settled input(s) older than %s whose run "
                             "and files are gone", removed, human_duration(self.config.inputs))
        except asyncio.CancelledError:
            raise
        except Exception:  # noqa: BLE001 - housekeeping: never fatal, tried again at the next sweep
            log.exception("retention sweep failed (tried again at the next one)")
        bound = self._bound()  # the bounds now in force (a reload may have changed them meanwhile)
        if bound is not None:
            self._arm(sweep_interval(bound))

    def prune_audit(self, keep: float) -> dict[str, Any] | None:
        """``[retention] audit``: the audit records older than ``keep`` seconds go, up to the newest seal among them
        (:meth:`~edgeorch.store.audit.AuditLog.prune`: one transaction, what remains verifies); its outcome, None
        when nothing was old enough and sealed. Logged when it removed anything."""
        pruned = self.store.audit.prune(self.store.clock() - keep, actor=SWEEP_ACTOR, idle=True)
        if pruned is not None:
            log.info("audit retention: pruned %d record(s) through seq %d (sealed in epoch %d)", pruned["records"],
                     pruned["through_seq"], pruned["epoch"])
        elif not self._said_unsealed and not self.store.audit.seals():
            self._said_unsealed = True  # once per daemon: it holds until someone acts
            log.warning("[retention] audit is set, but the audit log was never sealed: records go only up to a seal "
                        "(so that what remains verifies), and none exists; `edgeorch audit init` starts sealing "
                        "(docs/audit.md)")
        return pruned
