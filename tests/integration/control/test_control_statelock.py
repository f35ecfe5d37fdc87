"""The state-dir lock against real second processes, and kill -9."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from edgeorch.control.statelock import acquire_state_lock
from edgeorch.errors import StateError

HOLDER = r"""
import os, sys
from edgeorch.control.statelock import acquire_state_lock
lock = acquire_state_lock(sys.argv[1])
child = 0
if sys.argv[2] == "fork":
    # A forked child (like a task shim) must not keep the lock alive.
    child = os.fork()
    if child == 0:
        sys.stdin.read()
        os._exit(0)
print(child, flush=True)
sys.stdin.read()  # hold until the test kills us
"""


def start_holder(state: Path, mode: str = "plain") -> tuple[subprocess.Popen[str], int]:
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[3]))
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(state), mode], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env
    )
    assert proc.stdout is not None
    child = int(proc.stdout.readline())  # the lock is held once this line arrives
    return proc, child


def kill9(proc: subprocess.Popen[str]) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)


def test_second_process_is_refused_with_the_holders_pid(tmp_path: Path) -> None:
    proc, _ = start_holder(tmp_path)
    try:
        with pytest.raises(StateError) as info:
            acquire_state_lock(tmp_path)
        assert f"pid {proc.pid}" in str(info.value)
        assert str(tmp_path) in str(info.value)
    finally:
        kill9(proc)


def test_lock_is_freed_by_kill_9(tmp_path: Path) -> None:
    proc, _ = start_holder(tmp_path)
    kill9(proc)
    with acquire_state_lock(tmp_path) as lock:
        assert lock.held
        assert (tmp_path / "edgeorch.lock").read_text().strip() == str(os.getpid())


def test_forked_child_does_not_inherit_the_lock(tmp_path: Path) -> None:
    proc, child = start_holder(tmp_path, "fork")
    try:
        kill9(proc)
        os.kill(child, 0)  # the "shim" is still alive ...
        with acquire_state_lock(tmp_path):  # ... and the state is free
            pass
    finally:
        os.kill(child, signal.SIGKILL)


RESTORER = r"""
import os, sys
from edgeorch.control.statelock import acquire_state_lock
lock = acquire_state_lock(sys.argv[1])
print("held", flush=True)
from edgeorch.errors import StateError
for line in sys.stdin:  # "restore": relock_if_replaced(), its answer printed
    try:
        print(lock.relock_if_replaced(), flush=True)
    except StateError as exc:
        print("refused:", exc.render().replace("\n", " "), flush=True)
"""


def test_a_removed_lock_file_is_made_and_locked_again_by_its_holder(tmp_path: Path) -> None:
    """A removed lock file let a second daemon lock a new one beside the first; the holder now locks a new
    file itself (its daemon checks every 2 s), and leaves alone a file someone else made first."""
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[3]))
    proc = subprocess.Popen([sys.executable, "-c", RESTORER, str(tmp_path)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True, env=env)
    assert proc.stdout is not None and proc.stdin is not None

    def restore() -> str:
        proc.stdin.write("restore\n")
        proc.stdin.flush()
        return proc.stdout.readline().strip()

    try:
        assert proc.stdout.readline().strip() == "held"
        lock_file = tmp_path / "edgeorch.lock"
        assert restore() == "False"  # there, its own: nothing to do
        lock_file.unlink()
        assert restore() == "True"  # gone: a new one, locked
        assert lock_file.read_text() == f"{proc.pid}\n"
        with pytest.raises(StateError, match=f"pid {proc.pid}"):
            acquire_state_lock(tmp_path)  # the holder's again
        lock_file.unlink()
        acquire_state_lock(tmp_path).release()  # a second daemon's, refused: the file it left stays
        assert restore() == "True" and lock_file.read_text() == f"{proc.pid}\n"
        lock_file.unlink()
        with acquire_state_lock(tmp_path):  # held by another process (this test): another writer, said
            answer = restore()
        assert answer.startswith("refused:") and f"another edgeorch process (pid {os.getpid()}: `" in answer and "holds the lock" in answer, answer
    finally:
        kill9(proc)  # type: ignore[arg-type]


def test_a_writer_waits_a_moment_for_a_short_holder_then_goes_on(workspace):
    """A cron job's `run` beside an offline `pipelines pause` (which holds the lock for milliseconds) failed with
    exit 75 and a hint about runs. It asks again for up to two seconds."""
    import subprocess
    import sys

    workspace.pipeline("p", '[tasks.a]\ncommand = ["true"]\n')
    ready = workspace.root / "held"
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time, pathlib; from edgeorch.control.statelock import acquire_state_lock; "
        f"lock = acquire_state_lock({str(workspace.state)!r}); pathlib.Path({str(ready)!r}).touch(); time.sleep(0.7)")])
    try:
        workspace.wait_file(ready)
        proc = workspace.invoke("run", "p")
    finally:
        holder.wait(timeout=30)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_a_lock_file_that_is_a_link_is_refused_never_written_through(tmp_path):
    """The lock file is truncated and written with the holder's pid: a link there (anyone who may write the state
    folder can plant one) emptied the file it named, as the daemon's user (often root)."""
    precious = tmp_path / "precious.txt"
    precious.write_text("precious data\n")
    state = tmp_path / "state"
    state.mkdir()
    (state / "edgeorch.lock").symlink_to(precious)
    with pytest.raises(StateError, match="the lock file: it is a symbolic link"):
        acquire_state_lock(state)
    assert precious.read_text() == "precious data\n"
    (state / "edgeorch.lock").unlink()
    os.mkfifo(state / "edgeorch.lock")
    with pytest.raises(StateError, match="not a regular file"):
        acquire_state_lock(state)


def test_a_command_waits_for_a_daemon_that_holds_the_state_but_does_not_answer_yet(workspace, monkeypatch, capsys):
    """A daemon takes the lock, then opens the state, reads its pipelines and starts its engine before its socket
    listens: a script's `run` or `status` in that second was refused (exit 4, "stop that daemon first"; exit 69).
    It waits for that daemon's socket instead."""
    import sys as _sys

    from edgeorch.cli import backend
    from edgeorch.control import client as control_client

    ready = workspace.root / "held"
    holder = subprocess.Popen([_sys.executable, "-c", (
        "import sys, time, pathlib; from edgeorch.control.statelock import acquire_state_lock; "
        f"lock = acquire_state_lock({str(workspace.state)!r}, daemon=True); pathlib.Path({str(ready)!r}).touch(); "
        "time.sleep(60)"), "daemon"])  # "daemon" on its command line: taken for a daemon, as the real one is
    try:
        workspace.wait_file(ready)
        answers = iter([None, None, "connected"])  # its socket answers at the third ask
        monkeypatch.setattr(control_client, "connect_if_running", lambda *a, **k: next(answers))
        got = backend.connect(workspace.config(), "daemon")
        assert got.online and got._client == "connected"
        assert f"the daemon of this state (pid {holder.pid}) does not answer yet (starting?)" in capsys.readouterr().err
    finally:
        holder.kill()
        holder.wait(timeout=30)
