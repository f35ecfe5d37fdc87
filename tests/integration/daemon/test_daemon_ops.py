"""The daemon as a real process: every op over the socket, the CLI against it, notify, signals."""

from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import subprocess
import time

import pytest

from edgeorch.errors import ConflictError, NotFoundError, UsageError

TWO = """
[params]
word = "hello"
[tasks.a]
command = ["sh", "-c", "echo {word}"]
[tasks.b]
command = ["sh", "-c", "echo b"]
needs = ["a"]
"""

GATED = """
[tasks.wait]
command = ["sh", "-c", "echo waiting; while [ ! -f {pipeline_dir}/go ]; do sleep 0.05; done; echo went"]
"""


def test_ready_status_and_stopping_are_notified(workspace, daemon):
    workspace.pipeline("two", TWO)
    daemon.start()
    assert daemon.ready_message["STATUS"] == "0 running, 0 waiting, 0 active run(s)"
    assert int(daemon.ready_message["MAINPID"]) == daemon.proc.pid
    run_id = daemon.call("trigger", {"pipeline": "two"})["run_id"]
    assert daemon.wait_run(run_id) == "succeeded"
    assert "running" in daemon.notify.wait_for("STATUS")["STATUS"]  # sent as the counts change
    assert daemon.stop() == 0
    daemon.notify.wait_for("STOPPING", "1")
    assert not daemon.socket_path.exists()


def test_every_op_round_trips(workspace, daemon):
    workspace.pipeline("two", TWO)
    daemon.start()
    with daemon.client() as c:
        assert c.call("ping")["pong"] is True
        assert c.call("version")["protocol"] == 1
        st = c.call("status")
        assert st["pid"] == daemon.proc.pid and st["pipelines"] == 1
        assert [p["name"] for p in c.call("pipelines.list")["pipelines"]] == ["two"]
        assert c.call("pipelines.show", {"name": "two"})["order"] == ["a", "b"]
        assert c.call("pipelines.validate")["ok"] is True
        run_id = c.call("trigger", {"pipeline": "two", "params": {"word": "yo"}})["run_id"]
        assert daemon.wait_run(run_id) == "succeeded"
        listed = c.call("runs.list", {"limit": 5})["runs"]
        assert listed[0]["id"] == run_id and listed[0]["actor"].endswith(f"(uid {os.getuid()})")
        doc = c.call("runs.show", {"run_id": run_id})
        assert [t["state"] for t in doc["tasks"]] == ["succeeded", "succeeded"]
        logs = "".join(item["data"] for item in c.stream("logs", {"run_id": run_id, "task": "a"}))
        assert logs == "yo\n"
        with pytest.raises(ConflictError, match="nothing to retry"):
            c.call("retry", {"run_id": run_id})
        with pytest.raises(ConflictError, match=r"has already finished \(succeeded\)"):
            c.call("cancel", {"run_id": run_id})
        assert c.call("pipelines.pause", {"name": "two", "reason": "maintenance"})["paused"] is True
        with pytest.raises(ConflictError, match="paused"):
            c.call("trigger", {"pipeline": "two"})
        assert c.call("pipelines.resume", {"name": "two"})["paused"] is False
        assert c.call("reload")["pipelines"] == ["two"]


@pytest.mark.parametrize("op,args,exc,fragment", [
    ("trigger", {"pipeline": "nope"}, NotFoundError, "no pipeline named 'nope'"),
    ("trigger", {"pipeline": "two", "params": {"wrod": 1}}, UsageError, "did you mean 'word'"),
    ("trigger", {}, UsageError, "argument 'pipeline' is required"),
    ("runs.show", {"run_id": "x"}, UsageError, "wrong type"),
    ("runs.show", {"run_id": 404}, NotFoundError, "no such run"),
    ("runs.list", {"state": "done"}, UsageError, "not a run state"),
    ("logs", {"run_id": 404, "task": "a"}, NotFoundError, "no such run"),
])
def test_bad_requests_get_clear_errors_and_the_daemon_keeps_serving(workspace, daemon, op, args, exc, fragment):
    workspace.pipeline("two", TWO)
    daemon.start()
    with daemon.client() as c:
        with pytest.raises(exc, match=fragment):
            if op == "logs":
                list(c.stream(op, args))
            else:
                c.call(op, args)
        assert c.call("ping")["pong"] is True


