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
6. After each ``decide``, ``take_new_drains()``: GPUs drained by health
   events or probes read during the decision, for the engine to record.

No call here waits for NVML: the backend runs on the GPU reader's worker
thread (:mod:`.gpus.reader`), and decisions use its latest snapshot while it
is at most :data:`~.gpus.reader.READ_MAX_AGE_S` old; otherwise GPU requests
wait ("waits for a GPU reading: …", naming a stalled NVML call) while
everything else is scheduled, and the reader's ``on_update`` callback
(``on_gpu_update``) brings the engine back when fresh readings arrive.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ..config import ResourcesConfig
from ..errors import EdgeorchError
from . import memory as cgroups
from .allocator import Capacity, _fmt, never_satisfiable
from .cluster import ClusterNode, cluster_inventory, never_on_cluster
from .cpus import available_memory, format_cpu_list, read_inventory
from .gpus import GpuBackend
from .gpus.detect import detect_gpus
from .gpus.reader import READ_MAX_AGE_S, GpuReader, GpuSnapshot, GpuWorker
from .model import GpuProcess, Inventory, Lease, ResourceRequest
from .policy import Decision, DurationModel, ReadyQueue, ReadyTask, Running, decide, order_key
from .watcher import (
    BudgetAction,
    check_budgets,
    drains_from_events,
    lease_usage,
    pids_not_visible,
    small_budget_note,
)

log = logging.getLogger("edgeorch.resources")

EXPLAIN_MAX_AGE_S = 30.0
"""How old a GPU reading may be to explain a wait in ``edgeorch resources`` and ``top`` (never to grant: a
decision takes readings at most READ_MAX_AGE_S old); older, or invalidated, the wait reads "waits for a GPU
reading"."""

WATCH_INTERVAL_S = 5.0
"""Seconds between two GPU watcher checks while GPU leases are held."""

WATCH_MAX_AGE_S = 3 * WATCH_INTERVAL_S
"""The watcher acts on process readings at most this old (each check asks for the next)."""

