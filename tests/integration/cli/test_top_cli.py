"""``edgeorch top`` outside a terminal: its bad inputs and its --json snapshot, through the real CLI."""

from __future__ import annotations

import json
import subprocess

from edgeorch.cli.exits import EXIT_OK, EXIT_USAGE
from edgeorch.control import DaemonNotRunning


def _top(workspace, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*workspace.cli(), "top", *args], env=workspace.cli_env(), stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, timeout=120)


def test_top_without_a_terminal_says_so_and_points_at_json(workspace):
    out = _top(workspace)
    assert out.returncode == EXIT_USAGE
    assert "edgeorch top needs a terminal" in out.stderr and "edgeorch top --json" in out.stderr
    assert "Traceback" not in out.stderr


def test_an_interval_out_of_range_is_refused_naming_the_option(workspace):
    """Too short; and (found by a tester) `inf` or `1e12` were an internal error (a timestamp overflowed), `nan`
    was taken."""
    for value in ("0.05", "inf", "1e12", "nan", "-1"):
        out = workspace.invoke("top", "--interval", value)
        assert out.returncode == EXIT_USAGE and "--interval: is out of range" in out.stderr, (value, out.stderr)
        assert "0.2 to 3600 seconds" in out.stderr and "Traceback" not in out.stderr


def test_top_needs_a_daemon(workspace):
    out = _top(workspace, "--json")
    assert out.returncode == DaemonNotRunning.exit_code, out.stderr  # 69
    assert "no edgeorch daemon is running" in out.stderr


def test_json_prints_one_snapshot_of_the_same_rows(workspace, daemon):
    workspace.pipeline("hold", '[tasks.t]\n'
                               'command = ["sh", "-c", "while [ ! -f {pipeline_dir}/go ]; do sleep 0.05; done"]\n')
    daemon.start()
    run_id = daemon.call("trigger", {"pipeline": "hold"})["run_id"]
    with daemon.client(timeout=60) as c:
        for _ in c.stream("events", {"run_id": run_id}, timeout=60):  # checked at subscribe, then at each event
            if daemon.call("status")["tasks"]["running"] == 1:
                break
    out = _top(workspace, "--json")
    assert out.returncode == EXIT_OK, out.stderr
    doc = json.loads(out.stdout)
    assert [(t["run_id"], t["task"], t["state"]) for t in doc["tasks"]] == [(run_id, "t", "running")]
    assert doc["runs"][0]["run_id"] == run_id and doc["paused"] == []
    (workspace.pipelines / "go").write_text("")
    assert daemon.wait_run(run_id) == "succeeded"
