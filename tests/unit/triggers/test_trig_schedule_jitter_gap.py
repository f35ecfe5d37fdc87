"""A jitter as long as the gap between fires: refused by validation, and harmless at runtime.

Found by a tester: ``schedule = "* * * * *"`` with ``jitter = "3m"`` passed ``edgeorch validate`` (only ``every``
had the check) and made the daemon spin at 100% CPU without starting a run: ``next_wakeup`` named the passed start
of the oldest pending fire, while ``plan_fires`` looked at the two newest fires only, found the newest one's start
ahead and stopped there; the timer re-armed with delay 0 for ever. Driven by an injected clock; nothing sleeps.
"""

from __future__ import annotations

import asyncio
import hashlib
from datetime import UTC, datetime, timedelta

import pytest

from edgeorch.triggers.schedule import (
    ScheduleSpec,
    check_schedule,
    jitter_offset,
    next_fire,
    start_time,
)
from edgeorch.triggers.scheduler import Fire, ManualClock, Scheduler, ScheduleTimer


def utc(*a: int) -> datetime:
    return datetime(*a, tzinfo=UTC)


def check(data: dict) -> tuple[ScheduleSpec | None, list[str]]:
    spec, errors = check_schedule({"name": "nightly", **data}, "pipelines/nightly.toml")
    return spec, [str(e) for e in errors]


# -- validation -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("data, gap", [
    ({"schedule": "* * * * *", "jitter": "3m"}, "1m"),          # the tester's pipeline
    ({"schedule": "* * * * *", "jitter": "1m"}, "1m"),          # not shorter: refused, as for every
    ({"schedule": "0 2,3 * * *", "jitter": "90m"}, "1h"),       # 02:00 and 03:00: the short gap of two
    ({"schedule": "*/20 9-17 * * mon-fri", "jitter": "25m"}, "20m"),
    ({"schedule": "59 23 * * *", "jitter": "1d"}, "1d"),        # once a day: a day apart
    ({"schedule": "0 0 1,31 * *", "jitter": "2d"}, "1d"),       # the 31st, then the 1st
    ({"schedule": "0 9 * * 1-5", "jitter": "1d"}, "1d"),        # Monday to Tuesday
])
def test_a_cron_jitter_not_shorter_than_the_shortest_gap_is_refused_naming_file_field_value_and_gap(data, gap):
    spec, errors = check(data)
    assert spec is None
    (error,) = errors
    assert error.startswith("pipelines/nightly.toml: jitter: must be shorter than the shortest gap between the "
                            "schedule's fires"), error
    assert f"(found {data['jitter']!r})" in error, error
    assert f"expected a duration under {gap} " in error and repr(data["schedule"]) in error, error


@pytest.mark.parametrize("data", [
    {"schedule": "* * * * *", "jitter": "59s"},
    {"schedule": "0 2,3 * * *", "jitter": "59m"},
    {"schedule": "0 2 * * 1", "jitter": "6d"},                  # weekly: six days of jitter keep the order
    {"schedule": "0 0 29 2 *", "jitter": "1000d"},              # leap days: four years apart at the closest
    {"schedule": "0 2 * * *", "timezone": "Europe/Berlin", "jitter": "2m"},
])
def test_a_jitter_shorter_than_every_gap_is_accepted(data):
    spec, errors = check(data)
    assert errors == [] and spec is not None


def test_the_shortest_gap_is_one_rule_for_cron_and_every():
    from edgeorch.triggers.schedule import shortest_gap

    assert shortest_gap(ScheduleSpec("p", every=900)) == 900
    assert shortest_gap(ScheduleSpec("p", cron="* * * * *")) == 60
    assert shortest_gap(ScheduleSpec("p", cron="0 2,3 * * *")) == 3600
    assert shortest_gap(ScheduleSpec("p", cron="30 23 * * *")) == 86400
    assert shortest_gap(ScheduleSpec("p", cron="0 9 1 * 1")) == 86400  # the 1st OR Mondays: a Monday the 31st
    assert shortest_gap(ScheduleSpec("p", cron="0 0 * * 0")) == 7 * 86400
    assert shortest_gap(ScheduleSpec("p", cron="0 0 29 2 *")) == 1461 * 86400


# -- runtime: never a spin, never a fire lost -------------------------------------------------------------------


def drive(spec: ScheduleSpec, start: datetime, wakeups: int) -> tuple[Scheduler, list[Fire]]:
    """Move a manual clock to each wake-up and tick, as the timer does; fail as soon as a wake-up acts on nothing
    (the timer would re-arm for a time already passed: a busy loop)."""
    clock = ManualClock(start)
    fires: list[Fire] = []
    s = Scheduler(clock, fires.append)
    s.set(spec, None)
    for i in range(wakeups):
        wake = s.next_wakeup()
        assert wake is not None
        clock.set(max(clock.now(), wake))
        acted = s.tick()
        assert acted, f"wake-up {i} at {wake} (now {clock.now()}) did nothing: the timer would spin"
    return s, fires


