"""The `edgeorch` command as a user runs it: exit codes, output, no tracebacks.

Most tests run the command in-process (``Workspace.invoke``: the same ``main`` with the same
environment, without an interpreter start per call); the ones about the process itself (a real
``edgeorch run`` and its read commands, Ctrl-C) start real subprocesses.
"""

from __future__ import annotations

import json
import signal
import subprocess
import time

import pytest

OK = """
[params]
word = "hi"
[tasks.a]
command = ["sh", "-c", "echo {word} from a"]
[tasks.b]
command = ["sh", "-c", "echo b ran"]
needs = ["a"]
"""

FAILING = """
[tasks.a]
command = ["sh", "-c", "echo about to fail; exit 4"]
"""


def run(ws, *args):
    """``edgeorch ARGS`` in-process; never a traceback."""
    proc = ws.invoke(*args)
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc


def run_process(ws, *args):
    """``edgeorch ARGS`` as a real subprocess; never a traceback."""
    proc = subprocess.run([*ws.cli(), *args], env=ws.cli_env(), capture_output=True, text=True, timeout=120)
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc


def test_help_for_every_command(workspace):
    top = run(workspace, "--help")
    assert top.returncode == 0
    for cmd in ("validate", "run", "runs", "show", "logs", "retry"):
        assert cmd in top.stdout
        sub = run(workspace, cmd, "--help")
        assert sub.returncode == 0 and "usage: edgeorch" in sub.stdout


def test_validate_exit_codes(workspace):
    workspace.pipeline("good", OK)
    assert run(workspace, "validate").returncode == 0
    workspace.pipeline("bad", '[tasks.x]\ncommand=["true"]\nneeds=["y"]\n')
    proc = run(workspace, "validate")
    assert proc.returncode == 1
    assert "tasks.x.needs: needs an unknown task (found 'y')" in proc.stdout
    js = json.loads(run(workspace, "validate", "--json").stdout)
    assert js["ok"] is False and js["errors"][0]["field"] == "tasks.x.needs" and js["errors"][0]["file"].endswith("bad.toml")


def test_validate_checks_the_configs_watch_tables_as_the_daemon_does(workspace):
    """A bad [[watch]] table passed `validate` (exit 0) while the daemon watched nothing and said so in its log."""
    workspace.pipeline("good", OK)
    drop = workspace.watch_folder("good", settle="soon")
    proc = run(workspace, "validate")
    assert proc.returncode == 1, proc.stdout
    assert "watch[0].settle: is not a valid duration (found 'soon')" in proc.stdout
    workspace.watch_folder("nope")
    js = json.loads(run(workspace, "validate", "--json").stdout)
    assert js["ok"] is False and [(e["field"], e["value"]) for e in js["errors"]] == [("watch.pipeline", "nope")]
    workspace.watch_folder("good", extra='param = "word"')  # a param that takes the claimed path: valid
    assert run(workspace, "validate").returncode == 0, run(workspace, "validate").stdout
    # Said as checked (validate listed the pipelines and rules, and nothing of the watch it had checked).
    assert f"ok     watch {drop} -> good ({workspace.config_path})" in run(workspace, "validate").stdout
    assert json.loads(run(workspace, "validate", "--json").stdout)["watches"] == [
        {"folder": str(drop), "pipeline": "good", "file": str(workspace.config_path)}]
    assert drop.is_dir()
    # A pipeline file given by path is checked alone (the config's watches are not about it).
    workspace.watch_folder("nope")
    assert run(workspace, "validate", str(workspace.pipelines / "good.toml")).returncode == 0


def test_validate_a_missing_path(workspace):
    """Not found, as every command says it (exit 3; 1 is for files that are there and invalid)."""
    proc = run(workspace, "validate", "/no/such/dir")
    assert proc.returncode == 3 and "/no/such/dir: no such file or folder" in proc.stderr


