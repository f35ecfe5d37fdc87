"""ControlServer over a real Unix socket: round trips, errors, fuzz, limits."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import pwd
import random
import select
import shutil
import socket
import stat
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from control_helpers import Raw, ServerThread, req

from edgeorch import __version__
from edgeorch.config import ControlConfig
from edgeorch.control import PROTOCOL_VERSION, Client, DaemonNotRunning
from edgeorch.control.server import ControlServer
from edgeorch.errors import NotFoundError, StateError

MakeServer = Callable[..., ServerThread]


def ping_ok(path: Path) -> None:
    with Raw(path) as raw:
        raw.send(req("ping", 99))
        assert raw.recv()["result"]["pong"] is True


# -- round trips ----------------------------------------------------------


def test_ping_and_version_round_trip(server: ServerThread) -> None:
    with Client(server.path, timeout=5) as client:
        assert client.call("ping")["pong"] is True
        assert client.call("version") == {"protocol": PROTOCOL_VERSION, "edgeorch": __version__}


def test_response_echoes_the_request_id(server: ServerThread) -> None:
    with Raw(server.path) as raw:
        raw.send(req("echo", "abc", {"x": 1}))
        reply = raw.recv()
    me = {"uid": os.getuid(), "user": pwd.getpwuid(os.getuid()).pw_name}
    assert reply == {"id": "abc", "ok": True, "result": {"args": {"x": 1}, "actor": me}}


def test_ops_lists_registered_ops_with_access(server: ServerThread) -> None:
    with Client(server.path) as client:
        ops = {o["op"]: o for o in client.call("ops")["ops"]}
    assert ops["act"]["access"] == "act"
    assert ops["count"]["streaming"] is True
    assert {"ping", "version", "ops"} <= set(ops)


def test_handler_error_keeps_its_code_and_message(server: ServerThread) -> None:
    with Client(server.path) as client:
        with pytest.raises(NotFoundError, match="run: no run 7"):
            client.call("missing", {"run": 7})
        assert client.call("ping")["pong"]  # same connection still usable


def test_handler_bug_is_internal_logged_and_serving_goes_on(
    server: ServerThread, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, logger="edgeorch.control")
    with Raw(server.path) as raw:
        raw.send(req("crash", 3))
        reply = raw.recv()
        assert reply["id"] == 3 and reply["ok"] is False
        assert reply["error"]["code"] == "internal"
        assert "handler bug" not in reply["error"]["message"]  # details stay in the log
        raw.send(req("ping", 4))
        assert raw.recv()["ok"] is True
    logged = [r for r in caplog.records if r.exc_info and "handler bug" in str(r.exc_info[1])]
    assert logged, "the traceback was not logged"


def test_unknown_op_is_answered_and_connection_stays_open(server: ServerThread) -> None:
    with Raw(server.path) as raw:
        raw.send(req("frobnicate", 5))
        reply = raw.recv()
        assert reply["id"] == 5 and reply["error"]["code"] == "unknown_op"
        raw.send(req("ping", 6))
        assert raw.recv()["id"] == 6


def test_stream_sends_items_then_end(server: ServerThread) -> None:
    with Raw(server.path) as raw:
        raw.send(req("count", 8, {"n": 3}))
        got = [raw.recv() for _ in range(4)]
    assert got == [
        {"id": 8, "ok": True, "result": {"i": 0}},
        {"id": 8, "ok": True, "result": {"i": 1}},
        {"id": 8, "ok": True, "result": {"i": 2}},
        {"id": 8, "ok": True, "end": True},
    ]
    with Client(server.path) as client:
        assert list(client.stream("count", {"n": 2})) == [{"i": 0}, {"i": 1}]


def test_a_client_that_reads_no_answers_has_no_more_of_them_made(server: ServerThread) -> None:
    """A reader pipelined 32 large requests on each of 30 connections and read nothing: every answer was made and
    held (the daemon grew from 373 MB to 3.2 GB in 20 s). A request's work now waits while the connection's
    earlier answers lie unread; once the client reads, every answer comes, in full."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(str(server.path))
    try:
        sock.sendall(b"".join(json.dumps(req("big", i)).encode() + b"\n" for i in range(32)))

        async def settled() -> int:  # until the server has done what it can without the client reading
            while server.big_calls == 0:
                await asyncio.sleep(0.01)
            for _ in range(200):  # loop turns, not time: every runnable request task gets to run
                await asyncio.sleep(0)
            return server.big_calls

        assert server.run(settled()) <= 3  # was 32: each one's megabyte made and held
        sock.settimeout(10)
        reader = sock.makefile("rb")
        ids = [json.loads(reader.readline())["id"] for _ in range(32)]
        assert sorted(ids) == list(range(32)) and server.big_calls == 32
    finally:
        sock.close()


