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


def test_a_container_whose_supervisor_was_killed_is_stopped_before_its_retry_starts(container_ws, daemon, podman):
    """A shim killed (the OOM killer, by hand) while the daemon was away: recovery settled the attempt abandoned and
    started its cleanup (`podman rm --force`) in the background, which stopped the container after podman's stop
    timeout (10 s), long after the retry had started: both ran, writing the same outputs (a tester's find, who also
    saw one never stopped). Recovery kills the container's processes before it settles the attempt; the runtime's
    own processes end by themselves and remove the container."""
    import json
    import os
    import signal

    ws = container_ws
    ws.pipeline("held", pipeline_text(f"""
        [tasks.wait]
        retries = 1
        command = ["sh", "-c", "echo started; while true; do sleep 0.1; done"]
        container = {{ image = "{podman.image}", pull = "never", args = ["--network", "none"] }}
    """))
    daemon.start()
    run_id = daemon.call("trigger", {"pipeline": "held"})["run_id"]
    attempt = ws.state / "runs" / str(run_id) / "attempts" / "wait.1"
    deadline = time.monotonic() + 30
    while not (_started(attempt) and ws.attempt_with_pid("wait")):
        assert time.monotonic() < deadline, "the container task did not start"
        time.sleep(0.02)
    assert _container_processes(run_id, attempt=1), "the container's processes carry the attempt's variables"
    daemon.kill9()
    os.kill(json.loads((attempt / "owner.json").read_text())["shim_pid"], signal.SIGKILL)
    daemon.start()
    deadline = time.monotonic() + 60
    while not _started(attempt.with_name("wait.2")):
        assert time.monotonic() < deadline, "the retry did not start"
        time.sleep(0.02)
    assert _container_processes(run_id, attempt=1) == [], "attempt 1's container runs beside its retry"
    daemon.call("cancel", {"run_id": run_id})
    assert daemon.wait_run(run_id) == "cancelled"
    deadline = time.monotonic() + 30
    while podman.containers(ws.state):  # the monitor's own clean-up, then the cancel's: nothing of either is left
        assert time.monotonic() < deadline, podman.containers(ws.state)
        time.sleep(0.1)


def _started(attempt) -> bool:
    log = attempt / "output.log"
    return log.exists() and "started" in log.read_text()


def _container_processes(run_id: int, *, attempt: int) -> list[int]:
    """The pids of the processes in a container (a PID namespace below this one) carrying attempt ``attempt`` of run
    ``run_id`` in their environment."""
    import os

    from edgeorch.engine.procinfo import in_nested_namespace, pid_namespace_ids

    own = pid_namespace_ids("self") or []
    want = {f"EDGEORCH_RUN_ID={run_id}".encode(), f"EDGEORCH_ATTEMPT={attempt}".encode()}
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/environ", "rb") as f:
                env = set(f.read().split(b"\0"))
        except OSError:
            continue
        if want <= env and in_nested_namespace(int(entry), len(own)):
            found.append(int(entry))
    return found
