"""The one runner of the daemon's external commands (edgeorch/commandrun.py), on real subprocesses: stdin fed and
closed whatever the command does with it, the verdict at the command's exit, what it left killed, the output's tail.

A deployment's reload/health commands and a rule's notify command ran through two copies of this (an asyncio one
and a thread + select one); the notify's stdin is what the folded runner added. No test waits by sleeping: a
process's end is awaited on its pidfd."""

from __future__ import annotations

import asyncio
import gc
import os
import select
import threading
import time
import warnings
from typing import Any

import pytest

from edgeorch.commandmarks import marked_value, stop_marked
from edgeorch.commandrun import CommandResult, run_command
from edgeorch.monitor.service import NOTIFY_MARK, NOTIFY_OUTPUT, _notify

MARK = "EDGEORCH_TEST_COMMANDRUN"
MB = 1_000_000


def _fds() -> set[str]:
    return set(os.listdir("/proc/self/fd"))


def _run(argv: list[str], *, timeout: float = 20.0, env: dict[str, str] | None = None, stdin: bytes | None = None,
         output_chars: int = 2000, drain_s: float = 0.5) -> CommandResult:
    """``run_command`` under its own loop, as the notify runs it; no error reaches the loop's exception handler, no
    file descriptor or transport is left open."""
    errors: list[dict[str, Any]] = []

    async def main() -> CommandResult:
        asyncio.get_running_loop().set_exception_handler(lambda loop, context: errors.append(context))
        return await run_command(argv, timeout=timeout, env=env or {}, mark_variable=MARK,
                                 output_chars=output_chars, drain_s=drain_s, stdin=stdin)

    before = _fds()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResourceWarning)
        result = asyncio.run(main())
        gc.collect()  # an unclosed transport says so when it is collected
    assert errors == [], errors
    assert [w for w in caught if issubclass(w.category, ResourceWarning)] == []
    assert _fds() <= before, "a pipe of the command was left open"
    return result


def _wait_gone(pid: int, within: float = 10.0) -> None:
    """Until process ``pid`` has ended (its pidfd is readable at its exit); fails after ``within`` seconds."""
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return
    try:
        ready, _, _ = select.select([fd], [], [], within)
        assert ready, f"process {pid} outlived the command"
    finally:
        os.close(fd)


# -- stdin ---------------------------------------------------------------------------------------------------------


def test_stdin_is_delivered_and_closed_after_it() -> None:
    r = _run(["cat"], stdin=b"{\"rule\": \"r\"}\n")  # cat ends only at its stdin's end: the pipe was closed
    assert (r.ok, r.exit_code, r.timed_out, r.output) == (True, 0, False, "{\"rule\": \"r\"}\n")


def test_stdin_larger_than_a_pipe_is_written_as_the_command_reads_it() -> None:
    r = _run(["wc", "-c"], stdin=b"x" * (3 * MB))
    assert r.ok and r.output.strip() == str(3 * MB)


def test_empty_stdin_is_an_immediate_end_of_file() -> None:
    r = _run(["cat"], stdin=b"")
    assert r.ok and r.output == ""


def test_no_stdin_is_dev_null() -> None:
    r = _run(["sh", "-c", "readlink /proc/self/fd/0; cat"])
    assert r.ok and r.output == "/dev/null\n"


@pytest.mark.parametrize("size", [10, 3 * MB])
def test_a_command_that_never_reads_its_stdin_and_exits_0_passes(size: int) -> None:
    """3 MB: more than the pipe takes, so the rest is written after the command's exit (EPIPE), or dropped."""
    r = _run(["true"], stdin=b"x" * size)
    assert (r.ok, r.exit_code, r.output) == (True, 0, "")


def test_a_command_that_closes_its_stdin_and_prints_a_lot_keeps_only_the_tail() -> None:
    argv = ["sh", "-c", "exec 0<&-; head -c 1000000 /dev/zero | tr '\\0' x; echo; echo end"]
    r = _run(argv, stdin=b"y" * (3 * MB), output_chars=100)
    assert r.ok and len(r.output) == 100 and r.output == "x" * 95 + "\nend\n"


def test_a_multibyte_character_cut_by_the_buffer_is_dropped_not_replaced() -> None:
    r = _run(["sh", "-c", "head -c 30000 /dev/zero | tr '\\0' x; printf 'ééééé'"], output_chars=3)
    assert r.ok and r.output == "ééé"


