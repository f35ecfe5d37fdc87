"""Who listens at a control socket's path, without talking to it: the probe the server's start and rebind, the
state lock and the daemon's start share (no import beyond the standard library's socket layer)."""

from __future__ import annotations

import contextlib
import errno
import os
import socket
from collections.abc import Iterator
from pathlib import Path

LISTENING = (0, errno.EAGAIN, errno.EINPROGRESS)
"""What :func:`connect_errno` gives for a path where a server listens (EAGAIN: its backlog is full)."""


SUN_PATH_MAX = 107
"""The longest path (bytes) a Unix socket's address holds on Linux (``sun_path`` is 108 with its NUL)."""


@contextlib.contextmanager
def socket_address(path: Path) -> Iterator[str]:
    """The address to bind or connect for the Unix socket at ``path``: the path itself when it fits
    ``sun_path``, else the same file through a descriptor of its folder (``/proc/self/fd/N/<name>``: the
    kernel resolves it as it resolves the path, same inode, same permissions), so a state folder deep in
    a tree keeps its socket. The descriptor is closed when the block ends. Raises ``OSError`` when the
    folder cannot be opened (no such folder: as a connect to a missing socket would)."""
    if len(os.fsencode(path)) <= SUN_PATH_MAX:
        yield str(path)
        return
    fd = os.open(path.parent, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        yield f"/proc/self/fd/{fd}/{path.name}"
    finally:
        os.close(fd)


def connect_errno(path: Path) -> int:
    """The errno of a non-blocking connect to the Unix socket at ``path``, at once: 0 (or one of
    :data:`LISTENING`) when a server listens there, ``ECONNREFUSED`` for a socket file nobody listens on,
    ``ENOENT`` when nothing is there. Nothing is sent: the connection is closed unused."""
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    probe.setblocking(False)
    try:
        with socket_address(path) as address:
            return probe.connect_ex(address)
    except OSError as exc:  # the socket's folder is not there (or cannot be opened)
        return exc.errno or errno.ENOENT
    finally:
        probe.close()


def activated_here() -> bool:
    """Whether systemd passed this process its sockets (``LISTEN_PID`` is our pid): they are its unit's."""
    return os.environ.get("LISTEN_PID") == str(os.getpid())
