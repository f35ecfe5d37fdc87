"""A daemon whose control socket file is removed listens at its path again (PATHS_CHECK_S), so the CLI finds it;
before, it stayed unreachable while holding the state folder (`status` said no daemon runs, `daemon` that one
did)."""

from __future__ import annotations

import os
import signal
import time

import pytest

from edgeorch.control import DaemonNotRunning


def test_a_removed_control_socket_is_bound_again(workspace, daemon):
    daemon.start()
    daemon.socket_path.unlink()
    with pytest.raises(DaemonNotRunning):
        daemon.call("ping")
    deadline = time.monotonic() + 30
    while True:  # polled: the daemon's next check (every 2 s) binds it again
        try:
            assert daemon.call("ping")["pong"] is True
            break
        except DaemonNotRunning:
            assert time.monotonic() < deadline, "the socket was not bound again"
            time.sleep(0.05)
    proc = workspace.invoke("status")
    assert proc.returncode == 0 and "edgeorch" in proc.stdout, proc.stdout + proc.stderr
    assert "was removed: listening there again" in daemon.log.read_text()


def test_a_second_daemon_is_refused_after_the_lock_file_was_removed_and_the_first_locks_a_new_one(workspace,
                                                                                                  daemon):
    """A removed lock file ("stale lock" clean-up) let a second daemon start on the same state beside the
    first: each would run the same runs. It is refused before it reads anything; the first locks a new file."""
    import subprocess

    workspace.pipeline("p", '[tasks.a]\ncommand = ["true"]\n')
    daemon.start()
    lock = workspace.state / "edgeorch.lock"
    lock.unlink()
    # Held still while the second starts: its next path check (every PATHS_CHECK_S) makes the lock file again, and
    # on a loaded machine the second's start took longer (it was refused by the new lock instead; seen in CI). A
    # stopped process's socket still takes connections (the kernel's backlog): the second sees it answering.
    os.kill(daemon.proc.pid, signal.SIGSTOP)
    try:
        second = subprocess.run([*workspace.cli(), "daemon"], env=workspace.cli_env(), capture_output=True,
                                text=True, timeout=60)
    finally:
        os.kill(daemon.proc.pid, signal.SIGCONT)
    assert second.returncode == 4, second.stdout + second.stderr
    assert "another edgeorch daemon answers on" in second.stderr and "lock file was removed" in second.stderr
    assert "Traceback" not in second.stderr
    deadline = time.monotonic() + 30
    while not (lock.exists() and lock.read_text() == f"{daemon.proc.pid} daemon\n"):  # the first's next check
        assert time.monotonic() < deadline, "the lock file was not made again"
        time.sleep(0.05)
    third = subprocess.run([*workspace.cli(), "daemon"], env=workspace.cli_env(), capture_output=True, text=True,
                           timeout=60)
    assert third.returncode == 4 and f"in use by another edgeorch daemon (pid {daemon.proc.pid})" in third.stderr
    assert daemon.call("ping")["pong"] is True  # the first one serves on, untouched
    runs = [r["id"] for r in daemon.call("runs.list")["runs"]]
    assert runs == []  # the refused ones started nothing


def test_an_offline_writer_is_refused_beside_a_daemon_whose_lock_file_was_removed(workspace, daemon):
    """`edgeorch run --here` never asks the daemon, but must not write beside it either."""
    workspace.pipeline("p", '[tasks.a]\ncommand = ["true"]\n')
    daemon.start()
    (workspace.state / "edgeorch.lock").unlink()
    proc = workspace.invoke("run", "p", "--here")
    assert proc.returncode == 4 and "another edgeorch daemon answers on" in proc.stderr, proc.stdout + proc.stderr
    assert daemon.call("runs.list")["runs"] == []


def test_a_daemon_that_finds_another_holding_its_state_lock_stops(workspace, daemon, tmp_path):
    """Lock file and socket both removed: a second daemon cannot see the first and starts. The first finds its
    lock held by another process at its next check and stops (exit 4): one writer is left, not two."""
    import subprocess

    workspace.pipeline("p", '[tasks.a]\ncommand = ["true"]\n')
    daemon.start()
    (workspace.state / "edgeorch.lock").unlink()
    daemon.socket_path.unlink()
    # Held still until the second holds the lock: its next path check (every PATHS_CHECK_S) makes the lock file
    # and the socket again, and on a loaded machine the second's start took longer (the second was refused and the
    # first never stopped; seen in CI).
    os.kill(daemon.proc.pid, signal.SIGSTOP)
    try:
        with open(tmp_path / "second.log", "w") as log:
            second = subprocess.Popen([*workspace.cli(), "daemon"], env=workspace.cli_env(), stdout=log,
                                      stderr=subprocess.STDOUT, text=True)
        lock = workspace.state / "edgeorch.lock"
        deadline = time.monotonic() + 60
        while not (lock.exists() and lock.read_text() == f"{second.pid} daemon\n"):
            assert second.poll() is None, (tmp_path / "second.log").read_text()
            assert time.monotonic() < deadline, "the second never took the lock"
            time.sleep(0.05)
    finally:
        os.kill(daemon.proc.pid, signal.SIGCONT)
    try:
        try:
            assert daemon.proc.wait(timeout=30) == 4  # the first, within its next check
        except subprocess.TimeoutExpired:
            raise AssertionError(f"the first did not stop; the second said: {(tmp_path / 'second.log').read_text()!r}"
                                 f"; the first: {daemon.log.read_text()[-3000:]!r}") from None
        assert "another edgeorch daemon (pid" in daemon.log.read_text() and "holds the lock" in daemon.log.read_text()
        assert second.poll() is None  # the second goes on, alone
        assert (workspace.state / "edgeorch.lock").read_text() == f"{second.pid} daemon\n"
    finally:
        second.terminate()
        second.wait(timeout=30)


