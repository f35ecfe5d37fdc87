"""The Scheduler adapter driven by an injected clock, and its asyncio timer (no polling)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from edgeorch.triggers.schedule import ScheduleSpec, start_time
from edgeorch.triggers.scheduler import Fire, ManualClock, Scheduler, ScheduleTimer

U = UTC


def utc(*a: int) -> datetime:
    return datetime(*a, tzinfo=U)


class Harness:
    """A scheduler whose on_fire 'starts' runs and keeps them active until finished."""

    def __init__(self, start: datetime) -> None:
        self.clock = ManualClock(start)
        self.fires: list[Fire] = []
        self.active: dict[str, int] = {}
        self.stored: dict[str, datetime] = {}
        self.paused: set[str] = set()
        self.s = Scheduler(self.clock, self.on_fire, lambda p: self.active.get(p, 0), paused=lambda: self.paused)

    def on_fire(self, fire: Fire) -> None:
        self.fires.append(fire)
        if fire.action == "start":
            self.active[fire.pipeline] = self.active.get(fire.pipeline, 0) + 1
        if fire.action != "wait":
            self.stored[fire.pipeline] = fire.last_fire

    def actions(self) -> list[tuple[str, str, str]]:
        return [(f.pipeline, f.action, f.fire_time.strftime("%H:%M")) for f in self.fires]


def test_new_schedule_returns_now_as_its_watermark_and_fires_on_time():
    h = Harness(utc(2026, 1, 1, 9, 50))
    wm = h.s.set(ScheduleSpec("p", cron="0 * * * *"), None)
    assert wm == utc(2026, 1, 1, 9, 50)
    assert h.s.next_wakeup() == utc(2026, 1, 1, 10)
    assert h.s.tick() == []
    h.clock.set(utc(2026, 1, 1, 10, 0, 0, 3000))
    h.s.tick()
    assert h.actions() == [("p", "start", "10:00")]
    assert h.stored["p"] == utc(2026, 1, 1, 10)
    assert h.s.next_fire("p") == utc(2026, 1, 1, 11)


def test_restart_with_stored_last_fire_applies_catchup_latest():
    h = Harness(utc(2026, 1, 1, 15, 20))
    h.s.set(ScheduleSpec("p", cron="0 * * * *", catchup="latest"), utc(2026, 1, 1, 10))
    h.s.tick()
    # The report names the newest fire that was dropped (14:00), not the one that starts (15:00): "missed fire
    # 15:00" read as if the run that followed had not happened.
    assert h.actions() == [("p", "missed", "14:00"), ("p", "start", "15:00")]
    assert h.fires[0].missed == 4 and h.fires[0].reason.startswith("4 fire(s) up to this one passed without a run")
    assert h.stored["p"] == utc(2026, 1, 1, 15)


def test_restart_with_catchup_all_starts_each_missed_fire_once():
    h = Harness(utc(2026, 1, 1, 13, 20))
    h.s.set(ScheduleSpec("p", cron="0 * * * *", catchup="all"), utc(2026, 1, 1, 10))
    h.s.tick()
    h.s.tick()
    assert h.actions() == [("p", "start", "11:00"), ("p", "start", "12:00"), ("p", "start", "13:00")]


def test_restart_with_catchup_skip_records_the_skip_and_waits_for_the_next_fire():
    h = Harness(utc(2026, 1, 1, 13, 20))
    h.s.set(ScheduleSpec("p", cron="0 * * * *"), utc(2026, 1, 1, 10))
    h.s.tick()
    assert h.actions() == [("p", "missed", "13:00")]
    assert h.stored["p"] == utc(2026, 1, 1, 13)
    assert h.s.next_wakeup() == utc(2026, 1, 1, 14)


def test_a_crash_before_the_start_is_stored_recomputes_the_fire():
    """The watermark is only what the caller stored: a lost start comes back after a restart."""
    h = Harness(utc(2026, 1, 1, 10, 0, 1))
    h.s.set(ScheduleSpec("p", cron="0 * * * *", catchup="latest"), utc(2026, 1, 1, 9))
    assert [f.action for f in h.s.tick()] == ["start"]
    # The process died before committing; a new scheduler starts from the stored 09:00.
    again = Harness(utc(2026, 1, 1, 10, 5))
    again.s.set(ScheduleSpec("p", cron="0 * * * *", catchup="latest"), utc(2026, 1, 1, 9))
    again.s.tick()
    assert again.actions() == [("p", "start", "10:00")]


def test_max_active_wait_holds_the_fire_until_a_run_finishes():
    h = Harness(utc(2026, 1, 1, 10, 0, 1))
    h.s.set(ScheduleSpec("p", every=3600, max_active_runs=1, on_max_active="wait"), utc(2026, 1, 1, 9))
    h.active["p"] = 1  # a run from earlier is still going
    h.s.tick()
    assert h.actions() == [("p", "wait", "10:00")]
    assert "max_active_runs = 1" in h.fires[0].reason
    assert h.s.next_wakeup() is None  # released by a tick after a run finishes, not by the timer
    h.s.tick()  # still busy: no new report
    assert len(h.fires) == 1
    h.active["p"] = 0
    h.clock.set(utc(2026, 1, 1, 10, 7))
    h.s.tick()
    assert h.actions()[-1] == ("p", "start", "10:00")
    assert h.stored["p"] == utc(2026, 1, 1, 10)


def test_max_active_skip_drops_the_fire_and_says_so():
    h = Harness(utc(2026, 1, 1, 10, 0, 1))
    h.s.set(ScheduleSpec("p", every=3600, max_active_runs=1, on_max_active="skip"), utc(2026, 1, 1, 9))
    h.active["p"] = 1
    h.s.tick()
    assert h.actions() == [("p", "skip", "10:00")]
    assert h.stored["p"] == utc(2026, 1, 1, 10)


def test_catchup_all_respects_max_active_runs():
    h = Harness(utc(2026, 1, 1, 13, 20))
    h.s.set(ScheduleSpec("p", cron="0 * * * *", catchup="all", max_active_runs=2), utc(2026, 1, 1, 10))
    h.s.tick()
    assert h.actions() == [("p", "start", "11:00"), ("p", "start", "12:00"), ("p", "wait", "13:00")]
    assert h.stored["p"] == utc(2026, 1, 1, 12)


def test_several_pipelines_and_jitter():
    h = Harness(utc(2026, 1, 1, 0, 0))
    a = ScheduleSpec("a", every=600, jitter=60)
    h.s.set(a, None)
    h.s.set(ScheduleSpec("b", every=900), None)
    assert h.s.next_wakeup() == start_time(a, utc(2026, 1, 1, 0, 10))
    for _ in range(12):
        h.clock.set(h.s.next_wakeup())
        h.s.tick()
    assert [f for f in h.actions() if f[0] == "b"][:2] == [("b", "start", "00:15"), ("b", "start", "00:30")]
    assert all(f.start_at <= f.fire_time + timedelta(seconds=60) for f in h.fires)


def test_on_fire_exceptions_do_not_stop_other_pipelines():
    clock = ManualClock(utc(2026, 1, 1, 10, 0, 1))
    seen: list[str] = []

    def on_fire(f: Fire) -> None:
        seen.append(f.pipeline)
        if f.pipeline == "a":
            raise RuntimeError("boom")

    s = Scheduler(clock, on_fire)
    s.set(ScheduleSpec("a", every=3600), utc(2026, 1, 1, 9))
    s.set(ScheduleSpec("b", every=3600), utc(2026, 1, 1, 9))
    s.tick()
    assert seen == ["a", "b"]


def test_remove_and_replace():
    h = Harness(utc(2026, 1, 1))
    h.s.set(ScheduleSpec("p", every=60), utc(2026, 1, 1))
    h.s.set(ScheduleSpec("p", every=120), None)  # replaced spec keeps the watermark
    assert h.s.last_fire("p") == utc(2026, 1, 1)
    h.s.remove("p")
    assert h.s.next_wakeup() is None and h.s.pipelines() == []


def test_timer_sleeps_until_the_next_wakeup_instead_of_polling():
    async def main() -> None:
        loop = asyncio.get_running_loop()
        fires: list[Fire] = []
        clock = ManualClock(utc(2026, 1, 1, 10, 0, 0))
        s = Scheduler(clock, fires.append)
        s.set(ScheduleSpec("p", every=3600), utc(2026, 1, 1, 10))
        timer = ScheduleTimer(s, loop)
        timer.start()
        when = timer.armed_for()
        assert when is not None
        # Armed for the next wake-up capped at MAX_SLEEP (300 s), not for a short poll interval.
        assert 299 <= when - loop.time() <= 300.5
        timer.stop()
        # Move the clock to the fire time and re-arm: the timer fires at once, exactly one tick.
        clock.set(utc(2026, 1, 1, 11, 0, 0))
        timer.poke()
        assert [f.action for f in fires] == ["start"]
        clock.set(utc(2026, 1, 1, 11, 59, 59, 990000))
        timer._arm()
        clock.set(utc(2026, 1, 1, 12))
        await asyncio.sleep(0.05)
        assert timer.wakeups == 1
        assert [f.fire_time for f in fires] == [utc(2026, 1, 1, 11), utc(2026, 1, 1, 12)]
        timer.stop()

    asyncio.run(main())


# -- one bad schedule, paused pipelines -----------------------------------------------------------


def test_an_impossible_schedule_does_not_stop_the_other_pipelines():
    """``0 0 30 2 *`` slipped past validation (built directly): tick/next_wakeup/next_fire still work."""
    h = Harness(utc(2026, 1, 1, 9, 50))
    h.s.set(ScheduleSpec("bad", cron="0 0 30 2 *"), None)
    h.s.set(ScheduleSpec("good", cron="0 * * * *"), None)
    assert h.s.next_wakeup() == utc(2026, 1, 1, 10)
    assert h.s.next_fire("bad") is None and "never fires" in (h.s.error("bad") or "")
    h.clock.set(utc(2026, 1, 1, 10, 0, 1))
    assert [(f.pipeline, f.action) for f in h.s.tick()] == [("good", "start")]
    assert h.s.next_fire("good") == utc(2026, 1, 1, 11) and h.s.error("good") is None
    # A corrected spec gets a fresh chance.
    h.s.set(ScheduleSpec("bad", cron="0 0 28 2 *"), None)
    assert h.s.error("bad") is None and h.s.next_fire("bad") == utc(2026, 2, 28)


def test_a_paused_pipeline_has_no_next_fire_and_skips_its_fires_in_one_report_per_tick():
    h = Harness(utc(2026, 1, 1, 9, 50))
    h.s.set(ScheduleSpec("p", cron="*/10 * * * *", catchup="all"), None)
    h.paused.add("p")
    assert h.s.next_fire("p") is None
    # The timer still wakes at its fires (so the watermark keeps up) ...
    assert h.s.next_wakeup() == utc(2026, 1, 1, 10)
    h.clock.set(utc(2026, 1, 1, 10, 35))  # 10:00, 10:10, 10:20, 10:30 fell while paused
    fires = h.s.tick()
    assert [(f.action, f.fire_time, f.missed, f.quiet) for f in fires] == [("paused", utc(2026, 1, 1, 10, 30), 4,
                                                                             False)]
    assert "paused" in fires[0].reason
    assert h.stored["p"] == utc(2026, 1, 1, 10, 30) and h.active == {}
    assert h.s.tick() == []  # ... reports each fire once, not again ...
    h.clock.set(utc(2026, 1, 1, 10, 40, 1))
    later = h.s.tick()  # ... and the later fires of the same pause quietly (nothing to record or warn about)
    assert [(f.action, f.fire_time, f.quiet) for f in later] == [("paused", utc(2026, 1, 1, 10, 40), True)]
    assert h.stored["p"] == utc(2026, 1, 1, 10, 40)


def test_resuming_starts_nothing_for_the_paused_period_even_with_catchup_all():
    h = Harness(utc(2026, 1, 1, 9, 50))
    h.s.set(ScheduleSpec("p", cron="0 * * * *", catchup="all"), None)
    h.paused.add("p")
    for hour in (10, 11, 12):
        h.clock.set(utc(2026, 1, 1, hour, 0, 1))
        h.s.tick()
    h.paused.clear()
    h.clock.set(utc(2026, 1, 1, 12, 30))
    assert h.s.tick() == []
    assert h.s.next_fire("p") == utc(2026, 1, 1, 13)
    h.clock.set(utc(2026, 1, 1, 13, 0, 1))
    assert [(f.action, f.fire_time) for f in h.s.tick()] == [("start", utc(2026, 1, 1, 13))]


def test_a_waiting_fire_is_dropped_when_the_pipeline_is_paused():
    h = Harness(utc(2026, 1, 1, 10, 0, 1))
    h.s.set(ScheduleSpec("p", every=3600, max_active_runs=1), utc(2026, 1, 1, 9))
    h.active["p"] = 1
    h.s.tick()
    h.paused.add("p")
    assert [(f.action, f.fire_time) for f in h.s.tick()] == [("paused", utc(2026, 1, 1, 10))]
    h.paused.clear()
    h.active["p"] = 0
    assert h.s.tick() == [] and h.s.next_fire("p") == utc(2026, 1, 1, 11)


def test_a_fire_that_could_not_be_recorded_is_kept_and_tried_again_later_not_lost():
    """A full disk made on_fire fail: the watermark had already moved in memory, so the fire was lost until a
    restart (catchup = "all" or not), with a traceback in the log. Now the fire stays due, the schedule waits
    FIRE_RETRY_S, and the fire starts once it can be recorded."""
    from edgeorch.triggers.scheduler import FIRE_RETRY_S, RetryLater

    h = Harness(utc(2026, 1, 1, 9, 59))
    full = [True]

    def on_fire(fire: Fire) -> None:
        if full[0]:
            raise RetryLater("cannot write the state file: database or disk is full")
        h.on_fire(fire)

    h.s.on_fire = on_fire
    h.s.set(ScheduleSpec("p", cron="0 * * * *"), None)
    h.clock.set(utc(2026, 1, 1, 10, 0, 1))
    assert h.s.tick() == []
    assert h.s.next_fire("p") == utc(2026, 1, 1, 10)  # still due
    assert h.s.next_wakeup() == utc(2026, 1, 1, 10, 0, 1) + timedelta(seconds=FIRE_RETRY_S)
    assert h.s.tick() == []  # not before the retry time: no busy loop on a full disk
    full[0] = False
    h.clock.advance(FIRE_RETRY_S)
    h.s.tick()
    assert h.actions() == [("p", "start", "10:00")]
    assert h.stored["p"] == utc(2026, 1, 1, 10)


def test_fires_passed_while_one_was_held_are_not_blamed_on_the_daemon_being_away():
    """A fire held by max_active_runs, released after later fires fell due: "N fire(s) missed while the daemon was
    away", though the daemon never stopped."""
    h = Harness(utc(2026, 1, 1, 9, 59, 30))
    h.s.set(ScheduleSpec("p", cron="* * * * *", catchup="latest", max_active_runs=1, on_max_active="wait"), None)
    h.active["p"] = 1  # a run of the pipeline is going on
    h.clock.set(utc(2026, 1, 1, 10, 0, 1))
    h.s.tick()
    assert h.actions() == [("p", "wait", "10:00")]
    h.clock.set(utc(2026, 1, 1, 10, 3, 5))  # three more fires fell due meanwhile
    h.active["p"] = 0
    h.s.tick()
    (missed,) = [f for f in h.fires if f.action == "missed"]
    assert "held by max_active_runs" in missed.reason and "daemon was away" not in missed.reason, missed.reason