def test_stream_stops_when_client_goes_away(server: ServerThread) -> None:
    with Client(server.path) as client:
        items = client.stream("forever", timeout=5)
        assert next(items) == {"started": True}
        items.close()  # closes the connection
    assert server.stream_closed.wait(5), "the stream's generator was not closed"
    ping_ok(server.path)


def test_requests_on_one_connection_run_concurrently(server: ServerThread) -> None:
    # A stream that never ends does not hold up a ping on the same connection.
    with Raw(server.path) as raw:
        raw.send(req("forever", 1))
        assert raw.recv() == {"id": 1, "ok": True, "result": {"started": True}}
        raw.send(req("ping", 2))
        assert raw.recv()["id"] == 2


def test_request_then_half_close_is_still_answered(server: ServerThread) -> None:
    # What `echo '{...}' | socat - UNIX-CONNECT:...` does.
    with Raw(server.path) as raw:
        raw.send(req("ping", 1))
        raw.sock.shutdown(socket.SHUT_WR)
        assert raw.recv()["result"]["pong"] is True
        assert raw.at_eof()


def test_last_line_without_newline_is_a_request(server: ServerThread) -> None:
    with Raw(server.path) as raw:
        raw.send(json.dumps(req("ping", 1)).encode())
        raw.sock.shutdown(socket.SHUT_WR)
        assert raw.recv()["id"] == 1


@pytest.mark.skipif(shutil.which("socat") is None, reason="socat is not installed")
def test_socat_can_drive_the_protocol(server: ServerThread) -> None:
    from socat import socat_request

    done = socat_request(server.path, b'{"v":1,"id":1,"op":"version"}\n')
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert json.loads(out) == {"id": 1, "ok": True, "result": {"protocol": 1, "edgeorch": __version__}}


# -- garbage and limits -----------------------------------------------------

BAD_LINES = [
    pytest.param(b"this is not json\n", "bad_request", None, id="not-json"),
    pytest.param(b'{"v":1,"id":1,"op":"ping"\n', "bad_request", None, id="truncated-json"),
    pytest.param(b"[1,2,3]\n", "bad_request", None, id="not-an-object"),
    pytest.param(b'{"v":1,"op":"ping"}\n', "bad_request", None, id="no-id"),
    pytest.param(b'{"v":1,"id":2,"op":7}\n', "bad_request", 2, id="op-not-a-string"),
    pytest.param(b'{"v":1,"id":3,"op":"ping","args":[1]}\n', "bad_request", 3, id="args-not-an-object"),
    pytest.param(b'{"v":2,"id":4,"op":"ping"}\n', "unsupported_version", 4, id="wrong-version"),
    pytest.param(b'{"id":5,"op":"ping"}\n', "unsupported_version", 5, id="no-version"),
    pytest.param(b"\xff\xfe\x00garbage\n", "bad_request", None, id="not-utf8"),
]


@pytest.mark.parametrize(("line", "code", "rid"), BAD_LINES)
def test_malformed_line_gets_error_then_close(server: ServerThread, line: bytes, code: str, rid: object) -> None:
    with Raw(server.path) as bystander, Raw(server.path) as raw:
        raw.send(line)
        reply = raw.recv()
        assert reply["ok"] is False and reply["error"]["code"] == code and reply["id"] == rid
        assert raw.at_eof()
        bystander.send(req("ping", 1))
        assert bystander.recv()["ok"] is True


def test_random_bytes_do_not_hurt_the_server(server: ServerThread) -> None:
    rng = random.Random(1234)
    for _ in range(20):
        blob = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 2000)))
        with Raw(server.path) as raw:
            raw.send(blob + b"\n")
            try:
                line = raw.file.readline()
            except ConnectionResetError:
                line = b""
            if line.strip():  # blank-only blobs are ignored, so no answer is fine
                assert json.loads(line)["ok"] is False
    ping_ok(server.path)


def test_ten_megabyte_line_is_too_large(make_server: MakeServer) -> None:
    st = make_server(ControlConfig(max_line_bytes=64 * 1024, idle_timeout=5.0))
    total = 10 * 1024 * 1024
    sent = 0
    with Raw(st.path) as raw:
        raw.sock.sendall(b'{"v":1,"id":1,"op":"echo","args":{"x":"')
        # The server must hang up soon after the cap instead of taking in
        # the whole line: the sending breaks off long before 10 MB.
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            while sent < total:
                sent += raw.sock.send(b"a" * 65536)
        assert sent < total // 2
        reply = raw.recv()
        assert reply["error"]["code"] == "too_large"
        assert raw.at_eof()
    ping_ok(st.path)


