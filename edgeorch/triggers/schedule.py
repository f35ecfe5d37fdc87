"""Schedules: parse a pipeline's trigger keys and compute its fire times.

Pure: no clock, no I/O. Every function takes the time it reasons about as an
argument (timezone-aware ``datetime``); the :mod:`.scheduler` adapter feeds it
the clock.

Vocabulary
----------
*fire time*
    A nominal instant the schedule names (``0 2 * * *`` -> 02:00 local).
*start time*
    ``fire + jitter(pipeline, fire)``: when the run is actually started.
    Jitter is a deterministic function of the pipeline name and the fire time,
    so a restart computes the same start time again.
*last fire* (the watermark)
    The most recent fire time that was handled (started or deliberately
    skipped). Every fire ``<= last_fire`` is done; the caller stores it in
    SQLite in the same transaction as the run it starts, so a restart neither
    repeats nor loses a fire.

Cron expressions follow crontab(5) (day-of-week 0 and 7 = Sunday, names,
the day-of-month/day-of-week OR rule); :mod:`.cron` parses them and APScheduler 3 computes the matching wall times.

Cron semantics across DST (``timezone`` set to a zone with DST)
---------------------------------------------------------------
Cron expressions are matched against local wall-clock time, and each
matching wall-clock time fires at most once:

* a wall time that does not exist (spring forward, 02:30 in Europe/Berlin on
  the last Sunday of March) fires at the first instant after the gap (03:00
  CEST, exactly: the transition's whole second); several such times collapse
  into one fire (Vixie cron's convention: jobs in the skipped hour run right
  after the change);
* a wall time that exists twice (fall back) fires at its first occurrence
  only; the repeated hour adds no fire.

``every`` schedules are absolute durations anchored at the Unix epoch (UTC):
``every = "1h"`` fires on the hour, every hour, DST or not; ``every = "1d"``
fires at 00:00 UTC.
"""

from __future__ import annotations

import hashlib
import math
from datetime import UTC, datetime, timedelta, tzinfo
from functools import lru_cache
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from ..errors import EdgeorchError, PipelineError
from ..records import frozen
from ..tomlcheck import TableReader
from . import SCHEDULE_KEYS  # the pipeline top-level keys read by check_schedule
from .cron import EXPECTED as CRON_EXPECTED
from .cron import Cron, CronError, NeverFiresError, parse_cron

CATCHUP_POLICIES = ("skip", "latest", "all")
ON_MAX_ACTIVE = ("wait", "skip")
DEFAULT_CATCHUP_MAX = 10
MIN_EVERY = 1.0
"""Seconds; a shorter interval is refused (use a drop folder or a loop task)."""
MISFIRE_GRACE = 60.0
"""Seconds: the most recent fire counts as on time (not missed) if it is at most this late."""

MISSED_COUNT_CAP = 1000
"""Counting missed cron fires walks them one by one; past this many the count is a lower bound."""

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_UTC = UTC
_US = timedelta(microseconds=1)

Admission = Literal["start", "wait", "skip"]


@frozen
class ScheduleSpec:
    """A pipeline's validated schedule (exactly one of ``cron`` and ``every`` is set).

    ``jitter`` and ``every`` are seconds; ``max_active_runs`` None means no
    limit. ``timezone`` is an IANA name; it applies to ``cron`` only.
    """

    pipeline: str
    cron: str | None = None
    every: float | None = None
    timezone: str = "UTC"
    jitter: float = 0.0
    catchup: str = "skip"
    catchup_max: int = DEFAULT_CATCHUP_MAX
    max_active_runs: int | None = None
    on_max_active: str = "wait"

    def __post_init__(self) -> None:
        if (self.cron is None) == (self.every is None):
            raise ValueError("ScheduleSpec needs exactly one of cron and every")

    def grid(self) -> tuple[str | None, float | None, str, float]:
        """What sets the fire times (not what happens at them: catch-up and overlap rules)."""
        return self.cron, self.every, self.timezone, self.jitter

    @property
    def tz(self) -> tzinfo:
        return ZoneInfo(self.timezone)

    def describe(self) -> str:
        """Short human text: ``cron '0 2 * * *' (Europe/Berlin)`` or ``every 900s``."""
        if self.cron is not None:
            return f"cron {self.cron!r} ({self.timezone})"
        return f"every {self.every:g}s"


