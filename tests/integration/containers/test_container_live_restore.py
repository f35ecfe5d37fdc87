"""Live restore of a container task: kill -9 of the daemon leaves the container running; a restarted daemon
re-adopts the attempt and it finishes once."""

from __future__ import annotations

import sqlite3
import time

from container_helpers import pipeline_text


def test_kill_9_of_the_daemon_while_a_container_runs_then_restart_adopts_it_once(container_ws, daemon, podman):
    ws = container_ws
    go = ws.pipelines / "go"
    ws.pipeline("held", pipeline_text(f"""
        [tasks.wait]
        command = ["sh", "-c", "echo $EDGEORCH_ATTEMPT >> {{output_dir}}/starts; echo started; while [ ! -f {go} ]; do sleep 0.05; done; echo finished"]
        container = {{ image = "{podman.image}", pull = "never", args = ["--network", "none"] }}
    """))
    daemon.start()
    run_id = daemon.call("trigger", {"pipeline": "held"})["run_id"]
    log = ws.state / "runs" / str(run_id) / "attempts" / "wait.1" / "output.log"
    deadline = time.monotonic() + 30
    # Conditions, polled: the container printed, and the daemon recorded the attempt's process.
    while not (log.exists() and "started" in log.read_text() and ws.attempt_with_pid("wait")):
        assert time.monotonic() < deadline, "the container task did not start"
        time.sleep(0.02)
    daemon.kill9()
    running = podman.run("ps", "--filter", f"label=edgeorch.state_dir={ws.state}", "--format", "{{.Names}}")
    assert running.stdout.split() == [f.strip() for f in podman.containers(ws.state)] != []  # it outlived the daemon
    daemon.start()  # READY comes after recovery: the attempt is adopted by now
    go.touch()
    assert daemon.wait_run(run_id) == "succeeded"
    doc = daemon.call("runs.show", {"run_id": run_id})
    task = doc["tasks"][0]
    assert task["attempts"] == 1 and task["attempt_list"][0]["exit_code"] == 0
    # Reusable by the cache: it declares no inputs, and its image ran by digest (it was "inputs not watched").
    assert task["attempt_list"][0]["inputs_moved"] is None
    assert "finished" in log.read_text()
    assert (ws.state / "runs" / str(run_id) / "outputs" / "wait" / "starts").read_text() == "1\n"  # ran once
    assert podman.containers(ws.state) == []
    conn = sqlite3.connect(ws.state / "edgeorch.db")
    try:
        kinds = [k for (k,) in conn.execute("SELECT kind FROM events WHERE run_id = ?", (run_id,))]
    finally:
        conn.close()
    assert kinds.count("attempt_adopted") == 1
