"""Schedule math: validation, fire times (DST included), catch-up policies, jitter, admission.

Every time is an explicit datetime; nothing sleeps or reads the wall clock.
"""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import pytest

from edgeorch.errors import PipelineError
from edgeorch.triggers.schedule import (
    ScheduleSpec,
    admit,
    check_schedule,
    due_fires,
    fires_between,
    jitter_offset,
    next_fire,
    plan_fires,
    start_time,
)

U = UTC


def utc(*a: int) -> datetime:
    return datetime(*a, tzinfo=U)


def hm(times: list[datetime]) -> list[str]:
    return [t.strftime("%m-%d %H:%M") for t in times]


# -- validation ---------------------------------------------------------------


def check(data: dict) -> tuple[ScheduleSpec | None, list[str]]:
    spec, errors = check_schedule({"name": "nightly", **data}, "pipelines/nightly.toml")
    for e in errors:
        assert isinstance(e, PipelineError)
        assert e.file == "pipelines/nightly.toml"
    return spec, [str(e) for e in errors]


def test_cron_schedule_with_all_keys_is_parsed():
    spec, errors = check({"schedule": "0 2 * * *", "timezone": "Europe/Berlin", "jitter": "30s",
                          "catchup": "all", "catchup_max": 5, "max_active_runs": 1, "on_max_active": "skip"})
    assert errors == []
    assert spec == ScheduleSpec("nightly", cron="0 2 * * *", timezone="Europe/Berlin", jitter=30.0,
                                catchup="all", catchup_max=5, max_active_runs=1, on_max_active="skip")


def test_every_schedule_defaults():
    spec, errors = check({"every": "15m"})
    assert errors == [] and spec is not None
    assert (spec.every, spec.catchup, spec.catchup_max, spec.max_active_runs, spec.timezone) == (900.0, "skip", 10,
                                                                                                   None, "UTC")


def test_no_schedule_is_not_an_error():
    assert check({}) == (None, [])


@pytest.mark.parametrize("data, field, fragment", [
    ({"schedule": "61 * * * *"}, "schedule", "not a valid cron expression"),
    ({"schedule": "* * *"}, "schedule", "has 3 field(s), not 5"),
    ({"schedule": "0 0 30 2 *"}, "schedule", "never fires"),
    ({"schedule": 5}, "schedule", "wrong type"),
    ({"schedule": "0 2 * * *", "timezone": "Mars/Olympus"}, "timezone", "not a known timezone"),
    ({"schedule": "0 2 * * *", "timezone": "EST"}, "timezone", "fixed UTC-05:00 offset without daylight saving"),
    ({"schedule": "0 2 * * *", "timezone": "MST"}, "timezone", "'America/Phoenix' for Arizona's (no daylight saving)"),
    ({"schedule": "0 2 * * *", "timezone": "IST"}, "timezone", "'Asia/Kolkata' or 'Europe/Dublin' or 'Asia/Jerusalem'"),
    ({"schedule": "0 2 * * *", "timezone": "Asia/Kolkata "}, "timezone", "has spaces around it"),
    ({"schedule": "0 2 * * *", "timezone": "PST"}, "timezone", "'America/Los_Angeles'"),
    ({"schedule": "0 2 * * *", "timezone": "cest"}, "timezone", "'Europe/Berlin'"),
    ({"schedule": "0 2 * * *", "every": "5m"}, "every", "cannot be combined with schedule"),
    ({"every": "soon"}, "every", "not a valid duration"),
    ({"every": "100ms"}, "every", "too short"),
    ({"every": "5m", "timezone": "UTC"}, "timezone", "cron schedules only"),
    ({"every": "5m", "jitter": "10m"}, "jitter", "shorter than the interval"),
    ({"every": "5m", "catchup": "lates"}, "catchup", "did you mean 'latest'"),
    ({"every": "5m", "catchup_max": 0}, "catchup_max", "out of range"),
    ({"every": "5m", "max_active_runs": 0}, "max_active_runs", "out of range"),
    ({"every": "5m", "on_max_active": "queue"}, "on_max_active", "unknown value"),
    ({"catchup": "all"}, "catchup", "no effect without a schedule"),
])
def test_bad_schedule_keys_name_field_value_and_expectation(data, field, fragment):
    spec, errors = check(data)
    assert spec is None
    assert any(f"{field}: " in e and fragment in e for e in errors), errors
    assert all("expected" in e for e in errors)


