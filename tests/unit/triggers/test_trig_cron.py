"""Cron expressions follow crontab(5): checked against a brute-force matcher written from the man page.

The oracle below shares no code with ``edgeorch.triggers.cron`` (which parses
crontab(5) and lets APScheduler 3 compute the fire times): it tests one
minute at a time, element by element, with arithmetic instead of expanded sets.
"""

from __future__ import annotations

import random
from datetime import UTC, date, datetime, timedelta

import pytest
from apscheduler.triggers.combining import OrTrigger
from apscheduler.triggers.cron import CronTrigger

from edgeorch.triggers.cron import CronError, NeverFiresError, parse_cron
from edgeorch.triggers.schedule import ScheduleSpec, check_schedule, fires_between, next_fire


def utc(*a: int) -> datetime:
    return datetime(*a, tzinfo=UTC)


# -- the oracle: crontab(5) read literally --------------------------------------------------

MONTHS = {n: i + 1 for i, n in enumerate("jan feb mar apr may jun jul aug sep oct nov dec".split())}
DAYS = {n: i for i, n in enumerate("sun mon tue wed thu fri sat".split())}
BOUNDS = [(0, 59, {}), (0, 23, {}), (1, 31, {}), (1, 12, MONTHS), (0, 7, DAYS)]


def _num(text: str, names: dict[str, int]) -> int:
    return names[text.lower()] if text.lower() in names else int(text)


def element_matches(elem: str, v: int, field: int) -> bool:
    """Does one list element (``*``, ``N``, ``A-B``, with ``/S``) allow value ``v``?"""
    low, high, names = BOUNDS[field]
    body, _, step = elem.partition("/")
    s = int(step) if step else 1
    if body == "*":
        a, b = low, high
    elif "-" in body:
        x, y = body.split("-")
        a, b = _num(x, names), _num(y, names)
        if field == 4 and y.lower() == "sun" and a > 0:
            b = 7
    else:
        a = _num(body, names)
        b = high if step else a
    return a <= v <= b and (v - a) % s == 0


def field_matches(text: str, v: int, field: int) -> bool:
    if field == 4:  # Sunday is 0 and 7
        return any(element_matches(e, v, 4) or (v == 0 and element_matches(e, 7, 4)) for e in text.split(","))
    return any(element_matches(e, v, field) for e in text.split(","))


def day_matches(fields: list[str], d: date) -> bool:
    if not field_matches(fields[3], d.month, 3):
        return False
    dom = field_matches(fields[2], d.day, 2)
    dow = field_matches(fields[4], d.isoweekday() % 7, 4)
    if fields[2].startswith("*") or fields[4].startswith("*"):
        return dom and dow
    return dom or dow


def brute_fires(expr: str, after: datetime, n: int) -> list[datetime]:
    """The first ``n`` matching UTC minutes after ``after``, testing every minute of every matching day."""
    fields = expr.split()
    out: list[datetime] = []
    day = after.date()
    while len(out) < n:
        if day_matches(fields, day):
            for h in range(24):
                if not field_matches(fields[1], h, 1):
                    continue
                for m in range(60):
                    t = datetime(day.year, day.month, day.day, h, m, tzinfo=UTC)
                    if t > after and field_matches(fields[0], m, 0):
                        out.append(t)
                        if len(out) == n:
                            return out
        day += timedelta(days=1)
    return out


# -- random expressions ------------------------------------------------------------------------


