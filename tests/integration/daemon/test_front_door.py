"""One front door for runs (edgeorch/engine/requests.py): every way a run starts obeys the same rules.

Real daemon, real CLI subprocesses, real state file; synchronisation by the
events stream and by polling the state file with a deadline.
"""

from __future__ import annotations

import sqlite3
import time

import pytest

from edgeorch.errors import ConflictError

TICK = """
every = "1s"
[params]
input = { type = "path", default = "" }
[tasks.a]
command = ["true"]
"""


def cli(ws, *args):
    proc = ws.invoke(*args)  # in this process: output and exit codes are tested
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc


def rows(ws, sql: str, args=()) -> list[sqlite3.Row]:
    conn = sqlite3.connect(ws.state / "edgeorch.db", timeout=30)
    conn.row_factory = sqlite3.Row
    try:
        return conn.execute(sql, args).fetchall()
    finally:
        conn.close()


def poll(cond, timeout: float = 30, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or cond}")
        time.sleep(0.05)


def test_a_paused_pipeline_is_refused_on_every_path(workspace, daemon):
    drop = workspace.watch_folder("tick", settle="0.1s")
    workspace.pipeline("tick", TICK)
    daemon.start()
    daemon.call("pipelines.pause", {"name": "tick", "reason": "maintenance"})
    n_runs = rows(workspace, "SELECT COUNT(*) FROM runs")[0][0]

    # the trigger op
    with pytest.raises(ConflictError, match="pipeline tick is paused"):
        daemon.call("trigger", {"pipeline": "tick"})
    # the CLI through the daemon, by name and as an ad-hoc file
    for ref in ("tick", str(workspace.pipelines / "tick.toml")):
        proc = cli(workspace, "run", ref)
        assert proc.returncode == 5 and "pipeline tick is paused (maintenance)" in proc.stderr, proc.stderr
    # a drop-folder input: not started, with the front door's reason
    (drop / "f.csv").write_text("x\n")
    poll(lambda: rows(workspace, "SELECT * FROM inputs WHERE reason LIKE '%paused%'"), what="the input refused")
    # a schedule fire: skipped with the same reason
    poll(lambda: rows(workspace, "SELECT * FROM events WHERE kind = 'schedule_skip' AND message LIKE '%paused%'"),
         what="a fire skipped")
    assert rows(workspace, "SELECT COUNT(*) FROM runs")[0][0] == n_runs
    assert daemon.stop() == 0

    # the CLI without a daemon reads the pause from the state file
    proc = cli(workspace, "run", "tick")
    assert proc.returncode == 5, proc.stdout + proc.stderr
    assert "pipeline tick is paused (maintenance)" in proc.stderr
    assert "edgeorch pipelines resume tick" in proc.stderr
    assert rows(workspace, "SELECT COUNT(*) FROM runs")[0][0] == n_runs


def test_retry_of_a_paused_pipelines_run_is_refused_without_a_daemon(workspace, daemon):
    workspace.pipeline("once", "[tasks.a]\ncommand = [\"false\"]\n")
    proc = cli(workspace, "run", "once")
    assert proc.returncode == 1
    daemon.start()
    daemon.call("pipelines.pause", {"name": "once"})
    with pytest.raises(ConflictError, match="paused"):
        daemon.call("retry", {"run_id": 1})
    assert daemon.stop() == 0
    proc = cli(workspace, "retry", "1")
    assert proc.returncode == 5 and "pipeline once is paused" in proc.stderr, proc.stderr


ADHOC = """
name = "adhoc"
[params]
word = "hi"
[tasks.a]
command = ["sh", "-c", "echo {word} from adhoc"]
"""


def test_an_adhoc_pipeline_file_is_run_by_the_daemon_with_its_content_hash(workspace, daemon, tmp_path):
    import hashlib

    daemon.start()
    path = tmp_path / "elsewhere" / "adhoc.toml"
    path.parent.mkdir()
    path.write_text(ADHOC)
    proc = cli(workspace, "run", str(path), "-p", "word=yo")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "queued on the daemon" in proc.stdout
    doc = daemon.call("runs.show", {"run_id": 1})
    assert doc["state"] == "succeeded" and doc["params"] == {"word": "yo"}
    assert doc["content_hash"] == hashlib.sha256(ADHOC.encode()).hexdigest()
    assert doc["pipeline_file"] == str(path)
    # the file is not loaded into the daemon's pipelines: it was run once, by content
    assert [p["name"] for p in daemon.call("pipelines.list")["pipelines"]] == []


def test_an_adhoc_file_with_errors_is_refused_naming_the_file(workspace, daemon, tmp_path):
    daemon.start()
    path = tmp_path / "bad.toml"
    path.write_text("[tasks.a]\ncommand = 5\n")
    proc = cli(workspace, "run", str(path))
    assert proc.returncode == 1 and f"{path}: pipeline bad: tasks.a.command" in proc.stderr, proc.stderr