def test_a_fixed_offset_is_taken_when_named_as_one():
    """``EST`` is refused (people mean New York's local time); the fixed offset itself stays available, by its
    unambiguous name; ``HST`` (Hawaii keeps no daylight saving) is a zone like any other."""
    for name in ("Etc/GMT+5", "HST", "America/New_York"):
        spec, errors = check({"schedule": "0 2 * * *", "timezone": name})
        assert errors == [] and spec is not None and spec.timezone == name


def test_every_problem_is_reported_at_once():
    _, errors = check({"schedule": "61 * * * *", "timezone": "Nowhere/City", "catchup": "never"})
    assert len(errors) == 3


# -- fire times ---------------------------------------------------------------


def test_cron_next_fire_is_strictly_after():
    spec = ScheduleSpec("p", cron="0 2 * * *")
    assert next_fire(spec, utc(2026, 1, 1, 1, 59)) == utc(2026, 1, 1, 2, 0)
    assert next_fire(spec, utc(2026, 1, 1, 2, 0)) == utc(2026, 1, 2, 2, 0)


def test_cron_in_a_timezone_fires_at_local_time():
    spec = ScheduleSpec("p", cron="0 2 * * *", timezone="America/New_York")
    assert next_fire(spec, utc(2026, 1, 10)) == utc(2026, 1, 10, 7, 0)  # EST = UTC-5
    assert next_fire(spec, utc(2026, 7, 10)) == utc(2026, 7, 10, 6, 0)  # EDT = UTC-4


def test_every_is_anchored_at_the_epoch_so_restarts_agree():
    spec = ScheduleSpec("p", every=900)
    assert next_fire(spec, utc(2026, 3, 1, 10, 7, 13)) == utc(2026, 3, 1, 10, 15)
    assert fires_between(spec, utc(2026, 3, 1, 10), utc(2026, 3, 1, 11)) == [
        utc(2026, 3, 1, 10, 15), utc(2026, 3, 1, 10, 30), utc(2026, 3, 1, 10, 45), utc(2026, 3, 1, 11)]


def test_naive_datetimes_are_refused():
    with pytest.raises(ValueError):
        next_fire(ScheduleSpec("p", every=60), datetime(2026, 1, 1))


# DST: Europe/Berlin springs forward 2026-03-29 02:00 -> 03:00, falls back 2026-10-25 03:00 -> 02:00.

def test_dst_spring_forward_nonexistent_time_fires_once_at_the_gap_end():
    spec = ScheduleSpec("p", cron="30 2 * * *", timezone="Europe/Berlin")
    fires = fires_between(spec, utc(2026, 3, 27), utc(2026, 3, 31))
    # 02:30 CET = 01:30Z; on the 29th 02:30 does not exist -> 03:00 CEST = 01:00Z; then 02:30 CEST = 00:30Z.
    assert fires == [utc(2026, 3, 27, 1, 30), utc(2026, 3, 28, 1, 30), utc(2026, 3, 29, 1, 0),
                     utc(2026, 3, 30, 0, 30)]


def test_dst_fall_back_repeated_time_fires_once():
    spec = ScheduleSpec("p", cron="30 2 * * *", timezone="Europe/Berlin")
    fires = fires_between(spec, utc(2026, 10, 23), utc(2026, 10, 27))
    assert fires == [utc(2026, 10, 23, 0, 30), utc(2026, 10, 24, 0, 30), utc(2026, 10, 25, 0, 30),
                     utc(2026, 10, 26, 1, 30)]


def test_dst_sub_hourly_cron_never_repeats_or_goes_backwards():
    spec = ScheduleSpec("p", cron="*/30 * * * *", timezone="Europe/Berlin")
    back = fires_between(spec, utc(2026, 10, 24, 23), utc(2026, 10, 25, 3))
    # Wall times 02:00 and 02:30 fire at their first occurrence (CEST); the repeated hour adds none.
    assert hm(back) == ["10-24 23:30", "10-25 00:00", "10-25 00:30", "10-25 02:00", "10-25 02:30", "10-25 03:00"]
    fwd = fires_between(spec, utc(2026, 3, 28, 23), utc(2026, 3, 29, 2))
    # 02:00 and 02:30 do not exist: one fire at 03:00 CEST (01:00Z).
    assert hm(fwd) == ["03-28 23:30", "03-29 00:00", "03-29 00:30", "03-29 01:00", "03-29 01:30", "03-29 02:00"]


