"""Live restore: running tasks survive the daemon's stop, restart and kill -9."""

from __future__ import annotations

import random
import sqlite3
import time
from pathlib import Path

from edgeorch.engine.procinfo import is_same_process


def _db(ws) -> sqlite3.Connection:
    conn = sqlite3.connect(ws.state / "edgeorch.db")
    conn.row_factory = sqlite3.Row
    return conn


def _end_while_away(ws, daemon, task: str) -> None:
    """Once ``task``'s pid is recorded: stop the daemon, let the task end (its ``go`` file), wait until it has."""
    deadline = time.monotonic() + 30
    while ws.attempt_with_pid(task) is None:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    assert daemon.stop() == 0
    (ws.pipelines / "go").touch()
    a = ws.attempt_with_pid(task)
    while is_same_process(a["pid"], a["pid_start_time"]):
        assert time.monotonic() < deadline
        time.sleep(0.01)


def test_sigterm_leaves_running_tasks_alive_and_a_restart_adopts_them(workspace, daemon):
    workspace.pipeline("gated", """
        [tasks.wait]
        command = ["sh", "-c", "touch {pipeline_dir}/started; while [ ! -f {pipeline_dir}/go ]; do sleep 0.05; done; echo finished"]
        [tasks.after]
        command = ["echo", "after"]
        needs = ["wait"]
    """)
    daemon.start()
    run_id = daemon.call("trigger", {"pipeline": "gated"})["run_id"]
    # A condition: the task runs and the daemon has recorded its process. The task can touch its file
    # before the daemon writes the pid the supervisor reported (on a busy machine it did).
    a = workspace.wait_running("wait")
    assert daemon.stop() == 0
    assert is_same_process(a["pid"], a["pid_start_time"]), "the task must survive the daemon's stop"
    (workspace.pipelines / "go").touch()  # the task finishes while no daemon runs
    daemon.start()
    assert daemon.wait_run(run_id) == "succeeded"
    doc = daemon.call("runs.show", {"run_id": run_id})
    wait = doc["tasks"][0]
    assert wait["attempts"] == 1 and wait["attempt_list"][0]["exit_code"] == 0  # collected, not rerun
    assert "finished" in Path(wait["attempt_list"][0]["log_path"]).read_text()


def test_kill_9_twenty_times_during_a_50_task_pipeline(workspace, daemon, tmp_path):
    """Every task succeeds exactly once, attempts of a task never overlap, the state file stays sound."""
    ledger = tmp_path / "ledger"
    ledger.mkdir()
    workspace.write_config(parallelism=4)
    tasks = []
    for i in range(50):
        needs = f'needs = ["t{i - 5}"]' if i >= 5 else ""
        # Each attempt notes its start and end; the end note is written only by an attempt that succeeds.
        tasks.append(f"""
[tasks.t{i}]
command = ["sh", "-c", "echo $$ $EDGEORCH_ATTEMPT start >> {ledger}/t{i}; sleep 0.{random.Random(i).randint(1, 3)}; echo $$ end >> {ledger}/t{i}"]
retries = 5
retry_delay = "0.05s"
{needs}
""")
    workspace.pipeline("fifty", "\n".join(tasks))
    daemon.start()
    run_id = daemon.call("trigger", {"pipeline": "fifty"})["run_id"]
    rng = random.Random(1234)
    for _ in range(20):
        time.sleep(rng.uniform(0.05, 0.4))  # random moments are the point of this test, not synchronisation
        daemon.kill9()
        daemon.start()
    assert daemon.wait_run(run_id, timeout=120) == "succeeded"
    daemon.stop()
    with _db(workspace) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        tasks_rows = conn.execute("SELECT name, state FROM tasks WHERE run_id = ?", (run_id,)).fetchall()
        attempts = conn.execute("SELECT * FROM attempts WHERE run_id = ? ORDER BY task, number", (run_id,)).fetchall()
    assert {r["state"] for r in tasks_rows} == {"succeeded"} and len(tasks_rows) == 50
    by_task: dict[str, list] = {}
    for a in attempts:
        by_task.setdefault(a["task"], []).append(a)
    for name, rows in by_task.items():
        ok = [a for a in rows if a["state"] == "exited" and a["exit_code"] == 0]
        assert len(ok) == 1, f"{name}: {len(ok)} successful attempts"
        # Attempts of one task never overlap: each starts after the previous one ended.
        for prev, nxt in zip(rows, rows[1:]):
            assert prev["finished_at"] is not None and prev["finished_at"] <= nxt["started_at"], name
        # The task's own ledger: exactly one completed execution.
        lines = (ledger / name).read_text().split("\n")
        assert sum(1 for line in lines if line.endswith(" end")) == 1, f"{name} ran to completion more than once"