def rand_element(rnd: random.Random, field: int) -> str:
    low, high, names = BOUNDS[field]
    if field == 4:
        high = 7
    a, b = sorted(rnd.randint(low, high) for _ in range(2))

    def show(v: int) -> str:
        if names and rnd.random() < 0.3 and v in names.values():
            name = next(k for k, x in names.items() if x == v)
            return rnd.choice([name, name.upper(), name.title()])
        return str(v)

    kind = rnd.choice(["n", "n", "range", "range_step", "star_step", "n_step"])
    step = rnd.randint(1, max(1, (high - low) // 2))
    if kind == "n":
        return show(a)
    if kind == "range":
        return f"{show(a)}-{show(b)}"
    if kind == "range_step":
        return f"{show(a)}-{show(b)}/{step}"
    if kind == "star_step":
        return f"*/{step}"
    return f"{a}/{step}"


def rand_field(rnd: random.Random, field: int, p_star: float) -> str:
    if rnd.random() < p_star:
        return "*"
    return ",".join(rand_element(rnd, field) for _ in range(rnd.choice([1, 1, 2, 3])))


def rand_expr(rnd: random.Random) -> str:
    # Stars are common for the date fields (as in real crontabs); either DOM/DOW combination occurs.
    return " ".join(rand_field(rnd, i, p) for i, p in enumerate((0.1, 0.3, 0.45, 0.6, 0.45)))


def test_thousands_of_random_expressions_match_a_bruteforce_crontab5_matcher():
    rnd = random.Random(20260327)
    checked = 0
    for _ in range(3000):
        expr = rand_expr(rnd)
        try:
            parse_cron(expr)
        except NeverFiresError:
            continue  # impossible dates: refused (tested below)
        start = utc(rnd.randint(1995, 2060), rnd.randint(1, 12), rnd.randint(1, 28), rnd.randint(0, 23),
                    rnd.randint(0, 59), rnd.choice([0, 0, 30]))
        spec = ScheduleSpec("p", cron=expr)
        got = fires_between(spec, start, datetime.max.replace(tzinfo=UTC) - timedelta(days=1), limit=8)
        assert got == brute_fires(expr, start, 8), expr
        checked += 1
    assert checked > 2500


def rand_set_field(rnd: random.Random, field: int) -> str:
    """A comma list of arbitrary single values (no ranges, no steps): any set must reach APScheduler intact."""
    low, high, _ = BOUNDS[field]
    return ",".join(str(v) for v in rnd.sample(range(low, high + 1), rnd.randint(1, high - low)))


def test_arbitrary_value_sets_reach_apscheduler_exactly():
    rnd = random.Random(7)
    for _ in range(150):
        fields = [rand_set_field(rnd, i) if rnd.random() < 0.8 else "*" for i in range(5)]
        fields[3] = "*" if rnd.random() < 0.7 else fields[3]
        expr = " ".join(fields)
        try:
            parse_cron(expr)
        except NeverFiresError:
            continue
        start = utc(rnd.randint(2000, 2040), rnd.randint(1, 12), rnd.randint(1, 28), rnd.randint(0, 23))
        assert fires_between(ScheduleSpec("p", cron=expr), start, utc(2200, 1, 1), limit=6) == \
            brute_fires(expr, start, 6), expr


def test_wall_times_before_1970_are_computed_too():
    # APScheduler 3 starts at 1970; earlier times move by whole 400-year Gregorian cycles and back.
    rnd = random.Random(1969)
    for _ in range(150):
        expr = rand_expr(rnd)
        try:
            parse_cron(expr)
        except NeverFiresError:
            continue
        start = utc(rnd.randint(1, 1969), rnd.randint(1, 12), rnd.randint(1, 28), rnd.randint(0, 23))
        assert fires_between(ScheduleSpec("p", cron=expr), start, utc(2200, 1, 1), limit=4) == \
            brute_fires(expr, start, 4), expr
    assert next_fire(ScheduleSpec("p", cron="0 0 29 2 */7"), utc(1969, 12, 31, 23, 59)) == utc(1976, 2, 29)


def test_no_fire_after_the_year_9999_is_a_cron_error():
    for wall in (datetime(9999, 6, 1), datetime(9999, 12, 31, 23, 59)):
        with pytest.raises(CronError, match="the end of the year 9999"):
            parse_cron("0 0 1 1 *").next_after(wall)


# -- APScheduler computes the fire times -------------------------------------------------------


def test_fire_times_are_computed_by_apscheduler_with_weekdays_by_name():
    trig = parse_cron("30 9 * * 1-5").trigger
    assert isinstance(trig, CronTrigger)
    assert "day_of_week='mon,tue,wed,thu,fri'" in str(trig)  # names: APScheduler's Monday = 0 cannot shift a day
    assert "day_of_week='sun'" in str(parse_cron("0 0 * * 7").trigger)


def test_day_of_month_or_day_of_week_is_an_apscheduler_or_trigger():
    trig = parse_cron("0 9 1 * mon").trigger
    assert isinstance(trig, OrTrigger)
    assert [str(t) for t in trig.triggers] == [
        "cron[month='1-12', day='1', day_of_week='*', hour='9', minute='0', second='0']",
        "cron[month='1-12', day='*', day_of_week='mon', hour='9', minute='0', second='0']"]
    assert isinstance(parse_cron("0 9 */2 * mon").trigger, CronTrigger)  # the Vixie '*' rule: AND


def test_steps_longer_than_their_range_follow_crontab5():
    # crontab(5) accepts them (the range's first value only); APScheduler's own parser would refuse them.
    assert weekdays("0 */30 * * *", 2) == ["Fri 02", "Sat 03"]  # after 2026-01-01 00:00: hour 0 only
    assert fires_between(ScheduleSpec("p", cron="5-6/3 * * * *"), utc(2026, 1, 1), utc(2026, 1, 1, 2)) == [
        utc(2026, 1, 1, 0, 5), utc(2026, 1, 1, 1, 5)]


# -- crontab(5) rules, one by one ---------------------------------------------------------------

# 2026-01-01 is a Thursday.


def weekdays(expr: str, n: int = 7) -> list[str]:
    return [f.strftime("%a %d") for f in fires_between(ScheduleSpec("p", cron=expr), utc(2026, 1, 1), utc(2027, 1, 1),
                                                        limit=n)]


def test_day_of_week_1_is_monday():
    assert weekdays("0 9 * * 1", 2) == ["Mon 05", "Mon 12"]


def test_day_of_week_0_and_7_are_sunday():
    assert weekdays("0 9 * * 0", 1) == weekdays("0 9 * * 7", 1) == weekdays("0 9 * * sun", 1) == ["Sun 04"]


def test_day_of_week_range_1_5_is_monday_to_friday():
    assert weekdays("0 9 * * 1-5") == ["Thu 01", "Fri 02", "Mon 05", "Tue 06", "Wed 07", "Thu 08", "Fri 09"]
    assert weekdays("0 9 * * mon-fri") == weekdays("0 9 * * 1-5")


def test_day_of_week_range_ending_on_sunday():
    assert weekdays("0 9 * * fri-sun", 3) == weekdays("0 9 * * 5-7", 3) == ["Fri 02", "Sat 03", "Sun 04"]


def test_restricted_day_of_month_and_day_of_week_fire_when_either_matches():
    # The 1st of the month and every Monday (not: a Monday that is the 1st).
    assert weekdays("0 9 1 * 1", 6) == ["Thu 01", "Mon 05", "Mon 12", "Mon 19", "Mon 26", "Sun 01"]


def test_a_star_step_day_of_month_combines_with_day_of_week_by_and():
    # Vixie cron: a field starting with '*' is unrestricted for the OR rule, so both must match.
    assert weekdays("0 9 */2 * 1", 2) == ["Mon 05", "Mon 19"]


def test_month_names_and_macros():
    assert next_fire(ScheduleSpec("p", cron="0 0 1 Mar *"), utc(2026, 1, 1)) == utc(2026, 3, 1)
    for macro, expr in [("@yearly", "0 0 1 1 *"), ("@annually", "0 0 1 1 *"), ("@monthly", "0 0 1 * *"),
                        ("@weekly", "0 0 * * 0"), ("@daily", "0 0 * * *"), ("@midnight", "0 0 * * *"),
                        ("@hourly", "0 * * * *")]:
        a = fires_between(ScheduleSpec("p", cron=macro), utc(2026, 1, 1, 0, 30), utc(2028, 1, 1), limit=3)
        assert a == fires_between(ScheduleSpec("p", cron=expr), utc(2026, 1, 1, 0, 30), utc(2028, 1, 1), limit=3)


def test_february_29th_fires_in_leap_years_only():
    assert fires_between(ScheduleSpec("p", cron="0 0 29 2 *"), utc(2026, 1, 1), utc(2033, 1, 1)) == [
        utc(2028, 2, 29), utc(2032, 2, 29)]
    # ... and with a day-of-week under the AND rule: a Sunday Feb 29th (2032, then 2060).
    assert next_fire(ScheduleSpec("p", cron="0 0 29 2 */7"), utc(2033, 1, 1)) == utc(2060, 2, 29)


@pytest.mark.parametrize("expr, fragment", [
    ("* * *", "has 3 field(s), not 5"),
    ("0 0 * * * *", "has 6 field(s)"),
    ("61 * * * *", "minute: 61 in '61' is out of range (allowed: 0-59)"),
    ("0 24 * * *", "hour: 24"),
    ("0 0 0 * *", "day-of-month: 0"),
    ("0 0 * 13 *", "month: 13"),
    ("0 0 * * 8", "day-of-week: 8"),
    ("0 0 * * funday", "day-of-week: 'funday'"),
    ("0 0 * foo *", "month: 'foo'"),
    ("5-1 * * * *", "runs backwards"),
    ("*/0 * * * *", "step '0'"),
    ("1,,2 * * * *", "empty list element"),
    ("0 0 L * *", "day-of-month: 'L'"),
    ("@reboot", "@reboot is not a schedule"),
    ("0 0 30 2 *", "never fires"),
    ("0 0 31 4,6,9,11 *", "never fires"),
])
def test_invalid_expressions_name_the_field_and_the_part(expr, fragment):
    with pytest.raises(CronError, match=None) as info:
        parse_cron(expr)
    assert fragment in str(info.value)


def test_impossible_date_is_refused_at_validation_with_file_field_and_value():
    spec, errors = check_schedule({"name": "n", "schedule": "0 0 30 2 *"}, "pipelines/n.toml")
    assert spec is None and len(errors) == 1
    text = errors[0].render() if hasattr(errors[0], "render") else str(errors[0])
    assert "pipelines/n.toml" in text and "schedule" in text and "0 0 30 2 *" in text and "never fires" in text


def test_possible_but_rare_dates_are_accepted():
    for expr in ("0 0 29 2 *", "0 0 30 2 1", "0 0 31 * *", "0 0 30,31 2,3 *"):
        assert check_schedule({"name": "n", "schedule": expr}, "n.toml")[1] == [], expr


# -- DST: exact seconds --------------------------------------------------------------------------


def test_a_fire_in_the_spring_forward_gap_is_an_exact_second():
    # Europe/Berlin 2026-03-29 02:00 CET -> 03:00 CEST (01:00Z): 02:59 does not exist.
    spec = ScheduleSpec("p", cron="59 2 * * *", timezone="Europe/Berlin")
    f = next_fire(spec, utc(2026, 3, 28, 12))
    assert f == utc(2026, 3, 29, 1, 0, 0) and f.microsecond == 0


@pytest.mark.parametrize("tz", ["Europe/Berlin", "America/New_York", "Australia/Lord_Howe", "America/Santiago",
                                "Asia/Tehran", "Pacific/Apia", "Africa/Casablanca"])
def test_every_cron_fire_is_a_whole_second_across_years_of_transitions(tz):
    spec = ScheduleSpec("p", cron="*/20 0-4 * * *", timezone=tz)
    for year in (2008, 2011, 2026):
        fires = fires_between(spec, utc(year, 1, 1), utc(year + 1, 1, 1))
        assert fires and all(f.microsecond == 0 for f in fires)
        assert all(a < b for a, b in zip(fires, fires[1:]))


def test_interval_fires_are_exact_multiples_of_the_interval():
    spec = ScheduleSpec("p", every=0.1 * 3 + 1)  # 1.3 s, not exact in binary floating point
    fires = fires_between(spec, utc(2026, 1, 1), utc(2026, 1, 1, 0, 0, 10))
    assert all(((f - utc(1970, 1, 1)) // timedelta(microseconds=1)) % 1_300_000 == 0 for f in fires)
