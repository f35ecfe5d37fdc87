"""Pipelines on the Ray executor through a real engine: the run's one local Ray head (``ray_head``), real
actors, processes, files and SQLite. Each test uses a namespace of its own.

Default run: a small DAG runs unchanged (env, outputs with sha256, logs streamed back), the resources
report shows the node and what edgeorch holds there, a request no node can hold is refused at
submission. Under ``-m slow`` (the default run's Ray tests keep to their time budget; the executor's
stop of the whole remote tree is in the contract suite): timeout and cancel stop the remote process
tree; a worker killed mid-task fails the attempt (abandoned) and the retry succeeds.
"""

from __future__ import annotations

import asyncio
import os
import signal
import uuid
from pathlib import Path

import pytest

from edgeorch.engine.engine import Engine
from edgeorch.errors import UnsatisfiableError
from edgeorch.model import RunState
from edgeorch.pipelines import resolve_params, validate_path
from edgeorch.engine.procinfo import process_start_time
from edgeorch.store import Store


@pytest.fixture
def ray_ws(workspace, ray_head):
    workspace.write_config(f"""
        [executor]
        kind = "ray"
        address = "{ray_head.address}"
        namespace = "test-{uuid.uuid4().hex[:12]}"
        """, kill_grace="1s")
    return workspace


def _gone(pid: int) -> bool:
    """The process ended (gone, or a zombie awaiting its reaper)."""
    if process_start_time(pid) is None:
        return True
    try:
        return open(f"/proc/{pid}/stat").read().split(") ")[1][0] in "ZX"
    except OSError:
        return True


