"""`edgeorch run` through a daemon follows a run it queued a moment before: no task's start is missed or said twice."""

from __future__ import annotations

import re
import time

import pytest

import edgeorch
from edgeorch.cli.commands.runs import _ProgressPrinter


def test_a_follower_that_subscribes_late_is_told_each_running_task_once_with_its_duration(workspace, daemon, capsys):
    workspace.pipeline("two", """
        [tasks.slow]
        command = ["sh", "-c", "touch {pipeline_dir}/slow.started; while [ ! -f {pipeline_dir}/go ]; do sleep 0.02; done"]
        [tasks.after]
        command = ["true"]
        needs = ["slow"]
    """)
    daemon.start()
    run_id = daemon.call("trigger", {"pipeline": "two"})["run_id"]
    workspace.wait_file(workspace.pipelines / "slow.started")  # started before anyone follows the run
    printer = _ProgressPrinter(enabled=True)

    def on_event(ev: dict) -> None:
        printer(ev)
        if ev.get("kind") == "task" and ev.get("task") == "slow" and ev.get("state") == "running":
            printer(ev)  # the same attempt again (the catch-up and the bus can both carry it): said once
            (workspace.pipelines / "go").touch()

    run = edgeorch.Client(config=workspace.config_path, timeout=30).wait(run_id, timeout=60, on_event=on_event)
    assert run.state == "succeeded"
    lines = capsys.readouterr().out.splitlines()
    assert [ln.split(None, 1)[1] for ln in lines if "slow" in ln][:1] == ["slow                     started (attempt 1)"], lines
    assert sum("slow" in ln and "started" in ln for ln in lines) == 1, lines
    (done,) = [ln for ln in lines if "slow" in ln and "started" not in ln]
    assert " ok in " in done, lines  # the duration counts from the attempt's recorded start
    assert sum("after" in ln and "started (attempt 1)" in ln for ln in lines) == 1, lines


FAN = """
    [tasks.a]
    command = ["true"]
    [tasks.b]
    command = ["true"]
    [tasks.c]
    command = ["true"]
    needs = ["a", "b"]
"""


def test_client_run_sees_every_item_of_its_run_from_queued_on_even_of_tasks_that_end_at_once(workspace, daemon):
    workspace.pipeline("fan", FAN)
    workspace.pipeline("other", '[tasks.x]\ncommand = ["true"]\n')
    daemon.start()
    client = edgeorch.Client(config=workspace.config_path, timeout=30)
    other = client.submit("other")  # another run's events must not reach this run's follower
    seen: list[dict] = []
    queued: list = []
    run = client.run("fan", timeout=60, on_event=seen.append, on_queued=queued.append)
    assert run.state == "succeeded" and [q.run_id for q in queued] == [run.id] != [other.run_id]
    assert seen[0]["kind"] == "subscribed"
    mine = [(e["kind"], e.get("task"), e["state"]) for e in seen if e.get("run_id") is not None]
    assert {e["run_id"] for e in seen if e.get("run_id") is not None} == {run.id}, seen
    assert mine[0] == ("run", None, "queued") and mine[-1] == ("run", None, "succeeded"), mine
    for task in ("a", "b", "c"):
        assert [s for k, t, s in mine if k == "task" and t == task] == ["running", "succeeded"], mine


def test_edgeorch_run_through_a_daemon_shows_each_task_start_and_end_once(workspace, daemon, monkeypatch):
    workspace.pipeline("fan", FAN)
    daemon.start()
    original_wait = edgeorch.Client.wait

    def slow_follower(self, run, *args, **kw):  # a follower that subscribes only after the run is over
        daemon.wait_run(run if isinstance(run, int) else run.run_id)
        return original_wait(self, run, *args, **kw)

    monkeypatch.setattr(edgeorch.Client, "wait", slow_follower)
    out = workspace.invoke("run", "fan")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    for task in ("a", "b", "c"):
        assert sum(ln.split()[1:3] == [task, "started"] for ln in lines if len(ln.split()) > 2) == 1, lines
        assert sum(ln.split()[1:4] == [task, "ok", "in"] for ln in lines if len(ln.split()) > 3) == 1, lines


