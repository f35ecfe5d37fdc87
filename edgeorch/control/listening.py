"""Who listens at a control socket's path, without talking to it: the probe the server's start and rebind, the
state lock and the daemon's start share (no import beyond the standard library's socket layer)."""

from __future__ import annotations

import errno
import os
import socket
from pathlib import Path

LISTENING = (0, errno.EAGAIN, errno.EINPROGRESS)
"""What :func:`connect_errno` gives for a path where a server listens (EAGAIN: its backlog is full)."""


def connect_errno(path: Path) -> int:
    """The errno of a non-blocking connect to the Unix socket at ``path``, at once: 0 (or one of
    :data:`LISTENING`) when a server listens there, ``ECONNREFUSED`` for a socket file nobody listens on,
    ``ENOENT`` when nothing is there. Nothing is sent: the connection is closed unused."""
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    probe.setblocking(False)
    try:
        return probe.connect_ex(str(path))
    finally:
        probe.close()


def activated_here() -> bool:
    """Whether systemd passed this process its sockets (``LISTEN_PID`` is our pid): they are its unit's."""
    return os.environ.get("LISTEN_PID") == str(os.getpid())