SLOW_TO_STOP = """
    [tasks.train]
    retries = 2
    retry_delay = "0.1s"
    shell = true
    command = '''
    trap 'echo saving a checkpoint; touch {pipeline_dir}/stopping; while [ ! -f {pipeline_dir}/saved ]; do sleep 0.02; done; exit 143' TERM
    touch {pipeline_dir}/started
    while [ ! -f {pipeline_dir}/quit ]; do sleep 0.05; done
    '''
    [tasks.evaluate]
    command = ["true"]
    needs = ["train"]
"""


import pytest  # noqa: E402


@pytest.mark.parametrize("how", ["kill -9", "SIGTERM"])
def test_a_cancel_holds_across_a_restart_while_the_cancelled_task_is_still_stopping(workspace, daemon, how):
    """A training task that saves a checkpoint on SIGTERM was still stopping when the daemon restarted (a crash, a
    `systemctl restart`): the new daemon forgot the cancel, so the task's exit 143 was a failure to retry (attempt 2
    started) or, with no retries left, the run's end as failed. The cancel is kept with the run: the adopted attempt
    is stopped again, nothing more starts, the run ends cancelled."""
    workspace.write_config(kill_grace="60s")  # the task's own save decides when it ends, not the grace period
    workspace.pipeline("nightly", SLOW_TO_STOP)
    try:
        _cancel_across_a_restart(workspace, daemon, how)
    finally:  # whatever failed, no attempt outlives the test (they ignore SIGTERM until told, and survive the daemon)
        for name in ("saved", "quit"):
            (workspace.pipelines / name).touch()


def _cancel_across_a_restart(workspace, daemon, how: str) -> None:
    daemon.start()
    run_id = daemon.call("trigger", {"pipeline": "nightly"})["run_id"]
    workspace.wait_file(workspace.pipelines / "started")
    deadline = time.monotonic() + 30
    while workspace.attempt_with_pid("train") is None:  # recorded, so the next daemon adopts it
        assert time.monotonic() < deadline
        time.sleep(0.01)
    daemon.call("cancel", {"run_id": run_id, "reason": "operator says stop"})
    workspace.wait_file(workspace.pipelines / "stopping")
    if how == "kill -9":
        daemon.kill9()
    else:
        assert daemon.stop() == 0
    daemon.start()
    (workspace.pipelines / "saved").touch()
    assert daemon.wait_run(run_id) == "cancelled"
    doc = daemon.call("runs.show", {"run_id": run_id})
    train, evaluate = doc["tasks"]
    assert train["state"] == "cancelled" and train["attempts"] == 1, train
    assert evaluate["state"] == "cancelled" and evaluate["attempts"] == 0
    assert "saving a checkpoint" in Path(train["attempt_list"][0]["log_path"]).read_text()
    retried = daemon.call("retry", {"run_id": run_id})  # a retry starts it anew: the cancel is over
    assert retried["tasks"] == ["train", "evaluate"], retried
    deadline = time.monotonic() + 30
    while len(daemon.call("runs.show", {"run_id": run_id})["tasks"][0]["attempt_list"]) < 2:
        assert time.monotonic() < deadline, "the retried run started nothing"
        time.sleep(0.01)
    daemon.call("cancel", {"run_id": run_id})
    assert daemon.wait_run(run_id) == "cancelled"


def test_the_ready_line_counts_adopted_collected_and_abandoned_attempts_apart(workspace, daemon):
    """It said "1 attempt(s) adopted" for an attempt that had ended while the daemon was away (collected)."""
    workspace.pipeline("gated", """
        [tasks.wait]
        command = ["sh", "-c", "touch {pipeline_dir}/started; while [ ! -f {pipeline_dir}/go ]; do sleep 0.02; done"]
    """)
    daemon.start()
    run_id = daemon.call("trigger", {"pipeline": "gated"})["run_id"]
    workspace.wait_file(workspace.pipelines / "started")
    _end_while_away(workspace, daemon, "wait")
    daemon.start()
    assert daemon.wait_run(run_id) == "succeeded"
    assert "0 attempt(s) adopted (still running), 1 collected (ended while it was away), 0 abandoned" \
        in daemon.output(), daemon.output()