def test_a_daemon_waits_for_an_edgeorch_run_that_holds_the_state_then_starts(workspace, daemon):
    """A script's `edgeorch run` that began in the daemon's restart window held the state: the daemon exited 75 at
    once, and a service manager restarting it gives up after a few tries (systemd's start limit): no daemon for
    good. It waits, naming that command (not "another edgeorch daemon"), prints no banner meanwhile, and starts
    once the run ends."""
    import subprocess

    workspace.pipeline("nightly", """
        [tasks.train]
        command = ["sh", "-c", "touch {pipeline_dir}/started; while [ ! -f {pipeline_dir}/go ]; do sleep 0.02; done"]
    """)
    run = subprocess.Popen([*workspace.cli(), "run", "nightly", "-q"], env=workspace.cli_env(),
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        workspace.wait_file(workspace.pipelines / "started")
        before = workspace.invoke("status")  # no daemon yet: says what holds the state, and what starting one does
        assert before.returncode == 69, before.stderr
        assert f"`edgeorch run nightly -q` (pid {run.pid}) runs pipelines without one" in before.stderr
        assert "a daemon started now waits for it to end" in before.stderr
        daemon.start(wait_ready=False)
        daemon.notify.wait_for("EXTEND_TIMEOUT_USEC", "30000000")  # systemd's start timeout pushed while it waits
        said = daemon.output()
        assert "waiting for it to end before starting" in said and daemon.proc.poll() is None, said
        assert f"in use by another edgeorch process (pid {run.pid}: `edgeorch run nightly -q`)" in said
        assert "another edgeorch daemon" not in said and "talk to it" not in said, said
        # A command needing the daemon says one is on its way (75: try again), not "no daemon: start one".
        meanwhile = workspace.invoke("status")
        assert meanwhile.returncode == 75, meanwhile.stderr
        assert f"the daemon of this state (pid {daemon.proc.pid}) waits for `edgeorch run nightly -q`" in meanwhile.stderr
        # A second daemon does not wait beside it (two waiters: one would win, the other fail later).
        second = subprocess.run([*workspace.cli(), "daemon"], env=workspace.cli_env(), capture_output=True, text=True,
                                timeout=60)
        assert second.returncode == 4, second.stderr
        assert f"another edgeorch daemon (pid {daemon.proc.pid}) already waits for it" in second.stderr
    finally:
        (workspace.pipelines / "go").touch()
        out, err = run.communicate(timeout=60)
    assert run.returncode == 0, out + err
    daemon.notify.wait_for("READY", "1")
    assert daemon.call("ping")["pong"] is True
    assert not (workspace.state / "edgeorch.lock.waiting").exists()  # taken back once the state is its own


def test_a_run_in_a_killed_daemons_restart_window_waits_for_it_to_come_back(workspace, daemon, monkeypatch):
    """`edgeorch run` from a script while the killed daemon was being restarted took the state over (in this
    process, for the whole run) and kept the daemon out. It waits a few seconds for the daemon first; with none
    coming back it runs here, as before."""
    import threading

    from edgeorch.cli import backend

    workspace.pipeline("p", '[tasks.a]\ncommand = ["true"]\n')
    daemon.start()
    daemon.kill9()
    restarted = threading.Timer(0.5, daemon.start, kwargs={"wait_ready": False})
    restarted.start()
    try:
        through = workspace.invoke("run", "p")
    finally:
        restarted.join()
    assert through.returncode == 0, through.stdout + through.stderr
    assert "stopped without letting it go (killed?): waiting up to 5s" in through.stderr
    assert "queued on the daemon" in through.stdout, through.stdout
    daemon.kill9()
    monkeypatch.setattr(backend, "DAEMON_RETURN_WAIT_S", 0.3)
    here = workspace.invoke("run", "p")  # none comes back: it runs in this process
    assert here.returncode == 0 and "running p (1 task(s)) with state in" in here.stdout, here.stdout + here.stderr
    again = workspace.invoke("run", "p")  # a clean exit (this process's) leaves no crashed daemon behind: no wait
    assert again.returncode == 0 and "waiting up to" not in again.stderr
    daemon.start()
    _until_lock_names(workspace, daemon.proc.pid)
    daemon.kill9()
    quiet = workspace.invoke("run", "p", "-q")  # -q: results and errors only, the wait's note too
    assert quiet.returncode == 0 and quiet.stderr == "", quiet.stderr
    daemon.start()
    _until_lock_names(workspace, daemon.proc.pid)
    daemon.kill9()
    said = workspace.invoke("run", "p")
    assert said.returncode == 0 and "waiting up to 0.3s" in said.stderr, said.stderr


def test_a_retry_refused_without_a_daemon_takes_no_run_over(workspace, daemon, monkeypatch):
    """`edgeorch retry RUN` of a run a killed daemon left running took every unfinished run over first (it said "this
    process also goes on with run(s) ...", started their next tasks under shims of its own), then was refused
    ("still running") and exited. It is refused before any of that, saying who goes on with the run."""
    import sqlite3

    from edgeorch.cli import backend

    gate = workspace.pipelines / "gate"
    started = workspace.pipelines / "started"
    workspace.pipeline("two", f'[tasks.a]\ncommand = ["sh", "-c", "touch {started}; while [ ! -e {gate} ]; do sleep '
                              '0.05; done"]\n[tasks.b]\ncommand = ["true"]\nneeds = ["a"]\n')
    daemon.start()
    run_id = daemon.call("trigger", {"pipeline": "two"})["run_id"]
    workspace.wait_file(started)
    daemon.kill9()
    monkeypatch.setattr(backend, "DAEMON_RETURN_WAIT_S", 0.1)
    try:
        refused = workspace.invoke("retry", str(run_id))
        assert refused.returncode == 5, refused.stdout + refused.stderr
        assert f"run {run_id} is still running: a process that stopped" in refused.stderr, refused.stderr
        assert "a daemon, once started, goes on with it" in refused.stderr
        assert "also goes on with" not in refused.stdout, refused.stdout
        conn = sqlite3.connect(workspace.state / "edgeorch.db")
        try:
            attempts = [r[0] for r in conn.execute("SELECT task FROM attempts ORDER BY id")]
        finally:
            conn.close()
        assert attempts == ["a"]  # nothing more started: b waits for a, under the next daemon
    finally:
        gate.touch()


def _until_lock_names(workspace, pid: int, timeout: float = 30.0) -> None:
    """Until the state's lock file names daemon ``pid`` (polled: a file's content has no event to wait on)."""
    deadline = time.monotonic() + timeout
    while (workspace.state / "edgeorch.lock").read_bytes() != f"{pid} daemon\n".encode():
        assert time.monotonic() < deadline, "the daemon's lock mark was not written"
        time.sleep(0.02)


def _wait_logged(daemon, text: str, timeout: float = 30.0) -> None:
    """Until the daemon's log has ``text`` (polled: a log file has no event to wait on)."""
    deadline = time.monotonic() + timeout
    while text not in daemon.output():
        assert time.monotonic() < deadline, f"not logged within {timeout:g}s: {text!r}\n{daemon.output()}"
        time.sleep(0.05)


def test_a_lock_file_that_cannot_be_made_again_is_logged_once_and_its_end_too(workspace, daemon, tmp_path):
    """A link put at the lock file's place (never followed) was logged as an error at every 2-second check, 43,200
    lines a day burying the journal. It is said once, and once when it is over."""
    daemon.start()
    lock = workspace.state / "edgeorch.lock"
    lock.unlink()
    lock.symlink_to(tmp_path / "elsewhere")
    _wait_logged(daemon, "cannot lock a new state lock file")
    daemon.socket_path.unlink()  # a later check binds it again, and has tried the lock file again before
    _wait_logged(daemon, "was removed: listening there again")
    assert daemon.output().count("cannot lock a new state lock file") == 1, daemon.output()
    lock.unlink()
    _wait_logged(daemon, f"the state folder's lock file {lock} is locked again")
    assert lock.read_text() == f"{daemon.proc.pid} daemon\n"
    assert not (tmp_path / "elsewhere").exists()  # the link was never followed


def test_a_folder_made_at_the_sockets_place_is_said_once_and_the_socket_comes_back_when_it_goes(workspace, daemon):
    """Nothing was logged: `status` waited 30 s, then said no daemon runs, while this one held the state."""
    daemon.start()
    daemon.socket_path.unlink()
    daemon.socket_path.mkdir()
    _wait_logged(daemon, "something else stands at the control socket's path")
    daemon.socket_path.rmdir()
    _wait_logged(daemon, "was removed: listening there again")
    assert daemon.output().count("something else stands") == 1
    assert daemon.call("ping")["pong"] is True
