"""The engine changes its memory only after the commit that records a decision.

A decision that cannot be recorded (disk full, I/O error) must leave the
engine's memory as the store has it: the attempt still live, its task
running and its dependents pending (the engine fail-stops and the next one
settles the attempt from the store). Its slot and lease are the exception:
given back once its exit record is read, before the commit (nothing of it
runs; a restart holds the lease again from its row). Real engine, real
process, real SQLite; the store's write is made to fail.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any, AsyncIterator

import pytest

from edgeorch.engine.engine import Engine
from edgeorch.errors import StateError
from edgeorch.model import RunState, TaskState
from edgeorch.pipelines import resolve_params, validate_path
from edgeorch.store import Store
from engine_helpers import disk_full, until

PIPELINE = """
[tasks.a]
command = ["true"]

[tasks.b]
command = ["true"]
needs = ["a"]
"""

SLOW = """
[tasks.a]
command = ["sleep", "30"]

[tasks.b]
command = ["true"]
needs = ["a"]
"""


@contextlib.asynccontextmanager
async def running_engine(workspace: Any, name: str, text: str) -> AsyncIterator[Any]:
    """An engine started on ``workspace`` with pipeline ``name`` (``text``): yields ``(engine, store, pipeline,
    config)`` and closes both at the end."""
    workspace.pipeline(name, text)
    cfg = workspace.config()
    pipeline = validate_path(cfg.pipelines_dir).pipelines[name]
    store = Store(cfg.state_file)
    engine = Engine(cfg, store)
    await engine.start()
    try:
        yield engine, store, pipeline, cfg
    finally:
        await engine.close()
        store.close()


def test_an_attempt_end_that_cannot_be_recorded_leaves_memory_untouched(workspace):
    async def main() -> None:
        async with running_engine(workspace, "two", PIPELINE) as (engine, store, pipeline, _):
            store.attempts.finish = disk_full  # type: ignore[method-assign]
            run_id = engine.submit(pipeline, resolve_params(pipeline, {}))
            with pytest.raises(StateError):
                await asyncio.wait_for(engine.wait_run(run_id), 30)
            assert engine.fatal_error is not None
            ctx = engine.runs[run_id]
            assert ctx.states["a"] == TaskState.RUNNING  # not succeeded: that was never recorded
            assert ctx.states["b"] == TaskState.PENDING  # not ready
            assert ctx.unmet["b"] == 1
            live = [la for la in engine.live.values() if la.task == "a"]
            assert len(live) == 1, "the attempt stays live until its end is recorded"
            # Its process tree has ended: the slot and lease were given back before the commit was tried.
            assert engine.res is not None and live[0].attempt_id not in engine.res.held
            assert live[0].exited  # its end was read: what gave its slot back

    asyncio.run(main())


def test_a_cancel_that_cannot_be_recorded_changes_nothing(workspace):
    async def main() -> None:
        async with running_engine(workspace, "slow", SLOW) as (engine, store, pipeline, cfg):
            run_id = engine.submit(pipeline, resolve_params(pipeline, {}))
            ctx = engine.runs[run_id]
            await until(lambda: ctx.states["a"] == TaskState.RUNNING)
            real = store.runs.set_task_states
            store.runs.set_task_states = disk_full  # type: ignore[method-assign]
            with pytest.raises(StateError):
                engine.cancel(run_id, reason="cancelled by a test")
            assert not ctx.cancel_requested
            assert ctx.states["b"] == TaskState.PENDING
            assert all(la.stop_reason is None for la in engine.live.values())
            assert Store(cfg.state_file, readonly=True).runs.get(run_id)["state"] == RunState.RUNNING
            store.runs.set_task_states = real  # type: ignore[method-assign]
            engine.cancel(run_id, reason="cancelled by a test")
            assert await asyncio.wait_for(engine.wait_run(run_id), 30) == RunState.CANCELLED
            assert ctx.states["b"] == TaskState.CANCELLED

    asyncio.run(main())


def test_a_run_submitted_in_a_callers_transaction_is_held_only_once_that_commits(workspace):
    """A claim group starts its runs inside its own transaction: a run whose creation rolls back (the
    group's commit fails, or its file's savepoint) is never announced, held or dispatched; one that
    commits is held at the commit, not before."""
    from edgeorch.events import RunQueued

    async def main() -> None:
        async with running_engine(workspace, "two", PIPELINE) as (engine, store, pipeline, _):
            queued: list[int] = []
            engine.bus.subscribe(lambda e: queued.append(e.run_id), RunQueued)
            with pytest.raises(RuntimeError):
                with store.transaction():
                    lost = engine.submit(pipeline, resolve_params(pipeline, {}))
                    raise RuntimeError("the group's commit fails")
            assert lost not in engine.runs and queued == []
            assert store.runs.list(limit=10) == []
            with store.transaction():
                kept = engine.submit(pipeline, resolve_params(pipeline, {}))
                assert kept not in engine.runs and queued == []  # not yet durable
            assert kept in engine.runs and queued == [kept]
            assert await asyncio.wait_for(engine.wait_run(kept), 30) == RunState.SUCCEEDED
            assert engine.fatal_error is None

    asyncio.run(main())


INDEPENDENT = """
[tasks.a]
command = ["true"]

