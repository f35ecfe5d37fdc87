"""The engine's shutdown and cache bookkeeping under failures and cancels.

Real engine, real processes, real SQLite, real files.
"""

from __future__ import annotations

import asyncio

from edgeorch.engine.engine import Engine
from edgeorch.errors import StateError
from edgeorch.model import RunState
from edgeorch.pipelines import resolve_params, validate_path
from edgeorch.store import Store
from engine_helpers import disk_full, until

SLOW = """
[tasks.a]
command = ["sleep", "30"]
"""

BLOCKER = """
[tasks.hold]
command = ["sleep", "30"]
"""

CACHED = """
[tasks.make]
command = ["sh", "-c", "echo x > {output_dir}/out.txt"]
outputs = ["out.txt"]
cache = true
"""


def test_close_stopping_tasks_returns_when_the_engine_fails_while_waiting(workspace):
    """A fail-stop while close(stop_tasks=True) waits for the ends must not leave close() waiting forever."""
    workspace.pipeline("slow", SLOW)
    cfg = workspace.config()
    pipeline = validate_path(cfg.pipelines_dir).pipelines["slow"]

    async def main() -> None:
        store = Store(cfg.state_file)
        engine = Engine(cfg, store)
        await engine.start()
        try:
            engine.submit(pipeline, resolve_params(pipeline, {}))
            await until(lambda: any(la.pgid is not None for la in engine.live.values()))
            store.attempts.finish = disk_full  # type: ignore[method-assign]
            await asyncio.wait_for(engine.close(stop_tasks=True), 30)
            assert isinstance(engine.fatal_error, StateError)
        finally:
            store.close()

    asyncio.run(main())


def test_a_cache_miss_cancelled_before_its_start_is_forgotten(workspace):
    """A task whose cache hit was refused, cancelled while queued, leaves nothing in the engine's cache sets."""
    workspace.write_config(parallelism=1)
    workspace.pipeline("hold", BLOCKER)
    workspace.pipeline("cached", CACHED)
    cfg = workspace.config()
    pipes = validate_path(cfg.pipelines_dir).pipelines

    async def main() -> None:
        store = Store(cfg.state_file)
        engine = Engine(cfg, store)
        await engine.start()
        try:
            first = engine.submit(pipes["cached"], {})
            assert await asyncio.wait_for(engine.wait_run(first), 30) == RunState.SUCCEEDED
            (art,) = store.outputs.latest_artifacts(first, "make")
            with open(art["path"], "w") as f:
                f.write("changed\n")  # the recorded result no longer stands
            hold = engine.submit(pipes["hold"], {})
            await until(lambda: any(la.run_id == hold for la in engine.live.values()))
            second = engine.submit(pipes["cached"], {})
            tid = f"{second}/make"
            await until(lambda: tid in engine._cache_missed)  # verified as a miss, queued behind the blocker
            engine.cancel(second)
            assert await asyncio.wait_for(engine.wait_run(second), 30) == RunState.CANCELLED
            assert engine.runs.get(second) is None
            assert tid not in engine._cache_missed
            assert tid not in engine._cache_checks
            engine.cancel(hold)
            await asyncio.wait_for(engine.wait_run(hold), 30)
        finally:
            await engine.close(stop_tasks=True)
            store.close()

    asyncio.run(main())