@pytest.mark.parametrize("tz", ["Europe/Berlin", "America/New_York", "Australia/Lord_Howe", "UTC"])
@pytest.mark.parametrize("cron", ["*/15 * * * *", "30 2 * * *", "0 * * * 0", "45 1,2,3 * * *"])
def test_fires_strictly_increase_around_dst_transitions(tz, cron):
    spec = ScheduleSpec("p", cron=cron, timezone=tz)
    for start in (utc(2026, 3, 26), utc(2026, 10, 1), utc(2026, 11, 1)):
        fires = fires_between(spec, start, start + timedelta(days=5))
        assert fires, "some fires expected"
        assert all(a < b for a, b in itertools.pairwise(fires))
        # Starting from any fire gives the same continuation: restarts agree.
        mid = fires[len(fires) // 2]
        assert fires_between(spec, mid, fires[-1]) == fires[len(fires) // 2 + 1:]


def test_every_ignores_dst():
    spec = ScheduleSpec("p", every=3600)
    fires = fires_between(spec, utc(2026, 10, 24, 23, 30), utc(2026, 10, 25, 3, 30))
    assert all((b - a) == timedelta(hours=1) for a, b in itertools.pairwise(fires))
    assert len(fires) == 4


# -- catch-up -----------------------------------------------------------------

HOURLY = {"cron": "0 * * * *"}


def plan(catchup: str, last: datetime | None, now: datetime, **kw):
    return plan_fires(ScheduleSpec("p", catchup=catchup, **{**HOURLY, **kw}), last, now)


def test_on_time_fire_starts_under_every_policy():
    for policy in ("skip", "latest", "all"):
        p = plan(policy, utc(2026, 1, 1, 9), utc(2026, 1, 1, 10, 0, 0, 5000))
        assert p.fires == [utc(2026, 1, 1, 10)] and p.missed == 0 and p.last_fire == utc(2026, 1, 1, 10)


def test_nothing_due_keeps_the_watermark():
    p = plan("all", utc(2026, 1, 1, 10), utc(2026, 1, 1, 10, 59))
    assert (p.fires, p.missed, p.last_fire) == ([], 0, utc(2026, 1, 1, 10))


def test_last_fire_is_never_repeated():
    assert due_fires(ScheduleSpec("p", **HOURLY, catchup="all"), utc(2026, 1, 1, 10), utc(2026, 1, 1, 10)) == []


def test_no_stored_state_means_no_missed_fires():
    p = plan("all", None, utc(2026, 1, 1, 10))
    assert (p.fires, p.missed, p.last_fire) == ([], 0, None)


def test_skip_after_downtime_starts_none_of_the_missed():
    # Down from 10:30 to 15:20: fires 11..15 missed; 15:00 is 20 min late (> grace).
    p = plan("skip", utc(2026, 1, 1, 10), utc(2026, 1, 1, 15, 20))
    assert p.fires == [] and p.missed == 5 and p.last_fire == utc(2026, 1, 1, 15)


def test_skip_still_starts_a_fire_that_is_only_a_little_late():
    p = plan("skip", utc(2026, 1, 1, 10), utc(2026, 1, 1, 15, 0, 30))
    assert p.fires == [utc(2026, 1, 1, 15)] and p.missed == 4


def test_latest_starts_one_run_for_the_most_recent_missed_fire():
    p = plan("latest", utc(2026, 1, 1, 10), utc(2026, 1, 1, 15, 20))
    assert p.fires == [utc(2026, 1, 1, 15)] and p.missed == 4 and p.last_fire == utc(2026, 1, 1, 15)


def test_all_starts_every_missed_fire_in_order():
    p = plan("all", utc(2026, 1, 1, 10), utc(2026, 1, 1, 15, 20))
    assert hm(p.fires) == ["01-01 11:00", "01-01 12:00", "01-01 13:00", "01-01 14:00", "01-01 15:00"]
    assert p.missed == 0


def test_all_is_capped_keeping_the_most_recent():
    p = plan("all", utc(2026, 1, 1, 10), utc(2026, 1, 2, 10, 20), catchup_max=3)
    assert hm(p.fires) == ["01-02 08:00", "01-02 09:00", "01-02 10:00"]
    assert p.missed == 21 and p.last_fire == utc(2026, 1, 2, 10)


def test_long_downtime_with_a_dense_schedule_is_cheap():
    spec = ScheduleSpec("p", cron="* * * * *", catchup="latest")
    p = plan_fires(spec, utc(2026, 1, 1), utc(2026, 3, 1, 0, 0, 30))
    assert p.fires == [utc(2026, 3, 1)] and p.missed >= 999  # a lower bound: counting stops at MISSED_COUNT_CAP


def test_consecutive_plans_neither_lose_nor_repeat_a_fire():
    """Ticking at random instants with catchup=all visits every fire exactly once."""
    import random

    rnd = random.Random(4)
    spec = ScheduleSpec("p", cron="*/7 * * * *", timezone="Europe/Berlin", catchup="all", catchup_max=10_000,
                        jitter=20)
    start, end = utc(2026, 10, 24, 20), utc(2026, 10, 25, 6)
    last, now, seen = start, start, []
    while now < end:
        now += timedelta(seconds=rnd.choice([1, 17, 60, 400, 1300]))
        p = plan_fires(spec, last, now)
        seen += p.fires
        last = p.last_fire or last
    expected = fires_between(spec, start, last)
    assert seen == expected


# -- jitter and admission -----------------------------------------------------


def test_jitter_is_deterministic_and_bounded():
    spec = ScheduleSpec("p", every=3600, jitter=120)
    f = utc(2026, 1, 1, 10)
    assert jitter_offset(spec, f) == jitter_offset(ScheduleSpec("p", every=3600, jitter=120), f)
    offsets = {jitter_offset(spec, utc(2026, 1, 1, h)) for h in range(24)}
    assert len(offsets) > 20 and all(timedelta(0) <= o < timedelta(seconds=120) for o in offsets)
    assert jitter_offset(ScheduleSpec("q", every=3600, jitter=120), f) != jitter_offset(spec, f)


def test_a_jittered_fire_is_due_only_at_its_start_time():
    spec = ScheduleSpec("p", every=3600, jitter=600)
    f = utc(2026, 1, 1, 10)
    start = start_time(spec, f)
    assert start > f
    assert due_fires(spec, utc(2026, 1, 1, 9), start - timedelta(microseconds=1)) == []
    assert due_fires(spec, utc(2026, 1, 1, 9), start) == [f]


@pytest.mark.parametrize("limit, policy, active, action", [
    (None, "wait", 50, "start"),
    (2, "wait", 1, "start"),
    (2, "wait", 2, "wait"),
    (2, "skip", 2, "skip"),
    (1, "skip", 3, "skip"),
])
def test_admit(limit, policy, active, action):
    d = admit(ScheduleSpec("p", every=60, max_active_runs=limit, on_max_active=policy), active)
    assert d.action == action
    if action != "start":
        assert "max_active_runs" in d.reason and policy in d.reason


@pytest.mark.parametrize("last", [utc(2026, 1, 1, 10, 0), utc(2026, 1, 1, 10, 7, 30)])
def test_missed_count_for_intervals_is_exact_on_and_off_the_grid(last):
    spec = ScheduleSpec("p", every=900, catchup="latest")
    now = utc(2026, 1, 2, 10, 20)
    p = plan_fires(spec, last, now)
    assert p.missed + len(p.fires) == len(fires_between(spec, last, p.last_fire))


def test_a_plan_names_its_newest_missed_fire() -> None:
    """The "missed" report named the newest due fire, which may be the one that starts (or count it among the
    missed, "2 earlier fires" of two in all)."""
    hourly = dict(cron="0 * * * *")
    late = plan_fires(ScheduleSpec("p", catchup="skip", **hourly), utc(2026, 1, 1, 10), utc(2026, 1, 1, 12, 30))
    assert (late.fires, late.missed, late.latest_missed) == ([], 2, utc(2026, 1, 1, 12))  # 11:00 and 12:00, late
    latest = plan_fires(ScheduleSpec("p", catchup="latest", **hourly), utc(2026, 1, 1, 10), utc(2026, 1, 1, 12, 30))
    assert (latest.fires, latest.missed, latest.latest_missed) == ([utc(2026, 1, 1, 12)], 1, utc(2026, 1, 1, 11))
    capped = plan_fires(ScheduleSpec("p", catchup="all", catchup_max=2, **hourly), utc(2026, 1, 1, 10),
                        utc(2026, 1, 1, 14, 0, 1))
    assert capped.fires == [utc(2026, 1, 1, 13), utc(2026, 1, 1, 14)]
    assert (capped.missed, capped.latest_missed) == (2, utc(2026, 1, 1, 12))
    none = plan_fires(ScheduleSpec("p", catchup="all", **hourly), utc(2026, 1, 1, 10), utc(2026, 1, 1, 12, 0, 1))
    assert (none.missed, none.latest_missed) == (0, None)


def test_a_missed_report_names_a_fire_that_was_not_started_when_the_newest_waits_for_its_jitter():
    """A tester's find: after a downtime, the newest fire still behind its jitter left the window holding only the
    fire that starts; the "missed" report fell back to naming that very fire ("fire 18:28:30: 20 fire(s) ... passed
    without a run", then "fire 18:28:30 started run 273"). It names the fire before it."""
    from edgeorch.triggers.schedule import jitter_offset, plan_fires

    spec = ScheduleSpec("jit", every=10, jitter=6.0)
    last = datetime(2026, 12, 7, 18, 25, 0, tzinfo=UTC)
    # A "now" just after a fire whose jittered start is still ahead (its offset is fixed per pipeline and fire).
    newest = next(datetime(2026, 12, 7, 18, 28, s, tzinfo=UTC) for s in range(0, 60, 10)
                  if jitter_offset(spec, datetime(2026, 12, 7, 18, 28, s, tzinfo=UTC)) > timedelta(seconds=1))
    now = newest + timedelta(seconds=0.5)
    plan = plan_fires(spec, last, now)
    assert plan.fires == [newest - timedelta(seconds=10)]
    assert plan.missed > 0 and plan.latest_missed == newest - timedelta(seconds=20)
    assert plan.latest_missed not in plan.fires


def test_a_cron_schedules_missed_count_past_its_counting_cap_is_said_as_a_lower_bound():
    """"990 fire(s) up to this one passed without a run" after three weeks of a `* * * * *` schedule (~31,000):
    counting cron fires stops at MISSED_COUNT_CAP, and the report said the bound as the count."""
    from edgeorch.triggers.schedule import MISSED_COUNT_CAP, plan_fires

    spec = ScheduleSpec("minute", cron="* * * * *", catchup="all", catchup_max=10)
    plan = plan_fires(spec, datetime(2026, 11, 16, tzinfo=UTC), datetime(2026, 12, 7, 18, 23, 30, tzinfo=UTC))
    assert plan.missed_at_least and plan.missed == MISSED_COUNT_CAP - 10
    assert plan.missed_text() == f"at least {MISSED_COUNT_CAP - 10}"
    short = plan_fires(spec, datetime(2026, 12, 7, 17, 0, tzinfo=UTC), datetime(2026, 12, 7, 18, 23, 30, tzinfo=UTC))
    assert not short.missed_at_least and short.missed_text() == str(83 - 10)


def test_a_scheduled_pipeline_with_a_param_without_default_is_refused_by_validation(tmp_path):
    """A tester's find: `validate` said ok, and the daemon refused every fire ("parameter day is required"): a
    schedule's fire passes no params."""
    from edgeorch.pipelines import validate_path

    (tmp_path / "needparam.toml").write_text('every = "3s"\n[params]\nday = { type = "str" }\nhour = { type = "int" }\n'
                                             '[tasks.t]\ncommand = ["echo", "{day}", "{hour}"]\n')
    (tmp_path / "fine.toml").write_text('every = "3s"\n[params]\nday = { type = "str", default = "mon" }\n'
                                        '[tasks.t]\ncommand = ["echo", "{day}"]\n')
    (tmp_path / "manual.toml").write_text('[params]\nday = { type = "str" }\n[tasks.t]\ncommand = ["echo", "{day}"]\n')
    report = validate_path(tmp_path)
    assert sorted(report.pipelines) == ["fine", "manual"]
    (error,) = report.errors
    text = error.render()
    assert "needparam.toml" in text and "params.day" in text and "every fire would be refused" in text, text
    assert "(also hour)" in text and "default" in text, text
    # Said beside the schedule's own errors too (a misspelt timezone hid it until it was fixed).
    (tmp_path / "fine.toml").unlink()
    (tmp_path / "manual.toml").unlink()
    (tmp_path / "needparam.toml").write_text('schedule = "0 2 * * *"\ntimezone = "Europe/Berln"\n[params]\n'
                                             'day = { type = "str" }\n[tasks.t]\ncommand = ["echo", "{day}"]\n')
    said = [e.render() for e in validate_path(tmp_path).errors]
    assert len(said) == 2 and any("timezone" in e for e in said) and any("params.day" in e for e in said), said


@pytest.mark.parametrize("tz, said", [("localtime", "this machine's configured zone"), ("Factory", "placeholder"),
                                      ("posixrules", "template"), ("right/Europe/Berlin", "leap seconds")])
def test_zone_names_that_name_no_regions_civil_time_are_refused(tz, said):
    """A tester's find: `localtime`, `Factory`, `posixrules` and `right/UTC` passed validation, though the docs say a
    timezone is a region's: `localtime` follows whatever the host is set to later, `right/` clocks count leap
    seconds (27 s off)."""
    from edgeorch.triggers.schedule import check_schedule

    spec, errors = check_schedule({"name": "n", "schedule": "0 2 * * *", "timezone": tz}, "p.toml")
    assert spec is None and len(errors) == 1
    text = str(errors[0])
    assert said in text and "timezone" in text and repr(tz) in text, text
