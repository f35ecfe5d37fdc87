"""The daemon's side of schedules (:class:`Schedules`) across reloads and restarts, on a real state file.

Driven by an injected clock (``ManualClock``): a "restart" is a new :class:`Schedules` on the same state file, as
a new daemon makes one; nothing sleeps, no daemon process runs. The front door and the engine are stand-ins: a
started run is recorded through ``within`` (the watermark in its transaction), as the real front door does.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from edgeorch.pipelines import validate_path
from edgeorch.store.store import Store
from edgeorch.triggers.schedule import ScheduleSpec
from edgeorch.triggers.schedule_service import Schedules
from edgeorch.triggers.scheduler import Fire, ManualClock, Scheduler


def utc(*a: int) -> datetime:
    return datetime(*a, tzinfo=UTC)


class FrontDoor:
    """``requests.start``: every run is created (run ids count up), its ``within`` called as in the transaction."""

    def __init__(self) -> None:
        self.started: list[tuple[str, str]] = []  # (pipeline, fire time) of each run

    def start(self, request: Any) -> Any:
        run_id = len(self.started) + 1
        if request.within is not None:
            request.within(run_id)
        self.started.append((request.pipeline, request.env["EDGEORCH_FIRE_TIME"]))
        return SimpleNamespace(run_id=run_id)


class Daemon:
    """One daemon's :class:`Schedules` over ``folder``'s pipeline files and the state file ``db``."""

    def __init__(self, folder: Path, db: Path, clock: ManualClock) -> None:
        self.folder, self.clock = folder, clock
        self.store = Store(db)
        self.requests = FrontDoor()
        self.engine = SimpleNamespace(runs={}, clock=lambda: clock.now().timestamp())
        self.registry = SimpleNamespace(pipelines={})
        self.published: list[Any] = []
        self.schedules = Schedules(store=self.store, requests=self.requests, engine=self.engine,
                                   registry=self.registry, loop=None, publish=self.published.append, clock=clock)
        self.load()

    def load(self) -> None:
        """Read the pipeline files as a reload does, and re-sync the schedules."""
        self.registry.pipelines = dict(validate_path(self.folder).pipelines)
        self.schedules.sync_schedules()

    def at(self, when: datetime) -> list[Fire]:
        """Move the clock to ``when`` and tick (what the timer does at a wake-up)."""
        self.clock.set(when)
        return self.schedules.scheduler.tick()

    def active(self, pipeline: str, n: int) -> None:
        """``n`` runs of ``pipeline`` are queued or running (what max_active_runs counts)."""
        self.engine.runs = {i: SimpleNamespace(pipeline=SimpleNamespace(name=pipeline)) for i in range(n)}

    def events(self, kind: str) -> list[dict[str, Any]]:
        """The state file's event rows of ``kind``, oldest first, ``data`` decoded."""
        rows = [dict(e) for e in reversed(self.store.events.recent(500)) if e["kind"] == kind]
        for row in rows:
            row["data"] = json.loads(row["data"]) if isinstance(row["data"], str) else row["data"]
        return rows

    def close(self) -> None:
        self.store.close()


TASKS = '\n[tasks.a]\ncommand = ["true"]\n'


def write(folder: Path, name: str, head: str) -> Path:
    path = folder / f"{name}.toml"
    path.write_text(head + TASKS)
    return path


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    (tmp_path / "pipelines").mkdir()
    return tmp_path / "pipelines"


# -- a schedule gone while a daemon ran stays gone after a restart ------------------------------------------------