REPORT_MAX_AGE_S = 5.0
"""``edgeorch resources`` shows full readings at most this old (older: it asks for new ones)."""

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
    warned: set[tuple[int, str]] = field(default_factory=set)
    queued_live: int = 0
    """Queued tasks asking for memory or a GPU: only then are live readings taken at a decision."""
    seq: int = 0
    reader: GpuReader | None = None
    """The backend's calls, off the event loop (built inline, without a thread, when not given)."""
    backend_broken: bool = False
    """GPUs seem present but NVML (partly) failed: :attr:`backend_message` says what."""
    pids: dict[int, list[int]] = field(default_factory=dict)
    """Attempt id → pids of its process tree, as last given to :meth:`watch`."""
    unannounced: dict[str, str] = field(default_factory=dict)
    """Drains found (health events, lost GPUs) and not yet handed to the engine to record."""
    pid_visible: Callable[[int], bool] = field(default=lambda pid: _pid_visible(pid))
    """Whether a PID exists in this daemon's PID namespace (NVML reports host PIDs)."""
    cluster: tuple[ClusterNode, ...] | None = None
    """The nodes of a cluster executor (Ray) when attempts run there; None: this machine
    (:meth:`for_cluster`; :mod:`.cluster` says what is counted)."""
    _own_cpus: int = field(default_factory=lambda: len(os.sched_getaffinity(0)))
    _foreign_pids_said: bool = False

    def __post_init__(self) -> None:
        if self.reader is None and self.backend is not None:
            self.reader = GpuReader(self.backend, [d.uuid for d in self.inventory.gpus])

    # -- start ---------------------------------------------------------------------

    @classmethod
    def open(cls, cfg: ResourcesConfig, *, prepare_cgroup: bool = True, threaded: bool = True,
             config_file: Path | None = None) -> Admission:
        """Detect the hardware; raises ConfigError/ResourceError/GpuBackendError on a bad config.

        ``prepare_cgroup`` moves this process into its delegated cgroup's
        ``daemon`` leaf (the engine does; a CLI only looking must not).
        ``threaded`` runs the GPU backend on its own worker thread (the
        daemon); without it readings are taken inline, when asked (a CLI).
        NVML's start is bounded either way (:data:`~.gpus.detect.INIT_TIMEOUT_S`).
        ``config_file``: the file ``cfg`` came from, named by an error about one of its values that only this
        machine shows (``reserved_cpus`` that leaves no core here, a GPU backend asked for that does not work).
        """
        try:
            return cls._open(cfg, prepare_cgroup=prepare_cgroup, threaded=threaded)
        except EdgeorchError as exc:
            if config_file is not None and (exc.field or "").startswith("resources."):
                exc.in_file(str(config_file))
            raise

    @classmethod
    def _open(cls, cfg: ResourcesConfig, *, prepare_cgroup: bool, threaded: bool) -> Admission:
        found = detect_gpus(cfg)
        backend, msg = found.backend, found.message
        if found.broken:
            log.warning("GPUs: %s", msg)
        else:
            log.info("GPUs: %s", msg)
        inventory = read_inventory(cfg.reserved_cpus, backend.devices() if backend else ())
        reader = None
        worker = found.worker
        if backend is not None and threaded:
            reader = GpuReader(backend, [d.uuid for d in inventory.gpus], worker=worker or GpuWorker())
            reader.request(full=True)  # a first full reading, off the loop, for the first report and decision
        elif worker is not None:
            worker.close(0.0)  # nothing queued: the thread ends; calls are made inline from now on
        support = cgroups.detect()
        if support.enforced and prepare_cgroup:
            try:
                cgroups.prepare(support)
            except OSError as exc:
                support = cgroups.CgroupSupport(False, None, cgroups.prepare_failure(support, exc))
        return cls(cfg, inventory, backend, msg, support, reader=reader, backend_broken=found.broken)

    @classmethod
    def for_cluster(cls, cfg: ResourcesConfig, nodes: Iterable[ClusterNode]) -> Admission:
        """Admission for attempts that run on a cluster's nodes, not here: no local hardware is read.

        The nodes count as one machine (:func:`~.cluster.cluster_inventory`);
        :meth:`never` asks whether one node could hold a request; memory is
        reserved as the cluster's ``memory`` resource (no cgroup here); there
        is no GPU watcher (the GPUs are not this machine's).
        """
        adm = cls(cfg, backend_message="no node of the Ray cluster has a GPU",
                  cgroup=cgroups.CgroupSupport(False, None, "reserved from the Ray node's memory resource, "
                                                            "not enforced by edgeorch"))
        adm.set_cluster(nodes)
        return adm

    def set_cluster(self, nodes: Iterable[ClusterNode]) -> None:
        """The cluster's nodes changed (one joined or died): count them from now on. Leases held stay."""
        self.cluster = tuple(nodes)
        self.inventory = cluster_inventory(self.cluster)
        gpus = len(self.inventory.gpus)
        self.backend_message = (f"{gpus} GPU{'s' if gpus != 1 else ''} on the Ray cluster" if gpus
                                else "no node of the Ray cluster has a GPU")

    def close(self) -> None:
        if self.reader is not None:
            self.reader.close()

    def on_gpu_update(self, callback: Callable[[], object]) -> None:
        """Call ``callback`` (from the GPU worker thread) whenever new GPU readings arrived.

        The engine passes ``lambda: loop.call_soon_threadsafe(dispatch)``: a
        GPU task that waited for a reading is then reconsidered.
        """
        if self.reader is not None:
            self.reader.on_update = callback

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
        if self.cluster is not None:
            return never_on_cluster(req, self.cluster, self.cfg.pools)
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
             duration: float, ready_at: float = 0.0, *, first: bool = False) -> None:
        """Queue a ready task (``ready_at``: now, by the engine's clock; ``first``: before any task without it; see
        :func:`~.policy.order_key`)."""
        self.seq += 1
        self.queue.add(ReadyTask(task_id, req, pipeline, priority, critical_path, duration, self.seq, ready_at,
                                 first))
        if req.memory or req.wants_gpu:
            self.queued_live += 1

    def remove(self, task_id: str) -> ReadyTask | None:
        if task_id not in self.queue:
            return None
        t = self.queue.remove(task_id)
        if t.request.memory or t.request.wants_gpu:
            self.queued_live -= 1
        return t

    def _share_gpus(self) -> set[str]:
        """GPUs holding share leases now: their process lists go into every refresh (share accounting)."""
        return {u for h in self.held.values() if not h.running.lease.gpu_exclusive for u in h.running.lease.gpus}

    def leased_use(self, snap: GpuSnapshot) -> dict[str, int]:
        """What the share leases held now use, per memory pool, from ``snap`` (the same reading as its
        free memory): each lease counted up to its budget. Leases whose GPU's processes ``snap`` lacks
        count 0 (then their whole budget is reserved on top of the live reading: careful, never short)."""
        leases = [h.running.lease for h in self.held.values()]
        procs = [p for u in snap.processes for p in snap.processes[u]]
        holder_pids = {h.running.lease.holder: self.pids.get(aid, ()) for aid, h in self.held.items()}
        out: dict[str, int] = {}
        for u, used in lease_usage(leases, procs, holder_pids).items():
            dev = self.inventory.gpu(u)
            key = dev.memory_key if dev is not None else u
            out[key] = out.get(key, 0) + used
        return out

    def _gpu_view(self, *, explain: bool = False) -> tuple[dict[str, int] | None, dict[str, int] | None,
                                                           dict[str, str] | None]:
        """(free, leased use, unreadable) for a decision, from a snapshot at most READ_MAX_AGE_S old.

        Without one, a refresh is asked for and every GPU is unreadable for
        this decision (GPU requests wait, saying why); lost GPUs are drained.
        ``explain``: the decision only explains waits (``edgeorch resources``, ``top``) and grants nothing, so
        a snapshot up to EXPLAIN_MAX_AGE_S old (not invalidated) serves while the reader is healthy: a reading
        merely older than READ_MAX_AGE_S made the reason flip to "waits for a GPU reading" between two true
        ones.
        """
        assert self.reader is not None
        snap = self.reader.latest(READ_MAX_AGE_S)
        if snap is None:
            self.reader.request(self._share_gpus())
            snap = self.reader.latest(READ_MAX_AGE_S)  # inline readers have it now
            if snap is None and explain and self.reader.stall() is None:
                snap = self.reader.latest(EXPLAIN_MAX_AGE_S)  # not an invalidated one (its age reads as infinite)
        self._absorb_health(snap)
        if snap is None:
            why = self.reader.stall() or "a fresh reading was asked for"
            return None, None, {d.uuid: why for d in self.inventory.gpus}
        unreadable = {u: f"cannot be read ({msg})" for u, msg in snap.unreadable.items()}
        return dict(snap.free), self.leased_use(snap), unreadable

    def _absorb_health(self, snap: GpuSnapshot | None) -> None:
        """Health events and lost GPUs → :attr:`drained`, and :attr:`unannounced` for the engine."""
        assert self.reader is not None
        found = drains_from_events(self.reader.take_events(), self.drained)
        if snap is not None:
            for u in snap.lost:
                if u not in self.drained and u not in found:
                    found[u] = "GPU has fallen off the bus"
        self.drained.update(found)
        self.unannounced.update(found)

    def restore_drains(self, rows: Iterable[Mapping[str, Any]]) -> dict[str, str]:
        """Drain again the GPUs recorded as drained (``gpu_drained`` rows since the machine booted).

        A drain lasts until the machine reboots (which resets the GPU), not
        until the daemon restarts: a restarted daemon must not hand out a GPU
        that fell off the bus a minute ago. Rows for GPUs this daemon does not
        have are ignored; restored drains are not recorded again. Returns them.
        """
        have = {d.uuid for d in self.inventory.gpus}
        out: dict[str, str] = {}
        for r in rows:
            data = r.get("data") or {}
            uuid, reason = data.get("uuid"), data.get("reason")
            if isinstance(uuid, str) and uuid in have and uuid not in self.drained and isinstance(reason, str):
                out[uuid] = reason
        self.drained.update(out)
        for uuid, reason in out.items():
            log.warning("GPU %s stays drained (recorded before this start, since the last boot): %s", uuid, reason)
        return out

    def take_new_drains(self) -> dict[str, str]:
        """GPUs drained since the last call (UUID → reason): the engine records each once."""
        out, self.unannounced = self.unannounced, {}
        return out

    def decide(self, now: float, *, parallelism: int, max_parallel: Mapping[str, int]) -> Decision:
        """One scheduling decision over the whole queue (pure policy; never waits for NVML).

        Live readings (NVML free memory from the reader's latest snapshot,
        health events, MemAvailable) are used only when a queued task asks for
        memory or a GPU, so the plain-task path costs one :func:`decide` over
        a handful of buckets. Drains found here are in :meth:`take_new_drains`.
        """
        live = self.queued_live > 0
        gpu_free = lease_used = unreadable = None
        host = None
        if live:
            if self.reader is not None:
                gpu_free, lease_used, unreadable = self._gpu_view()
            if self.cluster is None:  # this machine's MemAvailable says nothing of a cluster's nodes
                host = available_memory() or None
        return decide(self.queue, self.inventory, [h.running for h in self.held.values()], now=now,
                      gpu_free=gpu_free, gpu_lease_used=lease_used, gpu_unreadable=unreadable,
                      drained=self.drained, pools=self.cfg.pools, max_parallel=max_parallel,
                      parallelism=parallelism, cpu_only_reason=self.cpu_only_reason, host_available=host)

    # -- leases ------------------------------------------------------------------------

    def grant(self, attempt_id: int, run_id: int, task: str, lease: Lease, pipeline: str, expected_end: float,
              granted_at: float, cgroup: str | None = None) -> None:
        self.held[attempt_id] = Held(attempt_id, run_id, task, Running(lease, pipeline, expected_end), granted_at,
                                     cgroup)

    def rebalance_shared(self) -> list[tuple[int, tuple[int, ...]]]:
        """Running attempts that asked for no cores, each given the cores nobody leased now: their new affinity.

        A task with no ``cpus`` shares the cores nobody leased. One started while every core was free ran on all
        of them, and a later lease of dedicated cores must not share those with it; one squeezed onto the core a
        big lease left gets the rest back when that lease ends. With no unleased core at all, each keeps its own
        (it cannot be moved anywhere: it shares until it ends). An attempt whose shared cores are not known (one
        adopted after a restart: shared tasks hold no recorded lease) is left alone. The held leases are updated;
        the caller moves the processes (:func:`~.cpus.pin_processes`). Empty when nothing moved.
        """
        leased = {c for h in self.held.values() for c in h.running.lease.cpus}
        unleased = tuple(c for c in self.all_cores if c not in leased)
        if not unleased:
            return []
        moved: list[tuple[int, tuple[int, ...]]] = []
        for h in self.held.values():
            lease = h.running.lease
            if lease.cpus or not lease.affinity or lease.affinity == unleased:
                continue
            h.running = replace(h.running, lease=replace(lease, affinity=unleased))
            moved.append((h.attempt_id, unleased))
        return moved

    def release(self, attempt_id: int) -> Held | None:
        h = self.held.pop(attempt_id, None)
        self.warned = {w for w in self.warned if w[0] != attempt_id}
        self.pids.pop(attempt_id, None)
        if h is not None and h.cgroup:
            try:
                cgroups.remove_child(Path(h.cgroup))
            except OSError as exc:  # still busy (a stray process): leave it, say so
                log.warning("cannot remove cgroup %s: %s", h.cgroup, exc.strerror)
        return h

    @property
    def index_of(self) -> dict[str, int] | None:
        """UUID → NVML index of the whole GPUs, with ``visible_devices = "index"`` (else None: UUIDs);
        for :func:`~.child.lease_env`."""
        if self.cfg.visible_devices != "index":
            return None
        return {d.uuid: d.index for d in self.inventory.gpus if d.parent is None}

    def shared_affinity(self, lease: Lease) -> list[int] | None:
        """The cores to pin an attempt to; None keeps the daemon's own mask (nothing to restrict)."""
        if lease.cpus:
            return list(lease.cpus)
        if not lease.affinity or len(lease.affinity) == self._own_cpus:
            return None
        return list(lease.affinity)

    def memory_note(self, lease: Lease, *, container: str | None = None) -> str | None:
        """How a lease's memory claims are enforced, for the start event (None: nothing to say).

        Host memory: enforced by cgroup or only admission-checked; a ``container`` task's (its runtime's name) by
        its runtime (``--memory``), whatever this daemon's cgroups allow (it was said "not enforced" while the
        container was OOM-killed at its bound), unless that runtime ignores limits here (rootless podman on cgroup
        v1: it was said "enforced" while the container used three times its bound). GPU memory: a budget so small
        that a CUDA context alone may break it.
        """
        notes = []
        if lease.memory:
            ignored = cgroups.rootless_limits_problem(container, os.geteuid()) if container else None
            if ignored:
                notes.append(f"memory {_fmt(lease.memory)} admission-checked, not enforced ({ignored})")
            elif container:
                notes.append(f"memory {_fmt(lease.memory)} enforced by the container runtime (--memory)")
            elif not self.cgroup.enforced:
                notes.append(f"memory {_fmt(lease.memory)} admission-checked, not enforced ({self.cgroup.message})")
            else:
                notes.append(f"memory {_fmt(lease.memory)} enforced by cgroup memory.max")
        if lease.gpus:
            small = small_budget_note(lease.gpu_memory)
            if small:
                notes.append(small)
        return "; ".join(notes) or None

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
        """Health events read so far → newly drained GPUs (UUID → reason), already in :attr:`drained`.

        Also handed out by :meth:`take_new_drains` (the same drains), unless
        :meth:`watch` returns them first.
        """
        if self.reader is None:
            return {}
        before = dict(self.unannounced)
        self._absorb_health(self.reader.latest())
        return {u: r for u, r in self.unannounced.items() if u not in before}

    def watch(self, pids_of: Mapping[int, Iterable[int]]) -> tuple[list[tuple[int, BudgetAction]], dict[str, str]]:
        """One watcher check: budget actions ``(attempt_id, action)`` and newly drained GPUs.

        ``pids_of`` maps attempt ids to the pids of their process trees (kept
        for share accounting too). The check asks the reader for the leased
        GPUs' processes and acts on the latest ones at most
        :data:`WATCH_MAX_AGE_S` old (so, in the daemon, on what the previous
        check asked for); nothing when there are none. A ``warn`` action is
        returned once per attempt and kind of warning.
        """
        for aid, pids in pids_of.items():
            self.pids[aid] = list(pids)
        if self.reader is None:
            return [], self.take_new_drains()
        gpu_held = {aid: h for aid, h in self.held.items() if h.running.lease.gpus}
        uuids = {u for h in gpu_held.values() for u in h.running.lease.gpus}
        self.reader.request(uuids | self._share_gpus())
        snap = self.reader.latest(WATCH_MAX_AGE_S)
        self._absorb_health(snap)
        drains = self.take_new_drains()
        if snap is None:
            stall = self.reader.stall()
            if stall and ("*", "stall") not in self.warned:
                self.warned.add(("*", "stall"))  # type: ignore[arg-type]
                log.warning("GPU budgets not checked: %s", stall)
            return [], drains
        self.warned.discard(("*", "stall"))  # type: ignore[arg-type]
        procs: list[GpuProcess] = [p for u in sorted(uuids) for p in snap.processes.get(u, ())]
        by_holder = {h.running.lease.holder: aid for aid, h in gpu_held.items()}
        holder_pids = {h.running.lease.holder: self.pids.get(aid, []) for aid, h in gpu_held.items()}
        leases = [h.running.lease for h in gpu_held.values()]
        found = check_budgets(leases, procs, holder_pids, self.cfg.gpu_memory_policy)
        for lease in sorted(leases, key=lambda lease: lease.holder):
            failed = next((u for u in lease.gpus if u in snap.process_errors and u not in snap.lost), None)
            if lease.gpu_memory and failed is not None:  # e.g. garbage PIDs from a struct-layout mismatch
                found.append(BudgetAction(lease.holder, "warn", f"its gpu_memory budget of {_fmt(lease.gpu_memory)} "
                                          f"is not enforced: {snap.process_errors[failed]}", "unlisted"))
        if pids_not_visible(procs, self.pid_visible, (pid for pids in holder_pids.values() for pid in pids)):
            if not self._foreign_pids_said:
                self._foreign_pids_said = True
                log.warning("NVML reports GPU processes whose PIDs this daemon cannot see (host PIDs from inside a "
                            "PID namespace?): per-task GPU memory budgets cannot be enforced here")
            found += [BudgetAction(lease.holder, "warn", f"its gpu_memory budget of {_fmt(lease.gpu_memory)} is "
                                   "not enforced: NVML reports host PIDs that this daemon's PID namespace does not "
                                   "show (a container without the host's PID namespace)", "invisible")
                      for lease in sorted(leases, key=lambda lease: lease.holder) if lease.gpu_memory]
        actions = []
        for a in found:
            aid = by_holder[a.holder]
            if a.action == "warn":
                if (aid, a.why) in self.warned:
                    continue
                self.warned.add((aid, a.why))
            actions.append((aid, a))
        return actions, drains

    # -- reporting -----------------------------------------------------------------------

    def readings(self) -> list[dict[str, Any]]:
        """Per GPU: inventory facts, the latest full readings (or the error), drained reason.

        Never waits: the readings are the reader's latest (asked for again
        when older than :data:`REPORT_MAX_AGE_S`; inline readers answer at
        once). ``readings_age_s`` says how old they are; a GPU not read yet
        has no reading keys.
        """
        snap = None
        if self.reader is not None:
            snap = self.reader.latest(REPORT_MAX_AGE_S)
            if snap is None or not snap.readings:
                self.reader.request(self._share_gpus(), full=True)
            snap = self.reader.latest()
        out = []
        for d in self.inventory.gpus:
            item: dict[str, Any] = {
                "uuid": d.uuid, "name": d.name, "memory_total": d.memory_total, "index": d.index,
                "memory_reserved": d.memory_reserved, "compute_mode": d.compute_mode,
                "compute_capability": ".".join(map(str, d.compute_capability)), "numa_node": d.numa_node,
                "parent": d.parent, "drained": self.drained.get(d.uuid),
            }
            r = snap.readings.get(d.uuid) if snap is not None else None
            if isinstance(r, str):
                item["error"] = r
            elif r is not None:
                item.update(memory_free=r.memory_free, memory_used=r.memory_used, utilization=r.utilization_gpu,
                            temperature=r.temperature, ecc_uncorrected=r.ecc_uncorrected,
                            retired_pages=r.retired_pages, remap_pending=r.remap_pending,
                            remap_failed=r.remap_failed, reading_problems=list(r.problems))
            if snap is not None and self.reader is not None:
                item["readings_age_s"] = round(self.reader.age(snap), 1)
                stall = self.reader.stall()
                if stall:
                    item["stalled"] = stall
            out.append(item)
        return out

    def report(self, now: float, *, parallelism: int, max_parallel: Mapping[str, int],
               placements: Mapping[int, str] | None = None, queue: bool = True) -> dict[str, Any]:
        """JSON-ready state for ``edgeorch resources``: cores, memory, GPUs, leases, queue with reasons.

        With a cluster, also ``cluster``: its nodes with their totals and what
        edgeorch's attempts hold on each (``placements``: attempt id → node id,
        known once an attempt started there; the others are ``unplaced``).
        ``queue`` False: ``"queue"`` is None (no decision taken, no waiting task sorted).
        """
        cap = Capacity(self.inventory, (h.running.lease for h in self.held.values()), drained=self.drained,
                       pools=self.cfg.pools)
        leased = {c: h for h in self.held.values() for c in h.running.lease.cpus}
        return self._resources(cap, leased, placements,
                               self._queue_report(now, parallelism, max_parallel) if queue else None)

    def _queue_report(self, now: float, parallelism: int, max_parallel: Mapping[str, int]) -> list[dict[str, Any]]:
        """Every waiting task in the policy's order, with the reason its decision gives now."""
        # The reasons the engine's own decision would give: the same GPU view (never waiting for NVML).
        live = self.reader is not None and self.queued_live > 0
        gpu_free, lease_used, unreadable = self._gpu_view(explain=True) if live else (None, None, None)
        decision = decide(self.queue, self.inventory, [h.running for h in self.held.values()], now=now,
                          gpu_free=gpu_free, gpu_lease_used=lease_used, gpu_unreadable=unreadable,
                          drained=self.drained, pools=self.cfg.pools, max_parallel=max_parallel,
                          parallelism=parallelism, cpu_only_reason=self.cpu_only_reason)
        queue = []
        for t in sorted((self.queue.get(tid) for b in self._buckets() for _, tid in b.entries),
                        key=order_key):  # type: ignore[arg-type]
            assert t is not None
            why = decision.reason(self.queue, t.id)
            unsat = next((r for u, r in decision.unsatisfiable if u.id == t.id), None)
            queue.append({"task": t.id, "pipeline": t.pipeline, "priority": t.priority,
                          "critical_path_s": round(t.critical_path, 1), "predicted_s": round(t.duration, 1),
                          "request": request_dict(t.request),
                          "reason": unsat or (why.message if why else "starting now"),
                          "reason_kind": "unsatisfiable" if unsat else (why.kind if why else "starting")})
        return queue

    def _resources(self, cap: Capacity, leased: dict[int, Any], placements: Mapping[int, str] | None,
                   queue: list[dict[str, Any]] | None) -> dict[str, Any]:
        """The report: cores, memory, GPUs, pools, leases, ``queue`` (and the cluster's nodes)."""
        return {
            "cpus": {"usable": format_cpu_list(self.all_cores), "reserved": list(self.cfg.reserved_cpus),
                     "free": format_cpu_list(cap.free_cores),
                     "cores": [{"id": c.id, "numa_node": c.numa_node,
                                "held_by": leased[c.id].running.lease.holder if c.id in leased else None}
                               for c in self.inventory.cpus]},
            "memory": {"available_at_start": self.inventory.memory_available, "available_now": available_memory() if self.cluster is None else None,
                       "leased": sum(h.running.lease.memory for h in self.held.values()),
                       "enforcement": self.cgroup.message},
            "gpu_backend": self.backend_message,
            "gpu_backend_broken": self.backend_broken,
            "gpus": self._with_leases(self.readings()),
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
        } | ({"cluster": self._cluster_report(placements or {})} if self.cluster is not None else {})

    def _with_leases(self, gpus: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Each GPU's reading with what edgeorch holds on it: ``leased_memory`` (its memory shares' budgets,
        promised whether or not used yet), ``shares``, ``held_whole_by`` (an exclusive lease's holder). NVML's
        free memory alone said "free 79.5G" beside a task waiting because 60G of it was promised."""
        out = []
        for g in gpus:
            mine = [h.running.lease for h in self.held.values() if g["uuid"] in h.running.lease.gpus]
            shares = [lease for lease in mine if not lease.gpu_exclusive]
            whole = next((lease.holder for lease in mine if lease.gpu_exclusive), None)
            out.append(g | {"leased_memory": sum(lease.gpu_memory for lease in shares), "shares": len(shares),
                            "held_whole_by": whole})
        return out

    def _cluster_report(self, placements: Mapping[int, str]) -> dict[str, Any]:
        """Per node: address, alive, totals, and the attempts of edgeorch placed there with what they hold."""
        assert self.cluster is not None
        nodes = []
        for n in sorted(self.cluster, key=lambda n: (not n.alive, n.address, n.node_id)):
            held = [h for aid, h in sorted(self.held.items()) if placements.get(aid) == n.node_id]
            nodes.append({
                "node_id": n.node_id, "address": n.address, "alive": n.alive, "cpus": n.cpus, "gpus": n.gpus,
                "memory": n.memory, "gpu_memory": n.gpu_memory, "gpu_models": list(n.gpu_models),
                "held": _held_sum(h.running.lease for h in held),
                "attempts": [{"attempt_id": h.attempt_id, "run_id": h.run_id, "task": h.task} for h in held],
            })
        unplaced = [h for aid, h in sorted(self.held.items()) if aid not in placements]
        return {"nodes": nodes, "unplaced": [{"attempt_id": h.attempt_id, "run_id": h.run_id, "task": h.task}
                                             for h in unplaced]}

    def _buckets(self) -> list[Any]:
        return [b for group in self.queue.shape_groups().values() for b in group]


def boot_time(root: Path = Path("/")) -> float:
    """When the machine booted (``btime`` of ``/proc/stat``, epoch seconds); 0.0 when unreadable."""
    try:
        text = (root / "proc/stat").read_text()
    except OSError:
        return 0.0
    for line in text.splitlines():
        if line.startswith("btime "):
            try:
                return float(line.split()[1])
            except (IndexError, ValueError):
                return 0.0
    return 0.0


def _pid_visible(pid: int) -> bool:
    """True when ``pid`` exists in this process's PID namespace (as /proc shows it)."""
    return os.path.exists(f"/proc/{pid}")


def _held_sum(leases: Iterable[Lease]) -> dict[str, Any]:
    """What some leases hold together, in a cluster's terms: cpus, GPUs (whole, and memory shares), memory."""
    out = {"cpus": 0, "gpus": 0, "gpu_shares": 0, "memory": 0}
    for lease in leases:
        out["cpus"] += len(lease.cpus)
        out["memory"] += lease.memory
        if lease.gpu_exclusive:
            out["gpus"] += len(lease.gpus)
        elif lease.gpus:
            out["gpu_shares"] += 1
    return out


def request_dict(req: ResourceRequest) -> dict[str, Any]:
    """The non-zero keys of a request (reports, and what a cluster executor asks its scheduler for)."""
    return {k: v for k, v in (("cpus", req.cpus), ("memory", req.memory), ("gpus", req.gpus),
                              ("gpu_memory", req.gpu_memory), ("gpu_model", req.gpu_model), ("pool", req.pool)) if v}


def static_report(cfg: ResourcesConfig, *, parallelism: int) -> dict[str, Any]:
    """Inventory only, for ``edgeorch resources`` without a daemon: the keys of the daemon's report
    (:meth:`edgeorch.engine.engine.Engine.resources_report`), with null for what only a daemon knows
    (its leases, queue and running tasks). ``parallelism`` is the config's ``[engine] parallelism``."""
    adm = Admission.open(cfg, prepare_cgroup=False, threaded=False)
    try:
        rep = adm.report(0.0, parallelism=parallelism, max_parallel={})
    finally:
        adm.close()
    rep |= {"queue": None, "leases": None, "running_unleased": None, "running": None, "parallelism": parallelism}
    return rep