async def _until(cond, what: str, timeout: float = 90.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not cond():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


def _run(ws, name: str, during=None, params=None, timeout: float = 60):
    """Start an engine on ``ws``, submit ``name``, let ``during(engine, run_id)`` act, wait for the run."""
    cfg = ws.config()
    report = validate_path(cfg.pipelines_dir)
    assert report.ok, [e.render() for e in report.errors]
    pipeline = report.pipelines[name]

    async def main():
        store = Store(cfg.state_file)
        engine = Engine(cfg, store)
        await engine.start()
        try:
            run_id = engine.submit(pipeline, resolve_params(pipeline, params or {}))
            if during is not None:
                await during(engine, run_id)
            state = await asyncio.wait_for(engine.wait_run(run_id), timeout)
        finally:
            await engine.close()
            store.close()
        return run_id, state

    return asyncio.run(main())


def test_a_dag_runs_on_ray_unchanged_and_the_report_shows_the_node(ray_ws, tmp_path):
    go = tmp_path / "go"
    ray_ws.pipeline("dag", f"""
        [params]
        greeting = "hello"
        [tasks.make]
        command = "echo {{greeting}} from $EDGEORCH_TASK; echo data > $EDGEORCH_OUTPUT_DIR/out.txt; while [ ! -e {go} ]; do sleep 0.02; done"
        shell = true
        outputs = ["out.txt"]
        cpus = 1
        [tasks.use]
        command = ["sh", "-c", "cat $EDGEORCH_UPSTREAM_MAKE"]
        needs = ["make"]
    """)
    reports = []

    async def look(engine, run_id):
        await _until(lambda: any(la.pgid for la in engine.live.values()), "the first task to start on Ray")
        reports.append(engine.resources_report())
        go.touch()

    run_id, state = _run(ray_ws, "dag", during=look)
    assert state == RunState.SUCCEEDED
    store = Store(ray_ws.config().state_file)
    (make,) = store.attempts.of_run(run_id, "make")
    assert Path(make["log_path"]).read_text() == "hello from make\n"  # streamed back into the same file
    (use,) = store.attempts.of_run(run_id, "use")
    assert Path(use["log_path"]).read_text() == "data\n"
    (art,) = store.outputs.latest_artifacts(run_id, "make")
    assert art["name"] == "out.txt" and len(art["sha256"]) == 64
    (node,) = reports[0]["cluster"]["nodes"]
    assert node["alive"] and node["cpus"] == 2 and node["gpus"] == 1 and node["gpu_models"] == ["FAKE"]
    assert node["held"]["cpus"] == 1 and [a["task"] for a in node["attempts"]] == ["make"]
    assert reports[0]["memory"]["available_now"] is None  # this machine's MemAvailable says nothing of the node


def test_a_request_no_node_can_hold_is_refused_at_submission(ray_ws):
    ray_ws.pipeline("big", """
        [tasks.t]
        command = ["true"]
        cpus = 3
    """)
    cfg = ray_ws.config()
    pipeline = validate_path(cfg.pipelines_dir).pipelines["big"]

    async def main():
        store = Store(cfg.state_file)
        engine = Engine(cfg, store)
        await engine.start()
        try:
            with pytest.raises(UnsatisfiableError) as err:
                engine.submit(pipeline, resolve_params(pipeline, {}))
            return err.value
        finally:
            await engine.close()
            store.close()

    err = asyncio.run(main())
    text = err.render()
    assert "task t fits no node of the Ray cluster (1 node:" in text and "lacks 3 cpus (it has 2)" in text, text
    assert err.exit_code == 2 and "tasks.t" in text


@pytest.mark.slow
def test_timeout_and_cancel_stop_the_remote_process_tree(ray_ws, tmp_path):
    pids = tmp_path / "pids"
    ray_ws.pipeline("slow", f"""
        [params]
        tag = "t"
        [tasks.hang]
        command = "sleep 300 & echo $! > {pids}.{{tag}}; wait"
        shell = true
        timeout = "1.5s"
    """)
    run_id, state = _run(ray_ws, "slow", params={"tag": "timeout"})
    assert state == RunState.FAILED
    store = Store(ray_ws.config().state_file)
    (attempt,) = store.attempts.of_run(run_id, "hang")
    assert attempt["state"] == "timed_out" and "timed out" in attempt["reason"], dict(attempt)
    assert _gone(int(Path(f"{pids}.timeout").read_text()))

    ray_ws.pipeline("slow2", f"""
        [tasks.hang]
        command = "sleep 300 & echo $! > {pids}.cancel.tmp; mv {pids}.cancel.tmp {pids}.cancel; wait"
        shell = true
    """)

    async def cancel_when_started(engine, rid):
        await _until(lambda: Path(f"{pids}.cancel").exists(), "the task to start")
        engine.cancel(rid, actor="test", reason="cancelled by test")

    run_id, state = _run(ray_ws, "slow2", during=cancel_when_started)
    assert state == RunState.CANCELLED
    (attempt,) = Store(ray_ws.config().state_file).attempts.of_run(run_id, "hang")
    assert attempt["signal"] == signal.SIGTERM
    assert _gone(int(Path(f"{pids}.cancel").read_text()))


@pytest.mark.slow
def test_a_worker_killed_mid_task_fails_the_attempt_and_the_retry_succeeds(ray_ws, tmp_path):
    ray_ws.pipeline("flaky", f"""
        [tasks.work]
        command = "if [ $EDGEORCH_ATTEMPT = 1 ]; then echo $$ > {tmp_path}/task.pid; exec sleep 300; fi; echo second"
        shell = true
        retries = 1
        retry_delay = "0.1s"
    """)

    async def kill_worker(engine, run_id):
        await _until(lambda: any(la.pgid for la in engine.live.values()), "the attempt to start")
        (aid,) = list(engine.live)
        worker = engine.executor._atts[aid].started.extra["worker_pid"]  # type: ignore[attr-defined]
        os.kill(worker, signal.SIGKILL)

    run_id, state = _run(ray_ws, "flaky", during=kill_worker)
    assert state == RunState.SUCCEEDED
    first, second = Store(ray_ws.config().state_file).attempts.of_run(run_id, "work")
    assert first["state"] == "abandoned" and "Ray worker running the attempt died" in first["reason"]
    assert second["state"] == "exited" and second["exit_code"] == 0
    assert Path(second["log_path"]).read_text() == "second\n"
    task_pid = int((tmp_path / "task.pid").read_text())
    await_gone = asyncio.run(_wait_gone(task_pid))
    assert await_gone, "the task of the dead worker kept running"


async def _wait_gone(pid: int) -> bool:
    await _until(lambda: _gone(pid), f"pid {pid} to end", timeout=15)
    return True
