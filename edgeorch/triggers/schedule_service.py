"""Schedules wired to the front door and the store: :class:`Schedules`.

Runs on the daemon's event loop (the one-writer rule): a :class:`Scheduler` +
:class:`ScheduleTimer` (one ``call_at``, nothing polls); a ``start`` fire creates the run and
stores the watermark in ONE transaction (the front door's ``within``); a finished run releases
waiting fires (:meth:`Schedules.on_run_finished`). See docs/triggers.md, "Wiring".
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from ..errors import EdgeorchError, StateError
from ..events import Event, ScheduleFired
from ..pipelines.substitute import FIRE_DATE_ENV, FIRE_TIME_ENV
from .schedule import ScheduleSpec, same_grid
from .scheduler import Fire, RetryLater, Scheduler, ScheduleTimer, SystemClock

if TYPE_CHECKING:  # pragma: no cover
    from ..engine.engine import Engine
    from ..engine.requests import RunRequests
    from ..pipelines import PipelineRegistry
    from ..store.store import Store

log = logging.getLogger("edgeorch.triggers")


def iso(t: datetime) -> str:
    return t.astimezone(UTC).isoformat()


def fire_env(fire_time: datetime, spec: ScheduleSpec | None) -> dict[str, str]:
    """What a scheduled run's tasks learn of the fire they process (a nightly job's "logical date"; each run of a
    catch-up its own): ``EDGEORCH_FIRE_TIME`` (ISO 8601 in the schedule's timezone, with its offset) and
    ``EDGEORCH_FIRE_DATE`` (that day, ``YYYY-MM-DD``); also the ``{fire_time}``/``{fire_date}`` placeholders."""
    local = fire_time.astimezone(spec.tz) if spec is not None else fire_time
    return {FIRE_TIME_ENV: local.isoformat(), FIRE_DATE_ENV: local.date().isoformat()}


def parse_iso(text: str | None) -> datetime | None:
    if not text:
        return None
    t = datetime.fromisoformat(text)
    return t if t.tzinfo else t.replace(tzinfo=UTC)


class Schedules:
    """The schedules of one daemon's pipelines (see the module docstring)."""

    def __init__(self, *, store: Store, requests: RunRequests, engine: Engine, registry: PipelineRegistry,
                 loop: asyncio.AbstractEventLoop, publish: Callable[[Event], None],
                 clock: Any = None) -> None:
        """``engine`` is asked only which runs are live (the overlap rules); ``clock`` defaults to
        :class:`SystemClock` (tests inject a manual one)."""
        self.store = store
        self.requests = requests
        self.engine = engine
        self.registry = registry
        self.loop = loop
        self.publish = publish
        self.scheduler = Scheduler(clock or SystemClock(), self._on_fire, active_runs=self._active_runs,
                                   paused=lambda: self.store.pipelines.paused())
        self.timer: ScheduleTimer | None = None
        self.specs: dict[str, ScheduleSpec] = {}
        self._gone: set[str] = set()  # schedules removed while this daemon runs (a file moved away): none caught up
        self._synced = False  # the first sync (the start) is done: a schedule that appears later is a new one
        self._refused: dict[str, dict[str, str]] = {}  # pipeline -> its last fire the front door refused (fire_refused)

    def start(self) -> None:
        """Sync the schedules with the pipelines and arm the timer."""
        self.sync_schedules()
        self.timer = ScheduleTimer(self.scheduler, self.loop)
        self.timer.start()

    def stop(self) -> None:
        if self.timer is not None:
            self.timer.stop()

    def reload(self) -> None:
        """After the pipelines changed: re-sync and re-arm."""
        self.sync_schedules()
        if self.timer is not None:
            self.timer.poke()

    def on_run_finished(self, pipeline: str | None) -> None:
        """A run ended: fires waiting for it may go now."""
        if self.timer is not None and pipeline in self.specs:
            self.timer.poke()

    def sync_schedules(self) -> None:
        from ..pipelines import pipeline_triggers

        store = self.store
        want: dict[str, ScheduleSpec] = {}
        for name, p in self.registry.pipelines.items():
            spec, _ = pipeline_triggers(p)
            if spec is not None:
                want[name] = spec
        for name in set(self.specs) - set(want):
            self.scheduler.remove(name)
            self._gone.add(name)  # its file (or its schedule) went while this daemon ran
            # Durably: remembered in memory only, a restart in between made the old watermark count the time the
            # pipeline did not exist as downtime (catchup = "all" started catchup_max runs for it on its return).
            try:
                store.schedules.forget(name)
            except StateError as exc:  # this daemon still knows (``_gone``); a restart may catch up its absence
                log.warning("schedule %s: its removal could not be recorded: %s", name, exc.one_line())
        for name, spec in want.items():
            old = self.specs.get(name)
            if old == spec:
                continue
            stored = parse_iso(store.schedules.last_fire(name))
            keep = self.scheduler.last_fire(name)
            if (old is not None and not same_grid(old, spec)) or name in self._gone or (old is None and self._synced):
                self._gone.discard(name)
                # Edited, back after its file went, or appearing at all while the daemon runs (its file was away
                # at the start and is put back): the times count from now, as a new schedule's do. Kept, the old
                # watermark made every fire since the last one "missed" (catchup = "all" started catchup_max runs
                # on save, "2 fire(s) missed while the daemon was away", of fires due while this daemon ran).
                keep = self.scheduler.clock.now()
                store.schedules.set_last_fire(name, iso(keep))
            wm = self.scheduler.set(spec, stored if keep is None else keep)
            if stored is None:
                store.schedules.set_last_fire(name, iso(wm))
            log.info("schedule %s: %s, %s", name, spec.describe(), self._next_fire_text(name))
        self.specs = want
        self._synced = True

    def _next_fire_text(self, name: str) -> str:
        """The next fire as the sync's log line says it, and why it is in the past when it is: a fire held by
        max_active_runs, or one due before this daemon started (said "passed while the daemon was away" of a held
        fire too, and of a jittered fire whose start was still ahead)."""
        due = self.scheduler.next_fire(name)
        if due is None:
            return f"no next fire ({self.scheduler.error(name) or 'the pipeline is paused'})"
        if self.scheduler.held(name):
            return f"next fire {due} (held by max_active_runs: it starts when a run of the pipeline ends)"
        start = self.scheduler.next_start(name)
        if start is None or start > self.scheduler.clock.now():
            return f"next fire {due}" + (f" (starts {start}, with its jitter)" if start is not None and start != due
                                         else "")
        if start < self.scheduler.since:
            return f"next fire {due} (passed while the daemon was away: its catch-up policy decides, below)"
        return f"next fire {due} (due: it starts now)"

    def next_fire(self, pipeline: str) -> datetime | None:
        return self.scheduler.next_fire(pipeline)

    def next_start(self, pipeline: str) -> datetime | None:
        """When the run of :meth:`next_fire` starts: that time plus the schedule's jitter (None when no next fire)."""
        return self.scheduler.next_start(pipeline)

    def fire_held(self, pipeline: str) -> bool:
        return self.scheduler.held(pipeline)

    def fire_refused(self, pipeline: str) -> dict[str, str] | None:
        """The pipeline's last scheduled fire, when the front door refused it (``fire_time``, ``reason``) and no
        fire has started a run since; else None. A renamed pipeline whose model another pipeline owns had every
        fire refused, said only in the log, while `status` and `pipelines` looked normal and training stopped."""
        return self._refused.get(pipeline)

    def refused_fires(self) -> dict[str, dict[str, str]]:
        """Every pipeline's :meth:`fire_refused` that is not None."""
        return {name: dict(r) for name, r in self._refused.items() if name in self.specs}

    def _active_runs(self, pipeline: str) -> int:
        return sum(1 for ctx in self.engine.runs.values() if ctx.pipeline.name == pipeline)

    def _on_fire(self, fire: Fire) -> None:
        """Record ``fire`` (a run, or why none), then announce it. When the state file cannot be written (a full
        disk) nothing is announced and :class:`RetryLater` tells the scheduler to keep the fire and come back:
        its watermark never moved, so the fire is not lost (it was, with a traceback in the log)."""
        try:
            self._record_fire(fire)
        except StateError as exc:
            raise RetryLater(exc.render()) from None
        self.publish(ScheduleFired(self.engine.clock(), fire.pipeline, iso(fire.fire_time), fire.action, fire.missed,
                                   fire.reason))

    def _record_fire(self, fire: Fire) -> None:
        store = self.store
        name = fire.pipeline
        fire_time = iso(fire.fire_time)
        data = {"pipeline": name, "fire_time": fire_time, "action": fire.action, "missed": fire.missed}
        if fire.action == "start":
            from ..engine.requests import RunRequest  # at call time: the engine package imports triggers

            def within(run_id: int) -> None:
                store.schedules.set_last_fire(name, iso(fire.last_fire))
                store.events.add("schedule_fire", f"{name}: fire {iso(fire.fire_time)} started run {run_id}; {fire.reason}",
                                 run_id=run_id, actor="scheduler", data=data, ts=time.time())

            try:  # the front door checks paused, shutting down, params and resources
                run_id = self.requests.start(RunRequest(name, {}, trigger="schedule", actor="scheduler",
                                                          source="schedule", within=within,
                                                          env=fire_env(fire.fire_time, self.specs.get(name)))).run_id
                # Debug: the run's "queued (schedule)" line says it (two lines per scheduled run before).
                log.debug("schedule %s: fire %s started run %s", name, iso(fire.fire_time), run_id)
                self._refused.pop(name, None)
                return
            except StateError:
                raise  # not recorded (a full disk): the fire is tried again (_on_fire)
            except EdgeorchError as exc:
                why, one_line = exc.render(), exc.one_line()
            # Not started: the fire is handled (skipped) so it is not retried forever.
            store.schedules.set_last_fire(name, iso(fire.last_fire))
            store.events.add("schedule_skip", f"{name}: fire {iso(fire.fire_time)} not started: {why}",
                             actor="scheduler", data=data)
            log.warning("schedule %s: fire %s not started: %s", name, iso(fire.fire_time), one_line)
            self._refused[name] = {"fire_time": fire_time, "reason": one_line}
        elif fire.action in ("skip", "missed"):
            store.schedules.set_last_fire(name, iso(fire.last_fire))
            store.events.add(f"schedule_{fire.action}", f"{name}: fire {iso(fire.fire_time)}: {fire.reason}",
                             actor="scheduler", data=data)
            log.info("schedule %s: %s fire %s: %s", name, fire.action, iso(fire.fire_time), fire.reason)
        elif fire.action == "paused":  # recorded once per pause (quiet afterwards), not at every fire
            store.schedules.set_last_fire(name, iso(fire.last_fire))
            if not fire.quiet:
                store.events.add("schedule_skip", f"{name}: fire {iso(fire.fire_time)} not started: {fire.reason}",
                                 actor="scheduler", data=data)
            log.log(logging.DEBUG if fire.quiet else logging.INFO, "schedule %s: %d fire(s) up to %s skipped: %s",
                    name, fire.missed, iso(fire.fire_time), fire.reason)
        else:  # wait: held in memory until a run finishes
            store.events.add("schedule_wait", f"{name}: fire {iso(fire.fire_time)}: {fire.reason}",
                             actor="scheduler", data=data)
            log.info("schedule %s: fire %s waits: %s", name, iso(fire.fire_time), fire.reason)
