"""The executor owns its health: a dead task launcher is restarted and costs no retry (issue 9 item 8, issue 10 point 2)."""

from __future__ import annotations

import asyncio
import os
import signal

from edgeorch.model import RunState


async def _until(cond, timeout: float = 20.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not cond():
        if loop.time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.01)


def test_killing_the_zygote_mid_run_restarts_it_and_the_run_succeeds(workspace, harness, tmp_path, wait_for_file):
    started, go = tmp_path / "started", tmp_path / "go"
    workspace.pipeline("p", f"""
        [tasks.first]
        command = ["sh", "-c", "touch {started}; while [ ! -e {go} ]; do sleep 0.02; done"]
        [tasks.second]
        command = ["true"]
        needs = ["first"]
        [tasks.third]
        command = ["true"]
        needs = ["second"]
    """)

    async def kill_zygote(engine, run_id):
        await wait_for_file(started)
        old = engine.executor.zygote_pid
        os.kill(old, signal.SIGKILL)
        await _until(lambda: engine.executor.zygote_pid not in (None, old))
        go.touch()

    run_id, state = harness.run("p", during=kill_zygote)
    assert state == RunState.SUCCEEDED
    store = harness.store()
    for task in ("first", "second", "third"):
        (attempt,) = store.attempts.of_run(run_id, task)  # one attempt each: nothing burned, nothing relaunched
        assert attempt["state"] == "exited" and attempt["exit_code"] == 0
    assert any(e["kind"] == "executor_health" and "restarting" in e["message"] for e in store.events.recent(100))


ONE_TASK_NO_RETRIES = """
    [tasks.only]
    command = ["true"]
    retries = 0
"""


async def _lose_the_request(engine, run_id) -> None:
    """Freeze the launcher, let the engine hand it the request, then kill it before it reads it."""
    z = engine.executor.zygote_pid
    os.kill(z, signal.SIGSTOP)
    await _until(lambda: engine.executor._in_flight)
    os.kill(z, signal.SIGKILL)


def test_a_request_lost_with_the_zygote_is_relaunched_without_charging_a_retry(workspace, harness):
    workspace.pipeline("p", ONE_TASK_NO_RETRIES)
    run_id, state = harness.run("p", during=_lose_the_request)
    assert state == RunState.SUCCEEDED
    attempts = harness.store().attempts.of_run(run_id, "only")
    assert [(a["state"], a["charged"]) for a in attempts] == [("abandoned", 0), ("exited", 1)]
    assert "task launcher died" in attempts[0]["reason"]


def test_a_lost_request_beyond_the_free_relaunches_is_charged_and_fails_a_task_without_retries(
        workspace, harness, monkeypatch):
    # A fault that repeats must end: after FREE_RELAUNCHES lost attempts (here none are free) a loss is charged.
    from edgeorch.engine import settlement

    monkeypatch.setattr(settlement, "FREE_RELAUNCHES", 0)
    workspace.pipeline("p", ONE_TASK_NO_RETRIES)
    run_id, state = harness.run("p", during=_lose_the_request)
    assert state == RunState.FAILED
    (attempt,) = harness.store().attempts.of_run(run_id, "only")
    assert (attempt["state"], attempt["charged"]) == ("abandoned", 1)
    assert "task launcher died" in attempt["reason"] and "counted as a retry" in attempt["reason"]
