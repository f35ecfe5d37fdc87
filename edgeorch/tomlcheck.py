"""Strict reading of TOML tables with errors that name file, field and value.

``load_toml`` turns a syntax error into an :class:`EdgeorchError` with the line
and column. :class:`TableReader` pulls typed values out of one table, collects
every problem (so ``edgeorch validate`` reports all of them at once, not one
per run) and flags unknown keys with a did-you-mean suggestion.
"""

from __future__ import annotations

import builtins
import math
import re
import tomllib
from pathlib import Path, PurePosixPath
from typing import Any, Callable, Mapping, TypeVar

from .errors import EdgeorchError
from .units import DURATION_EXPECTED, TOO_LONG, parse_duration, parse_size, size_refusal

E = TypeVar("E", bound=EdgeorchError)
T = TypeVar("T")

_MISSING: Any = object()
_TOML_POS = re.compile(r"\(at line (\d+), column (\d+)\)")


def load_toml(path: Path, error_cls: type[E]) -> dict[str, Any]:
    """Parse ``path``; raise ``error_cls`` naming the file (and line/column) on failure."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise error_cls(f"cannot read file: {exc.strerror}", file=str(path)) from None
    return parse_toml_bytes(raw, path, error_cls)


def parse_toml_bytes(raw: bytes, path: Path | str, error_cls: type[E]) -> dict[str, Any]:
    """Parse TOML ``raw`` read from ``path`` (named in errors, with line/column); raise ``error_cls``."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise error_cls(f"not UTF-8 text (byte {exc.start})", file=str(path), expected="a UTF-8 TOML file") from None
    try:
        return tomllib.loads(text)
    except ValueError as exc:
        if not isinstance(exc, tomllib.TOMLDecodeError):  # Python's limit on an integer's digits (4,300)
            raise error_cls(f"malformed TOML: {exc}", file=str(path),
                            expected="numbers of a sensible size (no setting takes one of thousands of digits)") from None
        msg = str(exc)
        m = _TOML_POS.search(msg)
        line = col = None
        if m:
            line, col = int(m.group(1)), int(m.group(2))
            msg = _TOML_POS.sub("", msg).strip()
        elif "(at end of document)" in msg:
            line = text.count("\n") + (0 if text.endswith("\n") else 1)
            msg = msg.replace("(at end of document)", "at the end of the file").strip()
        if msg.startswith("Cannot overwrite a value") and line is not None:  # which key, tomllib does not say
            key = text.splitlines()[line - 1].split("=", 1)[0].strip() if line <= len(text.splitlines()) else ""
            if key:
                msg = f"{key} is set twice in one table (Cannot overwrite a value)"
        raise error_cls(f"malformed TOML: {msg}", file=str(path), line=line, column=col) from None


def a_or_an(word: str) -> str:
    """``word`` with its indefinite article, for messages: ``an int``, ``a float``, ``an object``."""
    return f"{'an' if word[:1].lower() in 'aeio' else 'a'} {word}"


SYNONYMS = {
    "after": "needs", "depends_on": "needs", "depends": "needs", "dependencies": "needs", "deps": "needs",
    "upstream": "needs", "requires": "needs", "wait_for": "needs",
    "cmd": "command", "exec": "command", "args": "command",
    "max_retries": "retries", "retry": "retries", "attempts": "retries",
    "environment": "env", "env_vars": "env",
    "dag_id": "name", "pipeline_name": "name", "job_name": "name",
    "schedule_interval": "schedule", "cron": "schedule", "crontab": "schedule",
    "execution_timeout": "timeout", "timeout_seconds": "timeout",
    "tz": "timezone", "directory": "dir", "path": "dir",
}
"""Names other tools give a key (Airflow, Dagster, Prefect, CI files): the key a reader meant, when it is one
of the keys allowed where it was written."""


def suggest(name: str, choices: list[str] | set[str]) -> str | None:
    """The closest of ``choices`` to ``name`` (or the key it is another tool's name for, :data:`SYNONYMS`), or
    ``None`` when nothing is close."""
    meant = SYNONYMS.get(name)
    if meant is not None and meant in choices:
        return meant
    if len(name) > 1 and name[::-1] in choices:  # written the other way round: '=>' is '>=' (difflib said '>')
        return name[::-1]
    import difflib  # here: only a mistake pays for it, not every command's start-up (issue 11)

    # A typo of a key (retrys, nmae, drfit: 0.75 or more), not any word sharing two letters (bogus -> gpus: 0.67);
    # a name of three letters or fewer moves the ratio in big steps (aeg -> age, cc -> c: 0.67), so 0.6 there.
    found = difflib.get_close_matches(name, sorted(choices), n=1, cutoff=0.6 if len(name) <= 3 else 0.7)
    return found[0] if found else None


