"""Where the daemon's log records go: ``[daemon] log_format`` -> a logging handler.

- ``auto`` (the default): the journal's native protocol when stderr is the
  journal's stream (systemd set ``$JOURNAL_STREAM`` to it) and its socket
  exists, so the structured fields become journal fields; else text on stderr;
- ``journal``: the journal, always (an error at start when its socket is missing);
- ``json``: JSON lines on stderr (:mod:`.jsonlog`);
- ``text``: the classic one line per record on stderr.

:func:`edgeorch.loglevel.configure_logging` installs the handler; this
module only chooses it.
"""

from __future__ import annotations

import logging

from ..errors import ConfigError

def log_handler(log_format: str, *, source: object = None) -> logging.Handler | None:
    """The handler for ``log_format`` (None: text on stderr, :func:`~edgeorch.loglevel.configure_logging`'s own).

    Raises :class:`~edgeorch.errors.ConfigError` (``daemon.log_format``, in ``source``: the config file, when
    there is one) for ``journal`` when the journal's socket does not exist.
    """
    from .journal import JournalHandler, journal_socket, stderr_is_journal

    if log_format == "json":
        from .jsonlog import JsonFormatter

        from ..loglevel import StderrHandler

        handler: logging.Handler = StderrHandler()
        handler.setFormatter(JsonFormatter())
        return handler
    if log_format in ("journal", "auto"):
        sock = journal_socket()
        if log_format == "journal" and not sock.exists():
            raise ConfigError("the journal's socket does not exist (is this machine running systemd?)",
                              file=str(source) if source else None, field="daemon.log_format", value=log_format,
                              hint='use "auto", "text" or "json"')
        if log_format == "journal" or (stderr_is_journal() and sock.exists()):
            handler = JournalHandler(sock)
            handler.setFormatter(logging.Formatter("%(message)s"))  # the journal stamps time, level and unit
            return handler
    return None
