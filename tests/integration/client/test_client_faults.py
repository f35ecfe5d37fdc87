"""Both clients against a broken or silent daemon: a real Unix socket served by a scripted stand-in."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

import edgeorch
from edgeorch.control import protocol as P


class StandIn:
    """Accepts connections on a real Unix socket; ``answer(request_line) -> bytes`` says what to send back
    (``None``: hang up at once). Silence is an answer of ``b""`` with the connection left open."""

    def __init__(self, path: Path, answer: Callable[[bytes], bytes | None]) -> None:
        self.path = path
        self.answer = answer
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(str(path))
        self.sock.listen(8)
        self.open: list[socket.socket] = []
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            line = conn.makefile("rb").readline()
            reply = self.answer(line)
            if reply is None:
                conn.close()
                continue
            conn.sendall(reply)
            self.open.append(conn)  # kept open: the client decides when it is over

    def close(self) -> None:
        self.sock.close()
        for conn in self.open:
            conn.close()


@pytest.fixture
def stand_in(tmp_path):
    made: list[StandIn] = []

    def make(answer: Callable[[bytes], bytes | None]) -> Path:
        made.append(StandIn(tmp_path / "d.sock", answer))
        return tmp_path / "d.sock"

    yield make
    for s in made:
        s.close()


def _both(path: Path, method: str, *args, **kw):
    """Call ``method`` on a sync and an async client; returns the two exceptions raised."""
    errors = []
    try:
        getattr(edgeorch.Client(socket=path, timeout=0.5), method)(*args, **kw)
    except Exception as exc:  # noqa: BLE001 - the test inspects it
        errors.append(exc)

    async def main():
        await getattr(edgeorch.AsyncClient(socket=path, timeout=0.5), method)(*args, **kw)

    try:
        asyncio.run(main())
    except Exception as exc:  # noqa: BLE001
        errors.append(exc)
    assert len(errors) == 2, errors
    return errors


def test_a_daemon_that_hangs_up_without_answering(stand_in):
    path = stand_in(lambda line: None)
    for err in _both(path, "status"):
        assert isinstance(err, P.BadResponse) and "closed the connection without answering" in str(err)


def test_a_busy_daemon_that_hung_up_before_the_request_was_sent_says_busy(tmp_path):
    """The daemon tells a client past its limit ``busy`` and closes at once, so the client's send
    can fail with EPIPE: the answer already on the connection is the error, not "connection lost".
    (The synchronous client only: asyncio drops what it buffered once a write fails.)"""
    path = tmp_path / "d.sock"
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(path))
    server.listen(8)
    refused = threading.Event()

    def refuse_all() -> None:
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            conn.sendall(P.encode_error(None, P.Busy("too many clients (max 1)")))
            conn.close()
            refused.set()

    threading.Thread(target=refuse_all, daemon=True).start()
    try:
        from edgeorch.control.client import _Line

        line = _Line(path, 5)
        assert refused.wait(5)
        with pytest.raises(P.Busy, match="too many clients"):  # the send itself meets the closed connection
            line.send(P.request("ping", None, 1))
        line.close()
    finally:
        server.close()


def test_a_daemon_that_sends_garbage(stand_in):
    path = stand_in(lambda line: b"<html>\n")
    for err in _both(path, "status"):
        assert isinstance(err, P.BadResponse) and "not JSON" in str(err)


def test_a_silent_daemon_times_out(stand_in):
    path = stand_in(lambda line: b"")
    for err in _both(path, "get_run", 1):
        assert isinstance(err, P.Timeout) and err.exit_code == 75 and "no answer from the daemon" in str(err)


def test_a_wait_on_a_quiet_stream_ends_at_its_deadline(stand_in):
    path = stand_in(lambda line: P.encode(P.ok(1, {"kind": "subscribed", "run_id": 3, "ts": 1.0})))
    for err in _both(path, "wait", 3, timeout=0.3):
        assert isinstance(err, edgeorch.WaitTimeout) and err.run_id == 3 and "within 0.3s" in str(err)


def test_a_stream_the_daemon_ends_before_the_run_does(stand_in):
    path = stand_in(lambda line: P.encode(P.ok(1, {"kind": "subscribed", "run_id": 3, "ts": 1.0})) + P.encode(P.end(1)))
    for err in _both(path, "wait", 3, timeout=5):
        assert isinstance(err, P.BadResponse) and "ended the events stream before run 3 finished" in str(err)


def test_a_wait_whose_daemon_goes_away_says_the_runs_id(tmp_path):
    """A notebook's `client.run(...)` whose daemon was killed mid-wait raised ConnectionClosed with no run id and
    no hint (the CLI says the id): the user started the multi-hour run again."""
    path = tmp_path / "d.sock"
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(path))
    server.listen(8)

    def subscribe_then_die() -> None:
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            conn.makefile("rb").readline()
            conn.sendall(P.encode(P.ok(1, {"kind": "subscribed", "run_id": 3, "ts": 1.0})))
            conn.close()  # as a daemon killed with -9 mid-stream

    threading.Thread(target=subscribe_then_die, daemon=True).start()
    try:
        for err in _both(path, "wait", 3, timeout=5):
            assert isinstance(err, P.ConnectionClosed) and err.exit_code == 75, err
            assert err.run_id == 3 and "run 3 goes on when the daemon is back" in err.hint, err
    finally:
        server.close()