def test_line_at_the_cap_is_accepted(make_server: MakeServer) -> None:
    cap = 4096
    st = make_server(ControlConfig(max_line_bytes=cap, idle_timeout=5.0))
    head = b'{"v":1,"id":1,"op":"echo","args":{"x":"'
    tail = b'"}}'
    line = head + b"a" * (cap - len(head) - len(tail)) + tail
    assert len(line) == cap
    with Raw(st.path) as raw:
        raw.send(line + b"\n")
        assert raw.recv()["ok"] is True
        raw.send(line[:-3] + b'a"}}\n')  # one byte over
        assert raw.recv()["error"]["code"] == "too_large"


def test_half_open_connection_times_out(make_server: MakeServer) -> None:
    st = make_server(ControlConfig(idle_timeout=0.3))
    with Raw(st.path) as idle, Raw(st.path) as partial:
        partial.send(b'{"v":1,"id":1,"op":"pi')  # and never the rest
        assert partial.recv()["error"]["code"] == "timeout"
        assert partial.at_eof()
        assert idle.recv()["error"]["code"] == "timeout"
    ping_ok(st.path)


def test_idle_timeout_does_not_cut_an_open_stream(make_server: MakeServer) -> None:
    st = make_server(ControlConfig(idle_timeout=0.2))
    with Raw(st.path, timeout=1.0) as raw:
        raw.send(req("forever", 1))
        assert raw.recv()["result"] == {"started": True}
        # Five idle periods pass; the connection must still be open.
        with pytest.raises(TimeoutError):
            raw.file.readline()


def test_max_clients_refuses_the_extra_one(make_server: MakeServer) -> None:
    st = make_server(ControlConfig(max_clients=2, idle_timeout=5.0))
    with Raw(st.path) as a, Raw(st.path) as b:
        a.send(req("ping", 1))
        b.send(req("ping", 1))
        assert a.recv()["ok"] and b.recv()["ok"]  # both are being served
        with Raw(st.path) as c:
            reply = c.recv()
            assert reply["error"]["code"] == "busy" and reply["id"] is None
            assert c.at_eof()
    deadline = time.monotonic() + 10
    while st.server is not None and st.server.clients:  # slots free as the server reads a's and b's EOF
        assert time.monotonic() < deadline
        time.sleep(0.01)
    ping_ok(st.path)


