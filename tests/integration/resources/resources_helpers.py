"""Helpers of the resources integration tests (imported by name: the test folders are not packages)."""

from __future__ import annotations

import asyncio
import textwrap
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from edgeorch.engine.engine import Engine
from edgeorch.pipelines import validate_path
from edgeorch.store import Store

GPU_A = "GPU-11111111-2222-3333-4444-555555555555"


def fake_gpus(ws, memory: str = "10G") -> Path:
    """A one-GPU fake device table and a config using it (parallelism 3)."""
    table = ws.root / "gpus.toml"
    table.write_text(textwrap.dedent(f"""\
        [[gpu]]
        uuid = "{GPU_A}"
        name = "NVIDIA A100-SXM4-80GB"
        memory = "{memory}"
        numa_node = 0
        """))
    ws.write_config(f"""
        [resources]
        gpu_backend = "fake"
        fake_gpus = "{table}"
        """, parallelism=3)
    return table


def run_engine(ws, body: Callable[[Engine, dict[str, Any]], Awaitable[Any]], timeout: float = 30) -> Any:
    """Start a real engine on the workspace, run ``body(engine, pipelines)``, close it."""
    cfg = ws.config()
    report = validate_path(cfg.pipelines_dir)
    assert report.ok, [e.render() for e in report.errors]

    async def main() -> Any:
        store = Store(cfg.state_file)
        engine = Engine(cfg, store)
        await engine.start()
        try:
            return await asyncio.wait_for(body(engine, report.pipelines), timeout)
        finally:
            await engine.close()
            store.close()

    return asyncio.run(main())


async def until(cond: Callable[[], Any], timeout: float = 20.0, what: str = "condition") -> Any:
    """Await ``cond()`` becoming truthy (polled on the loop; a condition, never a fixed sleep)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        got = cond()
        if got:
            return got
        if loop.time() > deadline:
            raise AssertionError(f"{what} not reached within {timeout}s")
        await asyncio.sleep(0.01)