def test_garbage_on_the_socket_does_not_hurt_the_daemon(workspace, daemon):
    workspace.pipeline("two", TWO)
    daemon.start()
    for payload in (os.urandom(4096), b"{not json}\n", b'{"v":1,"id":1,"op":"nope"}\n', b"x" * (2 * 1024 * 1024)):
        s = socket.socket(socket.AF_UNIX)
        s.connect(str(daemon.socket_path))
        try:
            s.sendall(payload)
            s.shutdown(socket.SHUT_WR)
            reply = s.recv(65536)
        except (BrokenPipeError, ConnectionResetError):
            reply = b'{"ok": false}'
        finally:
            s.close()
        if reply:
            assert json.loads(reply.splitlines()[0])["ok"] is False
    assert daemon.call("status")["pid"] == daemon.proc.pid


def test_cli_against_the_daemon(workspace, daemon):
    workspace.pipeline("two", TWO)
    daemon.start()
    env = workspace.cli_env()
    run = subprocess.run([*workspace.cli(), "run", "two", "-p", "word=cli"], env=env, capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "queued on the daemon" in run.stdout and "SUCCEEDED" in run.stdout
    st = subprocess.run([*workspace.cli(), "status"], env=env, capture_output=True, text=True, timeout=30)
    assert st.returncode == 0 and f"pid {daemon.proc.pid}" in st.stdout
    pl = subprocess.run([*workspace.cli(), "pipelines"], env=env, capture_output=True, text=True, timeout=30)
    assert "two" in pl.stdout and "no" in pl.stdout
    trig = subprocess.run([*workspace.cli(), "trigger", "two", "--json"], env=env, capture_output=True, text=True, timeout=30)
    run_id = json.loads(trig.stdout)["run_id"]
    assert daemon.wait_run(run_id) == "succeeded"
    logs = subprocess.run([*workspace.cli(), "logs", str(run_id), "a", "--follow"], env=env, capture_output=True, text=True, timeout=30)
    assert logs.stdout == "hello\n"


def test_commands_that_change_state_need_a_daemon(workspace):
    workspace.pipeline("two", TWO)
    for args in (["status"], ["reload"]):
        proc = subprocess.run([*workspace.cli(), *args], env=workspace.cli_env(), capture_output=True, text=True, timeout=30)
        assert proc.returncode == 69, proc.stderr
        assert "no edgeorch daemon is running at" in proc.stderr
    # `cancel` works without one (a run a killed `edgeorch run` left: test_run_progress.py); an unknown run is not
    # found, and no state file is made for it.
    proc = subprocess.run([*workspace.cli(), "cancel", "1"], env=workspace.cli_env(), capture_output=True, text=True,
                          timeout=30)
    assert proc.returncode == 3 and "no such run" in proc.stderr, proc.stderr
    assert not (workspace.state / "edgeorch.db").exists()


def test_a_pipeline_paused_under_a_daemon_that_is_gone_is_resumed_without_one(workspace, daemon):
    """`edgeorch run` refused it ("resume it with `edgeorch pipelines resume two`") and that command needed a
    daemon: nothing could run it. Pause and resume are recorded in the state file under its lock."""
    workspace.pipeline("two", TWO)
    daemon.start()
    assert daemon.call("pipelines.resume", {"name": "two"})["changed"] is False  # not paused: nothing recorded
    assert daemon.call("pipelines.pause", {"name": "two", "reason": "bad upstream data"})["paused"] is True
    # Paused again for the same reason: nothing recorded (it said `changed` true and recorded a pause each time);
    # for another reason: the reason replaced.
    again = daemon.call("pipelines.pause", {"name": "two", "reason": "bad upstream data"})
    assert (again["paused"], again["changed"]) == (True, False)
    assert daemon.call("pipelines.pause", {"name": "two", "reason": "still bad"})["changed"] is True
    assert daemon.call("pipelines.pause", {"name": "two", "reason": "bad upstream data"})["changed"] is True
    daemon.stop()

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*workspace.cli(), *args], env=workspace.cli_env(), capture_output=True, text=True,
                              timeout=60)

    refused = cli("run", "two")
    assert refused.returncode == 5 and "pipeline two is paused (bad upstream data)" in refused.stderr
    assert "running two" not in refused.stdout  # a refused run says that alone
    resumed = cli("pipelines", "resume", "two")
    assert resumed.returncode == 0 and resumed.stdout.startswith("two resumed (no daemon runs"), resumed.stdout
    assert cli("run", "-q", "two").returncode == 0
    twice = cli("pipelines", "resume", "two")  # it said "two resumed" again, and recorded a resume
    assert twice.returncode == 0 and twice.stdout == "two was not paused: nothing to resume\n", twice.stdout
    assert cli("pipelines", "pause", "two", "--reason", "again\nnext: forged \x1b[31mred").returncode == 0
    again = cli("run", "two")  # whoever paused it wrote the reason: no line or escape code of theirs is shown
    assert again.returncode == 5 and "\x1b" not in again.stderr and "\nnext: forged" not in again.stderr
    assert "pipeline two is paused (again\\nnext: forged \\x1b[31mred)" in again.stderr, again.stderr
    missing = cli("pipelines", "pause", "nope")
    assert missing.returncode == 3 and "no pipeline named 'nope'" in missing.stderr
    (workspace.pipelines / "broken.toml").write_text('[tasks.a]\ncommand = ["true"\n')
    assert cli("pipelines", "pause", "broken").returncode == 0  # a broken file's pipeline, as a daemon pauses it
    assert cli("pipelines", "resume", "broken").returncode == 0
    conn = sqlite3.connect(workspace.state / "edgeorch.db")
    try:
        kinds = [r[0] for r in conn.execute("SELECT kind FROM events WHERE kind LIKE 'pipeline_%' ORDER BY id")]
        actor = conn.execute("SELECT actor FROM pipeline_state WHERE name = 'two'").fetchone()[0]
    finally:
        conn.close()
    assert kinds == ["pipeline_paused", "pipeline_paused", "pipeline_paused",  # the same reason again: none
                     "pipeline_resumed", "pipeline_paused", "pipeline_paused", "pipeline_resumed"], kinds
    assert "(uid " in actor


