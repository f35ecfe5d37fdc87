"""Log levels: the names a user may give, ``-v``/``-q`` as steps, and the one logging setup.

The daemon (``[daemon] log_level``, ``edgeorch daemon --log-level``) and
the CLI (``--log-level``, ``-v``, ``-q``) share these rules, so a level
means the same wherever it is written. Pure apart from
:func:`configure_logging`, which sets up the root logger once.
"""

from __future__ import annotations

import logging
import sys
from pathlib import PurePath
from typing import Any, Final

LOG_LEVELS: Final = ("debug", "info", "warning", "error")
"""The level names accepted everywhere, most verbose first."""

LOG_FORMATS: Final = ("auto", "text", "json", "journal")
"""``[daemon] log_format``: auto (the journal when stderr is the journal's stream, else text), text, JSON lines,
the journal's native protocol (:mod:`edgeorch.observe.logsetup`)."""


def shift_log_level(level: str, steps: int) -> str:
    """``level`` moved ``steps`` towards ``debug`` (positive: ``-v``) or ``error`` (negative: ``-q``).

    Clamped at both ends: ``-vvv`` from ``warning`` is ``debug``, ``-q`` from
    ``error`` stays ``error``. ``level`` must be one of :data:`LOG_LEVELS`.
    """
    i = LOG_LEVELS.index(level) - steps
    return LOG_LEVELS[min(max(i, 0), len(LOG_LEVELS) - 1)]


def configure_logging(level: str, fmt: str, *, handler: logging.Handler | None = None) -> None:
    """Print edgeorch's log records at ``level`` and above on stderr, formatted with ``fmt``.

    ``handler``: where the records go instead (the daemon's journal or JSON
    lines, :func:`edgeorch.observe.logsetup.log_handler`); one without a
    formatter gets ``fmt``. Other libraries' records (asyncio, watchdog,
    numba) keep ``warning`` as their floor, so ``debug`` shows edgeorch's own
    detail and not theirs. Calling it again replaces (and closes) the handler
    the last call installed (a test that runs the CLI in-process twice logs
    each record once) and leaves handlers others installed (pytest's) alone.
    """
    numeric = logging.getLevelName(level.upper())
    root = logging.getLogger()
    for h in [h for h in root.handlers if getattr(h, _INSTALLED, False)]:
        root.removeHandler(h)
        h.close()
    handler = handler if handler is not None else StderrHandler()
    if handler.formatter is None:
        handler.setFormatter(logging.Formatter(fmt))
    handler.addFilter(PrintableArgs())
    setattr(handler, _INSTALLED, True)
    root.addHandler(handler)
    root.setLevel(max(numeric, logging.WARNING))
    logging.getLogger("edgeorch").setLevel(numeric)


_INSTALLED = "_edgeorch_installed"
"""Set on the handler :func:`configure_logging` installed (the one the next call replaces)."""


class PrintableArgs(logging.Filter):
    """Makes a record's text arguments printable (:func:`edgeorch.textui.printable`) before it is formatted.

    Log messages are format strings with arguments everywhere in edgeorch; the arguments carry what
    others chose (a dropped file's name, a task's message). A newline there would forge a record of
    the journal, an escape sequence would rewrite the terminal of whoever reads the log. Only ``str``
    and path arguments that need it are replaced; the rest (numbers for ``%d``) is left as it is.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple) and record.args:
            record.args = tuple(_printable_arg(a) for a in record.args)
        return True


def _printable_arg(arg: Any) -> Any:
    if not isinstance(arg, (str, PurePath)):
        return arg
    from .textui import printable

    text = str(arg)
    shown = printable(text)
    return arg if shown == text else shown


class StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever ``sys.stderr`` is when a record comes (a test may have replaced it since)."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property  # type: ignore[override]
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, value: Any) -> None:
        pass  # StreamHandler.__init__ and setStream assign it; the property always answers sys.stderr
