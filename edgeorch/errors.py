"""Errors a user can meet.

Every error carries what a person needs to fix the cause: the file, the field
(a dotted path such as ``tasks.train.retries``), the value that was found and
what was expected. ``str(err)`` renders all of it on one or a few lines, so the
CLI prints it as is and never shows a traceback for bad input.

Subclasses also derive from the matching builtin (``ValueError``,
``LookupError``) so generic handlers keep working.
"""

from __future__ import annotations

import re

from typing import Any


EXIT_INTERNAL = 70
"""The exit code of a bug (an exception that is not an :class:`EdgeorchError`): sysexits' ``EX_SOFTWARE``. Here,
not in the CLI's list alone: a daemon's JSON log says it too (:func:`edgeorch.observe.jsonlog.fatal_as_json`)."""


class EdgeorchError(Exception):
    """Base class of every error edgeorch raises on purpose.

    ``exit_code`` is what the CLI exits with when this error reaches it.
    """

    exit_code: int = 1
    code: str = "error"

    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        field: str | None = None,
        value: Any = None,
        expected: str | None = None,
        hint: str | None = None,
        line: int | None = None,
        column: int | None = None,
        pipeline: str | None = None,
    ) -> None:
        self.message = message
        self.pipeline = pipeline
        self.file = file
        self.field = field
        self.value = value
        self.expected = expected
        self.hint = hint
        self.line = line
        self.column = column
        self.rendered: str | None = None
        """The text as another process rendered it (an error the daemon sent: its fields are set too, for a
        script to read; the text stays the daemon's). None: rendered from the fields."""
        super().__init__(self.render())

    def render(self) -> str:
        """One human line (plus an optional hint line) naming where and what."""
        if self.rendered is not None:
            return self.rendered
        where = ""
        if self.file:
            where = str(self.file)
            if self.line is not None:
                where += f":{self.line}"
                if self.column is not None:
                    where += f":{self.column}"
            where += ": "
        text = where
        if self.pipeline:
            text += f"pipeline {self.pipeline}: "
        if self.field:  # cut as a value is: a field can hold what was given (a 100,000-character metric name)
            text += f"{_cut(str(self.field))}: "
        text += self.message
        if self.value is not None and not _quotes(self.message, self.value):  # said once
            text += f" (found {_cut(shown(self.value))})"
        if self.expected:
            text += f"; expected {self.expected}"
        if self.hint:
            text += f"\n  hint: {self.hint}"
        return text

    def one_line(self) -> str:
        """:meth:`render` on one line (``...; hint: ...``): for a reason kept in a record and shown in a table or a
        log line, where the hint's line break came out as a literal ``\n``."""
        return self.render().replace("\n  hint: ", "; hint: ")

    def in_pipeline(self, name: str | None) -> "EdgeorchError":
        """Name the pipeline this error belongs to (re-renders the message)."""
        if name and not self.pipeline:
            self.pipeline = name
            self.args = (self.render(),)
        return self

    def in_file(self, file: str | None) -> "EdgeorchError":
        """Name the file this error belongs to, unless it names one (re-renders the message)."""
        if file and not self.file:
            self.file, self.rendered = file, None
            self.args = (self.render(),)
        return self

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form, used by ``--json`` output and the control protocol."""
        out: dict[str, Any] = {"code": self.code, "message": self.render()}
        for key in ("file", "pipeline", "field", "expected", "hint", "line", "column"):
            val = getattr(self, key)
            if val is not None:
                out[key] = val
        if self.value is not None:
            out["value"] = self.value if isinstance(self.value, (str, int, float, bool)) else repr(self.value)
        return out


class ConfigError(EdgeorchError, ValueError):
    """config.toml is malformed or holds a bad value."""

    code = "config_error"
    exit_code = 2


class PipelineError(EdgeorchError, ValueError):
    """A pipeline file is malformed or invalid (``edgeorch validate`` reports these)."""

    code = "invalid_pipeline"


class UsageError(EdgeorchError, ValueError):
    """A command was called with bad arguments (bad ``-p key=value`` and the like)."""

    code = "usage"
    exit_code = 2


class NotFoundError(EdgeorchError, LookupError):
    """A run, task, attempt or pipeline that does not exist."""

    code = "not_found"
    exit_code = 3

    def __str__(self) -> str:  # LookupError/KeyError would add quotes
        return self.render()


class StateError(EdgeorchError):
    """The state file cannot be used: corrupt, from a newer version, or locked."""

    code = "state_error"
    exit_code = 4


class StateBusyError(StateError):
    """The state folder is held by another edgeorch process that runs pipelines without a daemon (an ``edgeorch
    run`` in progress): nothing is wrong with it, try again when that process ends (EX_TEMPFAIL)."""

    code = "state_busy"
    exit_code = 75


class ConflictError(EdgeorchError):
    """The request contradicts the current state (retry a running run, ...)."""

    code = "conflict"
    exit_code = 5


class UnsatisfiableError(EdgeorchError):
    """A request that no device of this machine could ever satisfy.

    Raised (or reported) instead of letting the task wait forever: a GPU task
    on a CPU-only daemon, ``gpu_memory`` larger than every GPU, ``gpus`` above
    the device count, more ``cpus`` than the daemon may use. A configuration
    problem (exit 2): the request or the daemon's ``[resources]`` must change.
    """

    code = "unsatisfiable"
    exit_code = 2


class Interrupted(EdgeorchError):
    """The command was interrupted (Ctrl-C, SIGTERM): what ``--json`` prints as its last stderr line."""

    code = "interrupted"
    exit_code = 130


class DataError(EdgeorchError, ValueError):
    """A data file cannot be read as expected (kernels: file, column, row)."""

    code = "bad_data"


class MissingDependencyError(EdgeorchError, ImportError):
    """An optional package that a feature needs is not installed (``to_pandas()`` without pandas)."""

    code = "missing_dependency"


class TaskViolation(EdgeorchError):
    """A built-in check task found a violation and its policy says fail.

    ``result`` holds the full result document, which is still recorded.
    """

    code = "violation"

    def __init__(self, message: str, result: dict[str, Any] | None = None) -> None:
        self.result = result or {}
        super().__init__(message)


class DataNotFoundError(NotFoundError, DataError):
    """A data file or saved profile that does not exist (exit 3, as every not-found)."""

    code = "not_found"
    exit_code = 3


class UnknownColumnError(UsageError, DataError):
    """A column the caller named that the data does not have: a usage error (exit 2), not bad data."""

    code = "usage"
    exit_code = 2


class ColumnKindError(UsageError, DataError):
    """A column of one kind in one table and another in the other (numbers against text, datetimes against
    anything else): the wrong pair of files, a usage error (exit 2) as :class:`NoCommonColumnsError` is; it
    exited 1, the code of "drift found"."""

    code = "usage"
    exit_code = 2


class NoCommonColumnsError(UsageError, DataError):
    """Two tables to compare that share no column (the wrong pair of files): a usage error (exit 2), so that
    ``edgeorch drift A B || alert`` (exit 1: drift) never alerts on it."""

    code = "usage"
    exit_code = 2


class ColumnRoleError(UsageError, DataError):
    """A column the caller chose for a role it cannot play (a score given as the predictions, a label column
    whose values do not include the positive label): a usage error (exit 2), not bad data."""

    code = "usage"
    exit_code = 2


def _quotes(message: str, value: object) -> bool:
    """Whether ``message`` already says ``value`` as :func:`shown`, standing alone (``attempt 7``, ``'nosuch'``):
    never a number inside another (``at least 10`` does not quote ``1``)."""
    return re.search(rf"(?<![\w.]){re.escape(shown(value))}(?![\w.])", message) is not None


SHOWN_MAX = 200
"""The most characters of a found value an error line says (a 400-digit size, a 400 KB name): its start, an
ellipsis and its length; ``--json`` errors keep the value whole."""


def _cut(text: str) -> str:
    return text if len(text) <= SHOWN_MAX else f"{text[:SHOWN_MAX - 40]}... ({len(text):,} characters)"


def shown(value: object) -> str:
    """A value as a message says it: Python's repr, but booleans as TOML and JSON write them (``true``, not
    ``True``: a pipeline author wrote ``true``), in arrays and tables too (``[true, 'x']``, ``{a = false}``)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(shown(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k} = {shown(v)}" for k, v in value.items()) + "}"
    return repr(value)


ERROR_KEYS = ("code", "message", "file", "pipeline", "field", "value", "expected", "hint", "line", "column",
              "exit_code")
"""The keys of every ``{"error": {...}}`` object, in order."""


def error_fields(err: EdgeorchError) -> dict[str, Any]:
    """The protocol's error object for ``err`` (the daemon's, for its errors) with every key of :data:`ERROR_KEYS`
    but ``exit_code``, null where it does not apply: what ``validate --json`` lists for each problem too (its
    items had a key set of their own per kind of error)."""
    body = getattr(err, "detail", None)  # an error the daemon sent: its fields as it sent them
    if not isinstance(body, dict):
        body = err.to_dict()
    doc = {key: body.get(key) for key in ERROR_KEYS if key != "exit_code"}
    doc["code"] = doc["code"] or err.code
    doc["message"] = doc["message"] or err.render()
    return doc


def error_document(err: EdgeorchError) -> dict[str, Any]:
    """``{"error": {...}}`` for ``err``: :func:`error_fields` plus ``exit_code``."""
    return {"error": {**error_fields(err), "exit_code": err.exit_code}}
