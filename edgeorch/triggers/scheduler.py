"""The schedule adapter: per-pipeline specs and watermarks, driven by ``tick(now)``.

:class:`Scheduler` holds no clock of its own beyond the injected one and does
no I/O: the caller gives it each pipeline's :class:`ScheduleSpec` and stored
last fire time, and it calls ``on_fire`` with a :class:`Fire` for every fire
that starts, waits, is skipped or was missed. :class:`ScheduleTimer` arms one
``loop.call_at`` timer for the next wake-up, so nothing polls.

Persistence contract (the caller's side)
----------------------------------------
Every :class:`Fire` carries ``last_fire``: the watermark to store in
``schedule_state(pipeline, last_fire)`` once the fire is acted on.

* ``action == "start"``: create the run and store ``last_fire`` in ONE
  transaction. A crash before it: the fire is recomputed on restart (as a
  missed fire, under the catch-up policy); after it: the run exists and the
  fire is never repeated.
* ``"skip"`` / ``"missed"``: store ``last_fire`` (no run).
* ``"wait"``: store nothing; the fire is held in memory until
  :meth:`Scheduler.tick` finds room (call :meth:`ScheduleTimer.poke` when a
  run of the pipeline finishes). Lost on a restart only to be recomputed as
  a missed fire.
* ``"paused"``: the pipeline is paused; store ``last_fire`` (no run). One
  Fire per tick covers every fire due since the last one (``missed`` counts
  them), at its time, like any fire: the watermark keeps up while paused, so
  resuming starts nothing for the paused period (``catchup`` applies to
  daemon downtime, not to a pause). Only the first of a pause is worth a
  record; the later ones have ``quiet`` set (log them at debug level).

Isolation: each pipeline's schedule is computed on its own; an exception
(an expression that slipped past validation, a missing zone) is logged once,
kept in :meth:`Scheduler.error`, and the pipeline is left out until
:meth:`Scheduler.set` replaces its spec. The other pipelines keep firing.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Literal, Protocol, TypeVar

from ..records import frozen
from .schedule import ScheduleSpec, admit, next_fire, plan_fires, same_grid, start_time

log = logging.getLogger(__name__)

T = TypeVar("T")

FireAction = Literal["start", "wait", "skip", "missed", "paused"]

MAX_SLEEP = 300.0
"""Seconds: the timer re-arms at least this often, so a wall-clock jump (NTP
step, suspend) delays a fire by at most this much. It only recomputes the
wake-up; it does not tick."""

STUCK_SLEEP = 1.0
"""Seconds: the least the timer waits when the wake-up it is given has passed although the tick just before
acted on nothing (a wake-up no tick acts on: never expected, see :func:`~.schedule.jitter_offset`). Re-armed with
delay 0 instead, it would tick in a busy loop at 100% CPU."""


class Clock(Protocol):
    """Injected time source: ``now()`` returns an aware datetime (UTC)."""

    def now(self) -> datetime: ...


class SystemClock:
    """The real wall clock, in UTC."""

    def now(self) -> datetime:
        return datetime.now(UTC)


class ManualClock:
    """A clock tests move by hand (``advance``/``set``); it never moves by itself."""

    def __init__(self, start: datetime) -> None:
        if start.tzinfo is None:
            raise ValueError("ManualClock needs an aware datetime")
        self._now = start

    def now(self) -> datetime:
        return self._now

    def set(self, when: datetime) -> None:
        self._now = when

    def advance(self, seconds: float) -> datetime:
        self._now += timedelta(seconds=seconds)
        return self._now


FIRE_RETRY_S = 5.0
"""After ``on_fire`` raised :class:`RetryLater`, how long the pipeline's schedule waits before trying that fire
again (its watermark kept: the fire is late, not lost; the catch-up policy applies to it then)."""


class RetryLater(Exception):
    """Raised by ``on_fire``: the fire could not be recorded now (the state file cannot be written); keep it."""


@frozen
class Fire:
    """One scheduling outcome reported to ``on_fire``.

    ``fire_time`` is the nominal fire time (for ``missed``: the most recent
    missed one); ``start_at`` is fire_time + jitter; ``last_fire`` is the
    watermark to store (see the module docstring); ``missed`` counts the
    fires dropped by the catch-up policy (``missed``) or skipped because the
    pipeline is paused (``paused``). ``quiet``: this repeats a condition
    already reported (a paused pipeline's later fires): store the watermark,
    record nothing.
    """

    pipeline: str
    action: FireAction
    fire_time: datetime
    start_at: datetime
    last_fire: datetime
    reason: str
    missed: int = 0
    quiet: bool = False


@dataclass
class _Entry:
    """A schedule the scheduler runs: its spec, when it last fired, and what it has already reported."""

    spec: ScheduleSpec
    last_fire: datetime
    waiting: datetime | None = None
    wait_reported: bool = field(default=False)
    error: str | None = None
    pause_reported: bool = False
    retry_at: datetime | None = None
    """A fire ``on_fire`` could not record: nothing of this schedule is tried before this time."""


class Scheduler:
    """Per-pipeline schedules and watermarks; ``tick(now)`` reports what is due.

    ``on_fire(fire)`` is called synchronously from :meth:`tick`, in fire
    order. ``active_runs(pipeline)`` returns the pipeline's queued + running
    runs and is asked before every start, so ``on_fire`` must have created
    the run (``Engine.submit``) before it returns for ``max_active_runs`` to
    count it. :class:`RetryLater` from ``on_fire`` (nothing recorded: a full
    disk) keeps the fire due and that schedule idle for :data:`FIRE_RETRY_S`;
    another exception is logged and does not stop other pipelines (the
    watermark still advances in memory; a restart recomputes from the stored
    one). ``paused()`` returns the names of the paused
    pipelines (asked once per tick): their fires are reported as ``paused``
    and they have no next fire.
    """

    def __init__(self, clock: Clock, on_fire: Callable[[Fire], None],
                 active_runs: Callable[[str], int] = lambda pipeline: 0,
                 paused: Callable[[], Collection[str]] = lambda: ()) -> None:
        self.clock = clock
        self.on_fire = on_fire
        self.active_runs = active_runs
        self.paused = paused
        self._entries: dict[str, _Entry] = {}
        self._since = clock.now()  # fires due after this were missed while the scheduler ran, not while it was away

    # -- configuration -----------------------------------------------------

    def set(self, spec: ScheduleSpec, last_fire: datetime | None) -> datetime:
        """Add or replace ``spec.pipeline``'s schedule with its stored ``last_fire``.

        Returns the watermark in effect: ``last_fire``, or ``clock.now()``
        when None (a new schedule has no missed fires). The caller stores it
        when it was None, so fires missed during a later downtime count. A
        replaced spec keeps the current watermark unless ``last_fire`` is given.
        """
        old = self._entries.get(spec.pipeline)
        # A new entry starts without an error: a changed spec gets a fresh chance.
        if last_fire is None:
            last_fire = old.last_fire if old else self.clock.now()
        entry = self._entries[spec.pipeline] = _Entry(spec, last_fire)
        if old is not None and old.last_fire == last_fire and same_grid(old.spec, spec):
            # Only the catch-up or overlap rules changed: the same fires, so what is pending about them stays. A
            # fire held by max_active_runs was dropped here (and the fires after it reported "missed" by "a
            # stalled daemon"); now it waits on, and the tick after the edit starts it if the new rules let it.
            entry.waiting, entry.wait_reported = old.waiting, old.wait_reported
            entry.pause_reported, entry.retry_at = old.pause_reported, old.retry_at
        return last_fire

    def remove(self, pipeline: str) -> None:
        """Forget a pipeline's schedule (pipeline deleted or schedule removed); no-op if absent."""
        self._entries.pop(pipeline, None)

    def pipelines(self) -> list[str]:
        return sorted(self._entries)

    def last_fire(self, pipeline: str) -> datetime | None:
        entry = self._entries.get(pipeline)
        return entry.last_fire if entry else None

    def error(self, pipeline: str) -> str | None:
        """Why ``pipeline``'s schedule cannot be computed (it is left out), or None."""
        entry = self._entries.get(pipeline)
        return entry.error if entry else None

    def next_fire(self, pipeline: str) -> datetime | None:
        """Next nominal fire time after the watermark (``edgeorch pipelines`` shows it).

        None when the pipeline is unscheduled, paused, or its schedule fails
        (see :meth:`error`).
        """
        entry = self._entries.get(pipeline)
        if entry is None or entry.error is not None or pipeline in self.paused():
            return None
        if entry.waiting is not None:
            return entry.waiting
        return self._guard(entry, lambda: next_fire(entry.spec, entry.last_fire))

    def next_start(self, pipeline: str) -> datetime | None:
        """When the run of :meth:`next_fire` starts (its fire time plus jitter); None when it has none."""
        entry = self._entries.get(pipeline)
        fire = self.next_fire(pipeline)
        if entry is None or fire is None:
            return None
        return self._guard(entry, lambda: start_time(entry.spec, fire))

    @property
    def since(self) -> datetime:
        """When this scheduler was made (the daemon's start): a fire due before it passed while the daemon was
        away; one due after it, while the daemon ran."""
        return self._since

    def held(self, pipeline: str) -> bool:
        """Whether ``pipeline``'s next fire is one held back (``on_max_active = "wait"``): due already, it starts
        when a run of the pipeline finishes (so :meth:`next_fire`, its time, may be in the past)."""
        entry = self._entries.get(pipeline)
        return entry is not None and entry.waiting is not None

    def next_wakeup(self) -> datetime | None:
        """Earliest start time (fire + jitter) over pipelines not holding a waiting fire.

        A waiting fire is released by :meth:`tick` when called after a run
        finishes, not by the timer. Paused pipelines count (their fires move
        the watermark); failing ones do not. None when nothing is scheduled.
        """
        # _guard calls the lambda at once, in its own iteration: no default argument needed to bind ``e``
        times = [e.retry_at if e.retry_at is not None else
                 self._guard(e, lambda: start_time(e.spec, next_fire(e.spec, e.last_fire)))
                 for e in self._entries.values() if e.waiting is None and e.error is None]
        found = [t for t in times if t is not None]
        return min(found) if found else None

    # -- driving -----------------------------------------------------------

    def tick(self, now: datetime | None = None) -> list[Fire]:
        """Report everything due at ``now`` (default ``clock.now()``) to ``on_fire``; return it too.

        One pipeline's failure never stops the others (see :meth:`error`).
        """
        now = now or self.clock.now()
        paused = set(self.paused())
        out: list[Fire] = []
        for name in sorted(self._entries):
            entry = self._entries[name]
            if entry.retry_at is not None:
                if entry.retry_at > now:
                    continue
                entry.retry_at = None
            if entry.error is None:
                self._guard(entry, lambda: self._tick_one(entry, now, name in paused, out))
        return out

    def _guard(self, entry: _Entry, compute: Callable[[], T]) -> T | None:
        """Run one pipeline's computation; on an exception record it on the entry and return None."""
        try:
            return compute()
        except Exception as exc:  # one bad schedule must not stop the others
            entry.error = f"schedule {entry.spec.describe()} cannot be computed: {exc}"
            log.error("schedule %s: %s; its fires are suspended until the pipeline changes",
                      entry.spec.pipeline, entry.error)
            return None

    def _tick_one(self, entry: _Entry, now: datetime, paused: bool, out: list[Fire]) -> None:
        spec = entry.spec
        if paused:
            self._skip_paused(entry, now, out)
            return
        entry.pause_reported = False
        held = entry.waiting is not None  # a fire held by max_active_runs (on_max_active = "wait") until now
        if (held and spec.catchup != "all" and admit(spec, self.active_runs(spec.pipeline)).action != "wait"
                and plan_fires(spec, entry.waiting, now).last_fire != entry.waiting):
            # Released, and a newer fire fell due while it was held: "latest" (and "skip") run the most recent
            # fire, and the held one is counted with the missed below. Started first, the held fire made each run
            # one for the oldest pending fire, a pipeline slower than its interval always an interval behind.
            # (Decided at the release only: while the limit holds, the held fire waits on, said once.)
            entry.waiting, entry.wait_reported = None, False
        if entry.waiting is not None and not self._try_start(entry, entry.waiting, out, now):
            return
        plan = plan_fires(spec, entry.last_fire, now)
        if plan.last_fire is None or plan.last_fire == entry.last_fire:
            return
        if plan.missed:
            # Pass the dropped fires (all older than the ones to start), stop before those.
            wm = plan.fires[0] - timedelta(microseconds=1) if plan.fires else plan.last_fire
            wm = max(entry.last_fire, wm)
            missed_at = plan.latest_missed or plan.last_fire  # the newest dropped fire, not one that starts
            # Said as it happened: fires due while this scheduler ran were missed by a loop that did not tick in
            # time or could not record them (a full disk), not by a daemon that was away (it said so of both).
            why = ("they fell due while an earlier fire was held by max_active_runs" if held
                   else "the daemon was away" if missed_at < self._since
                   else "the daemon could not start them when due: a stalled daemon, or a state file it could not "
                        "write")
            if not self._emit(out, Fire(spec.pipeline, "missed", missed_at, start_time(spec, missed_at), wm,
                                        f"{plan.missed_text()} fire(s) up to this one passed without a run ({why}); "
                                        f"catchup = {spec.catchup}", missed=plan.missed), entry, now):
                return
            entry.last_fire = wm
        for f in plan.fires:
            if not self._try_start(entry, f, out, now):
                return
        entry.last_fire = plan.last_fire

    def _skip_paused(self, entry: _Entry, now: datetime, out: list[Fire]) -> None:
        """Pass every fire due by ``now`` without starting it: one ``paused`` Fire per tick, if any was due."""
        spec = entry.spec
        entry.waiting, entry.wait_reported = None, False  # a held fire is dropped with the others
        plan = plan_fires(spec, entry.last_fire, now)
        if plan.last_fire is None or plan.last_fire == entry.last_fire:
            return
        before = entry.last_fire
        entry.last_fire = plan.last_fire
        if not self._emit(out, Fire(spec.pipeline, "paused", plan.last_fire, start_time(spec, plan.last_fire),
                                    plan.last_fire, f"pipeline {spec.pipeline} is paused: its fires are skipped "
                                    "until it is resumed, and not caught up then", missed=plan.missed + len(plan.fires),
                                    quiet=entry.pause_reported), entry, now):
            entry.last_fire = before
            return
        entry.pause_reported = True

    def _try_start(self, entry: _Entry, fire: datetime, out: list[Fire], now: datetime | None = None) -> bool:
        """Admit one fire; False when it must wait, or was not recorded (stop processing this pipeline)."""
        spec = entry.spec
        decision = admit(spec, self.active_runs(spec.pipeline))
        if decision.action == "wait":
            if entry.waiting != fire or not entry.wait_reported:
                if not self._emit(out, Fire(spec.pipeline, "wait", fire, start_time(spec, fire), entry.last_fire,
                                            decision.reason), entry, now):
                    return False
            entry.waiting, entry.wait_reported = fire, True
            return False
        before = entry.last_fire
        entry.waiting, entry.wait_reported = None, False
        entry.last_fire = max(entry.last_fire, fire)
        if not self._emit(out, Fire(spec.pipeline, decision.action, fire, start_time(spec, fire), entry.last_fire,
                                    decision.reason), entry, now):
            entry.last_fire = before  # not recorded: the fire stays due
            return False
        return True

    def _emit(self, out: list[Fire], fire: Fire, entry: _Entry | None = None, now: datetime | None = None) -> bool:
        """Report ``fire``; False when ``on_fire`` raised :class:`RetryLater` (then nothing more of this schedule
        is tried for :data:`FIRE_RETRY_S`)."""
        out.append(fire)
        try:
            self.on_fire(fire)
        except RetryLater as exc:
            if entry is not None:
                entry.retry_at = (now or self.clock.now()) + timedelta(seconds=FIRE_RETRY_S)
            log.warning("schedule %s: fire %s not recorded, tried again in %.0f s: %s", fire.pipeline,
                        fire.fire_time.isoformat(), FIRE_RETRY_S, exc)
            out.pop()
            return False
        except Exception:  # one failing pipeline must not stop the others
            log.exception("on_fire failed for %s at %s", fire.pipeline, fire.fire_time)
        return True


class ScheduleTimer:
    """Runs :meth:`Scheduler.tick` on an asyncio loop at each wake-up (one ``call_at`` timer).

    Call :meth:`poke` after changing specs or when a run finishes (to release
    waiting fires); it ticks and re-arms. :meth:`stop` cancels the timer.
    Must be used from the loop's thread.
    """

    def __init__(self, scheduler: Scheduler, loop: asyncio.AbstractEventLoop | None = None) -> None:
        self.scheduler = scheduler
        self.loop = loop or asyncio.get_running_loop()
        self._handle: asyncio.TimerHandle | None = None
        self.wakeups = 0
        self._stuck = False  # said once: a passed wake-up that a tick did not act on

    def start(self) -> None:
        self.poke()

    def stop(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def poke(self) -> None:
        """Tick now and re-arm for the next wake-up."""
        now = self.scheduler.clock.now()
        acted = self.scheduler.tick(now)
        self._arm(idle_at=None if acted else now)

    def armed_for(self) -> float | None:
        """Loop time (``loop.time()``) the timer fires at; None when disarmed."""
        return self._handle.when() if self._handle is not None else None

    def _arm(self, idle_at: datetime | None = None) -> None:
        """Arm for the next wake-up; ``idle_at``: the time of the tick just before, when it did nothing."""
        self.stop()
        wake = self.scheduler.next_wakeup()
        if wake is None:
            return
        delay = (wake - self.scheduler.clock.now()).total_seconds()
        if idle_at is not None and wake <= idle_at:  # that tick should have acted on this wake-up
            if not self._stuck:
                log.error("schedules: the wake-up at %s has passed but the tick did nothing; waking again in %g s "
                          "rather than at once (a busy loop)", wake.isoformat(), STUCK_SLEEP)
            self._stuck = True
            delay = STUCK_SLEEP
        elif delay > 0:
            self._stuck = False
        delay = min(max(delay, 0.0), MAX_SLEEP)
        self._handle = self.loop.call_at(self.loop.time() + delay, self._on_timer)

    def _on_timer(self) -> None:
        self._handle = None
        self.wakeups += 1
        self.poke()