@frozen
class FirePlan:
    """What to do with the fires between ``last_fire`` and ``now``.

    ``fires``: fire times to start now, oldest first. ``missed``: fires that
    were due in the window but are not started (catch-up policy, cap); for
    cron schedules a lower bound past ``MISSED_COUNT_CAP``.
    ``last_fire``: the new watermark to store once ``fires`` are started (the
    latest due fire, started or not; unchanged when nothing was due).
    """

    fires: list[datetime]
    missed: int
    last_fire: datetime | None
    latest_missed: datetime | None = None
    """The newest of the ``missed`` fires (what a "missed" report names), None when none was."""
    missed_at_least: bool = False
    """``missed`` is a lower bound (a cron schedule's count stopped at :data:`MISSED_COUNT_CAP`): say "at least"."""

    def missed_text(self) -> str:
        """``missed`` as a report says it: ``"12"``, or ``"at least 999"`` when counting stopped."""
        return f"at least {self.missed}" if self.missed_at_least else str(self.missed)


@frozen
class Decision:
    """Outcome of :func:`admit`: ``action`` is start, wait or skip; ``reason`` says why."""

    action: Admission
    reason: str


# ---------------------------------------------------------------------------
# validation


def check_schedule(data: dict[str, Any], file: str, prefix: str = "", *,
                   pipeline: str | None = None) -> tuple[ScheduleSpec | None, list[EdgeorchError]]:
    """Validate the schedule keys of a pipeline's top-level table.

    Returns ``(spec, [])`` when the pipeline has a valid schedule, ``(None,
    [])`` when it has none (no ``schedule``/``every``; then the other schedule
    keys are refused as meaningless), ``(None, errors)`` otherwise. Errors are
    :class:`PipelineError` naming file, field, value and what was expected;
    every problem is collected. Unknown keys are not reported here (the
    pipeline loader owns the key list). ``pipeline`` defaults to ``data["name"]``
    or the file's stem.
    """
    errors: list[EdgeorchError] = []
    r = TableReader(data, file=file, prefix=prefix, errors=errors, error_cls=PipelineError)
    name = pipeline or (data.get("name") if isinstance(data.get("name"), str) else None) or _stem(file)
    cron = r.str("schedule", None)
    every = r.duration("every", None)
    tzname = r.str("timezone", None)
    jitter = r.duration("jitter", 0.0)
    catchup = r.choice("catchup", CATCHUP_POLICIES, "skip")
    catchup_max = r.int("catchup_max", DEFAULT_CATCHUP_MAX, minimum=1, maximum=100_000)
    max_active = r.int("max_active_runs", None, minimum=1)
    on_max = r.choice("on_max_active", ON_MAX_ACTIVE, "wait")

    if "schedule" in data and "every" in data:
        r.fail("every", "cannot be combined with schedule", value=data["every"],
               expected="either schedule (a cron expression) or every (a duration), not both")
        return None, errors
    if "schedule" not in data and "every" not in data:
        for key in SCHEDULE_KEYS[2:]:
            if key in data:  # max_active_runs too: it holds back a schedule's fires, never a trigger or a drop
                r.fail(key, "has no effect without a schedule", value=data[key],
                       expected="schedule = \"<cron>\" or every = \"<duration>\" beside it"
                       + (" (it limits the schedule's own fires; manual runs and drops are never held back)"
                          if key in ("max_active_runs", "on_max_active") else ""))
        return None, errors

    tz: tzinfo = _UTC
    if tzname is not None:
        if every is not None or "every" in data:
            r.fail("timezone", "applies to cron schedules only", value=tzname,
                   expected="no timezone with every (intervals are absolute durations)")
        else:
            problem = abbreviation_problem(tzname)
            if problem is not None:
                r.fail("timezone", problem[0], value=tzname, expected=problem[1])
            else:
                try:
                    tz = ZoneInfo(tzname)
                except (ZoneInfoNotFoundError, ValueError):
                    r.fail("timezone", "is not a known timezone", value=tzname,
                           expected="an IANA timezone name such as 'UTC' or 'Europe/Berlin'")
    if cron is not None:
        try:
            parse_cron(cron)
        except CronError as exc:
            never = isinstance(exc, NeverFiresError)
            r.fail("schedule", str(exc) if never else f"is not a valid cron expression: {exc}", value=cron,
                   expected="a date that exists in some month it names (February has 29 days at most)"
                   if never else CRON_EXPECTED)
            cron = None
    if every is not None and every < MIN_EVERY:
        r.fail("every", "is too short", value=data["every"], expected=f"a duration of at least {MIN_EVERY:g}s")
        every = None
    if jitter and (cron is not None or every is not None):
        problem = jitter_problem(cron, every, jitter)
        if problem is not None:
            r.fail("jitter", problem[0], value=data["jitter"], expected=problem[1])
    if errors or (cron is None and every is None):
        return None, errors
    spec = ScheduleSpec(
        pipeline=name, cron=cron, every=every, timezone=getattr(tz, "key", "UTC") if cron else "UTC",
        jitter=jitter, catchup=catchup, catchup_max=catchup_max, max_active_runs=max_active,
        on_max_active=on_max,
    )
    return spec, errors