def test_fires_missed_while_the_scheduler_ran_are_not_said_to_be_missed_while_the_daemon_was_away():
    """Found by an operator: a full disk (each fire's run could not be recorded) and an 18 s stall of a loaded
    machine both logged "passed without a run (the daemon was away)" from a daemon that had run all along."""
    h = Harness(utc(2026, 1, 1, 15, 20))
    h.s.set(ScheduleSpec("away", cron="0 * * * *"), utc(2026, 1, 1, 10))  # down from 10:00 to 15:20
    h.s.set(ScheduleSpec("stalled", cron="* * * * *"), None)
    h.s.tick()
    h.clock.set(utc(2026, 1, 1, 15, 30, 30))  # no tick for ten minutes while running
    h.s.tick()
    reasons = {f.pipeline: f.reason for f in h.fires if f.action == "missed"}
    assert "(the daemon was away)" in reasons["away"]
    assert "daemon was away" not in reasons["stalled"]
    assert ("passed without a run (the daemon could not start them when due: a stalled daemon, or a state file it "
            "could not write)") in reasons["stalled"]


def test_a_held_fire_overtaken_by_a_newer_one_is_not_started_under_catchup_latest():
    """A tester's find: `on_max_active = "wait"` with `catchup = "latest"` started the held (oldest) fire when the
    run ended, though a newer one was due: every run was one for a stale fire. "latest" runs the most recent fire;
    the held one is counted as missed. With catchup = "all", the held fire runs first, as documented."""
    for catchup, expected in (("latest", [("p", "missed", "10:10"), ("p", "start", "10:15")]),
                              ("all", [("p", "start", "10:05")])):  # then 10:10 waits for it (max_active_runs)
        h = Harness(utc(2026, 1, 1, 10, 5, 1))
        h.s.set(ScheduleSpec("p", every=300, catchup=catchup, max_active_runs=1, on_max_active="wait"),
                utc(2026, 1, 1, 10, 0))
        h.active["p"] = 1  # a run of the pipeline is going on
        h.s.tick()
        assert h.actions() == [("p", "wait", "10:05")]
        h.clock.set(utc(2026, 1, 1, 10, 15, 2))  # it ends after two more fires fell due
        h.active["p"] = 0
        h.s.tick()
        got = [a for a in h.actions()[1:] if a[1] != "wait"]
        assert got == expected, (catchup, h.actions())
        if catchup == "latest":
            assert h.fires[1].missed == 2  # 10:05 (the held one) and 10:10