def test_a_quiet_run_asks_for_its_runs_items_only_and_events_kind_shows_only_that_kind(workspace, daemon, monkeypatch):
    import json
    import subprocess

    workspace.pipeline("fan", FAN)
    daemon.start()
    shown: list = []
    original_run = edgeorch.Client.run

    def spying_run(self, *args, on_event=None, **kw):
        shown.append(on_event)
        return original_run(self, *args, on_event=on_event, **kw)

    monkeypatch.setattr(edgeorch.Client, "run", spying_run)
    quiet, loud = workspace.invoke("run", "-q", "fan"), workspace.invoke("run", "fan")
    assert quiet.returncode == loud.returncode == 0, quiet.stderr + loud.stderr
    assert shown[0] is None and shown[1] is not None  # -q shows no task: none is sent to it (calls.follow)
    assert "a                        started" not in quiet.stdout and "a                        started" in loud.stdout
    proc = subprocess.Popen([*workspace.cli(), "events", "--kind", "run", "--json"], env=workspace.cli_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert json.loads(proc.stdout.readline())["kind"] == "subscribed"
        run_id = daemon.call("trigger", {"pipeline": "fan"})["run_id"]
        items = [json.loads(proc.stdout.readline())]
        while items[-1].get("state") != "succeeded":
            items.append(json.loads(proc.stdout.readline()))
    finally:
        proc.terminate()
        proc.communicate(timeout=30)
    assert [(i["kind"], i["run_id"], i["state"]) for i in items] == [
        ("run", run_id, "queued"), ("run", run_id, "running"), ("run", run_id, "succeeded")]
    bad = workspace.invoke("events", "--kind", "tasks")
    assert bad.returncode == 2 and "invalid choice: 'tasks'" in bad.stderr, bad.stderr


def test_async_client_run_also_subscribes_before_it_queues(workspace, daemon):
    import asyncio

    workspace.pipeline("fan", FAN)
    daemon.start()
    seen: list[dict] = []

    async def main():
        async with edgeorch.AsyncClient(config=workspace.config_path, timeout=30) as client:
            return await client.run("fan", timeout=60, on_event=seen.append)

    run = asyncio.run(main())
    assert run.state == "succeeded"
    for task in ("a", "b", "c"):
        assert [e["state"] for e in seen if e.get("kind") == "task" and e.get("task") == task] == ["running", "succeeded"]


def follow_a_started_run(workspace, daemon, command: str):
    """`edgeorch run long` through a started daemon, returned once its one task (``command``, which must
    touch ``{pipeline_dir}/started`` first) has started."""
    import subprocess

    workspace.pipeline("long", f"""
        [tasks.work]
        command = ["sh", "-c", "{command}"]
    """)
    daemon.start()
    proc = subprocess.Popen([*workspace.cli(), "run", "long"], env=workspace.cli_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    workspace.wait_file(workspace.pipelines / "started")
    return proc


def test_ctrl_c_of_edgeorch_run_through_a_daemon_cancels_its_run(workspace, daemon):
    import signal

    proc = follow_a_started_run(workspace, daemon, "touch {pipeline_dir}/started; exec sleep 300")
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, out + err
    assert "asking the daemon to cancel the run" in err and "work                     started (attempt 1)" in out, out + err
    assert "CANCELLED" in out and daemon.call("runs.list", {})["runs"][0]["state"] == "cancelled"


def test_sigterm_of_edgeorch_run_through_a_daemon_cancels_its_run_as_ctrl_c_does(workspace, daemon):
    """`timeout 600 edgeorch run nightly` in a cron job or CI: the CLI died of the SIGTERM and its run went on,
    followed by nobody (without a daemon the same signal cancelled it)."""
    import signal

    proc = follow_a_started_run(workspace, daemon, "touch {pipeline_dir}/started; exec sleep 300")
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, out + err
    assert "interrupted (SIGTERM): asking the daemon to cancel the run" in err, err
    run = daemon.call("runs.list", {})["runs"][0]
    assert run["state"] == "cancelled"
    assert daemon.call("runs.show", {"run_id": run["id"]})["cancel_reason"] == "interrupted by the user (SIGTERM)"


def test_edgeorch_run_that_loses_its_daemon_says_the_run_goes_on(workspace, daemon):
    proc = follow_a_started_run(workspace, daemon,
                                "touch {pipeline_dir}/started; while [ ! -f {pipeline_dir}/go ]; do sleep 0.02; done")
    daemon.kill9()
    try:
        out, err = proc.communicate(timeout=60)
        # 75, "try again": never 1, which a script (`edgeorch run nightly || page`) reads as "the run failed"
        assert proc.returncode == 75 and "closed the connection" in err, out + err
        assert "hint: run 1 goes on when the daemon is back" in err and "`edgeorch show 1`" in err, err
        assert "(found" not in err and "run_id:" not in err  # the text as it was; `--json` carries the run id
        daemon.start()  # live restore: the task still runs, and the run ends once it does
    finally:  # a failed assertion above left the task (and its supervisor) waiting for ever
        (workspace.pipelines / "go").touch()
    assert daemon.wait_run(1) == "succeeded"


def test_a_failed_attempt_that_is_retried_says_so_and_an_empty_log_is_said_to_be_empty(workspace):
    """`edgeorch run` (no daemon): "attempt 1 failed in 0.0s: ...; retry 1 of 1 in ...", never "retry wait in 0.0s"
    (read as the wait); the failed task's empty log is said to be empty, not a header over nothing."""
    import subprocess

    workspace.pipeline("flaky", """
        [tasks.c]
        command = ["sh", "-c", "exit 7"]
        retries = 1
        retry_delay = "0.1s"
    """)
    out = subprocess.run([*workspace.cli(), "run", "flaky"], env=workspace.cli_env(), capture_output=True, text=True,
                         check=False)
    assert out.returncode != 0
    lines = out.stdout.splitlines()
    assert any(" c " in f" {ln} " and "attempt 1 failed in " in ln and ": exited with code 7; retry 1 of 1 in " in ln
               for ln in lines), lines
    assert not any("retry wait" in ln for ln in lines), lines
    assert "c wrote nothing to its log (edgeorch logs 1 c)" in lines, lines
    assert not any(ln.startswith("last lines of c") for ln in lines), lines


def test_a_failed_run_ends_with_what_to_do_next_and_the_checkpoints_a_retry_finds(workspace):
    """3 a.m., a training run died: is it resumable? The end of `run` and `show` says the command, what it runs
    again and the checkpoints the failed task will find (its latest attempt's: none once they were set aside)."""
    import subprocess

    workspace.pipeline("train", """
        [tasks.prep]
        command = ["true"]
        [tasks.fit]
        needs = ["prep"]
        command = ["sh", "-c", "touch $EDGEORCH_CHECKPOINT_DIR/epoch-1 $EDGEORCH_CHECKPOINT_DIR/epoch-2; exit 1"]
        [tasks.eval]
        needs = ["fit"]
        command = ["true"]
    """)
    out = subprocess.run([*workspace.cli(), "run", "train"], env=workspace.cli_env(), capture_output=True, text=True,
                         check=False)
    assert out.returncode == 1
    hint = ("next: `edgeorch retry 1` runs fit, eval again (and any finished task whose outputs changed since), with "
            "this run's definition; fit finds its checkpoints (2 file(s))")
    assert hint in out.stdout.splitlines(), out.stdout
    shown = subprocess.run([*workspace.cli(), "show", "1"], env=workspace.cli_env(), capture_output=True, text=True)
    assert hint in shown.stdout.splitlines(), shown.stdout
    # A checkpoint's name is the task's to choose: it never writes a line or an escape code of its own there.
    workspace.pipeline("odd", """
        [tasks.w]
        command = ["python3", "-c", 'import os; open(os.path.join(os.environ["EDGEORCH_CHECKPOINT_DIR"], "a\\nnext: forged\\x1b[31m"), "w"); raise SystemExit(1)']
    """)
    odd = subprocess.run([*workspace.cli(), "run", "odd"], env=workspace.cli_env(), capture_output=True, text=True)
    assert "\x1b" not in odd.stdout and "next: forged" not in odd.stdout.splitlines(), odd.stdout
    assert "w finds its checkpoints (1 file(s))" in odd.stdout
    workspace.pipeline("fine", '[tasks.a]\ncommand = ["true"]\n')
    ok = subprocess.run([*workspace.cli(), "run", "fine"], env=workspace.cli_env(), capture_output=True, text=True)
    assert ok.returncode == 0 and "SUCCEEDED" in ok.stdout and "next:" not in ok.stdout


def test_a_failed_tasks_last_lines_reach_the_terminal_escaped(workspace):
    """The summary of a failed run shows the task's last lines: text the task may have copied from its input
    (a dropped file's bad row). An escape sequence there cleared or recoloured the operator's terminal; it is
    shown escaped, as every other text others chose (`edgeorch logs` keeps the exact bytes)."""
    import subprocess

    workspace.pipeline("loud", r"""
        [tasks.c]
        command = ["sh", "-c", "printf 'bad row: \\033[2J\\033]0;owned\\007 here\\n'; exit 3"]
    """)
    out = subprocess.run([*workspace.cli(), "run", "loud"], env=workspace.cli_env(), capture_output=True, text=True,
                         check=False)
    assert out.returncode != 0
    assert "\x1b" not in out.stdout and "\x07" not in out.stdout, out.stdout
    assert "  bad row: \\x1b[2J\\x1b]0;owned\\x07 here" in out.stdout.splitlines(), out.stdout
    logs = subprocess.run([*workspace.cli(), "logs", "1", "c"], env=workspace.cli_env(), capture_output=True,
                          check=False)
    assert b"\x1b[2J" in logs.stdout, logs.stdout


def test_a_ctrl_c_while_the_run_is_being_queued_is_held_until_its_id_is_known():
    """The race the Ctrl-C test met under load: SIGINT before the daemon answered `trigger`. The first one
    waits for the run's id (then interrupts, so the caller cancels that run); a second one interrupts at once."""
    import os
    import signal
    from types import SimpleNamespace

    import pytest

    from edgeorch.cli.commands.runs import _submit_then_interruptible

    before = signal.getsignal(signal.SIGINT)

    def submit(kills: int):
        def go(printer, on_queued):
            for _ in range(kills):
                os.kill(os.getpid(), signal.SIGINT)  # delivered to this (main) thread before kill returns
            on_queued(SimpleNamespace(run_id=7))
            return "followed"
        return go

    before_term = signal.getsignal(signal.SIGTERM)
    ids: list[int] = []
    assert _submit_then_interruptible(submit(0), None, ids, []) == "followed" and ids == [7]
    ids = []
    with pytest.raises(KeyboardInterrupt):
        _submit_then_interruptible(submit(1), None, ids, [])
    assert ids == [7]  # known before the interrupt: the run can be cancelled
    ids = []
    with pytest.raises(KeyboardInterrupt):
        _submit_then_interruptible(submit(2), None, ids, [])
    assert ids == []  # the second Ctrl-C did not wait for an answer
    assert signal.getsignal(signal.SIGINT) is before and signal.getsignal(signal.SIGTERM) is before_term


def test_a_ctrl_c_held_while_queueing_cancels_once_the_new_stream_shows_the_running_attempt(capsys):
    """The CI race behind a missing "started" line: the task had started before the CLI read the daemon's
    answer, the held Ctrl-C dropped the stream that carried the start, and the cancel (sent at once) ended
    the attempt before the new stream listed the running ones. The cancel now goes once the new stream is
    subscribed (it opens with the attempts running then), so the start is still said."""
    import os
    import signal
    from types import SimpleNamespace

    from edgeorch.cli.commands.runs import _follow_remote
    from edgeorch.client import Run

    calls: list[str] = []
    doc = {"id": 7, "pipeline": "long", "state": "cancelled", "reason": None, "created_at": 0.5, "started_at": 1.0,
           "finished_at": 2.0, "tasks": [], "results": []}

    class Api:
        def wait(self, run_id, on_event):
            calls.append(f"wait {run_id}")
            for item in ({"kind": "subscribed"},
                         {"kind": "task", "run_id": 7, "task": "work", "state": "running", "attempt": 1, "ts": 1.5},
                         {"kind": "run", "run_id": 7, "state": "cancelled", "ts": 2.0}):
                on_event(item)
                calls.append(item["kind"])
            return Run.adopt(dict(doc))

        def cancel(self, run_id, reason):
            calls.append(f"cancel {run_id}")

    def submit(printer, on_queued):
        os.kill(os.getpid(), signal.SIGINT)  # before the answer: held until the run's id is known
        on_queued(SimpleNamespace(run_id=7))

    before = signal.getsignal(signal.SIGINT)
    code = _follow_remote(SimpleNamespace(api=Api()), None, json_out=False, submit=submit)
    assert code == 130 and signal.getsignal(signal.SIGINT) is before
    assert calls == ["wait 7", "cancel 7", "subscribed", "task", "run"], calls  # cancelled once subscribed
    out, err = capsys.readouterr()
    assert "work                     started (attempt 1)" in out and "asking the daemon to cancel the run" in err


def test_a_failed_task_that_wrote_bytes_that_are_not_utf8_shows_which_bytes(workspace):
    """A task printing Latin-1 (`caf\\xe9`) failed with a reason and last lines of U+FFFD marks, which say nothing
    of what was written: each such byte is shown as ``\\xNN``, in the reason and in the last lines alike."""
    workspace.pipeline("latin", r"""
        [tasks.c]
        command = ["sh", "-c", "printf 'first\\n'; printf 'caf\\351 failed\\n' >&2; exit 3"]
    """)
    out = workspace.invoke("run", "latin")
    assert out.returncode == 1
    assert "exited with code 3: caf\\xe9 failed" in out.stdout, out.stdout
    assert "  caf\\xe9 failed" in out.stdout.splitlines(), out.stdout
    assert "\ufffd" not in out.stdout


@pytest.mark.parametrize("through", ["no daemon", "daemon"])
def test_a_retry_after_the_pipeline_file_was_edited_says_it_reruns_the_runs_own_definition(workspace, daemon,
                                                                                            through):
    """The operator raised a timeout in the file and retried: the retry ran the old definition (a retry reruns the
    run's own), timed out again, and said nothing. It now says so, and where the edit takes effect."""
    import subprocess

    workspace.pipeline("nightly", """
        [tasks.train]
        command = ["sh", "-c", "exit 4"]
    """)
    if through == "daemon":
        daemon.start()

    cli = workspace.invoke

    assert cli("run", "nightly").returncode == 1
    same = cli("retry", "1")
    assert same.returncode == 1 and "note:" not in same.stderr, same.stderr  # the file is as the run has it
    workspace.pipeline("nightly", """
        [tasks.train]
        command = ["sh", "-c", "exit 0"]
    """)
    edited = cli("retry", "1")
    assert edited.returncode == 1, edited.stdout  # the run's own definition: exit 4 again
    assert "nightly.toml changed since the run was created; the retry reruns run 1's own definition" in edited.stderr
    assert "`edgeorch run nightly`" in edited.stderr
    assert "note:" not in cli("retry", "1", "-q").stderr
    if through == "daemon":
        daemon.call("reload")  # not left to the file watcher's timing
    assert cli("run", "nightly", "-q").returncode == 0


def test_a_run_whose_edgeorch_run_was_killed_is_said_unfollowed_and_cancel_stops_it_without_a_daemon(workspace):
    """`edgeorch run` killed (an ssh session dropped): `show` said RUNNING as if someone followed it, `retry` said
    "cancel it first" and `cancel` said "no daemon" (exit 69), in a circle. `show` now says nobody follows it, and
    `cancel` without a daemon adopts its attempt, stops it and waits."""
    import signal
    import subprocess

    workspace.pipeline("nightly", """
        [tasks.train]
        command = ["sh", "-c", "trap 'echo saving; exit 143' TERM; touch {pipeline_dir}/started; while [ ! -f {pipeline_dir}/quit ]; do sleep 0.05; done"]
    """)
    run = subprocess.Popen([*workspace.cli(), "run", "nightly"], env=workspace.cli_env(), stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
    workspace.wait_file(workspace.pipelines / "started")
    run.send_signal(signal.SIGKILL)
    run.wait(timeout=30)

    try:
        _cancel_without_a_daemon(workspace)
    finally:  # the task ignores SIGTERM's default and outlives every edgeorch process: told to end, whatever failed
        (workspace.pipelines / "quit").touch()


def test_cancel_without_a_daemon_starts_nothing_of_other_runs(workspace):
    """`edgeorch cancel` without a daemon adopted every unfinished run and, once the cancelled task freed its slot,
    started another run's queued task, then exited and left it running with no engine."""
    import signal
    import subprocess

    workspace.write_config(parallelism=1)
    workspace.pipeline("blocker", """
        [tasks.x]
        command = ["sh", "-c", "touch {pipeline_dir}/started; while [ ! -f {pipeline_dir}/quit ]; do sleep 0.05; done"]
    """)
    workspace.pipeline("other", """
        [tasks.y]
        command = ["sh", "-c", "touch {pipeline_dir}/ran-y"]
    """)
    try:
        first = subprocess.Popen([*workspace.cli(), "run", "blocker"], env=workspace.cli_env(),
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        workspace.wait_file(workspace.pipelines / "started")
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=30)
        # A second `edgeorch run` adopts x (it holds the only slot) and queues run 2's y behind it; killed too.
        second = subprocess.Popen([*workspace.cli(), "run", "other"], env=workspace.cli_env(),
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        import sqlite3
        import time

        deadline = time.monotonic() + 30
        while True:  # run 2 recorded (a condition on the state file, not a fixed sleep)
            with sqlite3.connect(f"file:{workspace.state / 'edgeorch.db'}?mode=ro", uri=True, timeout=10) as db:
                if db.execute("SELECT COUNT(*) FROM runs").fetchone()[0] == 2:
                    break
            assert time.monotonic() < deadline, "run 2 was not recorded"
            time.sleep(0.02)
        second.send_signal(signal.SIGKILL)
        second.wait(timeout=30)
        cancelled = workspace.invoke("cancel", "1")
        assert cancelled.returncode == 0, cancelled.stdout + cancelled.stderr
        assert not (workspace.pipelines / "ran-y").exists()
        assert "also goes on with" not in cancelled.stdout
        import json

        assert [t["attempts"] for t in json.loads(workspace.invoke("show", "2", "--json").stdout)["tasks"]] == [0]
    finally:
        (workspace.pipelines / "quit").touch()


def _cancel_without_a_daemon(workspace) -> None:
    cli = workspace.invoke
    shown = cli("show", "1")
    assert "RUNNING" in shown.stdout and "no daemon and no `edgeorch run` follows this run" in shown.stdout
    # `runs` too: its duration grew with the clock as if the run still ran (a tester's find).
    listed = cli("runs")
    assert "running" in listed.stdout and "no daemon and no `edgeorch run` follows the queued and running runs" \
        in listed.stderr, listed.stderr
    cancelled = cli("cancel", "1")
    assert cancelled.returncode == 0, cancelled.stdout + cancelled.stderr
    assert "run 1  nightly  CANCELLED" in cancelled.stdout
    assert "cancelled by" in cancelled.stdout and "saving" in cancelled.stdout  # its own SIGTERM handler ran
    import os
    import pwd

    me = pwd.getpwuid(os.getuid()).pw_name
    assert f"cancelled by {me}:" in cancelled.stdout and f"cancelled by {me} (uid" not in cancelled.stdout  # as a daemon says
    after = cli("show", "1")
    assert "CANCELLED" in after.stdout and "no daemon and no" not in after.stdout
    again = cli("cancel", "1")
    assert again.returncode == 5 and "has already finished (cancelled)" in again.stderr


def test_a_memory_limit_this_machine_does_not_enforce_is_said_where_the_run_is_watched(workspace):
    """`memory = "50M"` on a machine without cgroup v2 ran a 200 MB task to success; only `edgeorch resources` and an
    audit record said the limit was not enforced. `run` says it on the task's start line."""
    import subprocess

    from edgeorch.resources.memory import detect

    workspace.pipeline("capped", """
        [tasks.train]
        memory = "50M"
        command = ["true"]
    """)
    out = subprocess.run([*workspace.cli(), "run", "capped"], env=workspace.cli_env(), capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr
    [line] = [ln for ln in out.stdout.splitlines() if "started (attempt 1)" in ln]
    if detect().enforced:  # enforced, or the cgroup could not be made here: then that is what it says
        assert "warning" not in line or "not enforced (cgroup:" in line, line
    else:
        assert "; warning: memory 50M admission-checked, not enforced" in line, line


def test_an_edgeorch_run_that_goes_on_with_a_killed_ones_run_says_whose_lines_are_whose(workspace):
    """`edgeorch run nap` after a killed `edgeorch run long` finished long's tasks too, and its progress mixed
    their lines in unlabelled ("eval ok" in the middle of nap's), durations shared by task name."""
    import sys

    workspace.pipeline("long", """
        [tasks.train]
        command = ["sh", "-c", "touch {pipeline_dir}/train.started; while [ ! -f {pipeline_dir}/go ]; do sleep 0.02; done"]
        [tasks.nap]
        command = ["sh", "-c", "touch {pipeline_dir}/long-done"]
        needs = ["train"]
    """)
    # `nap` ends only once long's `nap` has succeeded in the state file (its line is then printed: it ends run 1,
    # a durable commit told at once); waiting for long's file alone raced: this run could end, and this process
    # close, before long's end was settled, and its line was never printed (CI, once).
    check = workspace.root / "long_nap_done.py"
    check.write_text("import sqlite3, sys\nc = sqlite3.connect(sys.argv[1], timeout=30)\n"
                     "row = c.execute(\"SELECT state FROM tasks WHERE run_id = 1 AND name = 'nap'\").fetchone()\n"
                     "sys.exit(0 if row == ('succeeded',) else 1)\n")
    workspace.pipeline("nap", f"""
        [tasks.nap]
        command = ["sh", "-c", "touch {{pipeline_dir}}/go; until {sys.executable} {check} {workspace.state / 'edgeorch.db'}; do sleep 0.02; done"]
    """)
    out = _run_after_a_killed_run(workspace, "long", "train.started", "run", "nap")
    assert out.returncode == 0, out.stdout + out.stderr
    lines = out.stdout.splitlines()
    assert any("also goes on with run(s) 1 (long)" in ln for ln in lines), lines
    assert not [ln for ln in lines if "run 1:" in ln], lines  # always said whose, during its start too
    theirs = [ln for ln in lines if "run 1 long:" in ln]
    assert any(" nap " in ln and "ok" in ln for ln in theirs), lines  # long's own `nap` task, labelled
    ours = [ln for ln in lines if " nap " in ln and "run 1 long:" not in ln and ":  " not in ln.split("nap")[0][10:]]
    assert any("started (attempt 1)" in ln for ln in ours) and any(" ok in " in ln for ln in ours), lines


def test_logs_follow_that_loses_its_daemon_says_how_to_go_on(workspace, daemon):
    """It exited 75 with only "closed the connection": nothing said the task goes on, or how to follow it again."""
    import subprocess

    proc = follow_a_started_run(workspace, daemon, "echo first-line; touch {pipeline_dir}/started; "
                                "while [ ! -f {pipeline_dir}/go ]; do sleep 0.02; done")
    logs = subprocess.Popen([*workspace.cli(), "logs", "1", "work", "-f"], env=workspace.cli_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert logs.stdout is not None and logs.stdout.readline() == "first-line\n"  # following now
    daemon.kill9()
    out, err = logs.communicate(timeout=60)
    assert logs.returncode == 75 and "closed the connection" in err, out + err
    assert "the task goes on while the daemon is away" in err and "`edgeorch logs 1 work -f`" in err, err
    (workspace.pipelines / "go").touch()
    proc.communicate(timeout=60)


def test_events_that_loses_its_daemon_says_how_to_go_on(workspace, daemon):
    """It exited 75 with only "closed the connection": a script watching the stream had nothing to go on."""
    import subprocess

    workspace.pipeline("p", '[tasks.a]\ncommand = ["true"]\n')
    daemon.start()
    events = subprocess.Popen([*workspace.cli(), "events"], env=workspace.cli_env(), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    assert events.stdout is not None and events.stdout.readline().endswith("subscribed\n")  # following now
    # One connection: the stream's (its first, for requests, sat idle until the daemon closed it, holding a slot).
    assert daemon.call("status")["clients"] == 2  # the stream and this call
    daemon.kill9()
    out, err = events.communicate(timeout=60)
    assert events.returncode == 75 and "closed the connection" in err, out + err
    assert "this stream ended; run `edgeorch events` again once it is back" in err, err


def test_events_of_an_unknown_run_is_refused_before_anything_is_streamed(workspace, daemon):
    """`events --run 99999 --json` printed a `subscribed` item on stdout, then failed (exit 3)."""
    import subprocess

    daemon.start()
    for run_id in ("99999", "0"):  # 0 streamed every run's events (it was taken for "no run given")
        out = subprocess.run([*workspace.cli(), "events", "--run", run_id, "--json"], env=workspace.cli_env(),
                             capture_output=True, text=True, timeout=60)
        assert out.returncode == 3 and out.stdout == "" and "no such run" in out.stderr, out.stdout + out.stderr


def test_events_of_one_run_end_when_the_run_is_over(workspace, daemon):
    """`events --run 3` of a finished run printed its final state and never exited (a script waited forever);
    of a running run it ends with the run."""
    import json
    import subprocess

    workspace.pipeline("gated", """
        [tasks.a]
        command = ["sh", "-c", "while [ ! -f {pipeline_dir}/go ]; do sleep 0.05; done"]
    """)
    daemon.start()
    rid = daemon.call("trigger", {"pipeline": "gated"})["run_id"]
    follow = subprocess.Popen([*workspace.cli(), "events", "--run", str(rid), "--json"], env=workspace.cli_env(),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert "subscribed" in follow.stdout.readline()  # following before the run ends
    (workspace.pipelines / "go").touch()
    out, err = follow.communicate(timeout=60)
    assert follow.returncode == 0, err
    last = json.loads(out.strip().splitlines()[-1])
    assert (last["kind"], last["run_id"], last["state"]) == ("run", rid, "succeeded")
    again = subprocess.run([*workspace.cli(), "events", "--run", str(rid)], env=workspace.cli_env(),
                           capture_output=True, text=True, timeout=60)  # over already: its state, then the end
    assert again.returncode == 0 and again.stdout.strip().splitlines()[-1].endswith("state=succeeded"), again.stdout
    # Said when it ended, not when asked; and where its history is (the stream has only what happens from now on).
    ended = daemon.call("runs.show", {"run_id": rid})["finished_at"]
    assert again.stdout.strip().splitlines()[-1].startswith(time.strftime("%H:%M:%S", time.localtime(ended)))
    assert f"run {rid} was over before this stream began: `edgeorch show {rid}`" in again.stderr, again.stderr
    assert "was over before" not in err  # the live follower saw it end


def test_a_retry_through_a_daemon_shows_every_rerun_task(workspace, daemon):
    """`retry` asked for the rerun, then subscribed to its events: tasks that ended meanwhile (at once) showed no
    progress line, and a rerun over before the subscription none at all. The stream is opened first now
    (`Client.rerun`), as `run` opens it before it queues."""
    import subprocess

    flag = workspace.root / "ok"
    workspace.pipeline("ff", f"""
        [tasks.a]
        command = ["sh", "-c", "test -f {flag}"]
        [tasks.b]
        command = ["true"]
        needs = ["a"]
    """)
    daemon.start()
    rid = daemon.call("trigger", {"pipeline": "ff"})["run_id"]
    assert daemon.wait_run(rid) == "failed"
    flag.touch()
    out = subprocess.run([*workspace.cli(), "retry", str(rid)], env=workspace.cli_env(), capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr
    lines = out.stdout.splitlines()
    assert lines[0] == f"resuming run {rid}: a, b"
    # (durations vary with the machine's load: "ok in 0.1s" on a busy one)
    assert [re.sub(r"ok in [\d.]+s", "ok in Ns", line.split(None, 1)[1]) for line in lines[1:5]] == [
        "a                        started (attempt 2)", "a                        ok in Ns",
        "b                        started (attempt 1)", "b                        ok in Ns"], out.stdout
    from edgeorch import Client

    with Client(config=workspace.config_path) as client:
        flag.unlink()
        assert client.wait(client.submit("ff")).state == "failed"
        seen: list[dict] = []
        flag.touch()
        again = client.rerun(rid + 1, on_event=seen.append, on_resumed=lambda tasks: seen.append({"tasks": tasks}))
    assert again.succeeded and seen[0] == {"tasks": ["a", "b"]}
    assert [(e["task"], e["state"]) for e in seen if e.get("kind") == "task" and e.get("run_id") == rid + 1][:1] == [
        ("a", "running")]


def test_show_says_a_running_task_of_a_cancelled_run_is_stopping_and_no_old_exit_for_a_task_without_attempt(capsys):
    """During the kill grace `show` said `running` with nothing else; a task that failed before an attempt of its
    own (after a retry) showed the exit 0 and duration of the earlier attempt that had succeeded."""
    from edgeorch.cli.commands.runs import _print_run

    attempt = {"id": 1, "state": "exited", "exit_code": 0, "signal": None, "reason": None, "started_at": 1.0,
               "finished_at": 3.0, "log_path": "/nonexistent/output.log"}
    run = {"id": 7, "pipeline": "p", "state": "running", "reason": None, "cancel_reason": "cancelled by alice",
           "created_at": 0.0, "started_at": 1.0, "finished_at": None, "resumed_at": None, "trigger": "cli",
           "actor": None, "params": {}, "run_dir": "/x", "results": [], "checkpoints": [],
           "tasks": [{"name": "train", "state": "running", "attempts": 1, "reason": None, "attempt_list": [attempt]},
                     {"name": "read", "state": "failed", "attempts": 1, "reason": "declared input ...: pruned",
                      "attempt_list": [attempt]}]}
    _print_run(run, summary=True)
    lines = capsys.readouterr().out.splitlines()
    train = next(ln for ln in lines if ln.startswith("train"))
    read = next(ln for ln in lines if ln.startswith("read"))
    assert train.endswith("stopping: cancelled by alice"), train
    assert read.split()[:5] == ["read", "failed", "1", "-", "-"], read


def test_show_says_what_the_daemon_does_with_a_tasks_files(capsys):
    """`show` said `running` (an ended attempt's outputs hashed) or `ready` (declared inputs hashed) with no reason
    for as long as gigabytes were read; the daemon's words (rundoc.with_hashing) are its reason column now."""
    from edgeorch.cli.commands.runs import _print_run
    from edgeorch.rundoc import with_hashing

    attempt = {"id": 1, "state": "running", "exit_code": None, "signal": None, "reason": None, "started_at": 1.0,
               "finished_at": None, "log_path": "/nonexistent/output.log"}
    run = {"id": 7, "pipeline": "p", "state": "running", "reason": None, "created_at": 0.0, "started_at": 1.0,
           "finished_at": None, "resumed_at": None, "trigger": "cli", "actor": None, "params": {}, "run_dir": "/x",
           "results": [], "checkpoints": [],
           "tasks": [{"name": "train", "state": "running", "attempts": 1, "reason": None, "attempt_list": [attempt]},
                     {"name": "score", "state": "ready", "attempts": 0, "reason": None, "attempt_list": []},
                     {"name": "other", "state": "pending", "attempts": 0, "reason": None, "attempt_list": []}]}
    with_hashing(run, {"train": "attempt 1 ended: hashing and recording its outputs and checkpoints",
                       "score": "hashing its declared inputs before it is queued"})
    _print_run(run, summary=True)
    lines = {ln.split()[0]: ln for ln in capsys.readouterr().out.splitlines() if ln}
    assert lines["train"].endswith("attempt 1 ended: hashing and recording its outputs and checkpoints")
    assert lines["score"].endswith("hashing its declared inputs before it is queued")
    assert lines["other"].split()[1:] == ["pending", "0", "-", "-"], lines["other"]


def test_sigterm_ends_a_following_events_or_logs_with_130_and_a_json_line(workspace, daemon):
    """`timeout 60 edgeorch events` ended with 143 and said nothing (docs: 130, interrupted); with --json the last
    stderr line was not the JSON object --json promises."""
    import signal
    import subprocess

    import json

    proc = follow_a_started_run(workspace, daemon, "touch {pipeline_dir}/started; echo hello; exec sleep 300")
    run_id = daemon.call("runs.list", {})["runs"][0]["id"]
    for argv, first in ((["events", "--run", str(run_id)], "run"), (["events", "--json", "--run", str(run_id)], '"run_id"'),
                        (["logs", str(run_id), "work", "-f"], "hello")):
        follower = subprocess.Popen([*workspace.cli(), *argv], env=workspace.cli_env(), stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, text=True)
        assert first in follower.stdout.readline()  # following: its stream has begun (the run's state, its log)
        follower.send_signal(signal.SIGTERM)
        out, err = follower.communicate(timeout=60)
        assert follower.returncode == 130, (argv, out, err)
        last = err.strip().splitlines()[-1]
        if "--json" in argv:
            assert json.loads(last)["error"]["code"] == "interrupted" and json.loads(last)["error"]["exit_code"] == 130
        else:
            assert last == "edgeorch: interrupted (SIGTERM)", err
    proc.send_signal(signal.SIGINT)
    proc.communicate(timeout=60)


def test_an_edgeorch_run_that_takes_over_a_killed_ones_run_starts_its_own_tasks_first(workspace):
    """Found by a tester: `edgeorch run nightly` without a daemon after a killed one (a daemon, with 400 drop-folder
    runs queued) took 2m28s for its 0.1 s: its task waited behind every task of the runs it took over. Its own
    run's tasks now go first; the others' follow (this process goes on with them until its own run ends)."""
    import sqlite3

    workspace.write_config(parallelism=1)
    workspace.pipeline("wide", "".join(
        f'[tasks.t{i}]\ncommand = ["sh", "-c", "touch {{pipeline_dir}}/wide.started; sleep 0.2"]\n' for i in range(8)))
    workspace.pipeline("quick", '[tasks.q]\ncommand = ["true"]\n')
    out = _run_after_a_killed_run(workspace, "wide", "wide.started", "run", "quick", "-q")
    assert out.returncode == 0, out.stdout + out.stderr
    conn = sqlite3.connect(workspace.state / "edgeorch.db")
    try:
        starts = conn.execute("SELECT r.pipeline, a.started_at FROM attempts a JOIN runs r ON r.id = a.run_id "
                              "ORDER BY a.started_at").fetchall()
    finally:
        conn.close()
    quick_at = next(at for pipeline, at in starts if pipeline == "quick")
    before = [at for pipeline, at in starts if pipeline == "wide" and at <= quick_at]
    assert len(before) <= 2, starts  # the one running when the first was killed (and one started meanwhile), not 8


def _run_after_a_killed_run(workspace, killed: str, started: str, *argv: str):
    """`edgeorch run KILLED` (no daemon) killed with SIGKILL once its task made ``started`` in the pipelines folder;
    then ``edgeorch ARGV`` in this process, again while the killed one's lock is still held (exit 4)."""
    import signal
    import subprocess
    import time

    first = subprocess.Popen([*workspace.cli(), "run", killed], env=workspace.cli_env(), stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
    workspace.wait_file(workspace.pipelines / started)
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=30)
    deadline = time.monotonic() + 30
    while True:  # its lock goes with it; then the next `edgeorch run` may take the state
        out = workspace.invoke(*argv)
        if out.returncode != 4:
            return out
        assert time.monotonic() < deadline, out.stderr
