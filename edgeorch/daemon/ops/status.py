"""``status`` and ``resources``: what the daemon is doing and what this machine has."""

from __future__ import annotations

import os
import time
from collections.abc import Collection, Sequence
from typing import TYPE_CHECKING, Any, Callable

from ... import __version__
from ...store.schema import SCHEMA_VERSION
from .base import OpSpec

if TYPE_CHECKING:  # pragma: no cover
    from ...config import Config
    from ...control import Peer
    from ...engine.engine import Engine
    from ...errors import EdgeorchError
    from ...pipelines import PipelineRegistry
    from ...store import Store


def status_line(engine: "Engine") -> str:
    """The one-line status systemd shows (``STATUS=``)."""
    return f"{len(engine.live)} running, {engine.waiting()} waiting, {len(engine.runs)} active run(s)"


def resources_summary(engine: "Engine", config: "Config") -> dict[str, Any]:
    """The short form of the ``resources`` op for ``status`` (counts, not the per-task lists)."""
    rep = engine.resources_report(queue=False)  # counts only: not every waiting task's reason
    return {"parallelism": config.engine.parallelism, "slots_in_use": len(engine.live),
            "cpus": len(rep["cpus"]["cores"]), "cpus_free": rep["cpus"]["free"],
            "gpus": len(rep["gpus"]), "gpu_backend": rep["gpu_backend"],
            "drained": {g["uuid"]: g["drained"] for g in rep["gpus"] if g["drained"]},
            "leases": len(rep["leases"]), "waiting": engine.waiting(),
            "memory_enforcement": rep["memory"]["enforcement"]}


class StatusOps:
    """``status`` and ``resources``.

    ``config``: paths and ``[engine]`` (fixed for the daemon's life); ``store``: run counts and pauses;
    ``engine``: live work and the resource report; ``registry``: loaded pipelines and their errors;
    ``started_at``: the daemon's start (epoch seconds); ``clients``: how many clients are connected now;
    ``watch_errors``: the drop folders that are not watched and why (a bad ``[[watch]]`` table, a folder gone).
    """

    OPS = (
        OpSpec("status", "status", "read", "daemon uptime, queue, running tasks, resources"),
        OpSpec("resources", "resources", "read",
               "cores, memory, GPUs with live readings, who holds what, the queue with each task's reason"),
    )

    def __init__(self, *, config: "Config", store: "Store", engine: "Engine", registry: "PipelineRegistry",
                 started_at: float, clients: Callable[[], int],
                 watch_errors: Callable[[], Sequence["EdgeorchError"]] = tuple,
                 rules_loaded: Callable[[], Collection[str]] | None = None,
                 refused_fires: Callable[[], dict[str, dict[str, str]]] | None = None) -> None:
        self.refused_fires = refused_fires
        self.config = config
        self.watch_errors = watch_errors
        self.rules_loaded = rules_loaded
        self.store = store
        self.engine = engine
        self.registry = registry
        self.started_at = started_at
        self.clients = clients

    async def status(self, args: dict[str, Any], peer: "Peer") -> dict[str, Any]:
        engine, config = self.engine, self.config
        counts = self.store.runs.counts()
        retries = engine.retry_waits()  # tasks between attempts: neither running nor waiting for a slot
        return {
            "version": __version__, "schema": SCHEMA_VERSION, "pid": os.getpid(), "started_at": self.started_at,
            "uptime_s": round(time.time() - self.started_at, 3), "state_file": str(config.state_file),
            "socket": str(config.socket_path), "config": str(config.source) if config.source else None,
            "runs": {"active": len(engine.runs), "total_by_state": counts},
            "tasks": {"running": len(engine.live), "ready": engine.waiting(), "retry_wait": len(retries),
                      "next_retry_at": retries[0] if retries else None},
            "parallelism": config.engine.parallelism,
            "pipelines": len(self.registry.by_file), "paused": sorted(self.store.pipelines.paused()),
            "pipeline_errors": [e.render() for e in self.registry.errors],
            # Why a drop folder is not watched: a file dropped there waits for nothing (only `inputs` said it).
            "watch_errors": [e.one_line() for e in self.watch_errors()],
            "resources": resources_summary(engine, config),
            "clients": self.clients(),
            "attention": self._attention(),
        }

    def _attention(self) -> dict[str, Any]:
        """What a person at 3 a.m. needs to know from `status` (it said nothing of a rollback, a firing rule, a
        promotion block, or a state file it could not write): writes of the state file failing since when (a full
        disk), the rules firing, the blocks in force, the deployments under way. Small tables, read whole."""
        store = self.store
        failing = store.db.write_failing
        loaded = self.rules_loaded() if self.rules_loaded is not None else None
        return {"state_writes_failing": {"since": failing[0], "error": failing[1]} if failing else None,
                # Of the rules loaded now: a removed rule's last state stays in the state file, and `status` said it
                # fired on, while `edgeorch monitors` (the loaded rules) did not list it.
                "rules_firing": sorted(r["rule"] for r in store.rules.all() if r.get("state") == "firing"
                                       and (loaded is None or r["rule"] in loaded)),
                "schedules_refused": [{"pipeline": name, **r} for name, r in
                                      sorted((self.refused_fires() if self.refused_fires else {}).items())],
                "promotions_blocked": [{"model": b["model"], "rule": b["rule"]} for b in store.models.open_blocks()],
                "deployments_open": [{"id": d["id"], "model": d["model"], "alias": d["alias"], "state": d["state"]}
                                     for d in store.models.deployments(open_only=True, limit=20)]}

    async def resources(self, args: dict[str, Any], peer: "Peer") -> dict[str, Any]:
        """See :meth:`edgeorch.engine.engine.Engine.resources_report` (``queue`` lists waiting tasks with reasons)."""
        return self.engine.resources_report()
