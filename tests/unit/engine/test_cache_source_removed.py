"""A cache hit whose source run is removed (``edgeorch gc``) while the hit is being verified becomes a plain miss.

Real engine, real processes, real SQLite, real files; the verification (in the hashing
worker) is held at a gate so the removal lands exactly between the lookup and the apply.
"""

from __future__ import annotations

import asyncio
import threading

import edgeorch.engine.engine as engine_module
from edgeorch.engine.engine import Engine
from edgeorch.model import RunState
from edgeorch.pipelines import validate_path
from edgeorch.store import Store
from engine_helpers import until

CACHED = """
[tasks.make]
command = ["sh", "-c", "echo x > {output_dir}/out.txt"]
outputs = ["out.txt"]
cache = true
"""


def test_a_hit_on_a_run_removed_during_its_verification_runs_the_task(workspace, monkeypatch):
    workspace.pipeline("cached", CACHED)
    cfg = workspace.config()
    pipeline = validate_path(cfg.pipelines_dir).pipelines["cached"]
    gate = threading.Event()
    real_intact = engine_module.intact

    def gated_intact(arts):
        assert gate.wait(30)
        return real_intact(arts)  # the files are still there: only the rows went

    async def main() -> None:
        store = Store(cfg.state_file)
        engine = Engine(cfg, store)
        await engine.start()
        try:
            first = engine.submit(pipeline, {})
            assert await asyncio.wait_for(engine.wait_run(first), 30) == RunState.SUCCEEDED
            monkeypatch.setattr(engine_module, "intact", gated_intact)
            second = engine.submit(pipeline, {})
            await until(lambda: f"{second}/make" in engine._cache_checks)
            removed, _ = store.retention.remove([first], actor="test", message="removed under a cache check")
            assert removed == [first]
            gate.set()
            assert await asyncio.wait_for(engine.wait_run(second), 30) == RunState.SUCCEEDED
            (task,) = store.runs.tasks_of(second)
            assert task["state"] == "succeeded" and task["cached_from"] is None and task["attempts"] == 1
            (art,) = store.outputs.latest_artifacts(second, "make")
            assert art["path"].startswith(store.runs.get(second)["run_dir"])  # its own output, not the removed run's
        finally:
            gate.set()
            await engine.close()
            store.close()

    asyncio.run(main())