def type_name(value: Any) -> str:
    """A TOML-flavoured type name for messages."""
    return {
        bool: "boolean",
        int: "integer",
        float: "float",
        str: "string",
        list: "array",
        dict: "table",
    }.get(type(value), type(value).__name__)


class TableReader:
    """Typed, collecting access to one TOML table.

    ``prefix`` is the dotted path of the table (``tasks.train``); problems go to
    ``errors`` as ``error_cls`` instances and the getter returns its default, so
    one pass finds every problem.
    """

    def __init__(
        self,
        data: Any,
        *,
        file: str,
        prefix: str,
        errors: list[EdgeorchError],
        error_cls: type[EdgeorchError],
        context: str = "",
    ) -> None:
        self.file = file
        self.prefix = prefix
        self.errors = errors
        self.error_cls = error_cls
        self.context = context
        self.seen: set[str] = set()
        if not isinstance(data, dict):
            self.fail(None, "must be a table", value=type_name(data), expected="a TOML table")
            data = {}
        self.data: dict[str, Any] = data

    def field(self, key: str | None) -> str:
        if key is None:
            return self.prefix
        return f"{self.prefix}.{key}" if self.prefix else key

    def fail(self, key: str | None, message: str, *, value: Any = None, expected: str | None = None, hint: str | None = None) -> None:
        """Record a problem with ``key`` of this table."""
        msg = f"{self.context}{message}" if self.context else message
        self.errors.append(
            self.error_cls(msg, file=self.file, field=self.field(key), value=value, expected=expected, hint=hint)
        )

    def has(self, key: str) -> bool:
        return key in self.data

    def raw(self, key: str, default: Any = None) -> Any:
        self.seen.add(key)
        return self.data.get(key, default)

    def _get(self, key: str, default: Any, required: bool, check: Callable[[Any], bool], expected: str) -> Any:
        self.seen.add(key)
        if key not in self.data:
            if required:
                self.fail(key, "is required", expected=expected)
            return default
        value = self.data[key]
        if not check(value):
            self.fail(key, f"has the wrong type ({type_name(value)})", value=value, expected=expected)
            return default
        return value

    def choice(self, key: str, choices: list[str] | tuple[str, ...], default: Any = None) -> Any:
        value = self._get(key, _MISSING, False, lambda v: isinstance(v, str), f"one of {', '.join(choices)}")
        if value is _MISSING:
            return default
        if value not in choices:
            close = suggest(value, list(choices))
            self.fail(
                key, "has an unknown value", value=value, expected=f"one of {', '.join(choices)}",
                hint=f"did you mean {close!r}?" if close else None,
            )
            return default
        return value

    def str_list(self, key: str, default: Any = None, *, required: bool = False) -> Any:
        value = self._get(
            key, _MISSING, required,
            lambda v: isinstance(v, list) and all(isinstance(x, str) for x in v), "an array of strings",
        )
        return default if value is _MISSING else list(value)

    def duration(self, key: str, default: Any = None) -> Any:
        self.seen.add(key)
        if key not in self.data:
            return default
        try:
            return parse_duration(self.data[key])
        except ValueError as exc:
            if str(exc) == TOO_LONG:  # a duration, just beyond what is taken: said as such
                self.fail(key, f"is {TOO_LONG}", value=self.data[key], expected="a duration of at most 100 years")
            else:
                self.fail(key, "is not a valid duration", value=self.data[key], expected=DURATION_EXPECTED)
            return default

    def size(self, key: str, default: Any = None) -> Any:
        self.seen.add(key)
        if key not in self.data:
            return default
        try:
            return parse_size(self.data[key])
        except ValueError as exc:
            problem, expected = size_refusal(exc)
            self.fail(key, problem, value=self.data[key], expected=expected)
            return default

    def table(self, key: str, default: Any = None) -> Any:
        value = self._get(key, _MISSING, False, lambda v: isinstance(v, dict), "a table")
        return default if value is _MISSING else value

    def sub(self, key: str, context: str = "") -> "TableReader":
        """A reader for the sub-table ``key`` (an empty one when absent)."""
        self.seen.add(key)
        return TableReader(
            self.data.get(key, {}), file=self.file, prefix=self.field(key), errors=self.errors,
            error_cls=self.error_cls, context=context or self.context,
        )

    def name_or_table(self, key: str, expected: str) -> "TableReader | None":
        """A reader for ``key`` when it is a table, or a name (read as ``{name = "..."}``).

        None when the key is absent, or (with an error naming ``expected``) of any other type.
        """
        if not self.has(key):
            return None
        value = self.raw(key)
        if isinstance(value, str):
            value = {"name": value}
        if not isinstance(value, dict):
            self.fail(key, "has the wrong type", value=value, expected=expected)
            return None
        return TableReader(value, file=self.file, prefix=self.field(key), errors=self.errors,
                           error_cls=self.error_cls, context=self.context)

    def output_path(self, key: str) -> str:
        """A path under the task's output folder: relative and without ``..`` (``""`` when absent)."""
        path = self.str(key, "", nonempty=False)
        if path and (path.startswith("/") or ".." in PurePosixPath(path).parts):
            self.fail(key, "must be relative to the task's output folder", value=path,
                      expected="a relative path without '..' (under $EDGEORCH_OUTPUT_DIR)")
            return ""
        return path or ""

    def finish(self, allowed: list[str] | None = None, *, elsewhere: Mapping[str, str] | None = None) -> None:
        """Report every key that no getter asked for (unknown keys, with did-you-mean; ``elsewhere``: key -> a
        hint saying where it belongs, for a key without a near name)."""
        known = set(allowed) if allowed is not None else self.seen
        for key in self.data:
            if key not in known:
                close = suggest(key, known)
                self.fail(
                    key, "unknown key", expected=f"one of {', '.join(sorted(known))}" if known else None,
                    hint=f"did you mean {close!r}?" if close else (elsewhere or {}).get(key),
                )

    # The readers named after builtins come last: in the class, each stands for its builtin in the annotations
    # after it (``builtins.str`` where one must be meant).
    def str(self, key: str, default: Any = None, *, required: bool = False, nonempty: bool = True) -> Any:
        value = self._get(key, _MISSING, required, lambda v: isinstance(v, str), "a string")
        if value is _MISSING:
            return default
        if nonempty and not value.strip():
            self.fail(key, "must not be empty", value=value, expected="a non-empty string")
            return default
        return value

    def int(self, key: builtins.str, default: Any = None, *, required: bool = False, minimum: int | None = None, maximum: int | None = None) -> Any:
        rng = _range_text(minimum, maximum)
        value = self._get(
            key, _MISSING, required, lambda v: isinstance(v, int) and not isinstance(v, bool), f"an integer{rng}"
        )
        if value is _MISSING:
            return default
        if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
            self.fail(key, "is out of range", value=value, expected=f"an integer{rng}")
            return default
        return value

    def number(self, key: builtins.str, default: Any = None, *, minimum: float | None = None) -> Any:
        value = self._get(
            key, _MISSING, False, lambda v: isinstance(v, (int, float)) and not isinstance(v, bool), "a number"
        )
        if value is _MISSING:
            return default
        try:
            finite = math.isfinite(value)
        except OverflowError:  # an integer no float holds (1 and 400 zeros): as infinite, for a setting
            finite = False
        if not finite:  # TOML's nan and inf: no setting means either (a backoff of inf waited nan s)
            self.fail(key, "is not a finite number", value=value,
                      expected="a number" + (f" >= {minimum}" if minimum is not None else ""))
            return default
        if minimum is not None and value < minimum:
            self.fail(key, "is out of range", value=value, expected=f"a number >= {minimum}")
            return default
        return float(value)

    def bool(self, key: builtins.str, default: Any = None) -> Any:
        value = self._get(key, _MISSING, False, lambda v: isinstance(v, bool), "true or false")
        return default if value is _MISSING else value


def _range_text(minimum: int | None, maximum: int | None) -> str:
    if minimum is not None and maximum is not None:
        return f" from {minimum} to {maximum}"
    if minimum is not None:
        return f" >= {minimum}"
    if maximum is not None:
        return f" <= {maximum}"
    return ""