_FIXED_ABBREVIATIONS = {
    "EST": ("-05:00", "'America/New_York' for its local time with daylight saving, or 'Etc/GMT+5' for the fixed offset"),
    "MST": ("-07:00", "'America/Denver' for mountain time with daylight saving, or 'America/Phoenix' for Arizona's "
                      "(no daylight saving)"),
}
"""Names tzdata keeps as FIXED offsets that people write meaning a region's local time, daylight saving included:
a schedule at 02:00 "EST" fires at 03:00 New York time all summer. Refused, naming the zones to write instead."""
_REGION_ABBREVIATIONS = {
    "PST": ("America/Los_Angeles",), "PDT": ("America/Los_Angeles",), "EDT": ("America/New_York",),
    "CST": ("America/Chicago", "Asia/Shanghai", "America/Havana"), "CDT": ("America/Chicago",),
    "MDT": ("America/Denver",), "AKST": ("America/Anchorage",), "BST": ("Europe/London",),
    "CEST": ("Europe/Berlin",), "IST": ("Asia/Kolkata", "Europe/Dublin", "Asia/Jerusalem"),
    "MSK": ("Europe/Moscow",), "HKT": ("Asia/Hong_Kong",), "SGT": ("Asia/Singapore",), "KST": ("Asia/Seoul",),
    "JST": ("Asia/Tokyo",), "AEST": ("Australia/Sydney",), "AEDT": ("Australia/Sydney",),
    "NZST": ("Pacific/Auckland",), "NZDT": ("Pacific/Auckland",),
}
"""Abbreviations that are no tzdata name: the message names the zone (or zones: ``CST``, ``IST`` stand for
several) people mean by them."""


_NOT_REGIONS = {
    "localtime": "is this machine's configured zone, whatever it is set to later, not a region: the schedule's hour "
                 "would move with a change of the host's setting",
    "Factory": "is tzdata's placeholder zone ('-00'), not a region",
    "posixrules": "is tzdata's template of rules for POSIX TZ strings, not a region",
}
"""Names ``zoneinfo`` loads that name no region's civil time (``right/...`` too: leap-second clocks)."""


