"""Schedules and drop folders end to end, through a real daemon process.

Synchronisation: the ``events`` stream (run and input events) wakes the test,
which then reads the state file; no sleeps.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
from datetime import datetime, timedelta
from pathlib import Path

import pytest


def db(workspace) -> sqlite3.Connection:
    conn = sqlite3.connect(workspace.state / "edgeorch.db", timeout=30)
    conn.row_factory = sqlite3.Row
    return conn


def q(workspace, sql: str, args=()) -> list[sqlite3.Row]:
    conn = db(workspace)
    try:
        return conn.execute(sql, args).fetchall()
    finally:
        conn.close()


def wait_until(daemon, cond, timeout: float = 60, what: str = "") -> None:
    """Follow the daemon's events; return once ``cond()`` holds (checked at subscribe and after each event)."""
    with daemon.client(timeout=timeout) as c:
        for _ev in c.stream("events", {}, timeout=timeout):
            if cond():
                return
    raise AssertionError(f"the events stream ended before {what or cond}")


# -- schedules ------------------------------------------------------------------------------

TICK = """
every = "1s"
catchup = "all"
catchup_max = 100
[tasks.a]
command = ["true"]
"""


def fire_times(workspace) -> list[datetime]:
    rows = q(workspace, "SELECT data FROM events WHERE kind = 'schedule_fire' ORDER BY id")
    return [datetime.fromisoformat(json.loads(r["data"])["fire_time"]) for r in rows]


def test_every_fires_and_a_restart_neither_loses_nor_repeats_a_fire(workspace, daemon):
    workspace.pipeline("tick", TICK)
    daemon.start()

    def runs_ok(n):
        return lambda: q(workspace, "SELECT COUNT(*) FROM runs WHERE trigger = 'schedule' AND state = 'succeeded'")[0][0] >= n

    wait_until(daemon, runs_ok(2), what="two scheduled runs")
    listed = {p["name"]: p for p in daemon.call("pipelines.list")["pipelines"]}
    assert listed["tick"]["schedule"] == "every 1s"
    nf = datetime.fromisoformat(listed["tick"]["next_fire"])
    assert nf > fire_times(workspace)[-1]
    cli = subprocess.run([*workspace.cli(), "pipelines"], env=workspace.cli_env(), capture_output=True, text=True)
    assert "NEXT FIRE" in cli.stdout, cli.stdout + cli.stderr
    assert daemon.stop() == 0
    before = fire_times(workspace)
    stored = datetime.fromisoformat(q(workspace, "SELECT last_fire FROM schedule_state WHERE pipeline = 'tick'")[0][0])
    assert stored == before[-1]

    daemon.start()  # downtime of a second or more: catchup = "all" starts every missed fire once
    wait_until(daemon, lambda: len(fire_times(workspace)) >= len(before) + 3, what="fires after the restart")
    assert daemon.stop() == 0
    fires = fire_times(workspace)
    assert len(set(fires)) == len(fires), "a fire was repeated"
    assert fires == sorted(fires)
    gaps = [b - a for a, b in zip(fires, fires[1:])]
    assert set(gaps) == {timedelta(seconds=1)}, f"a fire was lost: {fires}"
    n_runs = q(workspace, "SELECT COUNT(*) FROM runs WHERE trigger = 'schedule'")[0][0]
    assert n_runs == len(fires)


GATED_TICK = """
every = "1s"
max_active_runs = 1
on_max_active = "skip"
[tasks.a]
command = ["sh", "-c", "while [ ! -f {pipeline_dir}/go ]; do sleep 0.05; done"]
"""


def test_max_active_runs_skips_a_fire_and_says_why(workspace, daemon):
    workspace.pipeline("gated", GATED_TICK)
    daemon.start()

    def skipped():
        return q(workspace, "SELECT COUNT(*) FROM events WHERE kind = 'schedule_skip'")[0][0] >= 1

    wait_until(daemon, skipped, what="a fire skipped by max_active_runs")  # each fire publishes a schedule event
    reason = q(workspace, "SELECT message FROM events WHERE kind = 'schedule_skip'")[0]["message"]
    assert "max_active_runs = 1" in reason and "skip" in reason
    assert q(workspace, "SELECT COUNT(*) FROM runs WHERE state IN ('queued', 'running')")[0][0] == 1
    (workspace.pipelines / "go").write_text("")
    wait_until(daemon, lambda: q(workspace, "SELECT COUNT(*) FROM runs WHERE state = 'succeeded'")[0][0] >= 1)
    assert daemon.stop() == 0