@pytest.mark.parametrize("runner", [run_process, run], ids=["subprocess", "in-process"])
def test_run_success_and_the_read_commands(workspace, runner):
    workspace.pipeline("ok", OK)
    proc = runner(workspace, "run", "ok", "-p", "word=hello")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "SUCCEEDED" in proc.stdout and "a" in proc.stdout
    runs = json.loads(runner(workspace, "runs", "--json").stdout)
    assert runs[0]["state"] == "succeeded" and runs[0]["params"] == {"word": "hello"}
    assert runs[0]["tasks"] == {"succeeded": 2}
    table = runner(workspace, "runs").stdout
    assert "RUN" in table and "ok" in table and "succeeded" in table
    show = json.loads(runner(workspace, "show", str(runs[0]["id"]), "--json").stdout)
    assert [t["name"] for t in show["tasks"]] == ["a", "b"]
    assert show["tasks"][0]["attempt_list"][0]["exit_code"] == 0
    assert runner(workspace, "logs", str(runs[0]["id"]), "a").stdout == "hello from a\n"


def test_run_failure_exits_1_and_shows_the_log_tail(workspace):
    workspace.pipeline("bad", FAILING)
    proc = run(workspace, "run", "bad")
    assert proc.returncode == 1
    assert "FAILED" in proc.stdout and "about to fail" in proc.stdout and "exited with code 4" in proc.stdout


@pytest.fixture(scope="module")
def one_run(module_workspace):
    """A workspace whose state file holds one succeeded run of ``ok`` (the error cases below only read it)."""
    ws = module_workspace
    ws.pipeline("ok", OK)
    assert run(ws, "run", "ok").returncode == 0
    return ws


@pytest.mark.parametrize("args,code,fragment", [
    (["run", "nope"], 3, "no pipeline named 'nope'"),
    (["run", "ok", "-p", "wrod=x"], 2, "did you mean 'word'"),
    (["run", "ok", "-p", "novalue"], 2, "must be key=value"),
    (["show", "999"], 3, "no such run"),
    (["logs", "999", "a"], 3, "no such run"),
    (["retry", "999"], 3, "no such run"),
])
def test_user_errors_are_one_clear_line(one_run, args, code, fragment):
    proc = run(one_run, *args)
    assert proc.returncode == code, proc.stderr
    assert fragment in proc.stderr and proc.stderr.startswith("edgeorch: error:")


def test_logs_of_an_attempt_that_does_not_exist(workspace):
    workspace.pipeline("ok", OK)
    run(workspace, "run", "ok")
    proc = run(workspace, "logs", "1", "a", "--attempt", "7")
    assert proc.returncode == 3 and "task a has no attempt 7; expected 1..1" in proc.stderr
    proc = run(workspace, "logs", "1", "zz")  # the same sentences as the daemon's (rundoc.log_attempt)
    assert proc.returncode == 3 and "no task 'zz' in run 1 (pipeline ok); expected one of a, b" in proc.stderr, \
        proc.stderr


NIGHTLY = """
[tasks.prepare]
command = ["sh", "-c", "echo prepared"]
[tasks.train]
command = ["sh", "-c", "echo training; exit 1"]
needs = ["prepare"]
[tasks.evaluate]
command = ["sh", "-c", "echo evaluated"]
needs = ["train"]
"""


def test_logs_of_a_task_that_did_not_run_says_why_and_a_typo_gets_a_did_you_mean(workspace):
    """Both said "run 1 has no attempts of task 'evaluate'; expected one of prepare, train": a task of the run
    that never ran read as a typo, and a typo got no suggestion."""
    workspace.pipeline("nightly", NIGHTLY)
    assert run(workspace, "run", "nightly").returncode == 1
    proc = run(workspace, "logs", "1", "evaluate")
    assert proc.returncode == 3, proc.stderr
    assert ("edgeorch: error: task evaluate of run 1 did not run: upstream_failed (upstream train failed)"
            in proc.stderr), proc.stderr
    proc = run(workspace, "logs", "1", "evalute")
    assert proc.returncode == 3, proc.stderr
    assert ("no task 'evalute' in run 1 (pipeline nightly); expected one of prepare, train, evaluate\n"
            "  hint: did you mean 'evaluate'?" in proc.stderr), proc.stderr
    proc = run(workspace, "logs", "1", "Train")
    assert proc.returncode == 3 and "did you mean 'train'?" in proc.stderr, proc.stderr
    assert run(workspace, "logs", "1", "train").stdout == "training\n"