def abbreviation_problem(name: str) -> tuple[str, str] | None:
    """``(what, expected)`` when ``name`` is a timezone abbreviation rather than a zone (case as written: tzdata's
    names are case-sensitive), or a name with spaces around it; else None. ``EST``/``MST`` are valid tzdata names,
    but fixed offsets without daylight saving; the others are not in tzdata."""
    if name != name.strip():
        return ("has spaces around it", f"the zone's name alone, {name.strip()!r}")
    if name in _FIXED_ABBREVIATIONS:
        offset, instead = _FIXED_ABBREVIATIONS[name]
        return (f"is a fixed UTC{offset} offset without daylight saving time, not a region's local time", instead)
    if name in _NOT_REGIONS or name.startswith("right/"):
        return (_NOT_REGIONS.get(name, "counts leap seconds: its clock runs 27 s behind UTC's (the tzdata 'right/' "
                                       "zones are not for civil time)"),
                "an IANA timezone name of a region such as 'Europe/Berlin', or 'UTC'")
    zones = _REGION_ABBREVIATIONS.get(name.upper())
    if zones:
        named = " or ".join(f"'{z}'" for z in zones)
        return ("is an abbreviation, not a timezone name" + (" (it stands for several)" if len(zones) > 1 else ""),
                f"an IANA timezone name such as {named} (daylight saving included: the schedule keeps its local "
                "hour all year)")
    return None


def _stem(file: str) -> str:
    base = file.rsplit("/", 1)[-1]
    return base.removesuffix(".toml")


def jitter_problem(cron: str | None, every: float | None, jitter: float) -> tuple[str, str] | None:
    """``(what, expected)`` when ``jitter`` is not shorter than the shortest gap between the fires of ``cron`` or
    ``every`` (:func:`shortest_gap`), else None: a fire's run must start before the next fire (the rule
    :func:`jitter_offset` keeps at runtime)."""
    if not jitter:
        return None
    if every is not None:
        if jitter < every:
            return None
        return ("must be shorter than the interval", f"a duration under every ({every:g}s)")
    gap = _cron_shortest_gap(cron or "")
    if jitter < gap:
        return None
    return ("must be shorter than the shortest gap between the schedule's fires",
            f"a duration under {_span(gap)} (the closest fires of {cron!r} are {_span(gap)} apart, in its "
            "timezone's wall-clock time; a fire's run starts before the next fire)")


def shortest_gap(spec: ScheduleSpec) -> float:
    """Seconds between the schedule's two closest fires: ``every``, or for cron the shortest gap between
    consecutive matching wall-clock times over the 400-year Gregorian cycle (exact: the calendar repeats after
    it). DST is left out (a spring-forward day can shorten one gap; :func:`jitter_offset` keeps the order there)."""
    if spec.every is not None:
        return spec.every
    return _cron_shortest_gap(spec.cron or "")


@lru_cache(maxsize=256)
def _cron_shortest_gap(expr: str) -> float:
    """:func:`shortest_gap` of a valid cron expression, in seconds (cached: every pipeline parse asks)."""
    cron = parse_cron(expr)
    times = sorted(h * 60 + m for h in cron.hours for m in cron.minutes)  # minutes of the day that fire
    within_day = min((b - a for a, b in zip(times, times[1:], strict=False)), default=None)
    # Between the last fire of a matching day and the first of the next one: shortest across one day, and longer
    # by a day for each day between the two matching days.
    across = 1440 + times[0] - times[-1]
    if within_day is None or across < within_day:
        across += 1440 * (_shortest_day_gap(cron) - 1)
    return 60.0 * (across if within_day is None else min(within_day, across))


_CYCLE_DAYS = 146_097
"""Days in the 400-year Gregorian cycle (a whole number of weeks: weekdays repeat with it)."""


