"""A zygote started before the engine (an in-process run's head start) is the one the engine uses, or let go."""

from __future__ import annotations

import asyncio
import os

from edgeorch.engine.engine import Engine
from edgeorch.engine.executors.local import launch
from edgeorch.engine.executors.local.launch import EarlyZygote
from edgeorch.model import RunState
from edgeorch.pipelines import resolve_params, validate_path
from edgeorch.resources.memory import CgroupSupport
from edgeorch.store import Store


def _gone(pid: int) -> bool:
    """True once ``pid`` is no process at all (reaped, not a zombie)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def test_the_engine_runs_tasks_through_the_zygote_started_before_it_and_it_exits_with_the_engine(workspace):
    workspace.pipeline("p", '[tasks.a]\ncommand = ["true"]\n')
    cfg = workspace.config()
    pipeline = validate_path(cfg.pipelines_dir).pipelines["p"]
    early = EarlyZygote.start()
    assert early is not None and early.pid is not None
    pid = early.pid

    async def main() -> tuple[int | None, RunState]:
        store = Store(cfg.state_file)
        engine = Engine(cfg, store, early_zygote=early)
        await engine.start()
        try:
            assert engine.executor is not None
            used = engine.executor.zygote_pid
            run_id = engine.submit(pipeline, resolve_params(pipeline, {}))
            return used, await asyncio.wait_for(engine.wait_run(run_id), 60)
        finally:
            await engine.close()
            store.close()

    used, state = asyncio.run(main())
    assert used == pid and state == RunState.SUCCEEDED
    assert early.take() is None  # handed over once
    early.discard()  # the owner's cleanup after an engine took it: nothing to do
    assert _gone(pid)  # the engine's close let it exit and reaped it


def test_an_early_zygote_no_engine_took_is_let_go_and_reaped():
    early = EarlyZygote.start()
    assert early is not None and early.pid is not None
    pid = early.pid
    early.discard()
    assert _gone(pid) and early.pid is None
    early.discard()  # idempotent


def test_no_early_zygote_where_the_engine_must_first_move_into_its_cgroup_leaf(monkeypatch, tmp_path):
    # A process started before the engine's move would stay in the delegated cgroup's root (+memory refused).
    from edgeorch.resources import memory

    monkeypatch.setattr(memory, "detect", lambda: CgroupSupport(True, tmp_path, "enforced"))
    started: list[object] = []
    monkeypatch.setattr(launch, "spawn_zygote", lambda: started.append(1))
    assert EarlyZygote.start() is None and started == []


def test_an_early_zygote_that_cannot_start_is_left_to_the_engine(monkeypatch):
    def refuse():
        raise OSError(24, "Too many open files")

    monkeypatch.setattr(launch, "spawn_zygote", refuse)
    assert EarlyZygote.start() is None


def test_an_in_process_edgeorch_run_starts_one_zygote_before_the_engine_and_the_engine_uses_it(
        workspace, monkeypatch):
    # The wiring of `edgeorch run` without a daemon: one zygote is started (the early one) and no other;
    # were it not handed to the engine, the executor would start a second one and the first be discarded.
    spawned: list[int] = []
    real = launch.spawn_zygote

    def counting():
        popen = real()
        spawned.append(popen.pid)
        return popen

    monkeypatch.setattr(launch, "spawn_zygote", counting)
    from edgeorch.engine.executors.local import executor as local_executor

    monkeypatch.setattr(local_executor, "spawn_zygote", counting)
    early: list[int | None] = []
    real_start = EarlyZygote.start.__func__

    def recording_start(cls):
        z = real_start(cls)
        early.append(z.pid if z is not None else None)
        return z

    monkeypatch.setattr(EarlyZygote, "start", classmethod(recording_start))
    workspace.pipeline("p", '[tasks.a]\ncommand = ["true"]\n')
    out = workspace.invoke("run", "p", "--here", "-q")
    assert out.returncode == 0, out.stderr
    assert spawned == early and len(early) == 1 and _gone(early[0])
