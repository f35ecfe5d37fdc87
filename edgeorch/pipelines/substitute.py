"""``{name}`` placeholders in task strings: checked at parse time, substituted at run time."""

from __future__ import annotations

import re
import string
from typing import Any, Iterable, Mapping

from ..tomlcheck import suggest

BUILTIN_PLACEHOLDERS = ("run_id", "task", "attempt", "output_dir", "checkpoint_dir", "run_dir", "pipeline_dir",
                        "fire_time", "fire_date")
"""Names usable as ``{name}`` besides the params."""

FIRE_TIME_ENV = "EDGEORCH_FIRE_TIME"
FIRE_DATE_ENV = "EDGEORCH_FIRE_DATE"
"""The fire a run processes (a nightly job's "logical date"): a scheduled run's fire time in its schedule's timezone
(ISO 8601, with the offset) and that day (``YYYY-MM-DD``); any other run's creation time, in the machine's local
time. In every task's environment and as ``{fire_time}`` and ``{fire_date}``; part of the cache key of a task that
names one (two nights' runs of a cached extract of ``{fire_date}`` are two results)."""

FIRE_PLACEHOLDERS = {"fire_time": FIRE_TIME_ENV, "fire_date": FIRE_DATE_ENV}


def fire_of_created(created_at: float) -> dict[str, str]:
    """The fire variables of a run no schedule started: its creation time, local, to the second."""
    from datetime import datetime

    local = datetime.fromtimestamp(int(created_at)).astimezone()
    return {FIRE_TIME_ENV: local.isoformat(), FIRE_DATE_ENV: local.date().isoformat()}


def fire_names_used(texts: Iterable[str]) -> tuple[str, ...]:
    """Which of ``fire_time``/``fire_date`` the strings name as placeholders (sorted)."""
    used: set[str] = set()
    for text in texts:
        if "{fire_" in text:
            try:
                used.update(f for _, f, _, _ in string.Formatter().parse(text) if f in FIRE_PLACEHOLDERS)
            except ValueError:
                continue
    return tuple(sorted(used))


_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
"""What a placeholder's name looks like (a param's or a built-in's)."""


def strings_in(value: Any, prefix: str = "") -> Iterable[tuple[str, str]]:
    """Every string in nested tables and lists, with its dotted/indexed path below ``prefix``."""
    if isinstance(value, str):
        yield prefix, value
    elif isinstance(value, dict):
        for k, v in value.items():
            yield from strings_in(v, f"{prefix}.{k}" if prefix else str(k))
    elif isinstance(value, (list, tuple)):  # a TOML array, or a record's tuple of them
        for i, v in enumerate(value):
            yield from strings_in(v, f"{prefix}[{i}]")


_JINJA = re.compile(r"\{\{\s+([A-Za-z_][\w.]*)\s+\}\}")
"""``{{ ds }}``: another tool's template (Airflow's Jinja), which would stay as the literal text ``{ ds }``."""


def placeholder_problem(text: str, known: set[str]) -> tuple[str, str] | None:
    """``(message, expected)`` if ``text`` has a malformed or unknown ``{placeholder}``."""
    jinja = _JINJA.search(text)
    if jinja is not None:
        return (f"{jinja.group(0)} is a Jinja template, which edgeorch does not fill in (it would stay the literal "
                f"text {{ {jinja.group(1)} }})", "'{name}' placeholders: a param or a built-in such as {fire_date} "
                "(write {{ and }} for literal braces)")
    try:
        parsed = [(f, spec, conv) for _, f, spec, conv in string.Formatter().parse(text) if f is not None]
    except ValueError as exc:
        return f"malformed placeholder: {exc}", "'{name}' placeholders, with '{{' and '}}' for literal braces"
    for f, spec, conv in parsed:
        if not _NAME.fullmatch(f):  # shell braces, awk, JSON: literal braces the writer did not double
            shown = f"{{{f}{'!' + conv if conv else ''}{':' + spec if spec else ''}}}"
            if f.strip() in known and not (spec or conv):  # "{ epochs }": the placeholder, spaced
                return f"{shown} is not a placeholder (did you mean {{{f.strip()}}}?)", "'{name}' with no spaces"
            return (f"{shown} is not a placeholder", "'{name}' placeholders, and literal braces doubled:"
                    f" {{{shown}}}")
        if spec or conv:
            # Values are substituted as text; a format spec would fail (or mislead) at run time.
            return (f"placeholder {{{f}{'!' + conv if conv else ''}{':' + spec if spec else ''}}} has a format spec or conversion",
                    "a plain '{name}' placeholder (format the value in the task itself)")
    fields = [f for f, _, _ in parsed]
    for f in fields:
        if f not in known:
            close = suggest(f, known)
            hint = f" (did you mean {{{close}}}?)" if close else ""
            if not close and f.isupper():  # ${DATA_DIR} in a shell command: an environment variable, not ours
                hint = f" (an environment variable? write ${f}, or ${{{{{f}}}}} for the braces)"
            return f"unknown placeholder {{{f}}}{hint}", f"a param or one of {', '.join(sorted(known))}"
    return None


def substitute(text: str, values: Mapping[str, Any]) -> str:
    """Replace ``{name}`` placeholders (validated beforehand) with ``values``."""
    return string.Formatter().vformat(text, (), {k: format_value(v) for k, v in values.items()})


def substitute_deep(value: Any, values: Mapping[str, Any]) -> Any:
    """:func:`substitute` through nested lists and tables (kind options)."""
    if isinstance(value, str):
        return substitute(value, values)
    if isinstance(value, dict):
        return {k: substitute_deep(v, values) for k, v in value.items()}
    if isinstance(value, list):
        return [substitute_deep(v, values) for v in value]
    return value


def format_value(v: Any) -> str:
    """A param's value as a placeholder writes it: booleans as ``true``/``false``, the rest as ``str``."""
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)