def test_status_counts_a_task_between_attempts(workspace, daemon):
    """A task in retry_wait is neither running nor waiting for a slot: `status` said "0 running, 0 waiting" with
    a retry due in minutes, a box that looked idle."""
    workspace.pipeline("flaky", """
        [tasks.t]
        command = ["false"]
        retries = 1
        retry_delay = "10m"
    """)
    daemon.start()
    run_id = daemon.call("trigger", {"pipeline": "flaky"})["run_id"]
    deadline = time.monotonic() + 60
    while daemon.call("status")["tasks"]["retry_wait"] != 1:
        assert time.monotonic() < deadline, daemon.call("status")
        time.sleep(0.05)
    tasks = daemon.call("status")["tasks"]
    assert tasks["running"] == 0 and 60 < tasks["next_retry_at"] - time.time() <= 11 * 60 + 1, tasks  # 10m +-10%
    out = workspace.invoke("status").stdout
    assert "0 running, 0 waiting, 1 between attempts (the next in " in out, out
    daemon.call("cancel", {"run_id": run_id})
    assert daemon.wait_run(run_id) == "cancelled"
    assert daemon.call("status")["tasks"]["retry_wait"] == 0


def test_cancel_and_follow_a_live_log(workspace, daemon):
    workspace.pipeline("gated", GATED)
    daemon.start()
    with daemon.client() as c:
        run_id = c.call("trigger", {"pipeline": "gated"})["run_id"]
        follow = c.stream("logs", {"run_id": run_id, "task": "wait", "follow": True}, timeout=30)
        first = ""
        while "waiting" not in first:  # the live log shows the task's first line
            first += next(follow)["data"]
        (workspace.pipelines / "go").touch()
        rest = "".join(item["data"] for item in follow)  # ends when the attempt ends
        assert "went" in first + rest
    # And a cancel of a running task:
    (workspace.pipelines / "go").unlink()
    with daemon.client() as c:
        run_id = c.call("trigger", {"pipeline": "gated"})["run_id"]
        follow = c.stream("logs", {"run_id": run_id, "task": "wait", "follow": True}, timeout=30)
        assert "waiting" in next(follow)["data"]
        c.call("cancel", {"run_id": run_id, "reason": "test says stop"})
        follow.close()
    assert daemon.wait_run(run_id) == "cancelled"
    doc = daemon.call("runs.show", {"run_id": run_id})
    assert doc["tasks"][0]["state"] == "cancelled"


