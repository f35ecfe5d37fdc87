"""An attempt stopped for its timeout while no daemon held it is recorded as timed out, not as a stranger's signal."""

from __future__ import annotations

import os
import signal
import sqlite3
import time


def _attempt(workspace, run_id: int) -> dict | None:
    conn = sqlite3.connect(workspace.state / "edgeorch.db")
    conn.row_factory = sqlite3.Row
    try:
        row = conn.execute("SELECT * FROM attempts WHERE run_id = ?", (run_id,)).fetchone()
        return dict(row) if row else None
    finally:
        conn.close()


def _running(workspace, run_id: int) -> dict:
    deadline = time.monotonic() + 60
    while True:
        a = _attempt(workspace, run_id)
        if a is not None and a["pgid"]:
            return a
        assert time.monotonic() < deadline, "the attempt never ran"
        time.sleep(0.02)


def test_a_task_signalled_after_its_timeout_while_no_daemon_held_it_is_timed_out(workspace, daemon) -> None:
    """Found by an operator: a daemon killed while a task with `timeout = "10s"` ran; an `edgeorch run` without
    a daemon adopted it past its timeout, stopped it (SIGTERM) and exited before its end; the next daemon said
    "killed by signal SIGTERM". What that engine did is stood in for here: the task's group signalled after its
    deadline (timed out) and, for another one, long before it (a signal, as before)."""
    for name, limit in (("slow", "3s"), ("slower", "600s")):
        workspace.pipeline(name, f'''
            [tasks.sleeper]
            command = ["sleep", "60"]
            timeout = "{limit}"
            retries = 0
            ''')
    daemon.start()
    late = daemon.call("trigger", {"pipeline": "slow"})["run_id"]
    early = daemon.call("trigger", {"pipeline": "slower"})["run_id"]
    late_a, early_a = _running(workspace, late), _running(workspace, early)
    daemon.kill9()
    os.killpg(early_a["pgid"], signal.SIGTERM)  # long before its deadline: somebody's signal
    while time.time() < late_a["started_at"] + 3.2:  # its deadline has passed (the wall clock the records use)
        time.sleep(0.05)
    os.killpg(late_a["pgid"], signal.SIGTERM)  # what the engine that adopted it did, then it went away
    daemon.start()
    assert daemon.wait_run(late) == "failed" and daemon.wait_run(early) == "failed"
    late_a, early_a = _attempt(workspace, late), _attempt(workspace, early)
    assert (late_a["state"], late_a["reason"]) == ("timed_out", "timed out after 3s"), late_a
    assert early_a["state"] == "signalled" and "SIGTERM" in early_a["reason"], early_a
