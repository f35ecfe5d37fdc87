"""The control socket of a real daemon under hostile or careless clients (issue 9, items 15, 22, 25, 36).

Each test starts ``edgeorch daemon`` as a subprocess (tests/conftest.py) and
talks to it over its real Unix socket; "another user" is a real process run
as ``nobody`` through ``setpriv`` (root only).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edgeorch.control.server import client_limit

ECHO = """
[tasks.a]
command = ["true"]
"""

AS_NOBODY = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"]
needs_nobody = pytest.mark.skipif(os.geteuid() != 0 or shutil.which("setpriv") is None,
                                  reason="acting as user nobody needs root and setpriv (util-linux)")


def lines_of(sock: socket.socket, deadline: float) -> Iterator[dict[str, Any] | None]:
    """Reply lines from ``sock`` as parsed JSON (asserting each is JSON); None at EOF."""
    buf = b""
    while True:
        while b"\n" in buf:
            line, buf = buf.split(b"\n", 1)
            yield json.loads(line)
        sock.settimeout(max(0.1, deadline - time.monotonic()))
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            chunk = b""
        if not chunk:
            assert not buf.strip(), f"a partial reply line before EOF: {buf[:200]!r}"
            yield None
            return
        buf += chunk


def connect(path: Path) -> socket.socket:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(str(path))  # blocking: waits for room in the listen backlog, as a real client does
    s.settimeout(10)
    return s


# -- item 25: exactly one well-formed reply per request line --------------------------------------

READ_OPS = ["ping", "version", "ops", "status", "pipelines.list", "pipelines.show", "pipelines.validate",
            "runs.list", "runs.show", "inputs.list", "resources"]
LEAVES = st.one_of(st.none(), st.booleans(), st.integers(), st.integers(min_value=10**18, max_value=10**31),
                   st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=8),
                   st.sampled_from(["\ud800", "a\udfff"]))
ARGS = st.dictionaries(st.sampled_from(["run_id", "name", "limit", "state", "pipeline", "path", "text", "x"]),
                       LEAVES, max_size=3)
DOCS = st.fixed_dictionaries({"v": st.sampled_from([1, 1, 1, 2]), "id": LEAVES,
                              "op": st.one_of(st.sampled_from(READ_OPS), st.text(max_size=6))},
                             optional={"args": ARGS})
LINES = st.one_of(DOCS.map(lambda d: json.dumps(d).encode()),
                  st.binary(max_size=40).map(lambda b: b.replace(b"\n", b" ")).filter(lambda b: b.strip()))
# (a blank line is documented as ignored: no reply)
PROBE = "__probe__"


def _valid_id(value: Any) -> bool:
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        return False
    if isinstance(value, int):
        return -(2**63) <= value < 2**63
    try:
        value.encode()
    except UnicodeEncodeError:
        return False
    return value != PROBE


def test_fuzzed_request_lines_each_get_exactly_one_reply_and_the_daemon_stays_up(workspace, daemon) -> None:
    workspace.pipeline("echo", ECHO)
    daemon.start()

    @settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
    @given(LINES)
    def one_line(line: bytes) -> None:
        try:
            sent_id = json.loads(line).get("id")
        except (ValueError, AttributeError):
            sent_id = None
        with connect(daemon.socket_path) as s:
            s.sendall(line + b"\n")
            replies = lines_of(s, time.monotonic() + 20)
            reply = next(replies)
            assert reply is not None, f"no reply to {line!r}"
            assert set(reply) >= {"id", "ok"} and isinstance(reply["ok"], bool), reply
            if _valid_id(sent_id):
                assert reply["id"] == sent_id
            # Exactly one: the next line is the probe's answer, or the end of a broken stream.
            try:
                s.sendall(json.dumps({"v": 1, "id": PROBE, "op": "ping"}).encode() + b"\n")
            except (BrokenPipeError, ConnectionResetError):
                pass
            after = next(replies)
            if after is None:  # only a line that breaks the stream closes it
                assert reply["ok"] is False and reply["error"]["code"] in ("bad_request", "unsupported_version")
            else:
                assert after["id"] == PROBE and after["ok"] is True, (line, reply, after)

    one_line()
    assert daemon.proc.poll() is None
    assert daemon.call("ping")["pong"] is True


def test_a_30_digit_run_id_is_a_usage_error_and_the_connection_stays_open(workspace, daemon) -> None:
    daemon.start()
    with connect(daemon.socket_path) as s:
        s.sendall(b'{"v":1,"id":1,"op":"runs.show","args":{"run_id":123456789012345678901234567890}}\n'
                  b'{"v":1,"id":2,"op":"ping"}\n')
        replies = lines_of(s, time.monotonic() + 10)
        first, second = next(replies), next(replies)
    assert first["id"] == 1 and first["error"]["code"] == "usage" and first["error"]["field"] == "args.run_id"
    assert second["id"] == 2 and second["ok"] is True


# -- item 15: pipelines.validate reads only what the client could read ----------------------------

NOBODY_CLIENT = textwrap.dedent("""\
    import json, sys
    from edgeorch.control import Client
    out = []
    with Client(sys.argv[1], timeout=20) as c:
        for args in json.loads(sys.argv[2]):
            try:
                out.append({"ok": True, "result": c.call("pipelines.validate", args)})
            except Exception as exc:
                out.append({"ok": False, "code": getattr(exc, "code", "?"), "message": str(exc)})
    print(json.dumps(out))
    """)


def _as_nobody_validate(sock: str, requests: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = subprocess.run([*AS_NOBODY, sys.executable, "-c", NOBODY_CLIENT, sock, json.dumps(requests)],
                         capture_output=True, text=True, timeout=60, cwd="/")
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


@pytest.fixture
def public_dir() -> Iterator[Path]:
    """A folder everyone may enter (pytest's tmp dirs are private to root)."""
    d = Path(tempfile.mkdtemp(prefix="eo-pub-"))
    os.chmod(d, 0o755)
    yield d
    shutil.rmtree(d, ignore_errors=True)


@needs_nobody
def test_validate_never_reads_for_a_reader_what_only_the_daemon_may_read(workspace, daemon, public_dir) -> None:
    secret = public_dir / "secret.toml"
    secret.write_text('name = "x"\nTOP-SECRET-TOKEN = 1\n')
    os.chmod(secret, 0o600)
    hidden = public_dir / "private"
    hidden.mkdir(mode=0o700)
    (hidden / "p.toml").write_text(ECHO)
    os.chmod(hidden / "p.toml", 0o644)  # readable itself, but its folder is not searchable by nobody
    fifo = public_dir / "fifo.toml"
    os.mkfifo(fifo, 0o666)
    ok_file = public_dir / "mine.toml"
    ok_file.write_text(ECHO)
    os.chmod(ok_file, 0o644)
    sock = public_dir / "edgeorch.sock"
    workspace.write_config(extra=f'[control]\nsocket = "{sock}"\nreaders = ["nobody"]\n')
    daemon.socket_override = str(sock)
    daemon.start()
    os.chmod(sock, 0o666)
    requests = [{"path": str(secret)}, {"path": str(hidden / "p.toml")}, {"path": "/dev/zero"},
                *[{"path": str(fifo)} for _ in range(6)], {"path": str(ok_file)},
                {"text": ECHO, "name": "sent.toml"},
                # 0444, but the kernel lets only the daemon's ptrace peers read it (a re-test got its parse error)
                {"path": f"/proc/{daemon.proc.pid}/maps"}]
    started = time.monotonic()
    replies = _as_nobody_validate(str(sock), requests)
    assert time.monotonic() - started < 30  # FIFOs and /dev/zero never block or stream
    secret_r, hidden_r, zero_r, *fifo_r, own_r, text_r, maps_r = replies
    for r in (secret_r, hidden_r, maps_r):
        assert r["ok"] is False and r["code"] == "usage" and "Permission denied" in r["message"]
    assert "TOP-SECRET" not in json.dumps(replies)
    assert zero_r["ok"] is False and "not a regular file" in zero_r["message"]
    assert all(r["ok"] is False and "not a regular file" in r["message"] for r in fifo_r)
    assert own_r["result"]["ok"] is True and own_r["result"]["pipelines"] == ["mine"]
    assert text_r["result"]["ok"] is True and text_r["result"]["pipelines"] == ["sent"]
    assert daemon.call("ping")["pong"] is True


def _deny_acl(path: Path, uid: int) -> bool:
    """Give ``path`` (mode 0644) an access ACL whose named entry denies ``uid`` everything (what ``setfacl -m
    u:nobody:--- path`` does, written as the kernel's xattr); False where the file system has no ACLs."""
    import struct

    undefined = 0xFFFFFFFF
    entries = [(0x01, 6, undefined), (0x02, 0, uid), (0x04, 4, undefined), (0x10, 4, undefined), (0x20, 4, undefined)]
    blob = struct.pack("<I", 2) + b"".join(struct.pack("<HHI", tag, perm, who) for tag, perm, who in entries)
    try:
        os.setxattr(path, "system.posix_acl_access", blob)
    except OSError:
        return False
    return True


@needs_nobody
def test_validate_never_reads_for_a_reader_a_file_an_acl_denies_it(workspace, daemon, public_dir) -> None:
    """Found by a hostile reader: the mode bits (0644) said yes, a named ACL entry said no to nobody, and the
    validation's errors gave back the file's keys and values (`DB_PASSWORD=...`). A file or folder with an
    access ACL is never read for a peer."""
    import pwd

    guarded = public_dir / "guarded.toml"
    guarded.write_text('name = "x"\n[tasks.a]\nretries = "DB_PASSWORD=hunter2"\ncommand = ["true"]\n')
    os.chmod(guarded, 0o644)
    if not _deny_acl(guarded, pwd.getpwnam("nobody").pw_uid):
        pytest.skip("this file system has no POSIX ACLs")
    denied = subprocess.run([*AS_NOBODY, "cat", str(guarded)], capture_output=True, text=True)
    assert denied.returncode != 0, "the kernel let nobody read it: the ACL is not in force here"
    sock = public_dir / "edgeorch.sock"
    workspace.write_config(extra=f'[control]\nsocket = "{sock}"\nreaders = ["nobody"]\n')
    daemon.socket_override = str(sock)
    daemon.start()
    os.chmod(sock, 0o666)
    (reply,) = _as_nobody_validate(str(sock), [{"path": str(guarded)}])
    assert reply["ok"] is False and reply["code"] == "usage" and "Permission denied" in reply["message"], reply
    assert "hunter2" not in json.dumps(reply)


def test_validate_runs_on_its_own_executor_not_the_one_that_claims_files() -> None:
    import asyncio

    from edgeorch.control.auth import Peer
    from edgeorch.control.peerfiles import read_for_peer_async

    seen: list[str] = []

    async def main() -> None:
        loop = asyncio.get_running_loop()
        real = loop.run_in_executor

        def spy(executor, fn, *args):  # type: ignore[no-untyped-def]
            seen.append("default" if executor is None else "own")
            return real(executor, fn, *args)

        loop.run_in_executor = spy  # type: ignore[method-assign]
        peer = Peer(pid=1, uid=os.getuid(), gid=os.getgid(), user="me")
        with pytest.raises(Exception, match="not a regular file"):
            await read_for_peer_async("/dev/zero", peer, 1024)

    asyncio.run(main())
    assert seen == ["own"]


# -- item 36: a user who cannot enter the socket's folder ------------------------------------------

@needs_nobody
def test_status_as_a_user_who_cannot_reach_the_socket_exits_77_with_a_message(workspace, daemon, public_dir) -> None:
    daemon.start()  # socket in the state folder under pytest's root-only tmp dir
    config = public_dir / "config.toml"
    shutil.copy(workspace.config_path, config)
    os.chmod(config, 0o644)
    env = {k: v for k, v in workspace.cli_env().items() if k not in ("RUNTIME_DIRECTORY",)}
    env["EDGEORCH_CONFIG"] = str(config)
    out = subprocess.run([*AS_NOBODY, *workspace.cli(), "status"], env=env, cwd=str(public_dir),
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 77, out.stderr
    assert "Traceback" not in out.stderr
    assert "permission denied" in out.stderr and str(daemon.socket_path) in out.stderr


# -- item 22: descriptor exhaustion ---------------------------------------------------------------

NOFILE = 256
LIMITED = textwrap.dedent(f"""\
    import os, resource, sys
    resource.setrlimit(resource.RLIMIT_NOFILE, ({NOFILE}, {NOFILE}))
    os.execv(sys.executable, [sys.executable, "-m", "edgeorch.cli", *sys.argv[1:]])
    """)

INGEST = """
[params]
input = { type = "path", default = "" }
[tasks.check]
command = ["sh", "-c", "test -f {input}"]
"""


def test_idle_clients_beyond_the_descriptor_budget_get_busy_and_drop_folder_claims_go_on(workspace, daemon) -> None:
    drop = workspace.root / "drop"
    drop.mkdir()
    workspace.write_config(f'[[watch]]\nfolder = "{drop}"\npipeline = "ingest"\nsettle = "0.2s"\n')
    workspace.pipeline("ingest", INGEST)
    workspace.cli = lambda: [sys.executable, "-c", LIMITED]  # the daemon runs with soft = hard = 256 descriptors
    daemon.start()
    cap = client_limit(1024, NOFILE)
    conns = [connect(daemon.socket_path) for _ in range(NOFILE - 6)]
    try:
        answers = {"ok": 0, "busy": 0}
        for s in conns:
            try:
                s.sendall(b'{"v":1,"id":1,"op":"ping"}\n')
            except (BrokenPipeError, ConnectionResetError):
                pass  # already told busy and closed: the line is still there to read
            doc = next(lines_of(s, time.monotonic() + 20))
            assert doc is not None, "a client got no answer at all"
            answers["ok" if doc["ok"] else doc["error"]["code"]] += 1
        assert answers == {"ok": cap, "busy": len(conns) - cap}
        # While every client slot is held, the daemon's own work still has descriptors.
        (drop / "a.csv").write_bytes(b"x,y\n1,2\n")
        deadline = time.monotonic() + 60
        while True:
            with sqlite3.connect(workspace.state / "edgeorch.db") as db:
                states = [r[0] for r in db.execute("SELECT state FROM inputs")]
            if states and states[0] not in ("claiming", "claimed", "started"):
                break
            assert time.monotonic() < deadline, f"the dropped file was not processed: {states}"
            time.sleep(0.05)
        assert states == ["done"], daemon.output()[-2000:]
    finally:
        for s in conns:
            s.close()
    from edgeorch.control.protocol import Busy

    deadline = time.monotonic() + 30
    while True:  # the daemon frees the slots as it reads each client's EOF
        try:
            assert daemon.call("ping")["pong"] is True
            break
        except Busy:
            assert time.monotonic() < deadline, "client slots never freed"
    assert "Too many open files" not in daemon.output()


# -- a stranger's flood: no slot taken, its refusals audited within a bound ---------------------------


@needs_nobody
def test_a_stranger_with_200_connections_locks_nobody_out_and_its_refusals_are_audited_within_a_bound(
        workspace, daemon, public_dir) -> None:
    from control_helpers import Stranger

    from edgeorch.control.refusals import AUDITED_PER_WINDOW

    sock = public_dir / "edgeorch.sock"
    workspace.write_config(f'[control]\nsocket = "{sock}"\nmax_clients = 64\nidle_timeout = "20s"\n')
    daemon.socket_override = str(sock)
    daemon.start()
    os.chmod(sock, 0o666)
    with Stranger(sock, 200, {"v": 1, "id": 1, "op": "status"}) as mallory:
        # While the stranger holds its 200 connections, the daemon's own user is served.
        for command in ("status", "runs"):
            out = workspace.invoke(command)
            assert out.returncode == 0, out.stderr
        # Because each of them was refused at once and closed.
        assert len(mallory.replies) == 200
        assert all(r["reply"]["error"]["code"] == "permission_denied" and r["closed"] for r in mallory.replies)
    # The stranger's own CLI says what happened: no access at all.
    config = public_dir / "config.toml"
    shutil.copy(workspace.config_path, config)
    os.chmod(config, 0o644)
    env = {**workspace.cli_env(), "EDGEORCH_CONFIG": str(config)}
    out = subprocess.run([*AS_NOBODY, *workspace.cli(), "status"], env=env, cwd=str(public_dir),
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 77, out.stderr
    assert "has no access to this daemon" in out.stderr and "Traceback" not in out.stderr
    assert daemon.stop() == 0
    with sqlite3.connect(workspace.state / "edgeorch.db") as db:
        denied = db.execute("SELECT count(*) FROM events WHERE kind = 'permission_denied'").fetchone()[0]
        counts = [json.loads(d)["count"] for (d,) in
                  db.execute("SELECT data FROM events WHERE kind = 'permission_denied_suppressed'")]
        audited = db.execute("SELECT count(*) FROM audit_log WHERE action LIKE 'permission_denied%'").fetchone()[0]
    # 201 refusals (200 connections and the CLI's one), within one window: the bound, then one count at the stop.
    assert denied == AUDITED_PER_WINDOW and counts == [201 - AUDITED_PER_WINDOW]
    assert audited == AUDITED_PER_WINDOW + 1


@needs_nobody
def test_a_daemon_started_by_a_user_who_may_not_open_the_state_lock_exits_77_saying_what_to_do(public_dir) -> None:
    """Found by an operator: `edgeorch daemon` as another user said "cannot open the lock file: Permission
    denied", exit 4 (a state problem) with no hint; every other refusal of access is 77."""
    state = public_dir / "state"
    state.mkdir(mode=0o755)
    (state / "edgeorch.lock").touch(mode=0o640)
    (public_dir / "p").mkdir(mode=0o755)
    config = public_dir / "config.toml"
    config.write_text(f'[state]\ndir = "{state}"\n[pipelines]\ndir = "{public_dir / "p"}"\n')
    os.chmod(config, 0o644)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[3])}
    out = subprocess.run([*AS_NOBODY, sys.executable, "-m", "edgeorch.cli", "--config", str(config), "daemon"],
                         env=env, cwd=str(public_dir), capture_output=True, text=True, timeout=60)
    assert out.returncode == 77, out.stderr
    assert f"{state / 'edgeorch.lock'}: cannot open the lock file: Permission denied" in out.stderr
    assert "run this as the user that owns the state folder" in out.stderr and "Traceback" not in out.stderr