def test_sighup_reloads_pipelines(workspace, daemon):
    workspace.pipeline("two", TWO)
    daemon.start()
    workspace.pipeline("three", TWO)
    daemon.proc.send_signal(signal.SIGHUP)
    daemon.notify.wait_for("RELOADING", "1")
    daemon.notify.wait_for("READY", "1")
    assert [p["name"] for p in daemon.call("pipelines.list")["pipelines"]] == ["three", "two"]


def test_sighup_says_in_the_log_when_the_config_is_broken_or_changed_beyond_a_reload(workspace, daemon):
    """`systemctl reload` (SIGHUP) of a broken config logged "reloaded (SIGHUP): unchanged" and nothing else: the
    config's error (and "takes effect after a restart") went only to an `edgeorch reload` client."""
    workspace.pipeline("two", TWO)
    daemon.start()
    good = workspace.config_path.read_text()
    workspace.config_path.write_text(good + "oops = [\n")
    daemon.proc.send_signal(signal.SIGHUP)
    daemon.notify.wait_for("RELOADING", "1")
    daemon.notify.wait_for("READY", "1")
    assert f"reload (SIGHUP): config not reloaded: {workspace.config_path}:" in daemon.output()
    assert "malformed TOML" in daemon.output()
    # Said in the summary line too ("reloaded (SIGHUP): unchanged" after the warning read as a contradiction).
    assert "reloaded (SIGHUP): the config file was refused (the one in force stays)" in daemon.output()
    workspace.write_config(parallelism=3)  # [engine]: applies at the next start only
    daemon.proc.send_signal(signal.SIGHUP)
    daemon.notify.wait_for("RELOADING", "1")
    daemon.notify.wait_for("READY", "1")
    assert "reload (SIGHUP): [engine] changed: applied at the next restart" in daemon.output()
    assert daemon.call("status")["parallelism"] == 2


def test_an_invalid_edit_keeps_the_previous_version(workspace, daemon):
    workspace.pipeline("two", TWO)
    daemon.start()
    before = daemon.call("pipelines.show", {"name": "two"})["content_hash"]
    workspace.pipeline("two", TWO + "\n[tasks.c]\nneeds = [\"zzz\"]\ncommand=[\"true\"]\n")
    res = daemon.call("reload")
    assert res["kept"] == ["two"] and "needs an unknown task" in res["errors"][0]["message"]
    assert daemon.call("pipelines.show", {"name": "two"})["content_hash"] == before
    run_id = daemon.call("trigger", {"pipeline": "two"})["run_id"]
    assert daemon.wait_run(run_id) == "succeeded"


def test_a_second_daemon_on_the_same_state_is_refused(workspace, daemon, tmp_path):
    workspace.pipeline("two", TWO)
    daemon.start()
    second = subprocess.run([*workspace.cli(), "daemon"], env=workspace.cli_env(), capture_output=True, text=True, timeout=30)
    assert second.returncode == 4
    assert f"pid {daemon.proc.pid}" in second.stderr and "Traceback" not in second.stderr
    assert daemon.call("ping")["pong"] is True


