"""The engine publishes typed events on its injected bus, stamped by its injected clock.

Real engine, real process, real SQLite; the clock is a fake that never reads
the wall clock, so every ``ts`` must be one of its readings.
"""

from __future__ import annotations

import asyncio
import itertools

from edgeorch import events as ev
from edgeorch.engine.engine import Engine
from edgeorch.model import RunState
from edgeorch.pipelines import resolve_params, validate_path
from edgeorch.store import Store

PIPELINE = """
[tasks.a]
command = ["true"]
"""

EPOCH = 1_000_000_000.0  # 2001: far from any real "now"


def test_engine_events_carry_the_injected_clocks_time_and_reach_the_bus_despite_a_broken_subscriber(workspace):
    workspace.pipeline("one", PIPELINE)
    cfg = workspace.config()
    pipeline = validate_path(cfg.pipelines_dir).pipelines["one"]
    ticks = itertools.count()
    readings: list[float] = []

    def clock() -> float:
        readings.append(EPOCH + next(ticks) * 0.001)
        return readings[-1]

    async def main() -> tuple[int, RunState, list[ev.Event]]:
        bus = ev.Bus()
        got: list[ev.Event] = []
        bus.subscribe(lambda e: 1 / 0)  # a broken subscriber: logged, never breaks the engine
        bus.subscribe(got.append)
        store = Store(cfg.state_file)
        engine = Engine(cfg, store, clock=clock, bus=bus)
        await engine.start()
        try:
            run_id = engine.submit(pipeline, resolve_params(pipeline, {}))
            state = await asyncio.wait_for(engine.wait_run(run_id), 30)
        finally:
            await engine.close()
            store.close()
        return run_id, state, got

    run_id, state, got = asyncio.run(main())
    assert state == RunState.SUCCEEDED
    assert [type(e) for e in got] == [ev.RunQueued, ev.RunStarted, ev.TaskStarted, ev.AttemptEnded, ev.RunFinished]
    assert all(e.ts in readings for e in got), [e.ts for e in got]
    assert [e.ts for e in got] == sorted(e.ts for e in got)
    end = got[-1]
    assert isinstance(end, ev.RunFinished)
    assert end.to_wire() == {"kind": "run", "run_id": run_id, "pipeline": "one", "state": "succeeded",
                             "reason": end.reason, "ts": end.ts}
