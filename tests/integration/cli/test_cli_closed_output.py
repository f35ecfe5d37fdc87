"""A command whose exit status is a run's outcome (``run``, ``retry``) keeps it when its standard output's reader goes
away: ``edgeorch run quote | head -1; echo ${PIPESTATUS[0]}`` said 0 for a run that FAILED (and for a cancelled one,
130 without the pipe), and without a daemon every later progress line logged a BrokenPipeError traceback ("event
subscriber ... failed on TaskStarted"). An output command (``logs -f``) still stops where its reader did.

Real processes: the pipe is closed after the first line, as ``head -1`` does, then the run is let go on.
"""

from __future__ import annotations

import json
import signal
import subprocess

import pytest

# The task waits for `go` (written once the reader is gone), then fails: its end is printed to the closed pipe.
QUOTE = """
[tasks.quote]
command = ["sh", "-c", "touch {pipeline_dir}/started; while [ ! -f {pipeline_dir}/go ]; do sleep 0.02; done; echo no quote today; exit 3"]
[tasks.after]
command = ["true"]
needs = ["quote"]
"""

HANG = """
[tasks.hang]
command = ["sh", "-c", "touch {pipeline_dir}/started; exec sleep 300"]
"""


def _start(workspace, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([*workspace.cli(), *args], env=workspace.cli_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def _head_1(proc: subprocess.Popen[str]) -> str:
    """What ``| head -1`` reads: the first line; then the reader goes away (the pipe's read end is closed)."""
    assert proc.stdout is not None
    first = proc.stdout.readline()
    proc.stdout.close()
    return first


def _end(proc: subprocess.Popen[str]) -> tuple[int, str]:
    assert proc.stderr is not None
    err = proc.stderr.read()
    return proc.wait(timeout=120), err


def _no_traceback(err: str) -> None:
    assert "Traceback" not in err and "BrokenPipe" not in err and "failed on" not in err, err


@pytest.mark.parametrize("with_daemon", [False, True], ids=["no-daemon", "daemon"])
def test_a_failed_run_exits_1_though_its_output_was_closed_early(workspace, daemon, with_daemon):
    workspace.pipeline("quote", QUOTE)
    if with_daemon:
        daemon.start()
    proc = _start(workspace, "run", "quote")
    first = _head_1(proc)
    assert first.startswith("running quote" if not with_daemon else "run 1 of quote queued"), first
    workspace.wait_file(workspace.pipelines / "started")
    (workspace.pipelines / "go").touch()  # the task fails now: its end goes to a pipe nobody reads
    code, err = _end(proc)
    assert code == 1, err
    _no_traceback(err)
    assert workspace.invoke("show", "1").stdout.startswith("run 1  quote  FAILED")


@pytest.mark.parametrize("with_daemon", [False, True], ids=["no-daemon", "daemon"])
def test_a_retry_that_fails_again_exits_1_though_its_output_was_closed_early(workspace, daemon, with_daemon):
    workspace.pipeline("quote", QUOTE)
    (workspace.pipelines / "go").touch()
    assert workspace.invoke("run", "quote").returncode == 1
    (workspace.pipelines / "go").unlink()
    (workspace.pipelines / "started").unlink()
    if with_daemon:
        daemon.start()
    proc = _start(workspace, "retry", "1")
    assert _head_1(proc)  # (the order of the first lines is test_cli_retry_announce.py's)
    workspace.wait_file(workspace.pipelines / "started")
    (workspace.pipelines / "go").touch()
    code, err = _end(proc)
    assert code == 1, err
    _no_traceback(err)


def test_a_run_cancelled_by_ctrl_c_exits_130_though_its_output_was_closed_early(workspace):
    workspace.pipeline("hang", HANG)
    proc = _start(workspace, "run", "hang")
    assert _head_1(proc).startswith("running hang")
    workspace.wait_file(workspace.pipelines / "started")  # its engine handles Ctrl-C from before its first task
    proc.send_signal(signal.SIGINT)
    code, err = _end(proc)
    assert code == 130, err
    _no_traceback(err)
    assert "cancelling the run" in err


def test_a_run_another_command_cancels_exits_130_though_its_output_was_closed_early(workspace, daemon):
    workspace.pipeline("hang", HANG)
    daemon.start()
    proc = _start(workspace, "run", "hang")
    assert _head_1(proc).startswith("run 1 of hang queued")
    workspace.wait_file(workspace.pipelines / "started")
    cancel = workspace.invoke("cancel", "1", "--reason", "not today")
    assert cancel.returncode == 0, cancel.stderr
    code, err = _end(proc)
    assert code == 130, err
    _no_traceback(err)


def test_logs_follow_still_stops_where_its_reader_did(workspace, daemon):
    """An output command: ``logs -f | head -1`` ends at the closed pipe (exit 0), while the task goes on."""
    workspace.pipeline("chatty", """
        [tasks.talk]
        command = ["sh", "-c", "while [ ! -f {pipeline_dir}/go ]; do echo line; sleep 0.02; done"]
    """)
    daemon.start()
    run_id = daemon.call("trigger", {"pipeline": "chatty"})["run_id"]
    proc = _start(workspace, "logs", "-f", str(run_id), "talk")
    try:
        assert _head_1(proc) == "line\n"
        code, err = _end(proc)  # the task writes on: the next line finds the pipe closed
        assert code == 0, err
        _no_traceback(err)
        assert json.loads(workspace.invoke("runs", "--json").stdout)[0]["state"] == "running"  # the task goes on
    finally:
        (workspace.pipelines / "go").touch()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert daemon.wait_run(run_id) == "succeeded"


def test_a_run_whose_output_stays_open_prints_everything_as_before(workspace):
    """The guard changes nothing while the reader reads: the progress and the summary are all there."""
    workspace.pipeline("quote", QUOTE)
    (workspace.pipelines / "go").touch()
    proc = subprocess.run([*workspace.cli(), "run", "quote"], env=workspace.cli_env(), capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 1, proc.stderr
    assert "quote                    FAILED" in proc.stdout and "run 1  quote  FAILED" in proc.stdout, proc.stdout
    assert "no quote today" in proc.stdout
    _no_traceback(proc.stderr)


def test_a_run_started_with_its_standard_output_closed_exits_with_its_outcome(workspace):
    """``edgeorch run quote >&-``: Python has no sys.stdout then; nothing is printed and the code is the run's."""
    workspace.pipeline("quote", QUOTE)
    (workspace.pipelines / "go").touch()
    proc = subprocess.run(["sh", "-c", 'exec "$@" >&-', "sh", *workspace.cli(), "run", "quote"],
                          env=workspace.cli_env(), stderr=subprocess.PIPE, text=True, timeout=120)
    assert proc.returncode == 1, proc.stderr
    _no_traceback(proc.stderr)
    assert proc.stderr == ""


def test_a_verdict_command_keeps_its_exit_status_though_its_output_was_closed(workspace):
    """`edgeorch validate | head -1` said 0 of a folder with an invalid file (its reader gone before its lines): the
    verdict is the exit status (validate, audit verify, drift, fairness, profile)."""
    workspace.pipeline("good", '[tasks.a]\ncommand = ["true"]\n')
    workspace.pipeline("bad", '[tasks.a]\ncommand = "not an argv"\n')
    proc = _start(workspace, "validate")
    assert proc.stdout is not None
    proc.stdout.close()  # the reader is gone before the first line
    code, err = _end(proc)
    assert code == 1, err
    _no_traceback(err)
