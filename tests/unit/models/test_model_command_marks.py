"""A deployment command's mark, and what recovery stops with it (real processes, real ``/proc``)."""

from __future__ import annotations

import os
import subprocess
import time

from edgeorch.models.commands import MARK_VARIABLE, command_mark, stop_left_commands


def _spawn(mark: str | None, *, new_session: bool = True) -> subprocess.Popen[bytes]:
    """``sh`` starting a child ``sleep`` (the child inherits the environment and the group), marked or not."""
    env = {k: v for k, v in os.environ.items() if k != MARK_VARIABLE}
    if mark is not None:
        env[MARK_VARIABLE] = mark
    return subprocess.Popen(["sh", "-c", "sleep 60 & wait"], env=env, start_new_session=new_session)


def _gone(proc: subprocess.Popen[bytes], timeout: float = 10.0) -> bool:
    try:
        proc.wait(timeout)
        return True
    except subprocess.TimeoutExpired:
        return False


def _until_child(proc: subprocess.Popen[bytes]) -> None:
    """Until the shell's ``sleep`` runs (polled: a fork has no event to wait on here)."""
    deadline = time.monotonic() + 10
    while not os.path.exists(f"/proc/{proc.pid}/task/{proc.pid}/children") or \
            not open(f"/proc/{proc.pid}/task/{proc.pid}/children").read().split():
        assert time.monotonic() < deadline
        time.sleep(0.01)


def test_the_processes_of_one_deployments_mark_are_stopped_with_their_groups_and_nothing_else(tmp_path) -> None:
    mine, other_deployment, other_state = (command_mark(7, tmp_path / "edgeorch.db"),
                                           command_mark(8, tmp_path / "edgeorch.db"),
                                           command_mark(7, tmp_path / "elsewhere.db"))
    marked, others = _spawn(mine), [_spawn(other_deployment), _spawn(other_state), _spawn(None)]
    try:
        for p in (marked, *others):
            _until_child(p)
        child = int(open(f"/proc/{marked.pid}/task/{marked.pid}/children").read().split()[0])
        stopped = stop_left_commands(mine)
        assert stopped == sorted([marked.pid, child])
        assert _gone(marked)
        assert not any(p.poll() is not None for p in others)  # another mark, or none: left alone
        # Nothing left once the killed ones are gone (polled: a SIGKILLed process can be read for a moment more,
        # its reaper is init).
        deadline = time.monotonic() + 10
        while stop_left_commands(mine):
            assert time.monotonic() < deadline, "a killed process carrying the mark stayed"
            time.sleep(0.02)
    finally:
        for p in others:
            os.killpg(p.pid, 9)
            p.wait()


def test_a_marked_process_in_this_processs_own_group_is_killed_but_never_the_group(tmp_path) -> None:
    """The group kill never reaches the caller's own group (a command started without a session of its own)."""
    mark = command_mark(1, tmp_path / "edgeorch.db")
    proc = _spawn(mark, new_session=False)
    _until_child(proc)
    assert proc.pid in stop_left_commands(mark)
    assert _gone(proc)


def test_a_health_check_failing_within_its_window_is_said_by_its_last_try_that_ended(tmp_path) -> None:
    """A check exiting 1 each time, its last try cut short by the window's end, read "did not finish within its
    timeout (3.0s)": the exit code and output were lost, the 3 s was what was left of the window, not the timeout."""
    import asyncio

    from edgeorch.models.commands import health_within

    check = tmp_path / "health.sh"
    check.write_text("#!/bin/sh\nsleep 0.4\necho health rc=1\nexit 1\n")
    check.chmod(0o755)
    result = asyncio.run(health_within([str(check)], timeout=5.0, window=1.8, env={}))
    assert not result.ok and not result.timed_out and result.exit_code == 1 and result.tries >= 2
    assert result.describe().endswith(f"exited with code 1: health rc=1 ({result.tries} tries within its window, "
                                      "each failing)"), result.describe()
