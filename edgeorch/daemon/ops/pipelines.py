"""``pipelines.*`` and ``reload``: the loaded pipelines, validating files, pausing, re-reading the folder."""

from __future__ import annotations

import asyncio
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Awaitable, Callable, Mapping, Protocol

from ...events import Event, PipelinePaused
from ...pipelines import MAX_PIPELINE_BYTES, load_pipeline_bytes, pipeline_document, pipeline_summary, validate_path
from .base import OpSpec, actor_of, arg

if TYPE_CHECKING:  # pragma: no cover
    from ...control import Peer
    from ...engine.engine import Engine
    from ...model import Pipeline
    from ...pipelines import PipelineRegistry
    from ...store import Store


class Schedules(Protocol):
    """What the list shows of the trigger service: each pipeline's schedule and next fire."""

    @property
    def specs(self) -> Mapping[str, Any]: ...  # read-only: the ops only read it

    def next_fire(self, pipeline: str) -> datetime | None: ...

    def next_start(self, pipeline: str) -> datetime | None: ...

    def fire_held(self, pipeline: str) -> bool: ...

    def fire_refused(self, pipeline: str) -> dict[str, str] | None: ...


def refusals(engine: "Engine", pipeline: "Pipeline") -> list[tuple[str, str]]:
    """``(task, why)`` for each task of ``pipeline`` this machine can never serve (the front door refuses its runs)."""
    res = engine.res if engine is not None else None
    return [] if res is None else list(res.check_pipeline(pipeline))


class PipelineOps:
    """``pipelines.list/show/validate/pause/resume`` and ``reload``.

    ``registry``: the loaded pipelines; ``store``: pauses; ``engine``: which tasks this machine can
    serve; ``schedules``: next fires (the trigger service); ``pipelines_dir``: what ``validate`` checks
    without arguments; ``publish``: pause/resume events; ``reload``: the daemon's reload (config access
    lists and the folder), awaited with the peer as actor.
    """

    OPS = (
        OpSpec("pipelines.list", "pipelines_list", "read", "pipelines with their state"),
        OpSpec("pipelines.show", "pipelines_show", "read", "one pipeline's definition", args=("name",)),
        OpSpec("pipelines.validate", "pipelines_validate", "read", "validate a file or the folder",
               args=("text", "path", "name")),
        OpSpec("pipelines.pause", "pipelines_pause", "act", "refuse new runs of a pipeline", args=("name", "reason")),
        OpSpec("pipelines.resume", "pipelines_resume", "act", "accept runs of a paused pipeline again",
               args=("name", "reason")),
        OpSpec("reload", "reload", "act", "reload config access lists and pipelines"),
    )

    def __init__(self, *, registry: "PipelineRegistry", store: "Store", engine: "Engine", schedules: Schedules,
                 pipelines_dir: Path, publish: Callable[[Event], None],
                 reload: Callable[..., Awaitable[dict[str, Any]]]) -> None:
        self.registry = registry
        self.store = store
        self.engine = engine
        self.schedules = schedules
        self.pipelines_dir = pipelines_dir
        self.publish = publish
        self._reload = reload

    async def pipelines_list(self, args: dict[str, Any], peer: "Peer") -> dict[str, Any]:
        paused = self.store.pipelines.paused()
        items = []
        for name, p in self.registry.pipelines.items():
            # A paused pipeline fires nothing: it has no next fire to show.
            nf = self.schedules.next_fire(name) if name not in paused else None
            sched = self.schedules.specs.get(name)
            # When its run starts: the fire time plus the schedule's jitter (a jittered fire showed a time passed
            # minutes before its run started).
            ns = self.schedules.next_start(name) if nf is not None else None
            item = pipeline_summary(p, pauses=paused, next_fire=nf.isoformat() if nf is not None else None,
                                    next_start=ns.isoformat() if ns is not None else None,
                                    schedule=sched.describe() if sched is not None else None,
                                    refusals=refusals(self.engine, p), stale=self.registry.stale(name))
            # A fire held by on_max_active = "wait": due (its time may be past), it starts when a run ends.
            item["fire_held"] = nf is not None and self.schedules.fire_held(name)
            item["fire_refused"] = self.schedules.fire_refused(name)  # its last fire, refused: none started since
            items.append(item)
        return {"pipelines": items, "errors": [e.to_dict() for e in self.registry.errors]}

    async def pipelines_show(self, args: dict[str, Any], peer: "Peer") -> dict[str, Any]:
        return pipeline_document(self.registry.get(arg(args, "name", str)))

    async def pipelines_validate(self, args: dict[str, Any], peer: "Peer") -> dict[str, Any]:
        """``text`` (+ ``name``): that content; ``path``: a regular file the client could read itself
        (control/peerfiles.py); neither: the daemon's pipelines folder. Work runs on the peer executor,
        never the default one that claims dropped files."""
        from ...control.peerfiles import PEER_IO, read_for_peer_async

        loop = asyncio.get_running_loop()
        text = arg(args, "text", str, required=False)
        path = arg(args, "path", str, required=False)
        if text is None and path is None:
            report = await loop.run_in_executor(PEER_IO, validate_path, self.pipelines_dir)
            return {"ok": report.ok, "pipelines": sorted(report.pipelines), "errors": [e.to_dict() for e in report.errors]}
        if text is not None:
            raw, file = text.encode("utf-8"), Path(arg(args, "name", str, required=False, default="pipeline.toml"))
        else:
            raw, file = await read_for_peer_async(path, peer, MAX_PIPELINE_BYTES), Path(path)
        pipe, errors = await loop.run_in_executor(PEER_IO, load_pipeline_bytes, raw, file)
        return {"ok": not errors, "pipelines": [pipe.name] if pipe is not None else [],
                "errors": [e.to_dict() for e in errors]}

    async def pipelines_pause(self, args: dict[str, Any], peer: "Peer") -> dict[str, Any]:
        p = self.registry.get(arg(args, "name", str))
        reason = arg(args, "reason", str, required=False)
        before = self.store.pipelines.paused().get(p.name)
        if before is not None and before["reason"] == reason:  # paused already, for that reason: nothing recorded
            return {"name": p.name, "paused": True, "inputs_started": 0, "changed": False}
        self.store.pipelines.set_paused(p.name, True, reason=reason, actor=actor_of(peer))
        self.publish(PipelinePaused(self.engine.clock(), p.name, True, actor_of(peer), reason))
        return {"name": p.name, "paused": True, "inputs_started": 0, "changed": True}  # paused now, or reason replaced

    async def pipelines_resume(self, args: dict[str, Any], peer: "Peer") -> dict[str, Any]:
        p = self.registry.get(arg(args, "name", str))
        if p.name not in self.store.pipelines.paused():  # nothing to resume: nothing recorded ("resumed" was said)
            return {"name": p.name, "paused": False, "inputs_started": 0, "changed": False}
        waiting = len(self.store.inputs.waiting(p.name))  # the drop folders start them on the event below
        self.store.pipelines.set_paused(p.name, False, reason=None, actor=actor_of(peer))
        self.publish(PipelinePaused(self.engine.clock(), p.name, False, actor_of(peer)))
        return {"name": p.name, "paused": False, "inputs_started": waiting, "changed": True}

    async def reload(self, args: dict[str, Any], peer: "Peer") -> dict[str, Any]:
        return await self._reload(actor=actor_of(peer))
