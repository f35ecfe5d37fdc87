"""The daemon on the Ray executor (the run's one local Ray head, ``ray_head``): kill -9 of the daemon
during a Ray task, a restart re-attaches to the attempt's actor and the task runs once; ``edgeorch
resources`` shows the cluster's node and what edgeorch holds there. Under ``-m slow``: ``edgeorch logs
-f`` follows a Ray task's log; the example pipeline house_prices runs on Ray unchanged.

Also, without a cluster: Ray is never imported by the CLI or the daemon unless ``kind = "ray"``, and a
missing ``ray`` package is a config error that says how to install it.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]


def _ray_config(ws, head, extra: str = "") -> None:
    ws.write_config(f"""
        [executor]
        kind = "ray"
        address = "{head.address}"
        namespace = "test-{uuid.uuid4().hex[:12]}"
        """ + extra)


def _attempts(ws, task: str) -> list[sqlite3.Row]:
    conn = sqlite3.connect(ws.state / "edgeorch.db")
    conn.row_factory = sqlite3.Row
    try:
        return conn.execute("SELECT * FROM attempts WHERE task = ? ORDER BY id", (task,)).fetchall()
    finally:
        conn.close()


def _until(cond, what: str, timeout: float = 90.0):
    deadline = time.monotonic() + timeout
    while not (found := cond()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)
    return found


def test_kill_9_during_a_ray_task_then_a_restart_reattaches_and_the_task_runs_once(workspace, daemon, ray_head,
                                                                                    tmp_path):
    _ray_config(workspace, ray_head)
    ledger = tmp_path / "ledger"
    go = tmp_path / "go"
    workspace.pipeline("gated", f"""
        [tasks.wait]
        command = "echo run >> {ledger}; echo line one; while [ ! -e {go} ]; do sleep 0.02; done; echo line two"
        shell = true
        cpus = 1
        [tasks.after]
        command = ["echo", "after"]
        needs = ["wait"]
    """)
    daemon.start()
    run_id = daemon.call("trigger", {"pipeline": "gated"})["run_id"]
    attempt = _until(lambda: next((a for a in _attempts(workspace, "wait") if a["pid"]), None), "the task to start")
    log_path = Path(attempt["log_path"])
    _until(lambda: log_path.exists() and "line one" in log_path.read_text(), "its first line streamed back")

    shown = workspace.invoke("resources")
    assert shown.returncode == 0, shown.stderr
    assert "cluster   Ray: 1 node alive; 2 CPUs, 1 GPUs in all" in shown.stdout
    assert "edgeorch holds cpus 1, GPUs 0" in shown.stdout and f"run {run_id} wait" in shown.stdout
    data = json.loads(workspace.invoke("resources", "--json").stdout)
    assert data["cluster"]["nodes"][0]["held"]["cpus"] == 1

    daemon.kill9()
    daemon.start()
    go.touch()  # the task finishes under the new daemon, which follows it again
    assert daemon.wait_run(run_id) == "succeeded"
    (only,) = _attempts(workspace, "wait")
    assert only["state"] == "exited" and only["exit_code"] == 0
    assert ledger.read_text() == "run\n", "the task ran more than once"
    assert log_path.read_text() == "line one\nline two\n"  # nothing lost or doubled across the restart
    assert "adopted after restart" in daemon.output() or only["id"] == attempt["id"]


@pytest.mark.slow
def test_logs_follow_streams_a_ray_tasks_output(workspace, daemon, ray_head, tmp_path):
    _ray_config(workspace, ray_head)
    go = tmp_path / "go"
    workspace.pipeline("talk", f"""
        [tasks.t]
        command = "echo first; while [ ! -e {go} ]; do sleep 0.02; done; echo second"
        shell = true
    """)
    daemon.start()
    run_id = daemon.call("trigger", {"pipeline": "talk"})["run_id"]
    follow = subprocess.Popen([*workspace.cli(), "logs", str(run_id), "t", "-f"], env=workspace.cli_env(),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert follow.stdout is not None
        assert follow.stdout.readline() == "first\n"  # while the task still runs on Ray
        go.touch()
        rest, err = follow.communicate(timeout=60)
    finally:
        if follow.poll() is None:
            follow.kill()
    assert rest == "second\n" and follow.returncode == 0, err


@pytest.mark.slow
def test_the_example_pipeline_runs_on_ray_unchanged(workspace, ray_head):
    _ray_config(workspace, ray_head)
    text = workspace.config_path.read_text().replace(str(workspace.pipelines), str(REPO / "examples" / "pipelines"))
    workspace.config_path.write_text(text)
    done = subprocess.run([*workspace.cli(), "run", "house_prices", "--here"], env=workspace.cli_env(),
                          capture_output=True, text=True, timeout=170)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "quality_gate" in done.stdout and "rmse <=" in done.stdout
    shown = json.loads(subprocess.run([*workspace.cli(), "show", "1", "--json"], env=workspace.cli_env(),
                                      capture_output=True, text=True, timeout=60).stdout)
    assert shown["state"] == "succeeded" and all(t["state"] == "succeeded" for t in shown["tasks"])


def test_the_cli_and_the_daemon_import_ray_only_for_the_ray_executor(workspace):
    code = ("import sys; import edgeorch.cli.main, edgeorch.daemon.app, edgeorch.engine.engine; "
            "from edgeorch.cli.main import main; main(['resources', '--json']); "
            "assert 'ray' not in sys.modules, 'ray was imported'")
    done = subprocess.run([sys.executable, "-c", code], env=workspace.cli_env(), capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr


def test_without_the_ray_package_the_ray_executor_is_a_config_error_saying_how_to_install_it(workspace):
    workspace.write_config('[executor]\nkind = "ray"\n')
    env = workspace.cli_env()
    # A ray that cannot be imported, whether or not the extra is installed here.
    (workspace.root / "noray").mkdir()
    (workspace.root / "noray" / "ray.py").write_text("raise ImportError('no ray here')\n")
    env["PYTHONPATH"] = f"{workspace.root / 'noray'}:{env['PYTHONPATH']}"
    workspace.pipeline("anything", '[tasks.t]\ncommand = ["true"]\n')
    done = subprocess.run([*workspace.cli(), "run", "anything", "--here"], env=env, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 2, done.stdout + done.stderr
    assert "executor.kind" in done.stderr and "pip install 'edgeorch[ray]'" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr
