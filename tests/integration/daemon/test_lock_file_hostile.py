"""What a command or a daemon does with a lock file someone replaced (a fifo, a link, a forged or stale pid): it
never hangs, never reads without end, never waits for a daemon of another state, and never leaks descriptors."""

from __future__ import annotations

import os
import subprocess
import sys
import time

from edgeorch.control.statelock import state_holder


def _cli(workspace, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*workspace.cli(), *args], env=workspace.cli_env(), capture_output=True, text=True,
                          timeout=timeout)


def test_a_fifo_at_the_lock_files_place_is_refused_at_once_saying_to_remove_it(workspace):
    """`edgeorch run` hung for good reading a fifo there (looking for a daemon to wait for)."""
    workspace.pipeline("p", '[tasks.a]\ncommand = ["true"]\n')
    workspace.state.mkdir(parents=True, exist_ok=True)
    os.mkfifo(workspace.state / "edgeorch.lock")
    ran = _cli(workspace, "run", "p", timeout=30)
    assert ran.returncode == 4, ran.stdout + ran.stderr
    assert "cannot use the lock file: it is not a regular file" in ran.stderr and "remove it" in ran.stderr


def test_a_link_to_an_endless_file_at_the_lock_files_place_is_never_read(workspace):
    """A link to /dev/zero was read whole (all memory) by the look for a daemon to wait for."""
    workspace.pipeline("p", '[tasks.a]\ncommand = ["true"]\n')
    workspace.state.mkdir(parents=True, exist_ok=True)
    (workspace.state / "edgeorch.lock").symlink_to("/dev/zero")
    assert state_holder(workspace.state) is None
    ran = _cli(workspace, "run", "p", timeout=30)
    assert ran.returncode == 4 and "it is a symbolic link" in ran.stderr, ran.stdout + ran.stderr


def test_a_lock_file_naming_a_live_daemon_that_does_not_hold_it_is_not_waited_for(workspace, tmp_path):
    """`1234 daemon` left in the file, 1234 now another state's daemon: `edgeorch run` waited 30 s for it ("does
    not answer yet (starting?)"). Who holds the lock is the kernel's answer (F_GETLK), not the file's text."""
    workspace.pipeline("p", '[tasks.a]\ncommand = ["true"]\n')
    workspace.state.mkdir(parents=True, exist_ok=True)
    other = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()", "edgeorch", "daemon"],
                             stdin=subprocess.PIPE)  # looks like an edgeorch daemon, holds nothing of this state
    try:
        (workspace.state / "edgeorch.lock").write_text(f"{other.pid} daemon\n")
        assert state_holder(workspace.state) is None
        t0 = time.monotonic()
        ran = _cli(workspace, "run", "p")
        assert ran.returncode == 0, ran.stdout + ran.stderr
        assert "does not answer yet" not in ran.stderr and time.monotonic() - t0 < 20, ran.stderr
    finally:
        other.stdin.close()
        other.wait(timeout=30)


def test_the_holder_is_the_process_holding_the_lock(workspace, daemon):
    workspace.pipeline("p", '[tasks.a]\ncommand = ["true"]\n')
    daemon.start()
    assert state_holder(workspace.state) == (daemon.proc.pid, True)


def test_a_fifo_put_at_the_lock_files_place_under_a_daemon_leaks_no_descriptor(workspace, daemon):
    """Each 2-second check opened the fifo, failed to truncate it and kept the descriptor: the daemon ran out of
    descriptors in time. Said once; the descriptors stay as they were; once it is removed, a new file is locked."""
    daemon.start()
    lock = workspace.state / "edgeorch.lock"
    fds = lambda: len(os.listdir(f"/proc/{daemon.proc.pid}/fd"))  # noqa: E731
    lock.unlink()
    os.mkfifo(lock)
    deadline = time.monotonic() + 30
    while "cannot lock a new state lock file" not in daemon.output():
        assert time.monotonic() < deadline, daemon.output()
        time.sleep(0.05)
    before = fds()
    for _ in range(2):  # two more checks: each binds the removed socket again, after trying the lock file
        daemon.socket_path.unlink()
        while not daemon.socket_path.exists():
            assert time.monotonic() < deadline + 30, daemon.output()
            time.sleep(0.05)
    assert fds() == before
    assert daemon.output().count("cannot lock a new state lock file") == 1
    lock.unlink()
    while not (lock.is_file() and lock.read_text() == f"{daemon.proc.pid} daemon\n"):
        assert time.monotonic() < deadline + 60, daemon.output()
        time.sleep(0.05)


def test_a_forged_waiting_mark_is_not_taken_for_a_waiting_daemon(workspace, daemon):
    """`edgeorch.lock.waiting` naming a live daemon of another state: `status` said a daemon waits (75) and a real
    daemon refused to wait (4). The mark is the lock its daemon holds, not the file's text."""
    workspace.pipeline("slow", """
        [tasks.a]
        command = ["sh", "-c", "touch {pipeline_dir}/started; while [ ! -f {pipeline_dir}/go ]; do sleep 0.02; done"]
    """)
    other = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()", "edgeorch", "daemon"],
                             stdin=subprocess.PIPE)
    run = subprocess.Popen([*workspace.cli(), "run", "slow", "-q"], env=workspace.cli_env(),
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        workspace.wait_file(workspace.pipelines / "started")
        (workspace.state / "edgeorch.lock.waiting").write_text(f"{other.pid} daemon\n")
        status = workspace.invoke("status")
        assert status.returncode == 69 and "a daemon started now waits for it to end" in status.stderr, status.stderr
        daemon.start(wait_ready=False)  # waits, not refused
        daemon.notify.wait_for("EXTEND_TIMEOUT_USEC", "30000000")
        assert daemon.proc.poll() is None and "waiting for it to end before starting" in daemon.output()
        waiting = workspace.invoke("status")
        assert waiting.returncode == 75 and f"(pid {daemon.proc.pid}) waits for" in waiting.stderr, waiting.stderr
    finally:
        (workspace.pipelines / "go").touch()
        run.communicate(timeout=60)
        other.stdin.close()
        other.wait(timeout=30)
    daemon.notify.wait_for("READY", "1")
    assert not (workspace.state / "edgeorch.lock.waiting").exists()