# -- the verdict is the exit; what is left is killed -------------------------------------------------------------


def test_a_child_left_holding_both_pipes_does_not_hold_the_verdict_and_is_killed(tmp_path) -> None:
    """The child (another session: the group kill misses it) holds stdin (never read, more than the pipe takes)
    and the output; it carries the mark, so it is killed at the command's exit."""
    mark = marked_value(1, tmp_path / "edgeorch.db")
    started = time.monotonic()
    # A background command's stdin is /dev/null unless redirected; the shell's own stdin is handed on through fd 3.
    argv = ["sh", "-c", "exec 3<&0; setsid sleep 600 <&3 3<&- & echo $!; exit 0"]
    r = _run(argv, env={MARK: mark}, stdin=b"z" * (3 * MB))
    assert time.monotonic() - started < 30, "the verdict waited for the child"
    assert (r.ok, r.exit_code, r.timed_out) == (True, 0, False)
    child = int(r.output.strip())
    _wait_gone(child)
    assert stop_marked(MARK, mark) == []


def test_an_unmarked_child_in_another_session_is_waited_for_at_most_the_drain_time() -> None:
    """One edgeorch cannot find (no mark) holds the output and the stdin it never reads: the verdict is still the
    exit, the drain is bounded, and the input it did not read is dropped (the pipe closed here all the same)."""
    started = time.monotonic()
    r = _run(["sh", "-c", "exec 3<&0; setsid sleep 600 <&3 3<&- & echo $!; exit 0"], drain_s=0.2,
             stdin=b"z" * (3 * MB))
    assert r.ok and time.monotonic() - started < 30
    child = int(r.output.strip())
    try:
        os.kill(child, 0)  # alive: nothing marked it
    finally:
        os.kill(child, 9)
    _wait_gone(child)


def test_a_timeout_kills_the_group(tmp_path) -> None:
    started = time.monotonic()
    r = _run(["sh", "-c", "sleep 600 & echo $!; wait"], timeout=0.5, stdin=b"unread")
    assert (r.ok, r.exit_code, r.timed_out) == (False, -9, True) and time.monotonic() - started < 30
    assert r.timeout == 0.5 and "did not finish within its timeout (0.5s)" in r.describe()
    _wait_gone(int(r.output.strip()))  # the grandchild, in the command's group


def test_a_command_that_cannot_be_started_is_a_result_and_leaves_nothing_open() -> None:
    r = _run(["/nonexistent/notify"], stdin=b"{}")
    assert (r.ok, r.exit_code, r.timed_out) == (False, None, False)
    assert r.start_error == "No such file or directory"
    assert r.output == "cannot run '/nonexistent/notify': No such file or directory"
    assert "could not be started" in r.describe()


# -- the notify command: a thin call from a worker thread ------------------------------------------------------------


def test_notify_from_a_worker_thread_while_the_main_thread_runs_a_loop(tmp_path) -> None:
    """As the daemon runs it (``asyncio.to_thread``): an event loop of its own in the worker thread, its child
    awaited there (pidfd or thread watcher, whichever the Python version uses), none of it on the caller's loop."""
    mark = marked_value(2, tmp_path / "edgeorch.db")

    async def daemon() -> dict[str, Any]:
        return await asyncio.to_thread(_notify, ["sh", "-c", "cat; echo; exit 4"], {"rule": "r", "value": 1.5}, 20.0,
                                       {NOTIFY_MARK: mark})

    assert threading.current_thread() is threading.main_thread()
    res = asyncio.run(daemon())
    assert res == {"exit_code": 4, "output": '{"rule": "r", "value": 1.5}\n'}


def test_notify_maps_a_start_failure_and_a_timeout_to_its_errors(tmp_path) -> None:
    assert _notify(["/nonexistent/notify"], {}, 5.0, {}) == {
        "exit_code": None, "error": "cannot run /nonexistent/notify: No such file or directory"}
    mark = marked_value(3, tmp_path / "edgeorch.db")
    assert _notify(["sleep", "600"], {}, 0.3, {NOTIFY_MARK: mark}) == {
        "exit_code": None, "error": "timed out after 0.3s (its process group was killed)"}
    out = _notify(["sh", "-c", "head -c 100000 /dev/zero | tr '\\0' q"], {}, 20.0, {})
    assert out == {"exit_code": 0, "output": "q" * NOTIFY_OUTPUT}