@pytest.mark.parametrize("how", ["removed", "renamed"])
def test_a_schedule_back_after_it_went_while_a_daemon_ran_catches_up_nothing_of_its_absence_after_a_restart(
        folder, tmp_path, how):
    """Found by a tester: the removal was remembered in memory only, so after a restart in between the old
    watermark counted the time the pipeline did not exist as downtime: catchup = "all" started catchup_max runs
    for fires of a pipeline that was not there."""
    db = tmp_path / "state.db"
    head = 'schedule = "*/10 * * * *"\ncatchup = "all"\n'
    path = write(folder, "nightly", head)
    a = Daemon(folder, db, ManualClock(utc(2026, 1, 1, 9, 55)))
    a.at(utc(2026, 1, 1, 10, 0, 1))
    assert a.requests.started == [("nightly", "2026-01-01T10:00:00+00:00")]
    a.clock.set(utc(2026, 1, 1, 10, 5))
    if how == "removed":  # the file moved away while the daemon runs
        path.unlink()
    else:  # renamed: the same pipeline under another name
        path.rename(folder / "nightly_old.toml")
    a.load()
    a.close()  # the daemon stops while the pipeline is away

    b = Daemon(folder, db, ManualClock(utc(2026, 1, 1, 12, 0)))  # a restart, the pipeline still away
    b.at(utc(2026, 1, 1, 12, 0, 1))
    b.clock.set(utc(2026, 1, 1, 13, 2))
    if how == "removed":
        write(folder, "nightly", head)
    else:
        (folder / "nightly_old.toml").rename(path)
    b.load()
    assert [f for f in b.at(utc(2026, 1, 1, 13, 5)) if f.pipeline == "nightly"] == []
    assert [r for r in b.requests.started if r[0] == "nightly"] == []  # nothing of 10:10 .. 13:00
    assert not [e for e in b.events("schedule_missed") if e["data"]["pipeline"] == "nightly"]
    assert b.schedules.next_fire("nightly") == utc(2026, 1, 1, 13, 10)  # counted from its return, as a new one
    b.at(utc(2026, 1, 1, 13, 10, 1))
    assert [r for r in b.requests.started if r[0] == "nightly"] == [("nightly", "2026-01-01T13:10:00+00:00")]
    b.close()


def test_a_schedule_whose_file_was_away_at_the_start_and_put_back_catches_up_nothing_of_this_daemons_time(
        folder, tmp_path):
    """A tester's find: the file moved away while no daemon ran, the daemon started without it, and the file came
    back half an hour later: the old watermark counted the half hour this daemon ran without the pipeline as
    downtime ("missed ... the daemon could not start them"), and catchup = "all" started catchup_max runs."""
    db = tmp_path / "state.db"
    head = 'schedule = "*/10 * * * *"\ncatchup = "all"\n'
    path = write(folder, "nightly", head)
    a = Daemon(folder, db, ManualClock(utc(2026, 1, 1, 9, 55)))
    a.at(utc(2026, 1, 1, 10, 0, 1))
    a.close()
    path.unlink()  # while no daemon runs
    b = Daemon(folder, db, ManualClock(utc(2026, 1, 1, 10, 5)))  # starts without it
    b.at(utc(2026, 1, 1, 10, 5, 1))
    b.clock.set(utc(2026, 1, 1, 10, 42))
    write(folder, "nightly", head)
    b.load()  # the file is back: a reload
    assert [f for f in b.at(utc(2026, 1, 1, 10, 42, 1)) if f.pipeline == "nightly"] == []
    assert b.requests.started == []  # nothing of 10:10 .. 10:40, fires due while this daemon ran without it
    assert not b.events("schedule_missed")
    assert b.schedules.next_fire("nightly") == utc(2026, 1, 1, 10, 50)
    b.close()


def test_a_schedule_present_across_a_restart_still_catches_up_its_downtime(folder, tmp_path):
    """The removal mark is for a schedule that went away while a daemon ran, not for downtime."""
    db = tmp_path / "state.db"
    write(folder, "nightly", 'schedule = "0 * * * *"\ncatchup = "all"\n')
    a = Daemon(folder, db, ManualClock(utc(2026, 1, 1, 9, 55)))
    a.at(utc(2026, 1, 1, 10, 0, 1))
    a.close()
    b = Daemon(folder, db, ManualClock(utc(2026, 1, 1, 12, 30)))
    b.at(utc(2026, 1, 1, 12, 30))
    assert [t for _, t in b.requests.started] == ["2026-01-01T11:00:00+00:00", "2026-01-01T12:00:00+00:00"]
    b.close()