def test_another_user_is_refused_and_recorded(workspace, daemon):
    import shutil

    if os.getuid() != 0 or not shutil.which("setpriv") or not shutil.which("socat"):
        pytest.skip("needs root, setpriv and socat to act as user nobody")
    import tempfile

    workspace.pipeline("two", TWO)
    # Put the socket where nobody can reach it (pytest's tmp dirs are private to root).
    sock_dir = tempfile.mkdtemp(prefix="edgeorch-sock-")
    os.chmod(sock_dir, 0o755)
    sock = f"{sock_dir}/edgeorch.sock"
    workspace.write_config(extra=f'[control]\nsocket = "{sock}"\n')
    daemon.socket_override = sock
    daemon.start()
    os.chmod(sock, 0o777)
    # A peer with no access is refused at connect, before it sends anything: socat only reads (a request written
    # after the daemon answered and closed failed with EPIPE, and socat exited without reading the answer).
    from socat import socat_read

    proc = socat_read(sock, as_nobody=True)
    lines = proc.stdout.decode().splitlines()
    assert lines, f"socat exited {proc.returncode}: {proc.stderr.decode()!r}"
    reply = json.loads(lines[0])
    assert reply["ok"] is False and reply["error"]["code"] == "permission_denied"
    assert daemon.call("runs.list")["runs"] == []
    import sqlite3

    conn = sqlite3.connect(workspace.state / "edgeorch.db")
    kinds = [r[0] for r in conn.execute("SELECT kind FROM events WHERE kind = 'permission_denied'")]
    conn.close()
    assert kinds == ["permission_denied"]


def test_watchdog_pings_come_from_the_event_loop(workspace, daemon):
    """WATCHDOG=1 arrives while the loop runs and stops while the daemon is frozen."""
    workspace.pipeline("two", TWO)
    os.environ["WATCHDOG_USEC"] = "200000"  # inherited by the daemon started below
    try:
        daemon.start()
    finally:
        del os.environ["WATCHDOG_USEC"]
    daemon.notify.wait_for("WATCHDOG", "1", timeout=5)
    daemon.proc.send_signal(signal.SIGSTOP)  # a hung loop
    try:
        from edgeorch.engine.procinfo import process_state

        while process_state(daemon.proc.pid) != "T":  # a condition: the kernel has stopped it
            time.sleep(0.001)
        daemon.notify.sock.setblocking(False)
        try:
            while daemon.notify.sock.recv(65536):  # drop pings sent before the stop
                pass
        except BlockingIOError:
            pass
        daemon.notify.sock.setblocking(True)
        daemon.notify.messages.clear()
        with pytest.raises(AssertionError):
            daemon.notify.wait_for("WATCHDOG", "1", timeout=0.6)
    finally:
        daemon.proc.send_signal(signal.SIGCONT)
    daemon.notify.messages.clear()
    daemon.notify.wait_for("WATCHDOG", "1", timeout=5)


def test_tasks_do_not_inherit_the_daemons_notify_socket(workspace, daemon):
    workspace.pipeline("envdump", """
        [tasks.dump]
        command = ["sh", "-c", "env | grep -E '^(NOTIFY_SOCKET|WATCHDOG_)' || echo clean"]
    """)
    daemon.start()
    run_id = daemon.call("trigger", {"pipeline": "envdump"})["run_id"]
    assert daemon.wait_run(run_id) == "succeeded"
    with daemon.client() as c:
        assert "".join(i["data"] for i in c.stream("logs", {"run_id": run_id, "task": "dump"})) == "clean\n"


def test_fuzz_big_lines_half_open_and_200_clients_against_the_real_daemon(workspace, daemon):
    import threading

    workspace.pipeline("two", TWO)
    daemon.start()
    # A 10 MB line: refused with too_large, without the daemon swallowing it whole.
    s = socket.socket(socket.AF_UNIX)
    s.connect(str(daemon.socket_path))
    try:
        s.sendall(b"x" * (10 * 1024 * 1024))
    except (BrokenPipeError, ConnectionResetError):
        pass
    reply = s.recv(65536)
    s.close()
    assert json.loads(reply.splitlines()[0])["error"]["code"] == "too_large"
    # A half-open connection (a partial line, then silence) does not block anyone.
    half = socket.socket(socket.AF_UNIX)
    half.connect(str(daemon.socket_path))
    half.sendall(b'{"v":1,"id":1,"op":"sta')
    # 200 concurrent clients, each with its own connection, all answered.
    results: list[int] = []
    errors: list[BaseException] = []

    def client() -> None:
        try:
            with daemon.client() as c:
                results.append(c.call("status")["pid"])
        except BaseException as exc:  # collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=client) for _ in range(200)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    half.close()
    assert not errors, errors[:3]
    assert results == [daemon.proc.pid] * 200
    assert daemon.call("ping")["pong"] is True