def _shortest_day_gap(cron: Cron) -> int:
    """Fewest days between two consecutive days that match ``cron``'s day fields, over the whole cycle."""
    from calendar import monthrange
    from datetime import date

    days_of: dict[tuple[int, int, int], list[int]] = {}  # (month, length, weekday of the 1st) -> matching days
    ordinal = date(2000, 1, 1).toordinal()
    first = prev = None
    best = _CYCLE_DAYS
    for year in range(2000, 2400):
        for month in range(1, 13):
            length = monthrange(year, month)[1]
            if month in cron.months:
                key = (month, length, ordinal % 7)  # ordinal % 7: 0 = Sunday, as cron's day-of-week
                days = days_of.get(key)
                if days is None:
                    days = days_of[key] = [d for d in range(length) if _day_matches(cron, d + 1, (ordinal + d) % 7)]
                for d in days:
                    if prev is None:
                        first = ordinal + d
                    else:
                        best = min(best, ordinal + d - prev)
                        if best == 1:
                            return 1
                    prev = ordinal + d
            ordinal += length
    assert first is not None and prev is not None  # parse_cron refuses an expression that never fires
    return min(best, first + _CYCLE_DAYS - prev)


def _day_matches(cron: Cron, dom: int, dow: int) -> bool:
    """crontab(5)'s day rule (the month checked by the caller): OR when both day fields are restricted."""
    by_dom, by_dow = dom in cron.doms, dow in cron.dows
    return (by_dom and by_dow) if (cron.dom_star or cron.dow_star) else (by_dom or by_dow)


def _span(seconds: float) -> str:
    """A duration as a pipeline file writes it: ``1m``, ``1h30m``, ``1d``, ``1461d``."""
    rest = int(seconds)
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if rest >= size:
            parts.append(f"{rest // size}{unit}")
            rest %= size
    return "".join(parts) or f"{seconds:g}s"


# ---------------------------------------------------------------------------
# fire times


def _wall_to_instant(wall: datetime, tz: tzinfo) -> datetime:
    """The instant (UTC) of naive local ``wall`` time: its first occurrence, or the gap's end.

    A wall time that does not exist (spring forward) maps to the transition
    itself, the first instant with the new offset: an exact whole second,
    found by bisection over integer POSIX seconds (tz transitions are whole
    seconds).
    """
    naive = wall.replace(tzinfo=None)
    inst = naive.replace(tzinfo=tz, fold=0).astimezone(_UTC)
    if inst.astimezone(tz).replace(tzinfo=None) == naive:
        return inst
    # In a gap fold=0 uses the offset before the transition (an instant after it), fold=1 the one after.
    other = naive.replace(tzinfo=tz, fold=1).astimezone(_UTC)
    lo_t, hi_t = min(inst, other), max(inst, other)
    lo, hi = math.floor(lo_t.timestamp()), math.ceil(hi_t.timestamp())
    off_lo = datetime.fromtimestamp(lo, _UTC).astimezone(tz).utcoffset()
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if datetime.fromtimestamp(mid, _UTC).astimezone(tz).utcoffset() == off_lo:
            lo = mid
        else:
            hi = mid
    return datetime.fromtimestamp(hi, _UTC)


