"""Cron expressions: crontab(5) parsed and validated here, fire times computed by APScheduler.

Pure: no clock, no time zones. :func:`parse_cron` turns an expression into a
:class:`Cron` (the allowed values of each field) and translates it into
APScheduler 3 triggers (:func:`to_trigger`); :meth:`Cron.next_after` asks
them for the first matching *naive wall-clock* minute after a given one. The
caller (:mod:`.schedule`) maps wall times to instants in the schedule's zone.

Semantics (Vixie cron / cronie, see ``docs/triggers.md``):

* five fields: minute 0-59, hour 0-23, day-of-month 1-31, month 1-12,
  day-of-week 0-7 where 0 and 7 are Sunday (1-5 is Monday-Friday);
* each field is a comma list of ``*``, ``N``, ``A-B``, ``*/S``, ``A-B/S``
  and ``A/S`` (= ``A-<max>/S``); month and day-of-week take English names
  (``jan``-``dec``, ``sun``-``sat``, any case), in ranges too (``mon-fri``;
  ``sun`` closing a range is 7, so ``fri-sun`` works);
* day-of-month and day-of-week: when both are restricted, a day matches if
  EITHER matches; when either field starts with ``*`` (``*``, ``*/2``) a day
  must match both (the Vixie rule: ``*/2`` counts as unrestricted here);
* macros ``@yearly``/``@annually``, ``@monthly``, ``@weekly``, ``@daily``/
  ``@midnight``, ``@hourly``; ``@reboot`` is refused (no schedule).

An expression that can never fire (``0 0 30 2 *``) is refused by
:func:`parse_cron`, so a :class:`Cron` always has a next fire.

Why the crontab text is not handed to ``CronTrigger.from_crontab``: APScheduler
3 numbers weekdays from Monday = 0 (so ``1-5`` would be Tuesday-Saturday),
refuses 7, always ANDs day-of-month with day-of-week, and refuses steps
longer than their range that crontab(5) accepts (``0 */30 * * *`` = hour 0).
So the crontab(5) text is parsed here into value sets, and APScheduler gets
those sets (:func:`_field_text`), weekdays as names ``mon``..``sun``; the OR
rule becomes an :class:`~apscheduler.triggers.combining.OrTrigger`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import field as dc_field
from datetime import datetime, timedelta, timezone
from functools import lru_cache
from typing import TYPE_CHECKING

from ..records import frozen

if TYPE_CHECKING:  # pragma: no cover
    from apscheduler.triggers.base import BaseTrigger

FIELD_NAMES = ("minute", "hour", "day-of-month", "month", "day-of-week")
EXPECTED = ("5 fields: minute hour day-of-month month day-of-week (e.g. '0 2 * * *', '30 9 * * mon-fri'), "
            "or @hourly, @daily, @weekly, @monthly, @yearly")

MACROS = {
    "@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *", "@monthly": "0 0 1 * *", "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *", "@midnight": "0 0 * * *", "@hourly": "0 * * * *",
}

_MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
_DAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
# (low, high, names); names map to low + index.
_FIELDS: tuple[tuple[int, int, tuple[str, ...]], ...] = (
    (0, 59, ()), (0, 23, ()), (1, 31, ()), (1, 12, _MONTHS), (0, 7, _DAYS),
)
_MAX_DAYS = (31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)
"""Longest length of each month (February: leap years)."""

_APS_WEEK = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
"""Weekdays in APScheduler's order; they are passed by name (same names as ``_DAYS``), so its Monday = 0
numbering never shifts a day."""
_APS_FIRST_YEAR = 1970
"""APScheduler 3's first year (its year field's minimum)."""
_CYCLE_YEARS = 400
"""The Gregorian calendar repeats every 400 years (146097 days, a whole number of weeks)."""
_WALL = timezone.utc
"""Naive wall time is carried as UTC inside APScheduler: no DST there (schedule.py maps wall to instants)."""


class CronError(ValueError):
    """An expression that is not valid crontab(5), or that never fires.

    ``field`` names the cron field at fault ("day-of-week") or is None for the
    whole expression; the message says what was found and what is allowed.
    """

    def __init__(self, message: str, field: str | None = None) -> None:
        self.field = field
        super().__init__(f"{field}: {message}" if field else message)


class NeverFiresError(CronError):
    """A valid expression whose days never exist (``0 0 30 2 *``)."""


@frozen
class Cron:
    """A parsed expression: the allowed values of each field.

    ``dows`` uses 0 = Sunday .. 6 = Saturday (7 already folded into 0).
    ``dom_star``/``dow_star``: the field starts with ``*`` (see the module
    docstring for how they combine).
    """

    expr: str
    minutes: tuple[int, ...]
    hours: tuple[int, ...]
    doms: frozenset[int]
    months: frozenset[int]
    dows: frozenset[int]
    dom_star: bool
    dow_star: bool

    trigger: BaseTrigger = dc_field(init=False, repr=False, compare=False)
    """The APScheduler trigger computing the fire times (see :func:`to_trigger`)."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "trigger", to_trigger(self))

    def next_after(self, wall: datetime) -> datetime:
        """The first matching wall-clock minute strictly after naive ``wall`` (seconds 0).

        Computed by APScheduler on ``wall`` carried as UTC. APScheduler starts
        at 1970: an earlier ``wall`` is moved forward by whole 400-year
        Gregorian cycles (same weekdays, same leap years) and the answer moved
        back. Raises :class:`CronError` only past the year 9999.
        """
        cycles = 0
        try:
            start = wall.replace(second=0, microsecond=0, tzinfo=None) + timedelta(minutes=1)
            cycles = max(0, -(-(_APS_FIRST_YEAR - start.year) // _CYCLE_YEARS))
            start = start.replace(year=start.year + cycles * _CYCLE_YEARS)
            nxt = self.trigger.get_next_fire_time(None, start.replace(tzinfo=_WALL))
        except OverflowError:
            nxt = None
        if nxt is None:
            raise CronError(f"no fire between {wall:%Y-%m-%d %H:%M} and the end of the year 9999")
        return nxt.replace(tzinfo=None, year=nxt.year - cycles * _CYCLE_YEARS)


def to_trigger(cron: Cron) -> BaseTrigger:
    """The APScheduler 3 trigger for ``cron``, on naive wall time carried as UTC.

    One :class:`CronTrigger` when day-of-month and day-of-week combine by AND
    (either field starts with ``*``; an unrestricted field is ``*``), else
    the crontab(5) OR rule: an :class:`OrTrigger` of a day-of-month trigger
    and a day-of-week trigger (APScheduler returns the earlier fire).
    """
    # Imported here: APScheduler costs 0.1 s, and every pipeline parse checks its (usually absent) schedule.
    from apscheduler.triggers.combining import OrTrigger
    from apscheduler.triggers.cron import CronTrigger

    common = {"minute": _field_text(cron.minutes), "hour": _field_text(cron.hours),
              "month": _field_text(cron.months), "second": 0, "timezone": _WALL}
    days = _field_text(cron.doms)
    weekdays = ",".join(n for n in _APS_WEEK if _DAYS.index(n) in cron.dows)
    if len(cron.dows) == 7:
        weekdays = "*"
    if cron.dom_star or cron.dow_star:
        return CronTrigger(day=days, day_of_week=weekdays, **common)
    return OrTrigger([CronTrigger(day=days, day_of_week="*", **common),
                      CronTrigger(day="*", day_of_week=weekdays, **common)])


def _field_text(values: Iterable[int]) -> str:
    """APScheduler field text for exactly the set ``values``: ``a-b/s`` progressions and single values.

    The set is split into arithmetic progressions read off the sorted values
    (each of at least 3 values, or 2 adjacent ones), so every piece's step is
    within its range, as APScheduler requires; a crontab step is never passed
    through (``*/30`` in the hour field is hour 0 in crontab(5) but refused by
    APScheduler). Fewer pieces only keep APScheduler fast: it tries each one.
    """
    vs = sorted(values)
    parts: list[str] = []
    i = 0
    while i < len(vs):
        j = i + 1
        if j < len(vs):
            step = vs[j] - vs[i]
            while j + 1 < len(vs) and vs[j + 1] - vs[j] == step:
                j += 1
            if j - i >= 2 or step == 1:
                parts.append(f"{vs[i]}-{vs[j]}" + (f"/{step}" if step > 1 else ""))
                i = j + 1
                continue
        parts.append(str(vs[i]))
        i += 1
    return ",".join(parts)


@lru_cache(maxsize=512)
def parse_cron(expr: str) -> Cron:
    """Parse ``expr`` (five fields or a macro) into a :class:`Cron`.

    Raises :class:`CronError` naming the field and the offending part, or
    saying why the expression never fires. Cached: schedules re-parse on
    every fire computation.
    """
    text = expr.strip()
    if text.split("=", 1)[0] in ("CRON_TZ", "TZ") and "=" in text.split()[0]:
        raise CronError("sets a timezone with CRON_TZ=, which edgeorch does not read: write the five fields alone "
                        "and timezone = \"Area/City\" beside schedule")
    if text.startswith("@"):
        macro = MACROS.get(text.lower())
        if macro is None:
            raise CronError(f"unknown macro {text!r} (known: {', '.join(sorted(MACROS))}; @reboot is not a schedule)")
        text = macro
    parts = text.split()
    if len(parts) != 5:
        raise CronError(f"has {len(parts)} field(s), not 5 (seconds and years are not supported)")
    values = [_parse_field(p, i) for i, p in enumerate(parts)]
    dows = frozenset(d % 7 for d in values[4])
    cron = Cron(expr=expr, minutes=tuple(sorted(values[0])), hours=tuple(sorted(values[1])),
                doms=frozenset(values[2]), months=frozenset(values[3]), dows=dows,
                dom_star=parts[2].startswith("*"), dow_star=parts[4].startswith("*"))
    _check_fires(cron, parts)
    return cron


def _check_fires(cron: Cron, parts: list[str]) -> None:
    """Refuse an expression whose days never exist (``0 0 30 2 *``).

    With the OR rule a matching weekday exists in every month. Otherwise a
    day must be a (month, day-of-month) pair that exists in some year; each
    such date falls on every weekday within a 400-year cycle (Feb 29
    included), so any day-of-week field can be met.
    """
    if not (cron.dom_star or cron.dow_star):
        return
    if any(d <= _MAX_DAYS[m - 1] for m in cron.months for d in cron.doms):
        return
    months = ", ".join(_MONTHS[m - 1] for m in sorted(cron.months))
    raise NeverFiresError(f"never fires: day-of-month {parts[2]!r} does not occur in month {parts[3]!r} ({months})")


def _parse_field(text: str, index: int) -> set[int]:
    """The values a field allows (day-of-week: 0-7, folded later); raises CronError."""
    low, high, names = _FIELDS[index]
    field = FIELD_NAMES[index]
    out: set[int] = set()
    for item in text.split(","):
        out.update(_parse_item(item, low, high, names, field))
    return out


def _parse_item(item: str, low: int, high: int, names: tuple[str, ...], field: str) -> range:
    allowed = f"{low}-{high}" + (f" or {names[0]}-{names[-1]}" if names else "")
    if not item:
        raise CronError("empty list element", field)
    body, slash, step_text = item.partition("/")
    step = 1
    if slash:
        if not (step_text.isascii() and step_text.isdigit()) or int(step_text) == 0:
            raise CronError(f"step {step_text!r} in {item!r} is not a positive number", field)
        step = int(step_text)
    if body == "*":
        first, last = low, high
    else:
        a, dash, b = body.partition("-")
        first = _value(a, low, high, names, field, allowed, item)
        if dash:
            last = _value(b, low, high, names, field, allowed, item)
            if names is _DAYS and b.lower() == "sun" and first > 0:
                last = 7  # "fri-sun": sun closing a range is 7
            if first > last:
                raise CronError(f"range {item!r} runs backwards (start after end; ranges do not wrap)", field)
        else:
            last = high if slash else first  # "5/10" = "5-<max>/10"
    return range(first, last + 1, step)


def _value(text: str, low: int, high: int, names: tuple[str, ...], field: str, allowed: str, item: str) -> int:
    if text.isascii() and text.isdigit():
        n = int(text)
    elif text.lower() in names:
        n = low + names.index(text.lower())
    else:
        raise CronError(f"{text!r} in {item!r} is not a number" + (" or a name" if names else "")
                        + f" (allowed: {allowed})", field)
    if not low <= n <= high:
        raise CronError(f"{n} in {item!r} is out of range (allowed: {allowed})", field)
    return n
