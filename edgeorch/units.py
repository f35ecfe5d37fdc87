"""Parsing of durations and sizes written by people in TOML files.

Pure functions; they raise ``ValueError`` with a short reason, which callers
wrap into an error naming the file and field.
"""

from __future__ import annotations

import re

_UNIT_WORDS: dict[float, tuple[str, ...]] = {
    0.001: ("milliseconds", "millisecond", "msec", "ms"),
    1.0: ("seconds", "second", "secs", "sec", "s"),
    60.0: ("minutes", "minute", "mins", "min", "m"),
    3600.0: ("hours", "hour", "hrs", "hr", "h"),
    86400.0: ("days", "day", "d"),
    604800.0: ("weeks", "week", "w"),
}
_DURATION_UNITS = {word: seconds for seconds, words in _UNIT_WORDS.items() for word in words}
_NUMBER = r"[0-9]+(?:\.[0-9]+)?"  # ASCII digits: Python's \d takes '٣٠' too, a JSON Schema's does not
_UNIT = "(?:" + "|".join(sorted(_DURATION_UNITS, key=len, reverse=True)) + ")(?![a-z])"
_SPACE = "[ \t]*"  # spaces and tabs only: \s means other characters in Python and in ECMA-262
DURATION_PATTERN = rf"^{_SPACE}(?:{_NUMBER}|(?:{_NUMBER}{_SPACE}{_UNIT}{_SPACE})+){_SPACE}$"
"""The strings :func:`parse_duration` takes, as a regular expression both Python and JSON Schema read (the
published pipeline schema carries it verbatim; a test holds them equal)."""
_DURATION_RE = re.compile(DURATION_PATTERN)
_PART_RE = re.compile(rf"({_NUMBER}){_SPACE}({_UNIT})")
_SIZE_RE = re.compile(rf"^{_SPACE}({_NUMBER}){_SPACE}([kmgtp]?)(i?b?){_SPACE}$", re.IGNORECASE)  # ASCII, as durations
_SIZE_UNITS = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4, "p": 1024**5}

DURATION_EXPECTED = "a number of seconds or a string like '500ms', '30s', '15m', '1h30m', '2 hours', '1d'"
MAX_DURATION_S = 100 * 365 * 86400.0
"""The longest duration taken (100 years): a longer one is a typo, and as a time back from now it has no date."""
SIZE_EXPECTED = "a number of bytes or a string like '512M', '8G', '1.5GiB'"
MAX_SIZE = 1024**6
"""The largest size taken (1 EiB): a larger one is a typo (``"1<400 zeros>G"`` was infinity, and every reload,
``validate`` and daemon start met an OverflowError), and beyond SQLite's integers."""
SIZE_TOO_LARGE = "larger than 1 EiB"
"""The ``ValueError`` text of a size over :data:`MAX_SIZE`: callers say it rather than "not a size"."""


def parse_duration(value: object) -> float:
    """Seconds for ``value``: a non-negative number, a number as a string (seconds), or parts
    ``'<n><unit>'`` written one after another and summed (``'1h30m'``, ``'1h 30m'``, ``'2 min'``).

    Units, lower case: ms/msec/millisecond(s), s/sec(s)/second(s), m/min(s)/minute(s), h/hr(s)/hour(s),
    d/day(s), w/week(s) (as systemd's time spans; ``M`` is not a minute, nor a month). Booleans are refused
    (TOML ``true`` is not a duration), and so is more than :data:`MAX_DURATION_S` (100 years).
    """
    if isinstance(value, bool):
        raise ValueError("not a duration")
    if isinstance(value, (int, float)):
        if value < 0 or value != value:
            raise ValueError("negative or NaN duration")
        if value > MAX_DURATION_S:  # before float(): an integer of 400 digits is an OverflowError there
            raise ValueError(TOO_LONG)
        return _bounded(float(value))
    if isinstance(value, str):
        if _DURATION_RE.fullmatch(value):
            parts = _PART_RE.findall(value)
            if not parts:  # a bare number: seconds
                return _bounded(float(value))
            return _bounded(sum(float(n) * _DURATION_UNITS[unit] for n, unit in parts))
    raise ValueError("not a duration")


TOO_LONG = "longer than 100 years"
"""The ``ValueError`` text of a duration over :data:`MAX_DURATION_S`: callers say it rather than "not a duration"."""


def _bounded(seconds: float) -> float:
    if seconds > MAX_DURATION_S:
        raise ValueError(TOO_LONG)
    return seconds


def parse_size(value: object) -> int:
    """Bytes for ``value``: a non-negative integer, or ``'<n><K|M|G|T|P>[i][B]'``.

    Suffixes are binary (``8G`` is 8 GiB), as nvidia-smi and free(1) report.
    """
    if isinstance(value, bool):
        raise ValueError("not a size")
    if isinstance(value, int):
        if value < 0:
            raise ValueError("negative size")
        return _bounded_size(value)
    if isinstance(value, float) and 0 <= value:  # not NaN (nor negative); TOML's inf is too large below
        return _bounded_size(value)
    if isinstance(value, str):
        m = _SIZE_RE.match(value)
        if m and (m.group(3) == "" or m.group(3).lower() in ("b", "ib")):
            return _bounded_size(float(m.group(1)) * _SIZE_UNITS[m.group(2).lower()])
    raise ValueError("not a size")


def size_refusal(exc: ValueError) -> tuple[str, str]:
    """What an error says of a size :func:`parse_size` refused (its ``ValueError``): the problem and what is
    expected, for the callers that name the file and field."""
    if str(exc) == SIZE_TOO_LARGE:  # a size, just beyond what is taken: said as such
        return f"is {SIZE_TOO_LARGE}", "a size of at most 1 EiB"
    return "is not a valid size", SIZE_EXPECTED


def _bounded_size(size: float) -> int:
    if size > MAX_SIZE:  # inf included
        raise ValueError(SIZE_TOO_LARGE)
    return int(size)
