"""Leases through a real daemon: they survive a restart (nothing oversubscribed), and `edgeorch resources`."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess

from edgeorch.errors import EdgeorchError



def _cli(ws, *args: str) -> subprocess.CompletedProcess[str]:
    return ws.invoke("resources", *args)  # in this process: output and exit codes are tested


def test_leases_survive_a_daemon_restart_and_resources_shows_them(workspace, daemon):
    n = len(os.sched_getaffinity(0))
    workspace.pipeline("hold", f"""
        [tasks.big]
        command = ["sh", "-c", "touch {{pipeline_dir}}/big.started; while [ ! -f {{pipeline_dir}}/go ]; do sleep 0.02; done"]
        cpus = {n}
    """)
    workspace.pipeline("small", """
        [tasks.one]
        command = ["true"]
        cpus = 1
    """)
    workspace.pipeline("gpu", """
        [tasks.train]
        command = ["true"]
        gpus = 1
    """)
    out = _cli(workspace)
    assert out.returncode == 0 and "no daemon is running: inventory only, no leases and no queue" in out.stdout
    daemon.start()
    big = daemon.call("trigger", {"pipeline": "hold"})["run_id"]
    workspace.wait_file(workspace.pipelines / "big.started")
    assert daemon.stop() == 0  # the task goes on under live restore
    daemon.start()
    small = daemon.call("trigger", {"pipeline": "small"})["run_id"]
    # The adopted attempt still holds every core: the new cpus = 1 task waits instead of oversubscribing.
    rep = daemon.call("resources")
    (lease,) = rep["leases"]
    assert lease["run_id"] == big and sorted(lease["cores"]) == sorted(os.sched_getaffinity(0))
    assert lease["attempt"] == 1 and lease["attempt_id"] >= 1  # its number within the task, as `show` says it
    (waiting,) = rep["queue"]
    assert waiting["task"] == f"{small}/one" and waiting["reason_kind"] == "cpus", waiting
    text = _cli(workspace)
    assert text.returncode == 0, text.stderr
    assert f"held by {big}/big" in text.stdout and f"{small}/one (small" in text.stdout and "waits for 1 cores" in text.stdout
    assert f"run {big} big (attempt 1): cores" in text.stdout, text.stdout
    # A follower that subscribes to a run under way is told what it already runs, with its recorded start.
    with daemon.client(timeout=30) as c:
        events = c.stream("events", {"run_id": big}, timeout=30)
        assert next(events)["kind"] == "subscribed"
        caught_up = next(events)
    with sqlite3.connect(workspace.state / "edgeorch.db") as conn:
        (started_at,) = conn.execute("SELECT started_at FROM attempts WHERE run_id = ?", (big,)).fetchone()
    assert caught_up == {"kind": "task", "run_id": big, "task": "big", "state": "running", "attempt": 1,
                         "lease": caught_up["lease"], "resources": None, "ts": started_at}, caught_up
    assert caught_up["lease"]["cpus"] == lease["cores"]
    as_json = json.loads(_cli(workspace, "--json").stdout)
    assert as_json["daemon"] is True and len(as_json["leases"]) == 1
    st = daemon.call("status")["resources"]
    assert st["leases"] == 1 and st["waiting"] == 1
    # A GPU request on this CPU-only daemon is refused at submit, with the reason.
    try:
        daemon.call("trigger", {"pipeline": "gpu"})
        raise AssertionError("a GPU run on a CPU-only daemon must be refused")
    except EdgeorchError as exc:
        assert "asks for a GPU but this daemon has none" in str(exc)
    (workspace.pipelines / "go").touch()
    assert daemon.wait_run(big) == "succeeded"
    assert daemon.wait_run(small) == "succeeded"
    with sqlite3.connect(workspace.state / "edgeorch.db") as conn:
        rows = conn.execute("SELECT a.run_id, a.started_at, a.finished_at, l.released_at FROM attempts a "
                            "JOIN leases l ON l.attempt_id = a.id ORDER BY a.id").fetchall()
    (_, _, big_end, big_rel), (_, small_start, _, small_rel) = rows
    assert small_start >= big_end and big_rel is not None and small_rel is not None