def test_the_daemon_does_not_load_numba_at_start(workspace, daemon):
    """Kernels compile in task processes; the daemon's start-up and memory stay small."""
    workspace.pipeline("two", TWO)
    daemon.start()
    maps = open(f"/proc/{daemon.proc.pid}/maps").read()
    assert "llvmlite" not in maps and "/numba/" not in maps


def test_following_a_tasks_log_waits_for_its_first_attempt_and_follows_its_retries(workspace, daemon):
    """`logs RUN train -f` while `prepare` ran said "no attempts of task 'train'" (exit 3), and on a task that failed
    and was retried it printed attempt 1 and ended. It now waits, then follows each attempt until the task ends."""
    workspace.pipeline("flaky", """
        [tasks.prepare]
        command = ["sh", "-c", "while [ ! -f {pipeline_dir}/go ]; do sleep 0.02; done"]
        [tasks.train]
        needs = ["prepare"]
        retries = 1
        retry_delay = "0.3s"
        command = ["sh", "-c", "if [ -f {pipeline_dir}/second ]; then echo second try; else touch {pipeline_dir}/second; echo first try; exit 1; fi"]
    """)
    daemon.start()
    with daemon.client() as c:
        run_id = c.call("trigger", {"pipeline": "flaky"})["run_id"]
        follow = c.stream("logs", {"run_id": run_id, "task": "train", "follow": True}, timeout=60)
        first = next(follow)["data"]
        assert first == f"==> train of run {run_id} has not started yet (pending): waiting <==\n", first
        (workspace.pipelines / "go").touch()
        rest = "".join(item["data"] for item in follow)  # ends when the task has finished
    assert rest == f"first try\n\n==> attempt 2 of train (run {run_id}) <==\nsecond try\n", rest
    assert daemon.wait_run(run_id) == "succeeded"
    with daemon.client() as c:  # one attempt named, or a finished run: as before, no headers
        text = "".join(i["data"] for i in c.stream("logs", {"run_id": run_id, "task": "train", "follow": True},
                                                   timeout=30))
    assert text == "second try\n"



def test_a_reload_says_what_it_applied_and_names_what_waits_for_a_restart(workspace, daemon, tmp_path):
    """A [[watch]] added said "reloaded: unchanged" though the folder was watched from then on; [pipelines] dir and
    [daemon] log_level changes were ignored without a word (only five sections were named)."""
    drop = tmp_path / "drop2"
    drop.mkdir()
    workspace.pipeline("p", '[params]\ninput = { type = "path", default = "" }\n[tasks.a]\ncommand = ["true"]\n')
    daemon.start()
    workspace.write_config(f"""
        [daemon]
        log_level = "debug"
        [[watch]]
        folder = "{drop}"
        pipeline = "p"
    """)
    res = daemon.call("reload")
    assert res["summary"] == f"[[watch]]: 1 added ({drop})" and res["unchanged"] is False, res
    assert any("[daemon] changed: applied at the next restart" in w for w in res["warnings"]), res["warnings"]
    out = workspace.invoke("reload")
    assert out.returncode == 0 and "reloaded: unchanged" in out.stdout  # the same config again: nothing new
    # [control]: its access lists are applied (and said so), the rest of it waits for a restart (and is named);
    # a watch that cannot start is said in the answer, not only in `inputs`.
    workspace.write_config(f"""
        [daemon]
        log_level = "debug"
        [control]
        readers = ["root"]
        idle_timeout = "10m"
        [[watch]]
        folder = "{drop}"
        pipeline = "nosuch"
    """)
    res = daemon.call("reload")
    assert "applied [control] access lists" in res["summary"], res
    assert any("[control] idle_timeout" in w for w in res["warnings"]), res["warnings"]
    assert any(w.startswith("[[watch]] not watched:") and "nosuch" in w for w in res["warnings"]), res["warnings"]
    again = daemon.call("reload")
    assert "applied" not in again["summary"], again  # applied once: the next reload compares with it
