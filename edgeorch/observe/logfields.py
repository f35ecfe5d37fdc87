"""Structured fields on the daemon's log records: what run, task, attempt, pipeline or input a line is about.

A log call names them with ``extra=log_fields(run=42, task="train")``; the
record then carries them, and each output writes them its own way: journald
fields (``RUN_ID=42``, so ``journalctl -u edgeorch RUN_ID=42`` selects the
run's lines; :mod:`.journal`), JSON keys (``"run_id": 42``; :mod:`.jsonlog`).
The text format leaves them out: its messages already say it in words.

One table (:data:`FIELDS`) holds each field's three names, so the journal,
JSON and the docs never disagree. Pure.
"""

from __future__ import annotations

import logging
from typing import Any, Final

ATTRIBUTE: Final = "edgeorch_fields"
"""The log record attribute that holds the fields (a dict keyed by the short names)."""

FIELDS: Final = (
    # short name (log_fields' keyword), JSON key, journald field
    ("run", "run_id", "RUN_ID"),
    ("task", "task", "TASK"),
    ("attempt", "attempt", "ATTEMPT"),
    ("pipeline", "pipeline", "PIPELINE"),
    ("input", "input_id", "INPUT_ID"),
)


def log_fields(*, run: int | None = None, task: str | None = None, attempt: int | None = None,
               pipeline: str | None = None, input: int | None = None) -> dict[str, Any]:
    """``extra=`` for a log call: the fields given (None ones are left out)."""
    given = {"run": run, "task": task, "attempt": attempt, "pipeline": pipeline, "input": input}
    return {ATTRIBUTE: {k: v for k, v in given.items() if v is not None}}


def fields_of(record: logging.LogRecord) -> dict[str, Any]:
    """The record's fields by short name (empty for a record logged without them)."""
    return getattr(record, ATTRIBUTE, None) or {}


def json_fields(record: logging.LogRecord) -> dict[str, Any]:
    """The record's fields under their JSON keys, in :data:`FIELDS` order."""
    have = fields_of(record)
    return {key: have[short] for short, key, _ in FIELDS if short in have}


def journal_fields(record: logging.LogRecord) -> list[tuple[str, str]]:
    """The record's fields as journald ``(NAME, value)`` pairs, in :data:`FIELDS` order."""
    have = fields_of(record)
    return [(name, str(have[short])) for short, _, name in FIELDS if short in have]
