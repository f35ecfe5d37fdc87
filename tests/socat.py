"""Requests to a Unix socket through ``socat``, as another user if asked: the one way the tests talk to a control
socket from outside the test process."""

from __future__ import annotations

import subprocess
from pathlib import Path

AS_NOBODY = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"]

ANSWER_WAIT_S = 120
"""socat's ``-t``: how long it waits, once its input has ended, for the other side to answer and close. The
daemon answers and then closes (a refused peer at once; any other on the end of its input), so this bounds a
slow answer and costs nothing otherwise. It was 5 s: a daemon that recorded a refusal with an fsync'd commit on a
loaded CI machine answered later, and the test read nothing (Python 3.13, stop 40)."""


def socat_request(path: str | Path, data: bytes, *, as_nobody: bool = False) -> subprocess.CompletedProcess[bytes]:
    """Send ``data`` to the Unix socket ``path`` (as user nobody with ``as_nobody``) and return what socat read
    until the other side closed."""
    argv = ["socat", "-t", str(ANSWER_WAIT_S), "-", f"UNIX-CONNECT:{path}"]
    return subprocess.run([*AS_NOBODY, *argv] if as_nobody else argv, input=data, capture_output=True,
                          timeout=ANSWER_WAIT_S + 30)


def socat_read(path: str | Path, *, as_nobody: bool = False) -> subprocess.CompletedProcess[bytes]:
    """Connect to the Unix socket ``path`` (as user nobody with ``as_nobody``), send nothing, and return what socat
    read until the other side closed: a peer refused at connect. :func:`socat_request` would write its request
    to a daemon that answered and closed already, and socat exits on the write's EPIPE without reading the
    answer (when its poll finds its input and the socket ready at once, it writes first): the test read nothing,
    once in CI on a loaded machine."""
    argv = ["socat", "-t", str(ANSWER_WAIT_S), "-u", f"UNIX-CONNECT:{path}", "-"]
    return subprocess.run([*AS_NOBODY, *argv] if as_nobody else argv, stdin=subprocess.DEVNULL, capture_output=True,
                          timeout=ANSWER_WAIT_S + 30)
