"""The engine's side of the resources layer: inventory, leases held, the ready queue, the watcher.

One :class:`Admission` per engine, used only on the engine's event loop (the
one-writer rule). It owns no processes and writes no SQL: the engine records
each lease with the attempt (``store.attempts.start(new, lease.to_dict())``)
and releases it with the outcome (``store.attempts.finish``).

Call sequence (see ``edgeorch/engine/engine.py``):

1. ``Admission.open(cfg.resources)`` at engine start: GPU backend (its
   message logged once), CPU inventory, cgroup support; ``seed_durations``
   from the attempts table (one query).
2. ``check_pipeline(pipeline)`` at submit: requests no state of this machine
   could satisfy are refused with their reason.
3. ``push`` when a task becomes ready; ``decide(now, max_parallel)`` once per
   dispatch pass (not per task); the engine starts each ``(task, lease)``,
   ``remove``-s it from the queue and ``grant``-s the lease to the attempt.
4. ``release`` when the attempt ends; ``observe`` its duration on success.
5. ``watch(pids_of)`` every :data:`WATCH_INTERVAL_S` while a GPU backend exists
   and GPU leases are held (never otherwise: an idle daemon does not poll).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..config import ResourcesConfig
from . import memory as cgroups
from .allocator import Capacity, _fmt, never_satisfiable
from .cpus import available_memory, format_cpu_list, read_inventory
from .gpus import GpuBackend, open_gpu_backend
from .model import GpuBackendError, GpuProcess, Inventory, Lease, ResourceRequest
from .policy import Decision, DurationModel, ReadyQueue, ReadyTask, Running, decide
from .watcher import BudgetAction, check_budgets, drains_from_events, lease_usage

log = logging.getLogger("edgeorch.resources")

WATCH_INTERVAL_S = 5.0
"""Seconds between two GPU watcher checks while GPU leases are held."""

EMPTY = ResourceRequest()


def request_of(spec: Any) -> ResourceRequest:
    """The :class:`ResourceRequest` of a :class:`~edgeorch.model.TaskSpec` (validated there)."""
    if not (spec.cpus or spec.memory or spec.gpus or spec.gpu_memory or spec.gpu_model or spec.pool):
        return EMPTY  # one shared object: plain tasks all land in one bucket per pipeline
    return ResourceRequest(cpus=spec.cpus, memory=spec.memory or 0, gpus=spec.gpus, gpu_memory=spec.gpu_memory or 0,
                           gpu_model=spec.gpu_model, pool=spec.pool)


def holds_anything(lease: Lease) -> bool:
    """True when a lease claims something others must not get (cores, memory, GPUs, a pool slot)."""
    return bool(lease.cpus or lease.memory or lease.gpus or lease.pool)


@dataclass
class Held:
    """A lease held by one live attempt."""

    attempt_id: int
    run_id: int
    task: str
    running: Running
    granted_at: float
    cgroup: str | None = None


@dataclass
class Admission:
    """See the module docstring."""

    cfg: ResourcesConfig
    inventory: Inventory = field(default_factory=Inventory)
    backend: GpuBackend | None = None
    backend_message: str = ""
    cgroup: cgroups.CgroupSupport = field(default_factory=lambda: cgroups.CgroupSupport(False, None, "not checked"))
    durations: DurationModel = field(default_factory=DurationModel)
    queue: ReadyQueue = field(default_factory=ReadyQueue)
    held: dict[int, Held] = field(default_factory=dict)
    drained: dict[str, str] = field(default_factory=dict)
    gpu_used_by_leases: dict[str, int] = field(default_factory=dict)
    warned: set[int] = field(default_factory=set)
    queued_live: int = 0
    """Queued tasks asking for memory or a GPU: only then are live readings taken at a decision."""
    seq: int = 0
    _own_cpus: int = field(default_factory=lambda: len(os.sched_getaffinity(0)))

    # -- start ---------------------------------------------------------------------

    @classmethod
    def open(cls, cfg: ResourcesConfig, *, prepare_cgroup: bool = True) -> Admission:
        """Detect the hardware; raises ConfigError/ResourceError/GpuBackendError on a bad config.

        ``prepare_cgroup`` moves this process into its delegated cgroup's
        ``daemon`` leaf (the engine does; a CLI only looking must not).
        """
        backend, msg = open_gpu_backend(cfg)
        log.info("GPUs: %s", msg)
        inventory = read_inventory(cfg.reserved_cpus, backend.devices() if backend else ())
        support = cgroups.detect()
        if support.enforced and prepare_cgroup:
            try:
                cgroups.prepare(support)
            except OSError as exc:
                support = cgroups.CgroupSupport(False, None, f"memory limits not enforced: cannot prepare "
                                                f"{support.path}: {exc.strerror}")
        return cls(cfg, inventory, backend, msg, support)

    def close(self) -> None:
        if self.backend is not None:
            self.backend.close()

    @property
    def cpu_only_reason(self) -> str | None:
        return None if self.backend is not None else self.backend_message

    @property
    def all_cores(self) -> tuple[int, ...]:
        return tuple(c.id for c in self.inventory.cpus)

    def seed_durations(self, rows: Iterable[tuple[str, str, float]]) -> None:
        """Fold past successful attempts ``(pipeline, task, seconds)`` in, oldest first."""
        for pipeline, task, seconds in rows:
            self.durations.observe(f"{pipeline}/{task}", seconds)

    # -- validation ------------------------------------------------------------------

    def never(self, req: ResourceRequest) -> str | None:
        """Why ``req`` can never be granted on this machine (None: it can)."""
        if req is EMPTY:
            return None
        return never_satisfiable(req, self.inventory, self.cfg.pools, cpu_only_reason=self.cpu_only_reason)

    def check_pipeline(self, pipeline: Any) -> list[tuple[str, str]]:
        """``(task, reason)`` for every task of ``pipeline`` whose request is never satisfiable."""
        out = []
        for name, spec in pipeline.tasks.items():
            why = self.never(request_of(spec))
            if why is not None:
                out.append((name, why))
        return out

    # -- queue -------------------------------------------------------------------------

    def push(self, task_id: str, req: ResourceRequest, pipeline: str, priority: int, critical_path: float,
             duration: float) -> None:
        self.seq += 1
        self.queue.add(ReadyTask(task_id, req, pipeline, priority, critical_path, duration, self.seq))
        if req.memory or req.wants_gpu:
            self.queued_live += 1

    def remove(self, task_id: str) -> ReadyTask | None:
        if task_id not in self.queue:
            return None
        t = self.queue.remove(task_id)
        if t.request.memory or t.request.wants_gpu:
            self.queued_live -= 1
        return t

    def _gpu_free(self) -> dict[str, int] | None:
        if self.backend is None:
            return None
        out = {}
        for d in self.inventory.gpus:
            try:
                out[d.uuid] = self.backend.reading(d.uuid).memory_free
            except GpuBackendError as exc:
                # A GPU that cannot be read gets nothing new; a lost one is drained for good.
                out[d.uuid] = 0
                if exc.nvml_code == 15 and d.uuid not in self.drained:
                    self.drained[d.uuid] = "GPU has fallen off the bus"
        return out

    def decide(self, now: float, *, parallelism: int, max_parallel: Mapping[str, int]) -> Decision:
        """One scheduling decision over the whole queue (pure policy; readings taken here only when needed).

        Live readings (NVML free memory, health events, MemAvailable) are taken
        only when a queued task asks for memory or a GPU, so the plain-task
        path costs one :func:`decide` over a handful of buckets.
        """
        live = self.queued_live > 0
        gpu_free = None
        host = None
        if live:
            if self.backend is not None:
                self.poll_health()
                gpu_free = self._gpu_free()
            host = available_memory() or None
        return decide(self.queue, self.inventory, [h.running for h in self.held.values()], now=now,
                      gpu_free=gpu_free, gpu_lease_used=self.gpu_used_by_leases if live else None,
                      drained=self.drained, pools=self.cfg.pools, max_parallel=max_parallel,
                      parallelism=parallelism, cpu_only_reason=self.cpu_only_reason, host_available=host)

    # -- leases ------------------------------------------------------------------------

    def grant(self, attempt_id: int, run_id: int, task: str, lease: Lease, pipeline: str, expected_end: float,
              granted_at: float, cgroup: str | None = None) -> None:
        self.held[attempt_id] = Held(attempt_id, run_id, task, Running(lease, pipeline, expected_end), granted_at,
                                     cgroup)

    def release(self, attempt_id: int) -> Held | None:
        h = self.held.pop(attempt_id, None)
        self.warned.discard(attempt_id)
        if h is not None and h.cgroup:
            try:
                cgroups.remove_child(Path(h.cgroup))
            except OSError as exc:  # still busy (a stray process): leave it, say so
                log.warning("cannot remove cgroup %s: %s", h.cgroup, exc.strerror)
        return h

    def shared_affinity(self, lease: Lease) -> list[int] | None:
        """The cores to pin an attempt to; None keeps the daemon's own mask (nothing to restrict)."""
        if lease.cpus:
            return list(lease.cpus)
        if not lease.affinity or len(lease.affinity) == self._own_cpus:
            return None
        return list(lease.affinity)

    def memory_note(self, lease: Lease) -> str | None:
        """How a lease's memory claim is enforced, for the start event (None: no claim)."""
        if not lease.memory:
            return None
        if not self.cgroup.enforced:
            return f"memory {_fmt(lease.memory)} admission-checked, not enforced ({self.cgroup.message})"
        return f"memory {_fmt(lease.memory)} enforced by cgroup memory.max"

    def memory_cgroup(self, attempt_id: int, lease: Lease) -> tuple[str | None, str | None]:
        """(cgroup folder, None) for a lease with a memory claim where enforced; (None, why) when creating it failed.

        (None, None) when there is no claim or limits are not enforced here
        (:meth:`memory_note` already says so).
        """
        if not lease.memory or not self.cgroup.enforced:
            return None, None
        try:
            path = cgroups.create_child(self.cgroup, str(attempt_id), lease.memory)
        except OSError as exc:
            return None, f"memory {_fmt(lease.memory)} admission-checked, not enforced (cgroup: {exc.strerror})"
        return (str(path) if path else None), None

    @property
    def gpu_leases_held(self) -> bool:
        return any(h.running.lease.gpus for h in self.held.values())

    # -- watcher -----------------------------------------------------------------------

    def poll_health(self) -> dict[str, str]:
        """Health events → newly drained GPUs (UUID → reason), already added to :attr:`drained`."""
        if self.backend is None:
            return {}
        try:
            events = self.backend.poll_health(0)
        except GpuBackendError as exc:
            log.warning("GPU health poll failed: %s", exc.message)
            return {}
        new = drains_from_events(events, self.drained)
        self.drained.update(new)
        return new

    def watch(self, pids_of: Mapping[int, Iterable[int]]) -> tuple[list[tuple[int, BudgetAction]], dict[str, str]]:
        """One watcher check: budget actions ``(attempt_id, action)`` and newly drained GPUs.

        ``pids_of`` maps attempt ids to the pids of their process trees. A
        ``warn`` action is returned once per attempt.
        """
        drains = self.poll_health()
        if self.backend is None:
            return [], drains
        gpu_held = {aid: h for aid, h in self.held.items() if h.running.lease.gpus}
        uuids = sorted({u for h in gpu_held.values() for u in h.running.lease.gpus})
        procs: list[GpuProcess] = []
        for u in uuids:
            try:
                procs.extend(self.backend.processes(u))
            except GpuBackendError:
                continue
        by_holder = {h.running.lease.holder: aid for aid, h in gpu_held.items()}
        holder_pids = {h.running.lease.holder: list(pids_of.get(aid, ())) for aid, h in gpu_held.items()}
        leases = [h.running.lease for h in gpu_held.values()]
        self.gpu_used_by_leases = lease_usage(leases, procs, holder_pids)
        actions = []
        for a in check_budgets(leases, procs, holder_pids, self.cfg.gpu_memory_policy):
            aid = by_holder[a.holder]
            if a.action == "warn":
                if aid in self.warned:
                    continue
                self.warned.add(aid)
            actions.append((aid, a))
        return actions, drains

    # -- reporting -----------------------------------------------------------------------

    def readings(self) -> list[dict[str, Any]]:
        """Per GPU: inventory facts, live readings (or the error), drained reason."""
        out = []
        for d in self.inventory.gpus:
            item: dict[str, Any] = {
                "uuid": d.uuid, "name": d.name, "memory_total": d.memory_total, "index": d.index,
                "compute_capability": ".".join(map(str, d.compute_capability)), "numa_node": d.numa_node,
                "parent": d.parent, "drained": self.drained.get(d.uuid),
            }
            if self.backend is not None:
                try:
                    r = self.backend.reading(d.uuid)
                    item.update(memory_free=r.memory_free, memory_used=r.memory_used, utilization=r.utilization_gpu,
                                temperature=r.temperature, ecc_uncorrected=r.ecc_uncorrected,
                                retired_pages=r.retired_pages)
                except GpuBackendError as exc:
                    item["error"] = exc.message
            out.append(item)
        return out

    def report(self, now: float, *, parallelism: int, max_parallel: Mapping[str, int]) -> dict[str, Any]:
        """JSON-ready state for ``edgeorch resources``: cores, memory, GPUs, leases, queue with reasons."""
        cap = Capacity(self.inventory, (h.running.lease for h in self.held.values()), drained=self.drained,
                       pools=self.cfg.pools)
        leased = {c: h for h in self.held.values() for c in h.running.lease.cpus}
        decision = decide(self.queue, self.inventory, [h.running for h in self.held.values()], now=now,
                          drained=self.drained, pools=self.cfg.pools, max_parallel=max_parallel,
                          parallelism=parallelism, cpu_only_reason=self.cpu_only_reason)
        queue = []
        for t in sorted((self.queue.get(tid) for b in self._buckets() for _, tid in b.entries),
                        key=lambda t: (-t.priority, -t.critical_path, t.seq)):  # type: ignore[union-attr]
            assert t is not None
            why = decision.reason(self.queue, t.id)
            unsat = next((r for u, r in decision.unsatisfiable if u.id == t.id), None)
            queue.append({"task": t.id, "pipeline": t.pipeline, "priority": t.priority,
                          "critical_path_s": round(t.critical_path, 1), "predicted_s": round(t.duration, 1),
                          "request": _request_dict(t.request),
                          "reason": unsat or (why.message if why else "starting now"),
                          "reason_kind": "unsatisfiable" if unsat else (why.kind if why else "starting")})
        return {
            "cpus": {"usable": format_cpu_list(self.all_cores), "reserved": list(self.cfg.reserved_cpus),
                     "free": format_cpu_list(cap.free_cores),
                     "cores": [{"id": c.id, "numa_node": c.numa_node,
                                "held_by": leased[c.id].running.lease.holder if c.id in leased else None}
                               for c in self.inventory.cpus]},
            "memory": {"available_at_start": self.inventory.memory_available, "available_now": available_memory(),
                       "leased": sum(h.running.lease.memory for h in self.held.values()),
                       "enforcement": self.cgroup.message},
            "gpu_backend": self.backend_message,
            "gpus": self.readings(),
            "pools": {name: {"size": size, "free": cap.pool_free.get(name, size)} for name, size in self.cfg.pools.items()},
            "leases": [{"attempt_id": h.attempt_id, "run_id": h.run_id, "task": h.task, "holder": h.running.lease.holder,
                        "cores": list(h.running.lease.cpus), "affinity": format_cpu_list(h.running.lease.affinity),
                        "memory": h.running.lease.memory, "gpus": list(h.running.lease.gpus),
                        "gpu_exclusive": h.running.lease.gpu_exclusive, "gpu_memory": h.running.lease.gpu_memory,
                        "pool": h.running.lease.pool, "granted_at": h.granted_at,
                        "expected_end": h.running.expected_end}
                       for h in sorted(self.held.values(), key=lambda h: h.attempt_id)
                       if holds_anything(h.running.lease)],
            "running_unleased": sum(1 for h in self.held.values() if not holds_anything(h.running.lease)),
            "queue": queue,
        }

    def _buckets(self) -> list[Any]:
        return [b for group in self.queue.shape_groups().values() for b in group]


def _request_dict(req: ResourceRequest) -> dict[str, Any]:
    return {k: v for k, v in (("cpus", req.cpus), ("memory", req.memory), ("gpus", req.gpus),
                              ("gpu_memory", req.gpu_memory), ("gpu_model", req.gpu_model), ("pool", req.pool)) if v}


def static_report(cfg: ResourcesConfig, *, parallelism: int) -> dict[str, Any]:
    """Inventory only, for ``edgeorch resources`` without a daemon: the keys of the daemon's report
    (:meth:`edgeorch.engine.engine.Engine.resources_report`), with null for what only a daemon knows
    (its leases, queue and running tasks). ``parallelism`` is the config's ``[engine] parallelism``."""
    adm = Admission.open(cfg, prepare_cgroup=False)
    try:
        rep = adm.report(0.0, parallelism=parallelism, max_parallel={})
    finally:
        adm.close()
    rep |= {"queue": None, "leases": None, "running_unleased": None, "running": None, "parallelism": parallelism}
    return rep