def test_an_adopted_attempt_keeps_the_timeout_it_had_a_restart_gives_no_fresh_one(workspace, daemon):
    """A hung task with `timeout = "3s"`: each restart armed a new 3 s from the adoption, so a daemon restarting
    every 2 s (a crash loop) never stopped it. Its timeout counts from its recorded start."""
    workspace.pipeline("hung", """
        [tasks.wait]
        timeout = "3s"
        command = ["sh", "-c", "touch {pipeline_dir}/started; exec sleep 600"]
    """)
    daemon.start()
    run_id = daemon.call("trigger", {"pipeline": "hung"})["run_id"]
    workspace.wait_file(workspace.pipelines / "started")
    deadline = time.monotonic() + 30
    while (a := workspace.attempt_with_pid("wait")) is None:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    daemon.kill9()
    while time.time() < a["started_at"] + 3.5:  # its time runs out while no daemon is there
        time.sleep(0.05)
    daemon.start()
    assert daemon.wait_run(run_id, timeout=30) == "failed"
    conn = _db(workspace)
    try:
        adopted = conn.execute("SELECT ts FROM events WHERE kind = 'attempt_adopted'").fetchone()[0]
        ended = conn.execute("SELECT finished_at FROM attempts WHERE id = ?", (a["id"],)).fetchone()[0]
    finally:
        conn.close()
    # A fresh timeout would end it 3 s after the adoption at the earliest; its own ends it at once.
    assert ended - adopted < 3.0, f"stopped {ended - adopted:.2f}s after the adoption: a fresh timeout was armed"
    doc = daemon.call("runs.show", {"run_id": run_id})
    assert "timed out after 3s" in doc["tasks"][0]["reason"], doc["tasks"][0]


def test_a_run_that_ended_while_the_daemon_was_away_never_holds_back_a_schedules_fire(workspace, daemon):
    """Schedules were armed before the runs that ended while no daemon ran were settled: with max_active_runs = 1
    and on_max_active = "skip", the fire due at the restart was skipped for '1 active run(s)', the run counted
    being one that had already ended (collected a moment later)."""
    workspace.pipeline("guard", """
        every = "2s"
        catchup = "latest"
        max_active_runs = 1
        on_max_active = "skip"
        [tasks.wait]
        command = ["sh", "-c", "touch {pipeline_dir}/started-$EDGEORCH_RUN_ID; while [ ! -f {pipeline_dir}/go ]; do sleep 0.02; done"]
    """)
    daemon.start()
    workspace.wait_file(workspace.pipelines / "started-1")
    _end_while_away(workspace, daemon, "wait")  # run 1 ends while no daemon runs
    # A fire falls due while no daemon runs: `every` is a grid anchored at the Unix epoch, so the wall clock
    # passing its next point at least 0.5 s after the run's end is that condition.
    fire = (int((time.time() + 0.5) // 2) + 1) * 2
    while time.time() < fire + 0.1:
        time.sleep(0.02)
    before = len(daemon.output())
    restarted = time.time()
    daemon.start()
    assert daemon.wait_run(1) == "succeeded"
    # It ended when its task did, not when the new daemon collected it (its duration took no downtime).
    with _db(workspace) as conn:
        finished = conn.execute("SELECT finished_at FROM runs WHERE id = 1").fetchone()[0]
    assert finished < fire < restarted, (finished, fire, restarted)  # fire: over 0.5 s after the run's end
    workspace.wait_file(workspace.pipelines / "started-2")  # the fire due at the restart started run 2
    after = daemon.output()[before:]
    assert "skip fire" not in after, after


def test_an_adopted_attempt_with_declared_inputs_is_never_a_cache_hit(workspace, daemon):
    """kill -9 while a cached task with declared inputs ran, its input rewritten while the daemon was down, put
    back as it was afterwards: the next run got the adopted attempt's result (made from the rewritten input),
    its stamps having died with the engine that started it. An adopted attempt with declared inputs is kept
    for its run and never reused."""
    from edgeorch.model import INPUTS_UNWATCHED

    workspace.pipeline("adopt", """
        [tasks.t]
        command = ["sh", "-c", "touch started; while [ ! -f go ]; do sleep 0.02; done; cp in.txt $EDGEORCH_OUTPUT_DIR/o.txt"]
        inputs = ["in.txt"]
        outputs = ["o.txt"]
        cache = true
    """)
    (workspace.pipelines / "in.txt").write_text("v1\n")
    daemon.start()
    first = daemon.call("trigger", {"pipeline": "adopt"})["run_id"]
    workspace.wait_file(workspace.pipelines / "started")
    daemon.kill9()
    (workspace.pipelines / "in.txt").write_text("v2\n")  # while nobody watches
    daemon.start()
    (workspace.pipelines / "go").touch()
    assert daemon.wait_run(first) == "succeeded"
    with _db(workspace) as conn:
        (moved,) = conn.execute("SELECT inputs_moved FROM attempts WHERE run_id = ?", (first,)).fetchone()
    assert moved == INPUTS_UNWATCHED
    shown = workspace.invoke("show", str(first)).stdout  # said where a run is looked at, not only in --json
    assert "not reused by the cache: its declared inputs were not watched while it ran" in shown, shown
    (workspace.pipelines / "in.txt").write_text("v1\n")
    second = daemon.call("trigger", {"pipeline": "adopt"})["run_id"]
    assert daemon.wait_run(second) == "succeeded"
    task = daemon.call("runs.show", {"run_id": second})["tasks"][0]
    assert task["state"] == "succeeded" and task["attempts"] == 1  # it ran: never the adopted attempt's result
    why = daemon.call("why", {"run": second})
    assert "not watched while it ran" in why["tasks"][0]["cache"], why