def test_a_gpu_request_on_a_gpu_less_daemon_exits_2_and_pipelines_warns(workspace, daemon):
    workspace.write_config('[resources]\ngpu_backend = "none"\n')  # GPU-less, also on a machine with GPUs
    workspace.pipeline("gpu", "[tasks.a]\ncommand = [\"true\"]\ngpus = 1\n")
    daemon.start()
    proc = cli(workspace, "run", "gpu")
    assert proc.returncode == 2 and "task a" in proc.stderr, proc.stderr
    listed = cli(workspace, "pipelines")
    assert listed.returncode == 0 and "warning  pipeline gpu: task a" in listed.stdout, listed.stdout
    assert daemon.call("pipelines.list")["pipelines"][0]["warnings"]


def test_run_name_of_a_broken_file_points_at_the_file_with_and_without_a_daemon(workspace, daemon):
    path = workspace.pipeline("broken", "[tasks.a\ncommand = [\"true\"]\n")
    for with_daemon in (False, True):
        if with_daemon:
            daemon.start()
        proc = cli(workspace, "run", "broken")
        assert proc.returncode == 1, proc.stderr
        assert "no pipeline named" not in proc.stderr
        assert f"{path}:1" in proc.stderr and "malformed TOML" in proc.stderr, proc.stderr


def test_run_of_a_folder_says_it_is_a_folder_with_and_without_a_daemon(workspace, daemon):
    """`edgeorch run /srv/bad` (a folder) said "no pipeline named '/srv/bad'": a path, read as a name."""
    workspace.pipeline("one", '[tasks.a]\ncommand = ["true"]\n')
    for with_daemon in (False, True):
        if with_daemon:
            daemon.start()
        for ref in (str(workspace.pipelines), "no/such/thing"):
            proc = cli(workspace, "run", ref)
            missing = ref == "no/such/thing"  # a path to nothing is not found (exit 3), as `validate` says it
            assert proc.returncode == (3 if missing else 2) or (not missing and proc.returncode == 1), proc
            assert "no pipeline named" not in proc.stderr, (with_daemon, proc.stderr)
            said = "folder" if ref == str(workspace.pipelines) else "no such file"
            assert f"{ref}: " in proc.stderr and said in proc.stderr.lower(), (with_daemon, proc.stderr)


@pytest.mark.parametrize("label", ["input:1", "schedule", "rule", "x" * 101, "\x1b[2Jforged", "",
                                   "Schedule", "schedule ", "INPUT :1", "ｓｃｈｅｄｕｌｅ"])
def test_a_client_cannot_give_a_run_a_trigger_only_edgeorch_gives(workspace, daemon, label):
    """An operator's run labelled `input:N` was taken by the drop folder's recovery for input N's run: after a
    restart, input N (waiting while its pipeline was paused) was marked done and never ran. `schedule` and
    `rule` would pass for a schedule's or a rule's run in `why` and `runs`. Refused, nothing recorded."""
    from edgeorch.errors import UsageError

    workspace.pipeline("p", '[tasks.a]\ncommand = ["true"]\n')
    daemon.start()
    with daemon.client() as c:
        if label:
            with pytest.raises(UsageError) as err:
                c.call("trigger", {"pipeline": "p", "trigger": label})
            assert err.value.field == "args.trigger"
        else:  # no label: the default one
            assert c.call("trigger", {"pipeline": "p", "trigger": label})["run_id"] == 1
    assert [r["trigger"] for r in rows(workspace, "SELECT trigger FROM runs")] == ([] if label else ["socket"])


def test_the_python_client_refuses_a_reserved_label_before_sending_it(workspace, daemon):
    from edgeorch.client import Client as PyClient
    from edgeorch.errors import UsageError

    workspace.pipeline("p", '[tasks.a]\ncommand = ["true"]\n')
    daemon.start()
    with PyClient(socket=daemon.socket_path) as client, pytest.raises(UsageError, match="only edgeorch gives"):
        client.submit("p", label="input:7")


def test_a_pipeline_saved_a_moment_ago_runs_at_once(workspace, daemon):
    """`edgeorch validate new.toml && edgeorch run new` said "no pipeline named 'new'" for about two seconds: the
    reload its file change asked for had not run yet. The run asks for it first."""
    workspace.pipeline("old", '[tasks.a]\ncommand = ["true"]\n')
    daemon.start()
    for i in range(5):  # each one written and run at once, whatever the file events' timing
        workspace.pipeline(f"new{i}", '[tasks.a]\ncommand = ["true"]\n')
        assert daemon.call("trigger", {"pipeline": f"new{i}"})["pipeline"] == f"new{i}"
    from edgeorch.errors import NotFoundError

    with pytest.raises(NotFoundError):  # a name no file declares is refused as before
        daemon.call("trigger", {"pipeline": "nope"})