def test_two_hundred_concurrent_clients(make_server: MakeServer) -> None:
    n = 200
    st = make_server(ControlConfig(max_clients=256, idle_timeout=10.0))
    all_connected = threading.Barrier(n + 1, timeout=20)
    may_close = threading.Barrier(n + 1, timeout=20)
    failures: list[BaseException] = []

    def client(i: int) -> None:
        try:
            with Client(st.path, timeout=20) as c:
                assert c.call("echo", {"i": i})["args"] == {"i": i}
                all_connected.wait()
                for _ in range(5):
                    assert c.call("ping")["pong"]
                may_close.wait()
        except BaseException as exc:  # noqa: BLE001 - reported below
            failures.append(exc)
            all_connected.abort()
            may_close.abort()

    threads = [threading.Thread(target=client, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    all_connected.wait()
    with Client(st.path) as c:
        assert c.call("clients")["clients"] == n + 1
    may_close.wait()
    for t in threads:
        t.join(20)
    assert not failures, failures[:3]


# -- the socket file ----------------------------------------------------------


def test_socket_is_0660_and_its_new_folder_0750(server: ServerThread) -> None:
    assert stat.S_IMODE(os.stat(server.path).st_mode) == 0o660
    assert stat.S_ISSOCK(os.stat(server.path).st_mode)
    assert stat.S_IMODE(os.stat(server.path.parent).st_mode) == 0o750


def test_existing_folder_keeps_its_mode(sock_dir: Path, make_server: MakeServer) -> None:
    os.chmod(sock_dir, 0o755)
    st = make_server(name="edgeorch.sock")
    assert stat.S_IMODE(os.stat(st.path.parent).st_mode) == 0o755


def test_stale_socket_is_replaced(sock_dir: Path, make_server: MakeServer) -> None:
    path = sock_dir / "run" / "edgeorch.sock"
    path.parent.mkdir()
    dead = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    dead.bind(str(path))
    dead.close()  # the file stays, nobody listens: a crashed daemon's leftover
    with pytest.raises(DaemonNotRunning, match=str(path)):
        Client(path).call("ping")
    st = make_server()
    ping_ok(st.path)


def test_a_removed_socket_is_bound_again_and_open_connections_are_kept(server: ServerThread) -> None:
    """A clean-up that removes the socket file (or its folder) left the daemon unreachable for good."""
    assert server.server is not None
    with Client(server.path) as kept:
        kept.call("ping")
        assert server.run(_rebind(server.server)) is False  # there, ours: nothing to do
        shutil.rmtree(server.path.parent)  # the file and its folder
        with pytest.raises(DaemonNotRunning):
            Client(server.path).call("ping")
        assert server.run(_rebind(server.server)) is True
        ping_ok(server.path)
        kept.call("ping")  # a connection made before is served as before
    assert stat.S_IMODE(os.stat(server.path).st_mode) == 0o660
    assert stat.S_IMODE(os.stat(server.path.parent).st_mode) == 0o750
    server.path.unlink()
    server.path.write_text("someone else's")  # another file at the path: left alone, as at a start, and said
    with pytest.raises(StateError, match="something else stands at the control socket's path"):
        server.run(_rebind(server.server))
    assert server.path.read_text() == "someone else's"
    server.path.unlink()


async def _rebind(server: ControlServer) -> bool:
    return server.rebind_if_gone()  # on the server's loop: it starts an accept task there


def test_live_socket_is_not_taken_over(server: ServerThread) -> None:
    second = ControlServer(server.path, ControlConfig())
    with pytest.raises(StateError, match="already listening"):
        server.run(second.start())
    ping_ok(server.path)


def test_non_socket_file_is_not_replaced(sock_dir: Path) -> None:
    path = sock_dir / "edgeorch.sock"
    path.write_text("precious")
    st = ServerThread(path, ControlConfig())
    try:
        with pytest.raises(StateError, match="not a socket"):
            st.start()
        assert path.read_text() == "precious"
    finally:
        st.stop()


def test_close_removes_the_socket(sock_dir: Path) -> None:
    st = ServerThread(sock_dir / "edgeorch.sock", ControlConfig())
    st.start()
    st.stop()
    assert not st.path.exists()


def test_client_without_daemon_says_so(sock_dir: Path) -> None:
    path = sock_dir / "nothing.sock"
    with pytest.raises(DaemonNotRunning, match=f"no edgeorch daemon is running at {path}"):
        Client(path).call("ping")


def test_close_ends_open_streams_and_connections(sock_dir: Path) -> None:
    st = ServerThread(sock_dir / "edgeorch.sock", ControlConfig())
    st.start()
    try:
        with Raw(st.path) as raw:
            raw.send(req("forever", 1))
            assert raw.recv()["result"] == {"started": True}
            assert st.server is not None
            st.run(st.server.close())
            assert st.stream_closed.wait(5)
            assert raw.at_eof()
    finally:
        st.stop()


def test_too_many_requests_in_flight_on_one_connection(server: ServerThread) -> None:
    from edgeorch.control.protocol import MAX_INFLIGHT_PER_CONNECTION as cap

    with Raw(server.path) as raw:
        for i in range(cap):
            raw.send(req("forever", i))
        started = {raw.recv()["id"] for _ in range(cap)}
        assert started == set(range(cap))
        raw.send(req("ping", "extra"))
        reply = raw.recv()
        assert reply["id"] == "extra" and reply["error"]["code"] == "busy"


def test_client_reconnects_after_the_daemon_dropped_an_idle_connection(make_server: MakeServer) -> None:
    st = make_server(ControlConfig(idle_timeout=0.2))
    with Client(st.path, timeout=5) as client:
        assert client.call("ping")["pong"]
        conn = client._conn
        assert conn is not None
        # Wait until the daemon's timeout goodbye is there to be read.
        assert select.select([conn.sock], [], [], 5)[0]
        assert client.call("ping")["pong"]  # not the stale goodbye


def test_a_long_line_is_read_in_parts_up_to_the_cap(make_server: MakeServer) -> None:
    """Past SHORT_LINE_BYTES a line is read on in parts (a long-line permit): at the cap it is accepted, one byte
    over it is too large, and a long last line without its newline before EOF still counts."""
    from edgeorch.control.server import SHORT_LINE_BYTES

    cap = 4 * SHORT_LINE_BYTES + 17
    st = make_server(ControlConfig(max_line_bytes=cap, idle_timeout=5.0))
    head = b'{"v":1,"id":1,"op":"echo","args":{"x":"'
    tail = b'"}}'
    line = head + b"a" * (cap - len(head) - len(tail)) + tail
    with Raw(st.path) as raw:
        for i in range(0, len(line), 30_000):  # in pieces, as a slow client sends it
            raw.sock.sendall(line[i:i + 30_000])
        raw.send(b"\n")
        assert raw.recv()["result"]["args"]["x"] == "a" * (cap - len(head) - len(tail))
        raw.send(line[:-3] + b'a"}}\n')  # one byte over
        assert raw.recv()["error"]["code"] == "too_large"
    with Raw(st.path) as raw:
        raw.sock.sendall(line)
        raw.sock.shutdown(socket.SHUT_WR)
        assert raw.recv()["ok"] is True
