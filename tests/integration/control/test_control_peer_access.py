"""Peer credentials: a client running as another user (``nobody``) is refused.

The client is a real process started through ``setpriv`` (so the kernel
reports its uid), speaking the protocol with socat or a small Python script
(:class:`control_helpers.Stranger`). The socket and its folder are opened up
for the test so that ``nobody`` can reach them at all: what is tested is the
daemon's policy, not file permissions.
"""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import select
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from control_helpers import Raw, ServerThread, Stranger, req, strangers

from edgeorch.config import ControlConfig
from edgeorch.control import Client
from edgeorch.control.auth import AccessPolicy
from edgeorch.control.refusals import AUDITED_PER_WINDOW, WINDOW_S, Suppressed
from edgeorch.control.server import owner_slots
from testclock import SetClock as FakeClock

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="switching to user nobody needs root"),
    pytest.mark.skipif(shutil.which("setpriv") is None, reason="setpriv (util-linux) is not installed"),
    pytest.mark.skipif(shutil.which("socat") is None, reason="socat is not installed"),
]

MakeServer = Callable[..., ServerThread]

NOBODY = pwd.getpwnam("nobody").pw_uid if os.geteuid() == 0 else -1


def open_up(st: ServerThread) -> None:
    for d in (st.path.parent, st.path.parent.parent):
        os.chmod(d, 0o755)
    os.chmod(st.path, 0o666)


def as_nobody(path: Path, *requests: dict[str, Any]) -> list[dict[str, Any]]:
    """Send ``requests`` from a process running as nobody; the parsed replies."""
    lines = "".join(json.dumps(r) + "\n" for r in requests).encode()
    from socat import socat_request

    out = socat_request(path, lines, as_nobody=True)
    assert out.returncode == 0, out.stderr.decode()
    return sorted((json.loads(line) for line in out.stdout.splitlines()), key=lambda r: r["id"])


def test_a_stranger_is_refused_once_at_connect_closed_and_holds_no_slot(make_server: MakeServer) -> None:
    # The report: 200 connections of a user with no access filled max_clients, and the daemon's own user got busy.
    st = make_server(ControlConfig(idle_timeout=5.0, max_clients=4), policy=AccessPolicy(daemon_uid=0))
    open_up(st)
    with Stranger(st.path, 200) as mallory:
        # Every one of the 200 is still open on its side: none of them holds a slot of ours.
        with Client(st.path) as c:
            assert c.call("clients")["clients"] == 1
        assert len(mallory.replies) == 200
        for got in mallory.replies:
            reply = got["reply"]
            assert reply is not None and reply["id"] is None and reply["error"]["code"] == "permission_denied", got
            assert "nobody" in reply["error"]["message"] and "no access" in reply["error"]["message"]
            assert got["closed"] is True
    assert st.denied, "the refusals were not recorded"
    assert {(peer.uid, peer.user, op) for peer, op in st.denied} == {(NOBODY, "nobody", None)}
    assert len(st.denied) <= AUDITED_PER_WINDOW


def test_reader_may_read_but_not_act(make_server: MakeServer) -> None:
    st = make_server(ControlConfig(idle_timeout=5.0), policy=AccessPolicy(readers=["nobody"], daemon_uid=0))
    open_up(st)
    ping, act, echo = as_nobody(st.path, req("ping", 1), req("act", 2), req("echo", 3))
    assert ping["ok"] is True
    assert act["error"]["code"] == "permission_denied"
    assert echo["result"]["actor"] == {"uid": NOBODY, "user": "nobody"}
    assert [op for _, op in st.denied] == ["act"]


def test_operator_group_may_act(make_server: MakeServer) -> None:
    # nobody's primary group in the user database is nogroup.
    st = make_server(ControlConfig(idle_timeout=5.0), policy=AccessPolicy(operators=["@nogroup"], daemon_uid=0))
    open_up(st)
    (act,) = as_nobody(st.path, req("act", 1))
    assert act["ok"] is True