# -- an edit of catch-up or overlap rules keeps a held fire -------------------------------------------------------


def test_editing_only_catchup_keeps_the_held_fire_and_raising_max_active_runs_releases_it_at_once(
        folder, tmp_path, caplog):
    """Found by a tester: an edit of only catchup or max_active_runs dropped the fire held by max_active_runs
    ("held: starts when a run ends"), then reported the fires since as missed by "a stalled daemon"."""
    caplog.set_level(logging.INFO, logger="edgeorch.triggers")
    db = tmp_path / "state.db"
    write(folder, "nightly", 'schedule = "* * * * *"\nmax_active_runs = 1\n')
    d = Daemon(folder, db, ManualClock(utc(2026, 1, 1, 10, 0, 30)))
    d.active("nightly", 1)  # a run of the pipeline is going on
    d.at(utc(2026, 1, 1, 10, 1, 0, 500))
    assert [(e["kind"], e["data"]["fire_time"]) for e in d.events("schedule_wait")] == [
        ("schedule_wait", "2026-01-01T10:01:00+00:00")]
    assert d.schedules.fire_held("nightly")

    d.clock.set(utc(2026, 1, 1, 10, 5, 30))  # four more fires fell due while it was held
    caplog.clear()
    write(folder, "nightly", 'schedule = "* * * * *"\nmax_active_runs = 1\ncatchup = "latest"\n')
    d.load()
    d.at(utc(2026, 1, 1, 10, 5, 30))
    assert d.schedules.fire_held("nightly") and d.schedules.next_fire("nightly") == utc(2026, 1, 1, 10, 1)
    assert d.requests.started == [] and d.events("schedule_missed") == []
    assert len(d.events("schedule_wait")) == 1  # the same held fire, not reported again
    said = caplog.text
    assert "daemon was away" not in said and "stalled" not in said, said
    assert "held" in said, said

    caplog.clear()
    write(folder, "nightly", 'schedule = "* * * * *"\nmax_active_runs = 2\ncatchup = "latest"\n')
    d.load()  # a reload ticks at once (the timer's poke): the held fire needs no run to end
    d.at(utc(2026, 1, 1, 10, 5, 30))
    # Released with newer fires due: catchup = "latest" runs the most recent one, the held one counted missed.
    assert d.requests.started == [("nightly", "2026-01-01T10:05:00+00:00")]
    (missed,) = d.events("schedule_missed")  # the fires that fell due meanwhile, said as what happened
    assert "held by max_active_runs" in missed["message"], missed["message"]
    assert "daemon was away" not in caplog.text and "stalled" not in caplog.text, caplog.text
    d.close()


def test_scheduler_set_with_only_new_overlap_rules_keeps_the_held_fire():
    clock = ManualClock(utc(2026, 1, 1, 10, 0, 1))
    fires: list[Fire] = []
    active = {"p": 1}
    s = Scheduler(clock, fires.append, lambda p: active[p])
    s.set(ScheduleSpec("p", every=3600, max_active_runs=1), utc(2026, 1, 1, 9))
    s.tick()
    assert [f.action for f in fires] == ["wait"] and s.held("p")
    s.set(ScheduleSpec("p", every=3600, max_active_runs=1, catchup="all"), None)
    assert s.held("p") and s.next_fire("p") == utc(2026, 1, 1, 10)
    clock.advance(3 * 60)
    assert s.tick() == []  # still held, said once
    s.set(ScheduleSpec("p", every=3600, max_active_runs=2, catchup="all"), None)
    assert [(f.action, f.fire_time) for f in s.tick()] == [("start", utc(2026, 1, 1, 10))]
    # A new grid is a new schedule: what was held for the old one is not carried over.
    active["p"] = 2
    clock.set(utc(2026, 1, 1, 11, 0, 1))
    s.tick()
    assert s.held("p")
    s.set(ScheduleSpec("p", every=1800, max_active_runs=2), clock.now())
    assert not s.held("p")
    assert timedelta(0) < s.next_fire("p") - clock.now() <= timedelta(minutes=30)