@pytest.mark.parametrize("name", ["nightly", "p", "tester"])
def test_a_stored_cron_jitter_longer_than_its_gap_never_spins_and_starts_every_fire_in_order(name):
    """A pipeline accepted before the check (a spec built directly stands for it): every wake-up starts a fire,
    oldest first, each once; none is missed."""
    spec = ScheduleSpec(name, cron="* * * * *", jitter=180)
    _, fires = drive(spec, utc(2026, 1, 1, 10, 0, 30), 30)
    assert [f.action for f in fires] == ["start"] * 30
    assert [f.fire_time for f in fires] == [utc(2026, 1, 1, 10, 1) + timedelta(minutes=i) for i in range(30)]
    # Each run starts before the next fire time: the order of the fires is the order of their starts.
    assert all(f.fire_time <= f.start_at < f.fire_time + timedelta(minutes=1) for f in fires)


def test_an_older_pending_fire_is_started_not_replaced_by_two_newer_due_ones():
    """``0 2,3 * * *`` with ``jitter = "90m"`` (stored before the check): the 02:00 fire's start came after 03:00's
    on some days, and once both 03:00 and a later fire were due the pending 02:00 was counted "missed"."""
    spec = ScheduleSpec("nightly", cron="0 2,3 * * *", jitter=5400)
    _, fires = drive(spec, utc(2026, 1, 1, 0, 0), 60)
    assert {f.action for f in fires} == {"start"}
    assert [f.fire_time for f in fires] == sorted({f.fire_time for f in fires})
    assert len(fires) == 60 and fires[-1].fire_time == utc(2026, 1, 30, 3)
    for f in fires:  # 02:00 starts before 03:00; 03:00 keeps its whole 90 minutes of jitter
        limit = timedelta(hours=1) if f.fire_time.hour == 2 else timedelta(minutes=90)
        assert f.start_at - f.fire_time < limit


def plain_offset(spec: ScheduleSpec, fire: datetime) -> timedelta:
    """The jitter formula as it always was: sha256(pipeline, fire) scaled to [0, jitter)."""
    key = f"{spec.pipeline}\0{fire.astimezone(UTC).isoformat()}".encode()
    frac = int.from_bytes(hashlib.sha256(key).digest()[:8], "big") / 2**64
    return timedelta(seconds=round(frac * spec.jitter, 6))


def test_jitter_is_unchanged_where_it_is_shorter_than_the_gap_and_shortened_where_dst_shortens_it():
    """Valid schedules keep their start times (a restart after the upgrade agrees with the runs before it); on the
    spring-forward day a gap shorter than the jitter shortens that one fire's jitter, so starts keep the order."""
    hourly = ScheduleSpec("p", every=3600, jitter=600)
    cron = ScheduleSpec("p", cron="0 2,3 * * *", timezone="Europe/Berlin", jitter=3000)
    for h in range(48):
        f = utc(2026, 1, 1) + timedelta(hours=h)
        assert jitter_offset(hourly, f) == plain_offset(hourly, f)
    f = utc(2026, 1, 5, 1)
    assert jitter_offset(cron, f) == plain_offset(cron, f)
    berlin = ScheduleSpec("p", cron="30 1,2 * * *", timezone="Europe/Berlin", jitter=2700)  # 45 min
    before = utc(2026, 3, 29, 0, 30)  # 01:30 CET; 02:30 does not exist that day: it fires at 03:00 CEST
    after = next_fire(berlin, before)
    assert after - before == timedelta(minutes=30)
    assert start_time(berlin, before) < after
    ordinary = utc(2026, 3, 27, 0, 30)  # two days earlier 02:30 exists, an hour later: the whole jitter
    assert jitter_offset(berlin, ordinary) == plain_offset(berlin, ordinary)


def test_the_timer_never_rearms_for_a_passed_time_that_its_tick_did_not_act_on():
    """The safety net beside the rule: a wake-up in the past after a tick that did nothing is deferred (and said
    once), not re-armed with delay 0."""

    class Stuck(Scheduler):
        def next_wakeup(self) -> datetime | None:
            return self.clock.now() - timedelta(seconds=5)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        clock = ManualClock(utc(2026, 1, 1, 10))
        s = Stuck(clock, lambda fire: None)
        timer = ScheduleTimer(s, loop)
        timer.start()
        when = timer.armed_for()
        assert when is not None and when - loop.time() >= 0.9
        timer.stop()

    asyncio.run(main())


@pytest.mark.parametrize("spec", [
    ScheduleSpec("dst", cron="*/30 1-3 * * *", timezone="Europe/Berlin", jitter=3600),  # spring forward 03-29
    ScheduleSpec("dst", cron="0,10 2 * * *", timezone="America/New_York", jitter=900),  # 02:xx gone on 03-08
    ScheduleSpec("every", every=60, jitter=600),  # built directly: every's check was the only one before
])
def test_every_wakeup_acts_across_a_dst_change_and_with_any_stored_jitter(spec):
    start = utc(2026, 3, 7) if spec.timezone == "America/New_York" else utc(2026, 3, 28)
    _, fires = drive(spec, start, 40)
    assert {f.action for f in fires} == {"start"}
    times = [f.fire_time for f in fires]
    assert times == sorted(set(times))
    assert all(a.start_at < b.fire_time for a, b in zip(fires, fires[1:], strict=False))