[tasks.c]
command = ["true"]

[tasks.b]
command = ["true"]
needs = ["a"]
"""


def test_the_next_ready_task_starts_before_an_outcome_is_committed(workspace):
    """At parallelism 1, a's end frees the slot at once: c (independent, ready) is started before a's outcome
    is committed; b (a's dependent) only after it; the run still ends with every task succeeded."""
    workspace.write_config(parallelism=1)

    async def main() -> None:
        async with running_engine(workspace, "three", INDEPENDENT) as (engine, store, pipeline, _):
            order: list[str] = []
            real_start, real_finish = store.attempts.start, store.attempts.finish

            def start(new, *a, **k):  # type: ignore[no-untyped-def]
                order.append(f"start {new.task}")
                return real_start(new, *a, **k)

            def finish(attempt_id, **k):  # type: ignore[no-untyped-def]
                order.append(f"finish {engine.live[attempt_id].task}")
                return real_finish(attempt_id, **k)

            store.attempts.start, store.attempts.finish = start, finish  # type: ignore[method-assign]
            run_id = engine.submit(pipeline, resolve_params(pipeline, {}))
            assert await asyncio.wait_for(engine.wait_run(run_id), 30) == RunState.SUCCEEDED
            first = order[0].split()[1]
            other = "c" if first == "a" else "a"
            # The second independent task starts before the first one's outcome is written.
            assert order[:3] == [f"start {first}", f"start {other}", f"finish {first}"], order
            assert order.index("start b") > order.index("finish a"), order
            assert engine.res is not None and not engine.res.held and not engine.live

    asyncio.run(main())


def test_a_run_nobody_waits_for_is_failed_without_a_never_retrieved_traceback(workspace, caplog):
    """A fail-stop failed every run's done future; one nobody awaited (a trigger's run) made asyncio log "Future
    exception was never retrieved" with a traceback when it was collected, once per run, after the daemon's own
    error line. Formatting that traceback inside another ``ast.parse`` (a collection can happen anywhere) broke the
    parse on Python 3.11 ("AST constructor recursion depth mismatch")."""
    import gc
    import logging

    async def main() -> None:
        async with running_engine(workspace, "two", PIPELINE) as (engine, store, pipeline, _):
            store.attempts.finish = disk_full  # type: ignore[method-assign]
            run_id = engine.submit(pipeline, resolve_params(pipeline, {}))  # nobody waits for it
            await asyncio.wait_for(engine.fatal_event.wait(), 30)
            with pytest.raises(StateError):  # a waiter that comes now still gets the error
                await engine.wait_run(run_id)

    async def unwaited() -> None:
        async with running_engine(workspace, "again", PIPELINE) as (engine, store, pipeline, _):
            store.attempts.finish = disk_full  # type: ignore[method-assign]
            engine.submit(pipeline, resolve_params(pipeline, {}))
            await asyncio.wait_for(engine.fatal_event.wait(), 30)

    caplog.set_level(logging.ERROR, logger="asyncio")
    asyncio.run(main())
    asyncio.run(unwaited())
    gc.collect()
    assert not [r for r in caplog.records if "never retrieved" in r.getMessage()]
