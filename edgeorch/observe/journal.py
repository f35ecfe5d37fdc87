"""Log records to the systemd journal over its native protocol, without a systemd library.

The protocol (systemd's "Native Journal Protocol"): one datagram per entry
to ``/run/systemd/journal/socket``, each field ``NAME=value\\n``, or, for a
value holding a newline, ``NAME\\n`` + its length as a little-endian 64-bit
integer + the value + ``\\n``. An entry too big for a datagram goes in a
sealed memfd whose descriptor is passed instead (SCM_RIGHTS). Field names are
upper-case letters, digits and ``_``, not starting with ``_`` (those are
journald's own, trusted fields).

Each entry carries ``MESSAGE``, ``PRIORITY`` (syslog levels),
``SYSLOG_IDENTIFIER=edgeorch``, the code location (``CODE_FILE``,
``CODE_LINE``, ``CODE_FUNC``), ``LOGGER`` and the record's structured fields
(:mod:`.logfields`: ``RUN_ID``, ``TASK``, ``ATTEMPT``, ``PIPELINE``,
``INPUT_ID``). When the journal cannot take an entry (journald restarting,
the socket gone), the line goes to stderr as text instead: under systemd
stderr is the journal's stream too, so nothing is lost but the fields.

:func:`encode` is pure; :class:`JournalHandler` does the I/O;
:func:`stderr_is_journal` is systemd's documented test for "my stderr is the
journal" (``$JOURNAL_STREAM`` names the device and inode of that stream).
"""

from __future__ import annotations

import array
import logging
import os
import socket
import struct
import sys
import threading
from collections.abc import Iterable, Mapping
from pathlib import Path

from .logfields import journal_fields

SYSLOG_IDENTIFIER = "edgeorch"


def journal_socket() -> Path:
    """``/run/systemd/journal/socket`` (under ``$EDGEORCH_ROOT`` in tests, as the other system paths)."""
    from ..config import system_root

    return system_root() / "run" / "systemd" / "journal" / "socket"


def stderr_is_journal(environ: Mapping[str, str] | None = None, fd: int = 2) -> bool:
    """True when ``$JOURNAL_STREAM`` (``device:inode``) is the file ``fd`` is open on (systemd.exec(5))."""
    env = os.environ if environ is None else environ
    value = env.get("JOURNAL_STREAM", "")
    dev, sep, ino = value.partition(":")
    if not sep or not dev.isdigit() or not ino.isdigit():
        return False
    try:
        st = os.fstat(fd)
    except OSError:
        return False
    return (st.st_dev, st.st_ino) == (int(dev), int(ino))


def priority(levelno: int) -> int:
    """The syslog priority of a logging level: debug 7, info 6, warning 4, error 3, critical 2."""
    if levelno >= logging.CRITICAL:
        return 2
    if levelno >= logging.ERROR:
        return 3
    if levelno >= logging.WARNING:
        return 4
    if levelno >= logging.INFO:
        return 6
    return 7


def encode(fields: Iterable[tuple[str, str | bytes]]) -> bytes:
    """One journal entry in the native protocol's wire format (see the module docstring).

    Raises ``ValueError`` for a field name the journal would refuse.
    """
    out = bytearray()
    for name, value in fields:
        if not name or name[0] == "_" or len(name) > 64 or not all(c.isupper() or c.isdigit() or c == "_"
                                                                     for c in name):
            raise ValueError(f"not a journal field name: {name!r}")
        data = value.encode("utf-8", "replace") if isinstance(value, str) else value
        key = name.encode("ascii")
        if b"\n" in data:
            out += key + b"\n" + struct.pack("<Q", len(data)) + data + b"\n"
        else:
            out += key + b"=" + data + b"\n"
    return bytes(out)


class JournalHandler(logging.Handler):
    """A logging handler that sends each record to journald (see the module docstring).

    ``path``: the journal's socket (default :func:`journal_socket`).
    Thread-safe (``logging.Handler`` holds its lock around :meth:`emit`).
    """

    def __init__(self, path: Path | None = None, *, identifier: str = SYSLOG_IDENTIFIER) -> None:
        super().__init__()
        self.path = str(path if path is not None else journal_socket())
        self.identifier = identifier
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
        self._fallback_lock = threading.Lock()

    def fields(self, record: logging.LogRecord) -> list[tuple[str, str]]:
        """The entry's fields for ``record`` (its formatted message, priority, code location, structured fields)."""
        return [("MESSAGE", self.format(record)), ("PRIORITY", str(priority(record.levelno))),
                ("SYSLOG_IDENTIFIER", self.identifier), ("LOGGER", record.name),
                ("CODE_FILE", record.pathname), ("CODE_LINE", str(record.lineno)),
                ("CODE_FUNC", record.funcName), *journal_fields(record)]

    def emit(self, record: logging.LogRecord) -> None:
        try:
            entry = encode(self.fields(record))
        except Exception:  # noqa: BLE001 - a record that cannot be encoded is a logging bug: logging reports it
            self.handleError(record)
            return
        try:
            self._send(entry)
        except OSError:
            self._to_stderr(record)

    def _send(self, entry: bytes) -> None:
        try:
            self._sock.sendto(entry, self.path)
        except OSError as exc:
            if exc.errno not in (90, 105):  # EMSGSIZE, ENOBUFS: too big for a datagram
                raise
            self._send_memfd(entry)

    def _send_memfd(self, entry: bytes) -> None:
        """An entry bigger than a datagram: a sealed memfd holding it, its descriptor passed alone."""
        import fcntl

        fd = os.memfd_create("edgeorch-journal", os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
        try:
            view = memoryview(entry)
            while view:
                view = view[os.write(fd, view):]
            fcntl.fcntl(fd, fcntl.F_ADD_SEALS,
                        fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW | fcntl.F_SEAL_WRITE | fcntl.F_SEAL_SEAL)
            self._sock.sendmsg([], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [fd]))], 0, self.path)
        finally:
            os.close(fd)

    def _to_stderr(self, record: logging.LogRecord) -> None:
        try:
            with self._fallback_lock:
                sys.stderr.write(self.format(record) + "\n")
                sys.stderr.flush()
        except Exception:  # noqa: BLE001
            self.handleError(record)

    def close(self) -> None:
        self._sock.close()
        super().close()
