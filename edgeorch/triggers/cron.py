"""Cron expressions with crontab(5) semantics: parse once, then find matching wall times.

Pure: no clock, no time zones. :func:`parse_cron` turns an expression into a
:class:`Cron` (the allowed values of each field); :meth:`Cron.next_after`
returns the first matching *naive wall-clock* minute after a given one. The
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
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from functools import lru_cache

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

SEARCH_YEARS = 400
"""The Gregorian calendar repeats every 400 years: a possible day occurs within one cycle."""


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


@dataclass(frozen=True)
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

    def day_matches(self, day: date) -> bool:
        """Does ``day`` match the month, day-of-month and day-of-week fields?"""
        if day.month not in self.months:
            return False
        dom_ok = day.day in self.doms
        dow_ok = (day.weekday() + 1) % 7 in self.dows  # Python: Monday = 0; cron: Sunday = 0
        if self.dom_star or self.dow_star:
            return dom_ok and dow_ok
        return dom_ok or dow_ok

    def matches(self, wall: datetime) -> bool:
        """Does the minute of naive wall time ``wall`` match (seconds ignored)?"""
        return wall.minute in self.minutes and wall.hour in self.hours and self.day_matches(wall.date())

    def next_after(self, wall: datetime) -> datetime:
        """The first matching wall-clock minute strictly after naive ``wall`` (seconds 0).

        Walks days, jumping over months the month field excludes; raises
        :class:`CronError` only past the last representable date (year 9999).
        """
        start = wall.replace(second=0, microsecond=0, tzinfo=None) + timedelta(minutes=1)
        day, hour, minute = start.date(), start.hour, start.minute
        limit = day.year + SEARCH_YEARS
        try:
            while day.year <= limit:
                if day.month not in self.months:
                    day, hour, minute = self._next_month_start(day), 0, 0
                    continue
                if self.day_matches(day):
                    at = self._first_time(hour, minute)
                    if at is not None:
                        return datetime.combine(day, at)
                day, hour, minute = day + timedelta(days=1), 0, 0
        except OverflowError:
            pass
        raise CronError(f"no fire between {wall:%Y-%m-%d} and the year {min(limit, 9999)}")  # pragma: no cover

    def _first_time(self, hour: int, minute: int) -> time | None:
        """The first allowed (hour, minute) at or after the given one on the same day."""
        i = bisect.bisect_left(self.hours, hour)
        if i < len(self.hours) and self.hours[i] == hour:
            j = bisect.bisect_left(self.minutes, minute)
            if j < len(self.minutes):
                return time(hour, self.minutes[j])
            i += 1
        if i < len(self.hours):
            return time(self.hours[i], self.minutes[0])
        return None

    def _next_month_start(self, day: date) -> date:
        """The first day of the next month (after ``day``'s) that the month field allows."""
        y, m = day.year, day.month
        for _ in range(12):
            y, m = (y + 1, 1) if m == 12 else (y, m + 1)
            if m in self.months:
                return date(y, m, 1)
        raise AssertionError("empty month field")  # pragma: no cover - parse refuses it


@lru_cache(maxsize=512)
def parse_cron(expr: str) -> Cron:
    """Parse ``expr`` (five fields or a macro) into a :class:`Cron`.

    Raises :class:`CronError` naming the field and the offending part, or
    saying why the expression never fires. Cached: schedules re-parse on
    every fire computation.
    """
    text = expr.strip()
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
