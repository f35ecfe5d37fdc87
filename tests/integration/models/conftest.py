"""Models through real engines, daemons and files: fixtures shared by this folder's tests."""

from __future__ import annotations

import asyncio
import textwrap
from typing import Any

import pytest

from edgeorch.engine.engine import Engine
from edgeorch.model import RunState
from edgeorch.models.service import ModelService
from edgeorch.pipelines import resolve_params, validate_path
from edgeorch.store import Store

TRAIN = textwrap.dedent('''\
    import json, os, sys
    out = os.environ["EDGEORCH_OUTPUT_DIR"]
    rmse = float(sys.argv[1])
    with open(os.path.join(out, "model.bin"), "w") as f:
        f.write(f"model with rmse {rmse}\\n")
    with open(os.path.join(out, "metrics.json"), "w") as f:
        json.dump({"rmse": rmse, "r2": 1 - rmse / 100}, f)
    ''')


def write_model_pipeline(ws, *, gates: str = '["rmse <= 50", "rmse <= champion.rmse + 1"]', extra: str = "",
                   deploy: str = "", name: str = "trainer") -> None:
    """A pipeline whose task writes model.bin and metrics.json (rmse from the param) and registers it as `house`."""
    (ws.root / "train.py").write_text(TRAIN)
    ws.pipeline(name, f'''
        name = "{name}"
        [params]
        rmse = 30.0
        [tasks.train]
        command = ["python", "{ws.root / 'train.py'}", "{{rmse}}"]
        outputs = ["model.bin", "metrics.json"]
        model = {{ name = "house", path = "model.bin", metrics = "metrics.json" }}
        [models.house]
        metrics = ["rmse", "r2"]
        gates = {gates}
        {extra}
        [models.house.deploy]
        dir = "{ws.root / 'serving'}"
        {deploy}
        ''')


class ModelHarness:
    """Runs pipelines in a real engine (zygote, shims, SQLite) and, after each run, settles the models' deployments
    as an in-process ``edgeorch run`` does."""

    def __init__(self, ws) -> None:
        self.ws = ws
        self.events: list[dict[str, Any]] = []

    def store(self) -> Store:
        return Store(self.ws.config().state_file)

    def run(self, name: str, params: dict[str, Any] | None = None, *, timeout: float = 60) -> tuple[int, RunState]:
        cfg = self.ws.config()
        report = validate_path(cfg.pipelines_dir)
        assert report.ok, [e.render() for e in report.errors]
        pipeline = report.pipelines[name]

        async def main() -> tuple[int, RunState]:
            store = Store(cfg.state_file)
            engine = Engine(cfg, store)
            engine.bus.subscribe(lambda event: self.events.append(event.to_wire()))
            models = ModelService(store, serving_dir=cfg.state_dir / "serving", publish=engine.bus.publish,
                                  clock=engine.clock)
            engine.bus.subscribe(models.on_event)
            await engine.start()
            await models.start()
            try:
                run_id = engine.submit(pipeline, resolve_params(pipeline, params or {}))
                state = await asyncio.wait_for(engine.wait_run(run_id), timeout)
                await asyncio.wait_for(models.drain(), timeout)
            finally:
                await models.close()
                await engine.close()
                store.close()
            return run_id, state

        return asyncio.run(main())

    def models(self, action):
        """``await action(service)`` with a ModelService on the state file (as an offline ``edgeorch models``)."""
        cfg = self.ws.config()

        async def main():
            store = Store(cfg.state_file)
            service = ModelService(store, serving_dir=cfg.state_dir / "serving",
                                   publish=lambda e: self.events.append(e.to_wire()), clock=store.clock)
            try:
                await service.start()
                return await action(service)
            finally:
                await service.close()
                store.close()

        return asyncio.run(main())


@pytest.fixture
def harness(workspace) -> ModelHarness:
    return ModelHarness(workspace)


@pytest.fixture
def model_pipeline():
    """:func:`write_model_pipeline` (a fixture: conftest modules cannot be imported by name across the tree)."""
    return write_model_pipeline
