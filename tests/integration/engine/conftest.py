"""Run pipelines through a real engine (real zygote, shims, processes, SQLite)."""

from __future__ import annotations

import asyncio
from typing import Any, Callable

import pytest

from edgeorch.engine.engine import Engine
from edgeorch.model import RunState
from edgeorch.pipelines import resolve_params, validate_path
from edgeorch.store import Store


class EngineHarness:
    def __init__(self, ws) -> None:
        self.ws = ws
        self.events: list[dict[str, Any]] = []

    def store(self) -> Store:
        return Store(self.ws.config().state_file)

    def run(self, name: str, params: dict[str, Any] | None = None, *,
            during: Callable[[Engine, int], Any] | None = None, timeout: float = 60) -> tuple[int, RunState]:
        """Submit ``name`` and wait for the run; ``during(engine, run_id)`` may act meanwhile (async)."""
        cfg = self.ws.config()
        report = validate_path(cfg.pipelines_dir)
        assert report.ok, [e.render() for e in report.errors]
        pipeline = report.pipelines[name]

        async def main() -> tuple[int, RunState]:
            store = Store(cfg.state_file)
            engine = Engine(cfg, store)
            engine.bus.subscribe(lambda event: self.events.append(event.to_wire()))
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

    def run_many(self, name: str, count: int, *, timeout: float = 60) -> list[tuple[int, RunState]]:
        """Submit ``name`` ``count`` times in a row on one engine, each after the previous run finished."""
        cfg = self.ws.config()
        pipeline = validate_path(cfg.pipelines_dir).pipelines[name]

        async def main() -> list[tuple[int, RunState]]:
            store = Store(cfg.state_file)
            engine = Engine(cfg, store)
            engine.bus.subscribe(lambda event: self.events.append(event.to_wire()))
            await engine.start()
            out = []
            try:
                for _ in range(count):
                    run_id = engine.submit(pipeline, resolve_params(pipeline, {}))
                    out.append((run_id, await asyncio.wait_for(engine.wait_run(run_id), timeout)))
            finally:
                await engine.close()
                store.close()
            return out

        return asyncio.run(main())

    def resume(self, run_id: int, timeout: float = 60) -> tuple[list[str], RunState]:
        cfg = self.ws.config()

        async def main():
            store = Store(cfg.state_file)
            engine = Engine(cfg, store)
            engine.bus.subscribe(lambda event: self.events.append(event.to_wire()))
            await engine.start()
            try:
                redo = await engine.resume(run_id)
                state = await asyncio.wait_for(engine.wait_run(run_id), timeout)
            finally:
                await engine.close()
                store.close()
            return redo, state

        return asyncio.run(main())


@pytest.fixture
def harness(workspace) -> EngineHarness:
    return EngineHarness(workspace)


@pytest.fixture
def wait_for_file():
    return _wait_for_file


async def _wait_for_file(path, timeout: float = 20.0) -> None:
    """Await a file created by a task (a condition, polled on the loop; never a fixed sleep)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not path.exists():
        if loop.time() > deadline:
            raise AssertionError(f"{path} did not appear within {timeout}s")
        await asyncio.sleep(0.01)