def test_retry_resumes_a_failed_run(workspace):
    workspace.pipeline("fix", """
        [tasks.a]
        command = ["sh", "-c", "test -f {pipeline_dir}/fixed"]
        [tasks.b]
        command = ["true"]
        needs = ["a"]
    """)
    assert run(workspace, "run", "fix").returncode == 1
    (workspace.pipelines / "fixed").touch()
    proc = run(workspace, "retry", "1")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "resuming run 1: a, b" in proc.stdout
    again = run(workspace, "retry", "1")
    assert again.returncode == 5 and "nothing to retry" in again.stderr


def test_an_attempt_folder_the_state_file_never_knew_is_moved_aside_not_taken_for_the_attempt(workspace):
    """A backup restored in place: the lost timeline's `attempts/a.2/` (its exit.json said 0) was found by the new
    attempt 2, recorded "abandoned" at once, and `show` listed the old run's log as attempt 2's."""
    import sqlite3

    workspace.pipeline("fix", """
        [tasks.a]
        command = ["sh", "-c", "test -f {pipeline_dir}/fixed && echo new-timeline"]
    """)
    assert run(workspace, "run", "fix").returncode == 1
    foreign = workspace.state / "runs" / "1" / "attempts" / "a.2"
    foreign.mkdir(parents=True)
    (foreign / "exit.json").write_text('{"exit_code": 0, "signal": null, "finished_at": 1.0}')
    (foreign / "output.log").write_text("old timeline\n")
    (workspace.pipelines / "fixed").touch()
    proc = run(workspace, "retry", "1")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    db = sqlite3.connect(workspace.state / "edgeorch.db")
    try:
        states = [r[0] for r in db.execute("SELECT state FROM attempts ORDER BY number")]
        moved = db.execute("SELECT message FROM events WHERE kind = 'attempt_folder_moved'").fetchall()
    finally:
        db.close()
    assert states == ["exited", "exited"]  # attempt 2 ran: not "abandoned" by the old folder's records
    assert (workspace.state / "runs" / "1" / "attempts" / "a.2" / "output.log").read_text() == "new-timeline\n"
    aside = workspace.state / "runs" / "1" / "attempts" / "a.2.unrecorded"
    assert (aside / "output.log").read_text() == "old timeline\n" and len(moved) == 1


def test_a_retried_runs_duration_counts_from_its_resume(workspace):
    """A run that failed in the night and was retried in the morning did not take all night: `runs` and
    `show` count its DURATION from the resume and say it was resumed; `--json` has ``resumed_at``."""
    import json as _json
    import sqlite3

    workspace.pipeline("fix", """
        [tasks.a]
        command = ["sh", "-c", "test -f {pipeline_dir}/fixed"]
    """)
    assert run(workspace, "run", "fix").returncode == 1
    db = sqlite3.connect(workspace.state / "edgeorch.db")
    try:  # as if it had failed an hour ago
        with db:
            db.execute("UPDATE runs SET created_at = created_at - 3600, started_at = started_at - 3600,"
                       " finished_at = finished_at - 3600")
            db.execute("UPDATE events SET ts = ts - 3600 WHERE run_id = 1")
    finally:
        db.close()
    (workspace.pipelines / "fixed").touch()
    assert run(workspace, "retry", "1").returncode == 0
    (doc,) = _json.loads(run(workspace, "runs", "--json").stdout)
    assert doc["resumed_at"] - doc["started_at"] > 3000 and doc["finished_at"] - doc["resumed_at"] < 60
    line = run(workspace, "runs").stdout.splitlines()[1]
    assert " (resumed) " in line and "h" not in line.split("succeeded")[1].split("(resumed)")[0], line
    shown = run(workspace, "show", "1").stdout
    assert "(resumed)" in shown.splitlines()[0] and "resumed at " in shown and "(first started " in shown, shown
    from edgeorch.client.records import RunSummary
    assert RunSummary.from_dict(doc).duration < 60


