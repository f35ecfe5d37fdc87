"""Log records as JSON lines (``[daemon] log_format = "json"``), for log shippers that read stderr.

One strict JSON object per line: ``ts`` (ISO 8601, UTC, milliseconds),
``level`` (debug, info, warning, error, critical), ``logger``, ``message``,
then the record's structured fields under their JSON keys (:mod:`.logfields`:
``run_id``, ``task``, ``attempt``, ``pipeline``, ``input_id``), then
``error`` (the error that stopped a start: the CLI's ``--json`` error object,
:func:`fatal_as_json`) and ``exception`` (the traceback) when there is one.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from .logfields import json_fields


class JsonFormatter(logging.Formatter):
    """See the module docstring."""

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        doc.update(json_fields(record))
        error = getattr(record, ERROR_ATTRIBUTE, None)
        if error is not None:
            doc["error"] = error
        if record.exc_info:
            doc["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            doc["exception"] = record.exc_text
        return json.dumps(doc, ensure_ascii=False, default=str, allow_nan=False)


ERROR_ATTRIBUTE = "edgeorch_error"
"""The log record attribute holding the error object of :func:`fatal_as_json`'s line."""


@dataclass
class Outcome:
    """The exit code of the block :func:`fatal_as_json` guards: the block sets it, or the error's."""

    code: int = 0


@contextlib.contextmanager
def fatal_as_json(log: logging.Logger) -> Iterator[Outcome]:
    """Run the block; an error escaping it becomes one ``critical`` JSON log line and the outcome's exit code.

    An :class:`~edgeorch.errors.EdgeorchError` carries the CLI's ``--json`` error object (code, message, file,
    field, value, expected, hint, exit code) under ``error``; anything else is a bug (exit 70) with its traceback
    under ``exception``. A ``KeyboardInterrupt`` passes (the CLI says it).
    """
    from ..errors import EXIT_INTERNAL, EdgeorchError, error_document

    outcome = Outcome()
    try:
        yield outcome
    except EdgeorchError as exc:
        doc = error_document(exc)["error"]
        log.critical("cannot go on: %s", exc.one_line(), extra={ERROR_ATTRIBUTE: doc})
        outcome.code = exc.exit_code
    except Exception:
        log.critical("internal error (a bug, please report it)", exc_info=True)
        outcome.code = EXIT_INTERNAL
