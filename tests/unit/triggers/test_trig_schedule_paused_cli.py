"""`edgeorch pipelines` without a daemon: a paused pipeline shows no next fire ("paused").

Real state file (SQLite), real CLI subprocess.
"""

from __future__ import annotations

import json
import subprocess

from edgeorch.store import Store

HOURLY = """
schedule = "0 * * * *"
[tasks.a]
command = ["true"]
"""


def pipelines(ws, *extra: str) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([*ws.cli(), "pipelines", *extra], env=ws.cli_env(), capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stdout + proc.stderr
    return proc


def test_a_paused_pipeline_shows_paused_instead_of_a_next_fire(workspace):
    workspace.pipeline("hourly", HOURLY)
    workspace.pipeline("other", HOURLY)
    cfg = workspace.config()
    cfg.state_file.parent.mkdir(parents=True, exist_ok=True)
    st = Store(cfg.state_file)
    try:
        st.pipelines.set_paused("hourly", True, reason="maintenance", actor="test")
    finally:
        st.close()
    items = {i["name"]: i for i in json.loads(pipelines(workspace, "--json").stdout)["pipelines"]}
    assert items["hourly"]["paused"] is True and items["hourly"]["next_fire"] is None
    assert items["other"]["paused"] is False and items["other"]["next_fire"] is not None
    rows = {line.split()[0]: line.split() for line in pipelines(workspace).stdout.splitlines()[1:] if line.strip()}
    assert rows["hourly"][2:4] == ["yes", "paused"], rows
    assert rows["other"][2] == "no" and rows["other"][3] != "paused", rows


TICK_ALL = """
every = "1s"
catchup = "all"
catchup_max = 100
[tasks.a]
command = ["true"]
"""


def q(ws, sql: str) -> list:
    import sqlite3

    conn = sqlite3.connect(ws.state / "edgeorch.db", timeout=30)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


def poll(cond, what: str, timeout: float = 30) -> None:
    import time

    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def test_a_paused_schedule_in_the_daemon_is_recorded_once_and_resumes_without_a_catch_up_storm(workspace, daemon):
    from datetime import datetime, timedelta

    workspace.pipeline("tick", TICK_ALL)
    daemon.start()
    daemon.call("pipelines.pause", {"name": "tick"})
    n_runs = q(workspace, "SELECT COUNT(*) FROM runs")[0][0]

    def last_fire() -> datetime:
        return datetime.fromisoformat(q(workspace, "SELECT last_fire FROM schedule_state WHERE pipeline = 'tick'")[0][0])

    paused_at = last_fire()
    poll(lambda: last_fire() >= paused_at + timedelta(seconds=4), "the watermark to move on while paused")
    skips = q(workspace, "SELECT message FROM events WHERE kind = 'schedule_skip'")
    assert len(skips) == 1 and "paused" in skips[0][0], skips
    assert q(workspace, "SELECT COUNT(*) FROM runs")[0][0] <= n_runs + 1  # at most one fire raced the pause
    listed = {p["name"]: p for p in daemon.call("pipelines.list")["pipelines"]}
    assert listed["tick"]["paused"] is True and listed["tick"]["next_fire"] is None
    assert pipelines(workspace).stdout.splitlines()[1].split()[2:4] == ["yes", "paused"]

    daemon.call("pipelines.resume", {"name": "tick"})
    resumed = q(workspace, "SELECT COUNT(*) FROM runs")[0][0]
    poll(lambda: q(workspace, "SELECT COUNT(*) FROM runs")[0][0] >= resumed + 1, "a run after the resume")
    # catchup = "all" would have started one run per paused second: the paused period is not caught up.
    assert q(workspace, "SELECT COUNT(*) FROM runs")[0][0] <= resumed + 3
    assert daemon.stop() == 0