def test_a_retried_run_gives_each_task_its_retries_again_and_attempt_numbers_go_on(workspace):
    """A flaky task that used up its retries overnight gets all of them again at `edgeorch retry`."""
    import sqlite3

    workspace.pipeline("flaky", """
        [tasks.a]
        command = ["sh", "-c", "exit 7"]
        retries = 1
        retry_delay = "0.05s"
    """)
    assert run(workspace, "run", "flaky").returncode == 1  # attempts 1, 2
    proc = run(workspace, "retry", "1")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "attempt 3 failed in" in proc.stdout and "retry 1 of 1 in" in proc.stdout, proc.stdout  # not FAILED at once
    db = sqlite3.connect(workspace.state / "edgeorch.db")
    try:
        assert [r[0] for r in db.execute("SELECT number FROM attempts ORDER BY id")] == [1, 2, 3, 4]
        assert db.execute("SELECT attempts, retries_from, state FROM tasks").fetchone() == (4, 2, "failed")
    finally:
        db.close()


def test_a_corrupt_state_file_is_a_clear_error(workspace):
    workspace.pipeline("ok", OK)
    workspace.state.mkdir()
    (workspace.state / "edgeorch.db").write_bytes(b"garbage" * 1000)
    for args in (["runs"], ["run", "ok"]):
        proc = run(workspace, *args)
        assert proc.returncode == 4
        assert "cannot open the state file" in proc.stderr and "edgeorch.db" in proc.stderr


def test_a_bad_config_file_is_a_clear_error(workspace):
    workspace.config_path.write_text('[engine]\nparallelism = "many"\n')
    proc = run(workspace, "runs")
    assert proc.returncode == 2
    assert "engine.parallelism: has the wrong type (string)" in proc.stderr
    # Every command reads it: what that means while a daemon runs, and how to reach it meanwhile.
    assert "a running daemon goes on with the config it loaded" in proc.stderr
    assert "edgeorch --config GOOD.toml status" in proc.stderr


