"""A daemon whose queue of new connections is full (a flood of connects by another user) still runs: the client
waits for a place until its timeout, then says the daemon does not accept connections now (exit 75), never that
no daemon runs (exit 69, which sent its user looking for the wrong fault)."""

from __future__ import annotations

import socket
import threading
from pathlib import Path

import pytest

from edgeorch.control import protocol as P
from edgeorch.control.client import _Line


def _full_backlog(path: Path) -> tuple[socket.socket, list[socket.socket]]:
    """A listening socket nobody accepts on, its backlog filled by connections left waiting."""
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(path))
    server.listen(0)
    waiting: list[socket.socket] = []
    while True:
        c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        c.setblocking(False)
        try:
            c.connect(str(path))
        except BlockingIOError:
            c.close()
            return server, waiting
        waiting.append(c)


def test_a_full_backlog_is_a_daemon_that_does_not_accept_now_not_no_daemon(short_tmp_path: Path) -> None:
    path = short_tmp_path / "d.sock"
    server, waiting = _full_backlog(path)
    try:
        with pytest.raises(P.Timeout, match="queue of new connections is full") as exc:
            _Line(path, timeout=0.3)
        assert exc.value.exit_code == 75

        def drain() -> None:  # the daemon catches up
            for _ in range(len(waiting) + 1):
                conn, _ = server.accept()
                conn.close()

        catch_up = threading.Timer(0.2, drain)
        catch_up.start()
        line = _Line(path, timeout=10)  # waits for a place, then connects
        line.sock.close()
        catch_up.join()
    finally:
        for c in waiting:
            c.close()
        server.close()