def test_readers_share_the_slots_but_some_are_kept_for_root_and_the_daemon_user(make_server: MakeServer) -> None:
    st = make_server(ControlConfig(idle_timeout=5.0, max_clients=4),
                     policy=AccessPolicy(readers=["nobody"], daemon_uid=0))
    open_up(st)
    kept = owner_slots(4)
    assert kept == 2
    with Stranger(st.path, 4) as reader:
        codes = [r["reply"]["ok"] or r["reply"]["error"]["code"] for r in reader.replies]
        assert codes == [True, True, "busy", "busy"]
        busy = reader.replies[-1]
        assert busy["closed"] is True and "2 of them kept for root" in busy["reply"]["error"]["message"]
        # The reader holds every slot it may have; root still gets the two kept ones, and no more.
        with Client(st.path) as a, Client(st.path) as b:
            assert a.call("ping")["pong"] and b.call("ping")["pong"]
            with Raw(st.path) as c:
                reply = c.recv()
                assert reply["error"]["code"] == "busy" and "kept" not in reply["error"]["message"]


@contextlib.contextmanager
def _nobody_on(st: ServerThread) -> Iterator[tuple[Callable[[dict], None], Callable[[], bytes]]]:
    """A connection of user nobody (socat under setpriv) to ``st``: ``(send(request), read_line())``, closed after."""
    proc = subprocess.Popen(
        ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", "socat", "-t", "1", "-",
         f"UNIX-CONNECT:{st.path}"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdin is not None and proc.stdout is not None

    def send(request: dict) -> None:
        proc.stdin.write((json.dumps(request) + "\n").encode())  # type: ignore[union-attr]
        proc.stdin.flush()  # type: ignore[union-attr]

    def read_line() -> bytes:
        ready, _, _ = select.select([proc.stdout], [], [], 10)
        assert ready, "no answer and no close within 10 s"
        return proc.stdout.readline()  # type: ignore[union-attr]

    try:
        yield send, read_line
    finally:
        proc.kill()
        proc.wait(10)
        for stream in (proc.stdin, proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()


def test_a_reader_whose_access_a_reload_took_away_is_refused_and_closed(make_server: MakeServer) -> None:
    st = make_server(ControlConfig(idle_timeout=30.0), policy=AccessPolicy(readers=["nobody"], daemon_uid=0))
    open_up(st)
    with _nobody_on(st) as (send, read_line):
        send(req("ping", 1))
        assert json.loads(read_line())["ok"] is True

        async def revoke() -> None:
            assert st.server is not None
            st.server.set_policy(AccessPolicy(daemon_uid=0))

        st.run(revoke())
        send(req("ping", 2))
        refused = json.loads(read_line())
        assert refused["id"] == 2 and refused["error"]["code"] == "permission_denied"
        assert "no access" in refused["error"]["message"]
        assert read_line() == b"", "the connection was kept open"
        assert [op for _, op in st.denied] == ["ping"]


def test_a_readers_open_stream_ends_when_a_reload_takes_its_access_away(make_server: MakeServer) -> None:
    """`edgeorch events` and `logs -f` of a user a reload removed from `readers` went on receiving every event and
    log line: only a next request was refused. The stream ends with the refusal (recorded), and the connection
    closes."""
    st = make_server(ControlConfig(idle_timeout=30.0), policy=AccessPolicy(readers=["nobody"], daemon_uid=0))
    open_up(st)
    with _nobody_on(st) as (send, read_line):
        send(req("forever", 7))
        assert json.loads(read_line())["result"] == {"started": True}

        async def revoke() -> None:
            assert st.server is not None
            st.server.set_policy(AccessPolicy(daemon_uid=0))

        st.run(revoke())
        ended = json.loads(read_line())
        assert ended["id"] == 7 and ended["error"]["code"] == "permission_denied", ended
        assert read_line() == b"", "the connection was kept open"
        assert st.stream_closed.wait(10)  # the stream's generator was closed, not left waiting
        assert [op for _, op in st.denied] == [None]


def close(st: ServerThread) -> None:
    """Close the server now (idempotent: the fixture closes it again)."""
    assert st.server is not None
    st.run(st.server.close())


def test_refusals_of_one_uid_are_recorded_up_to_a_bound_per_window_and_the_rest_counted(
        make_server: MakeServer) -> None:
    clock = FakeClock(1_000_000.0)
    start = clock.now
    st = make_server(ControlConfig(idle_timeout=5.0), policy=AccessPolicy(daemon_uid=0), clock=clock)
    open_up(st)
    n = AUDITED_PER_WINDOW
    strangers(st.path, n + 5)
    assert len(st.denied) == n and st.suppressed == []
    # The window is over: the next refusal writes the count of the last one first.
    clock.now += WINDOW_S
    strangers(st.path, 1)
    assert st.suppressed == [Suppressed(uid=NOBODY, user="nobody", count=5, since=start, until=start + WINDOW_S)]
    assert st.hooks[n:] == [("suppressed", 5), ("denied", None)]
    # A window that ends with no refusal after it: the server's flush timer writes its count.
    strangers(st.path, n + 1)
    assert len(st.denied) == 2 * n and len(st.suppressed) == 1
    clock.now += WINDOW_S
    st.suppressed_event.clear()
    assert st.server is not None
    st.loop.call_soon_threadsafe(st.server._flush_due)  # what its timer calls (the clock is not the loop's)
    assert st.suppressed_event.wait(10)
    assert st.suppressed[1].count == 2 and st.suppressed[1].until == start + 2 * WINDOW_S
    # Closing writes the count of a window that has not ended.
    strangers(st.path, n + 3)
    clock.now += 1
    close(st)
    assert len(st.denied) == 3 * n
    assert st.suppressed[2] == Suppressed(uid=NOBODY, user="nobody", count=3, since=start + 2 * WINDOW_S,
                                          until=start + 2 * WINDOW_S + 1)


def test_a_readers_refused_acts_share_the_same_bound(make_server: MakeServer) -> None:
    st = make_server(ControlConfig(idle_timeout=5.0), policy=AccessPolicy(readers=["nobody"], daemon_uid=0),
                     clock=FakeClock(1_000_000.0))
    open_up(st)
    replies = as_nobody(st.path, *(req("act", i) for i in range(AUDITED_PER_WINDOW + 4)))
    assert [r["error"]["code"] for r in replies] == ["permission_denied"] * (AUDITED_PER_WINDOW + 4)
    assert [op for _, op in st.denied] == ["act"] * AUDITED_PER_WINDOW
    close(st)
    assert [s.count for s in st.suppressed] == [4]


def test_one_reader_holds_at_most_half_of_the_shared_slots(make_server: MakeServer) -> None:
    """A reader opening connections in a loop filled every shared slot: the other readers and operators got busy."""
    from edgeorch.control.server import per_user_slots

    st = make_server(ControlConfig(idle_timeout=5.0, max_clients=12),
                     policy=AccessPolicy(readers=["nobody"], daemon_uid=0))
    open_up(st)
    shared = 12 - owner_slots(12)
    assert (shared, per_user_slots(shared)) == (6, 3)
    with Stranger(st.path, 5) as reader:
        codes = [r["reply"]["ok"] or r["reply"]["error"]["code"] for r in reader.replies]
        assert codes == [True, True, True, "busy", "busy"], codes
        message = reader.replies[-1]["reply"]["error"]["message"]
        assert "user nobody" in message and "holds 3 connections, the most one user may" in message, message
        with Client(st.path) as c:  # the owners are not counted against it
            assert c.call("clients")["clients"] == 4
    with Stranger(st.path, 3) as again:  # its slots came back when it closed them
        assert [r["reply"]["ok"] for r in again.replies] == [True, True, True]


STREAMS = """\
import json, socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.settimeout(20)
s.connect(sys.argv[1])
n = int(sys.argv[2])
s.sendall(b"".join(json.dumps({"v": 1, "id": i, "op": "forever"}).encode() + b"\\n" for i in range(n)))
f = s.makefile("rb")
print(json.dumps(sorted((json.loads(f.readline()) for _ in range(n)), key=lambda r: r["id"])), flush=True)
sys.stdin.read()  # the streams stay open until the test closes this
"""


def _streams_of_nobody(st: ServerThread, n: int) -> tuple[subprocess.Popen, list[dict[str, Any]]]:
    proc = subprocess.Popen(["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", sys.executable, "-c",
                             STREAMS, str(st.path), str(n)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, cwd="/")
    assert proc.stdout is not None and proc.stderr is not None
    line = proc.stdout.readline()
    if not line:
        proc.kill()
        raise AssertionError(f"the reader's script failed: {proc.stderr.read().decode()}")
    return proc, json.loads(line)


def _close(proc: subprocess.Popen) -> None:
    assert proc.stdin is not None
    proc.stdin.close()
    proc.wait(20)


def test_one_reader_holds_at_most_its_slots_worth_of_streams_in_all_its_connections(make_server: MakeServer) -> None:
    """Found by a hostile reader: 190 connections with 32 `logs` streams each, never read, held 1,024 descriptors
    (every accept and every drop-folder claim then failed with EMFILE), and following ones polled their logs
    five times a second each (`status` took 10 s). One user other than the owners holds at most per_user_slots
    streams in all; the owners are not counted; a closed stream gives its place back."""
    from edgeorch.control.server import per_user_slots

    st = make_server(ControlConfig(idle_timeout=30.0, max_clients=12),
                     policy=AccessPolicy(readers=["nobody"], daemon_uid=0))
    open_up(st)
    most = per_user_slots(12 - owner_slots(12))
    assert most == 3
    proc, replies = _streams_of_nobody(st, 5)
    try:
        assert [r.get("result", {}).get("started") for r in replies[:most]] == [True] * most, replies
        for r in replies[most:]:
            assert r["error"]["code"] == "busy", r
            assert "user nobody" in r["error"]["message"] and "has 3 streams open" in r["error"]["message"], r
        with Client(st.path) as c:  # the owners are not counted against it
            assert next(iter(c.stream("forever")))["started"] is True
    finally:
        _close(proc)
    deadline = time.monotonic() + 20
    while st.server._streams_per_uid:  # the server ends its streams once it sees the connection closed
        assert time.monotonic() < deadline, st.server._streams_per_uid
        time.sleep(0.02)
    again, replies = _streams_of_nobody(st, 3)
    try:
        assert [r.get("result", {}).get("started") for r in replies] == [True] * 3, replies
    finally:
        _close(again)


LONG_LINES = """\
import json, socket, sys
conns = []
head, tail = b'{"v":1,"id":%d,"op":"echo","args":{"x":"', b'"}}\\n'
for i in range(int(sys.argv[2])):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(20)
    s.connect(sys.argv[1])
    s.sendall(head % i + b"a" * int(sys.argv[3]))  # a line longer than the short limit, not ended
    conns.append(s)
print("sent", flush=True)
sys.stdin.readline()
for s in conns:
    s.sendall(tail)
print(json.dumps([json.loads(s.makefile("rb").readline()) for s in conns]), flush=True)
"""


def test_one_reader_reads_at_most_two_long_lines_at_once(make_server: MakeServer) -> None:
    """A reader's 400 connections, each holding a partial line of up to max_line_bytes (1 MiB), held ~500 MB of
    the daemon. A line past SHORT_LINE_BYTES is read on under one of the user's LONG_LINES_PER_USER permits; the
    others wait with at most twice the short limit buffered, and go on when a permit comes back."""
    from edgeorch.control.server import LONG_LINES_PER_USER, SHORT_LINE_BYTES

    st = make_server(ControlConfig(idle_timeout=30.0), policy=AccessPolicy(readers=["nobody"], daemon_uid=0))
    open_up(st)
    assert st.server is not None
    nobody = pwd.getpwnam("nobody").pw_uid
    proc = subprocess.Popen(["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", sys.executable, "-c",
                             LONG_LINES, str(st.path), "4", str(SHORT_LINE_BYTES + 40_000)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd="/")
    assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
    try:
        assert proc.stdout.readline() == b"sent\n", proc.stderr.read().decode()
        deadline = time.monotonic() + 20
        while st.server._long_lines.get(nobody, (None, 0))[1] < 4:  # all four past the short limit
            assert time.monotonic() < deadline, st.server._long_lines
            time.sleep(0.01)
        permits, users = st.server._long_lines[nobody]
        assert users == 4 and permits.locked()  # two read on, two wait
        with Client(st.path) as c:  # the owners never wait for a reader's permits
            assert c.call("echo", {"x": "a" * (SHORT_LINE_BYTES * 3)})["args"]["x"] == "a" * (SHORT_LINE_BYTES * 3)
        proc.stdin.write(b"go\n")
        proc.stdin.flush()
        replies = json.loads(proc.stdout.readline() or b"null")
        assert replies is not None, proc.stderr.read().decode()
        assert [r["ok"] for r in replies] == [True] * 4, replies
        assert [len(r["result"]["args"]["x"]) for r in replies] == [SHORT_LINE_BYTES + 40_000] * 4
    finally:
        proc.kill()
        proc.wait(20)
    deadline = time.monotonic() + 20
    while st.server._long_lines:  # forgotten once nobody holds or waits
        assert time.monotonic() < deadline, st.server._long_lines
        time.sleep(0.01)
    assert LONG_LINES_PER_USER == 2