def test_ctrl_c_cancels_the_run_and_records_it(workspace, tmp_path):
    marker = tmp_path / "started"
    workspace.pipeline("long", f"""
        [tasks.work]
        command = ["sh", "-c", "touch {marker}; exec sleep 300"]
    """)
    proc = subprocess.Popen([*workspace.cli(), "run", "long"], env=workspace.cli_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 30
    while not marker.exists():  # a condition: the task has started
        assert time.monotonic() < deadline and proc.poll() is None
        time.sleep(0.01)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, out + err
    assert "cancelling the run" in err and "CANCELLED" in out
    runs = json.loads(run(workspace, "runs", "--json").stdout)
    assert runs[0]["state"] == "cancelled"


def test_runs_of_a_pipeline_name_nothing_knows_is_not_found_with_a_did_you_mean(workspace):
    """`runs --pipeline nightyl` said "no runs match" (exit 0): a typo read as an empty history."""
    workspace.pipeline("nightly", OK)
    proc = run(workspace, "runs", "--pipeline", "nightly")  # loaded, no run yet: an empty answer
    assert proc.returncode == 0 and "no runs match" in proc.stdout, proc.stdout + proc.stderr
    proc = run(workspace, "runs", "--pipeline", "nightyl")
    assert proc.returncode == 3, proc.stdout + proc.stderr
    assert ("edgeorch: error: no pipeline named 'nightyl': none is loaded and no run has that name; expected one "
            "of nightly\n  hint: did you mean 'nightly'?" in proc.stderr), proc.stderr
    assert json.loads(run(workspace, "runs", "--pipeline", "nightly", "--json").stdout) == []
    assert run(workspace, "run", "nightly").returncode == 0
    (workspace.pipelines / "nightly.toml").unlink()  # no longer loaded; its runs are still in the state file
    proc = run(workspace, "runs", "--pipeline", "nightly", "--state", "failed")
    assert proc.returncode == 0 and "no runs match" in proc.stdout, proc.stdout + proc.stderr
    proc = run(workspace, "runs", "--pipeline", "Nightly")
    assert proc.returncode == 3 and "did you mean 'nightly'?" in proc.stderr, proc.stderr
    assert run(workspace, "runs", "--pipeline", "nightly").stdout.count("nightly") == 1


def test_runs_of_an_unknown_pipeline_through_the_daemon(workspace, daemon):
    workspace.pipeline("nightly", OK)
    daemon.start()
    proc = run(workspace, "runs", "--pipeline", "nightly", "--state", "failed")
    assert proc.returncode == 0 and "no runs match" in proc.stdout, proc.stdout + proc.stderr
    proc = run(workspace, "runs", "--pipeline", "nightyl", "--json")
    assert proc.returncode == 3 and "did you mean 'nightly'?" in proc.stderr, proc.stdout + proc.stderr


def test_why_says_each_earlier_attempt_state_once(workspace):
    """`edgeorch why 1` printed "#1 exited exited with code 1": the state, then a reason that says it again."""
    workspace.pipeline("flaky", """
        [tasks.a]
        command = ["sh", "-c", "echo nope; exit 1"]
        retries = 1
        retry_delay = "0s"
        [tasks.b]
        command = ["sh", "-c", "sleep 30"]
        timeout = "0.3s"
        retries = 1
        retry_delay = "0s"
    """)
    assert run(workspace, "run", "flaky").returncode == 1
    proc = run(workspace, "why", "1")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "1 earlier attempt(s): #1 exited with code 1: nope\n" in proc.stdout, proc.stdout
    assert "1 earlier attempt(s): #1 timed out after 0.3s\n" in proc.stdout, proc.stdout
    assert "exited exited" not in proc.stdout and "timed_out" not in proc.stdout


def test_attempt_outcome_names_the_state_once():
    from edgeorch.rundoc import attempt_outcome

    assert attempt_outcome("exited", "exited with code 1") == "exited with code 1"
    assert attempt_outcome("timed_out", "timed out after 5s") == "timed out after 5s"
    assert attempt_outcome("signalled", "killed by signal 9 (SIGKILL)") == "signalled: killed by signal 9 (SIGKILL)"
    assert attempt_outcome("abandoned", "the process was lost") == "abandoned: the process was lost"
    assert attempt_outcome("exited", None) == "exited"


def test_pipelines_without_a_daemon_says_when_the_state_file_cannot_tell_what_is_paused(workspace):
    """On a state file of an older schema (the package upgraded, the daemon not started yet), PAUSED showed '-'
    for a paused pipeline, exit 0, without a word."""
    import sqlite3

    from edgeorch.store import Store

    workspace.pipeline("p", '[tasks.a]\ncommand = ["true"]\n')
    Store(workspace.state / "edgeorch.db").close()
    conn = sqlite3.connect(workspace.state / "edgeorch.db")
    conn.execute("PRAGMA user_version = 18")
    conn.close()
    out = workspace.invoke("pipelines")
    assert out.returncode == 0
    assert "note: paused states and schedule watermarks unknown" in out.stderr and "schema" in out.stderr, out.stderr


def test_pipelines_without_a_daemon_says_its_next_fires_start_nothing(workspace):
    """NEXT FIRE times were shown as if something would fire them, with no daemon running."""
    workspace.pipeline("nightly", 'schedule = "0 3 * * *"\n[tasks.a]\ncommand = ["true"]\n')
    workspace.pipeline("plain", '[tasks.a]\ncommand = ["true"]\n')
    out = workspace.invoke("pipelines")
    assert out.returncode == 0
    assert "note   no daemon runs: no schedule fires until one does" in out.stdout, out.stdout
    workspace.pipelines.joinpath("nightly.toml").unlink()
    assert "no daemon runs" not in workspace.invoke("pipelines").stdout  # nothing scheduled: nothing to say


def test_validate_json_lists_every_problem_with_every_key(workspace):
    """`validate --json` items had a key set of their own per kind of problem (no `value` for a typo, no `hint`,
    `line` or `column` for a wrong type); the CLI's error objects have every key, null where it does not apply."""
    from edgeorch.errors import ERROR_KEYS

    workspace.pipeline("typo", '[tasks.a]\ncomand = ["true"]\n')
    workspace.pipeline("wrongtype", '[tasks.a]\ncommand = ["true"]\nretries = "x"\n')
    (workspace.pipelines / "broken.toml").write_text("[tasks.a\n")
    errors = json.loads(run(workspace, "validate", "--json").stdout)["errors"]
    assert len(errors) >= 3  # (the typo also leaves the task without a command)
    for e in errors:
        assert list(e) == [k for k in ERROR_KEYS if k != "exit_code"], e
