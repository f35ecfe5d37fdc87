"""`Client.call(..., unbounded=True)`: an op whose work grows with the history (`gc.apply` of months of runs) is
waited for as long as the daemon works on it. Found by a tester: `edgeorch gc --apply` of 16,000 runs said
"no answer from the daemon (timed out)" after 30 s, exit 75, while the daemon finished the gc 84 s in."""

from __future__ import annotations

import json
import socket
import threading
import time

import pytest

from edgeorch.control.client import Client
from edgeorch.control.protocol import Timeout

SLOW_S = 0.6  # how long the stand-in daemon works on each request: three times the client's timeout


def _slow_daemon(path: str, ready: threading.Event) -> None:
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(path)
    srv.listen(4)
    ready.set()
    with srv:
        for _ in range(2):  # the bounded call's connection, then the unbounded one's
            conn, _ = srv.accept()
            with conn:
                f = conn.makefile("rb")
                line = f.readline()
                if not line:
                    continue
                req = json.loads(line)
                time.sleep(SLOW_S)  # the work: the behaviour under test is its length, nothing is awaited on it
                try:
                    conn.sendall(json.dumps({"id": req["id"], "ok": True, "result": {"removed": 3}}).encode() + b"\n")
                except OSError:
                    pass  # the bounded client gave up and hung up


def test_an_unbounded_call_waits_past_the_clients_timeout(tmp_path):
    path = str(tmp_path / "s.sock")
    ready = threading.Event()
    server = threading.Thread(target=_slow_daemon, args=(path, ready), daemon=True)
    server.start()
    assert ready.wait(10)
    client = Client(path, timeout=SLOW_S / 3)
    with pytest.raises(Timeout):
        client.call("gc.apply", {})
    assert client.call("gc.apply", {}, unbounded=True) == {"removed": 3}
    assert client._conn is None  # its own connection, closed: the next call is bounded again
    server.join(10)