def _next_interval(every: float, after: datetime) -> datetime:
    """The first point of the epoch-anchored grid ``k * every`` strictly after ``after``.

    Integer microseconds throughout, so the grid is exact (no float drift).
    """
    step = max(1, round(every * 1_000_000))
    since = (after - _EPOCH) // _US
    return _EPOCH + _US * ((since // step + 1) * step)


def next_fire(spec: ScheduleSpec, after: datetime) -> datetime:
    """The first fire time strictly after ``after`` (aware), as a UTC datetime.

    Never returns ``after`` itself, so feeding back a fire gives the next one.
    Cron fires are whole seconds (whole minutes except at a DST gap's end).
    Raises :class:`~.cron.CronError` (a ValueError) for an invalid or
    never-firing cron expression: :func:`check_schedule` refuses those first.
    """
    after = _aware(after)
    if spec.every is not None:
        return _next_interval(spec.every, after.astimezone(_UTC))
    tz = spec.tz
    cron = parse_cron(spec.cron or "")
    probe = after.astimezone(tz).replace(tzinfo=None, fold=0)
    # Walk wall times forward until one maps to an instant after ``after``;
    # in a repeated hour a few candidates map to earlier instants.
    for _ in range(100_000):
        cand = cron.next_after(probe)
        inst = _wall_to_instant(cand, tz)
        if inst > after:
            return inst
        probe = cand
    raise AssertionError("no progress computing the next fire")  # pragma: no cover


def fires_between(spec: ScheduleSpec, start: datetime, end: datetime, limit: int | None = None) -> list[datetime]:
    """Fire times ``f`` with ``start < f <= end``, oldest first, at most ``limit`` (the oldest)."""
    out: list[datetime] = []
    t = _aware(start)
    end = _aware(end)
    while limit is None or len(out) < limit:
        t = next_fire(spec, t)
        if t > end:
            break
        out.append(t)
    return out


def latest_fires(spec: ScheduleSpec, start: datetime, end: datetime, n: int) -> list[datetime]:
    """The ``n`` most recent fire times in ``(start, end]``, oldest first.

    Searches backwards from ``end`` in doubling windows, so a long downtime
    with a dense schedule costs about as many steps as fires returned.
    """
    start, end = _aware(start), _aware(end)
    width = timedelta(minutes=1) if spec.every is None else timedelta(seconds=spec.every) * n
    while True:
        lo = max(start, end - width)
        found = fires_between(spec, lo, end)
        if len(found) >= n or lo == start:
            return found[-n:] if n else []
        width *= 2


def jitter_offset(spec: ScheduleSpec, fire: datetime) -> timedelta:
    """Deterministic delay in ``[0, spec.jitter)`` for this pipeline and fire time, always shorter than the gap to
    the next fire.

    The one rule of jitter: a fire's run starts before the next fire time, so the starts come in the order of the
    fires (what :func:`plan_fires` and the scheduler's wake-up rely on). :func:`check_schedule` refuses a jitter
    not shorter than the schedule's :func:`shortest_gap`, so for a valid schedule this is ``frac * jitter`` as
    ever; the delay is scaled into the gap instead only where the gap is shorter than the jitter: a spring-forward
    day shortening a cron gap, or a spec stored before the check (``* * * * *`` with ``jitter = "3m"`` made the
    daemon spin without starting a run).
    """
    if not spec.jitter:
        return timedelta(0)
    key = f"{spec.pipeline}\0{_aware(fire).astimezone(_UTC).isoformat()}".encode()
    frac = int.from_bytes(hashlib.sha256(key).digest()[:8], "big") / 2**64
    if spec.every is not None and spec.jitter < spec.every:  # every gap of the grid is ``every``: none to compute
        return timedelta(seconds=round(frac * spec.jitter, 6))
    gap = next_fire(spec, fire) - _aware(fire)
    if spec.jitter < gap.total_seconds():
        return timedelta(seconds=round(frac * spec.jitter, 6))
    return min(timedelta(seconds=round(frac * gap.total_seconds(), 6)), gap - _US)


def start_time(spec: ScheduleSpec, fire: datetime) -> datetime:
    """When the run for ``fire`` starts: the fire time plus its jitter."""
    return _aware(fire) + jitter_offset(spec, fire)


def plan_fires(spec: ScheduleSpec, last_fire: datetime | None, now: datetime, *,
               grace: float = MISFIRE_GRACE) -> FirePlan:
    """Apply the catch-up policy to the fires in ``(last_fire, now]``.

    A fire is *due* once its start time (fire + jitter) is ``<= now``. Of the
    due fires, the most recent one is *on time* if its start was at most
    ``grace`` seconds ago; every other due fire was *missed* (the daemon was
    down or asleep). Policies:

    * ``skip``: start the on-time fire only; missed ones are dropped;
    * ``latest``: start the most recent due fire (on time or not);
    * ``all``: start every due fire, at most ``catchup_max`` (the most
      recent ones; older ones beyond the cap are dropped and counted).

    Starts come in the order of the fires (:func:`jitter_offset` keeps each
    one before the next fire time), so of the fires up to ``now`` only the
    newest can still be ahead of its start: the two newest decide what is
    due, and the oldest fire after ``last_fire`` is due whenever its start
    (what the scheduler wakes up for) has passed.

    ``last_fire=None`` (never fired, no stored state) has no missed fires:
    nothing is due, and ``FirePlan.last_fire`` stays None; the caller stores
    ``now`` as the first watermark. A fire equal to ``last_fire`` is never
    returned again. Fires not yet due stay after the returned watermark, so
    none is lost.
    """
    now = _aware(now)
    if last_fire is None:
        return FirePlan([], 0, None)
    last_fire = _aware(last_fire)
    if spec.catchup == "all":
        window = latest_fires(spec, last_fire, now, spec.catchup_max + 1)
    else:
        window = latest_fires(spec, last_fire, now, 2)
    # A fire whose jittered start is still ahead is not due: only the newest can be (each start is before the next
    # fire, and every fire but the newest has its next one by now).
    due = window[:-1] if window and start_time(spec, window[-1]) > now else window
    if not due:
        return FirePlan([], 0, last_fire)
    newest = due[-1]
    total_due, capped = _count_due(spec, last_fire, newest, window, due)
    on_time = (now - start_time(spec, newest)).total_seconds() <= grace
    if spec.catchup == "skip":
        fires = [newest] if on_time else []
    elif spec.catchup == "latest":
        fires = [newest]
    else:
        fires = due[-spec.catchup_max:]
    dropped = [f for f in due if f not in fires]
    missed = total_due - len(fires)
    latest_missed = None
    if missed:
        # The newest fire not started: a dropped one of the window, or else the fire before the oldest started (the
        # window held only fires that start, one of them behind its jitter: the report named a started fire).
        before = dropped[-1:] or (latest_fires(spec, last_fire, fires[0] - timedelta(microseconds=1), 1) if fires else [])
        latest_missed = before[-1] if before else None
    return FirePlan(fires, missed, newest, latest_missed, capped)


def _count_due(spec: ScheduleSpec, last_fire: datetime, newest: datetime,
               window: list[datetime], due: list[datetime]) -> tuple[int, bool]:
    """Number of fires in ``(last_fire, newest]``, and whether it is a lower bound (for cron, counting stops at
    ``MISSED_COUNT_CAP``)."""
    if window and window[0] > last_fire and next_fire(spec, last_fire) == window[0]:
        return len(due), False
    if spec.every is not None:
        return math.ceil((newest - last_fire).total_seconds() / spec.every - 1e-9), False
    counted = len(fires_between(spec, last_fire, newest, limit=MISSED_COUNT_CAP))
    return counted, counted >= MISSED_COUNT_CAP


def due_fires(spec: ScheduleSpec, last_fire: datetime | None, now: datetime, *,
              grace: float = MISFIRE_GRACE) -> list[datetime]:
    """The fire times to start now (see :func:`plan_fires` for the policy)."""
    return plan_fires(spec, last_fire, now, grace=grace).fires


def admit(spec: ScheduleSpec, active_runs: int) -> Decision:
    """May a fire start a run when ``active_runs`` of this pipeline are queued or running?

    ``start`` below ``max_active_runs`` (or without a limit); at the limit,
    ``wait`` or ``skip`` according to ``on_max_active``, with the reason.
    """
    limit = spec.max_active_runs
    if limit is None or active_runs < limit:
        return Decision("start", f"{active_runs} active run(s), limit {limit if limit else 'none'}")
    reason = f"{active_runs} active run(s) reached max_active_runs = {limit}"
    if spec.on_max_active == "skip":
        return Decision("skip", reason + "; on_max_active = skip drops this fire")
    return Decision("wait", reason + "; on_max_active = wait holds this fire until one finishes")


def _aware(t: datetime) -> datetime:
    if t.tzinfo is None or t.utcoffset() is None:
        raise ValueError(f"naive datetime {t!r}: pass timezone-aware times")
    return t


def same_grid(a: ScheduleSpec, b: ScheduleSpec) -> bool:
    """Whether two specs fire at the same times (an edit of only its catch-up or overlap rules keeps them)."""
    return a.grid() == b.grid()
