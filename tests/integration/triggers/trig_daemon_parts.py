"""The daemon's parts for a drop folder, in the test's process: a store, a started engine, the front door and the
drop folders (what ``edgeorch daemon`` wires, less the socket and the other services)."""

from __future__ import annotations

import asyncio
from typing import Any

from edgeorch.engine.engine import Engine
from edgeorch.engine.requests import RunRequests
from edgeorch.pipelines.registry import PipelineRegistry
from edgeorch.store import Store
from edgeorch.triggers.drop.service import DropFolders


async def daemon_parts(cfg: Any) -> tuple[Store, Engine, DropFolders]:
    """The store on ``cfg``'s state file, a started engine, the front door over the pipelines folder, and the drop
    folders publishing on the engine's bus. The caller stops the drop folders and closes the engine and store."""
    store = Store(cfg.state_file)
    engine = Engine(cfg, store)
    await engine.start()
    registry = PipelineRegistry(cfg.pipelines_dir)
    registry.reload()
    drops = DropFolders(store=store, requests=RunRequests(engine, registry.get), engine=engine,
                        registry=registry, config=cfg, loop=asyncio.get_running_loop(), publish=engine.bus.publish)
    return store, engine, drops
