"""Pure scheduling policy: which ready tasks start now, with which leases, and why the rest wait.

Order: pipeline priority (higher first), then the time a task became ready
less its critical-path length (earlier first: among tasks ready together, the
chain that decides when its run ends starts first; a task that has waited as
long as another's chain is longer than its own goes before it, so a stream of
longer tasks never starves a short one), then arrival.

EASY backfilling, as HPC batch schedulers do it: when the first task in that
order does not fit, it becomes the *reserved head*: its start time is
predicted (the *shadow time*, when enough running leases will have ended, by
predicted durations), and a later task may start now only if it fits now and
either ends before the shadow time or leaves enough for the head at the
shadow time. So a stream of small tasks cannot starve a big GPU task, and
idle resources are still used.

Cost of one decision: tasks with the same pipeline and request share a
*bucket*; the queue keeps each bucket sorted incrementally. A decision visits
buckets, not tasks: a bucket whose request does not fit is skipped whole (its
tasks all ask for the same thing), and backfill looks at most ``lookahead``
tasks deep into a bucket (Slurm's ``bf_max_job_test`` idea). So a decision is
O(buckets · log buckets + started tasks + running leases), independent of
the number of ready tasks; 10,000 ready tasks cost the same as 100.

Nothing here reads a clock or the hardware: ``now``, the running leases and
the live GPU readings are arguments.
"""

from __future__ import annotations

import heapq
import math
from bisect import bisect_left, insort
from collections import Counter, deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace

from ..records import frozen
from .allocator import Capacity, never_satisfiable
from .model import Inventory, Lease, ResourceError, ResourceRequest, WaitReason

DEFAULT_DURATION = 60.0
"""Seconds predicted for a task never seen before."""


# -- predicted durations -------------------------------------------------------


def ewma(previous: float | None, observed: float, alpha: float = 0.3) -> float:
    """Exponentially weighted average: ``alpha·observed + (1−alpha)·previous``.

    ``previous`` None (first observation) returns ``observed``. Negative or NaN
    observations are ignored (a clock step must not poison the estimate).
    """
    if not (observed >= 0):  # also catches NaN
        return previous if previous is not None else DEFAULT_DURATION
    if previous is None:
        return float(observed)
    return alpha * observed + (1.0 - alpha) * previous


@dataclass
class DurationModel:
    """Predicted duration per task key (``pipeline/task``), an EWMA of past durations.

    Seed it from the attempts table at daemon start (``observe`` each
    finished attempt in order), then ``observe`` as attempts finish.
    """

    alpha: float = 0.3
    default: float = DEFAULT_DURATION
    estimates: dict[str, float] = field(default_factory=dict)

    def observe(self, key: str, seconds: float) -> float:
        """Fold one successful attempt's wall time in; returns the new estimate."""
        new = ewma(self.estimates.get(key), seconds, self.alpha)
        self.estimates[key] = new
        return new

    def predict(self, key: str) -> float:
        return self.estimates.get(key, self.default)


def critical_paths(deps: Mapping[str, Iterable[str]], durations: Mapping[str, float],
                   default: float = DEFAULT_DURATION) -> dict[str, float]:
    """Per task, the longest predicted time from its start to the end of the DAG.

    ``deps`` maps each task to the tasks it depends on (upstream); every task
    must be a key. The result for a task is its own duration plus the longest
    critical path among its downstream tasks. Missing durations use
    ``default``. O(tasks + edges). Raises :class:`ResourceError` on a cycle
    or an unknown dependency (the pipeline validator should have caught both).
    """
    down: dict[str, list[str]] = {t: [] for t in deps}
    indeg = {t: 0 for t in deps}
    for t, ups in deps.items():
        for u in ups:
            if u not in down:
                raise ResourceError("depends on an unknown task", field=t, value=u)
            down[u].append(t)
            indeg[t] += 1
    order: list[str] = []
    q = deque(t for t, d in indeg.items() if d == 0)
    while q:
        t = q.popleft()
        order.append(t)
        for v in down[t]:
            indeg[v] -= 1
            if indeg[v] == 0:
                q.append(v)
    if len(order) != len(deps):
        raise ResourceError("the task graph has a cycle", value=sorted(set(deps) - set(order)))
    out: dict[str, float] = {}
    for t in reversed(order):
        out[t] = durations.get(t, default) + max((out[v] for v in down[t]), default=0.0)
    return out


# -- the ready queue -----------------------------------------------------------


@frozen
class ReadyTask:
    """A task whose dependencies are done, waiting for resources.

    ``critical_path`` and ``duration`` are in seconds, computed when the task
    became ready (from :class:`DurationModel` and :func:`critical_paths`);
    ``ready_at``: when it became ready (seconds, the engine's clock).
    ``seq`` breaks ties in arrival order (FIFO among equals).
    """

    id: str
    request: ResourceRequest
    pipeline: str = ""
    priority: int = 0
    critical_path: float = 0.0
    duration: float = DEFAULT_DURATION
    seq: int = 0
    ready_at: float = 0.0
    first: bool = False
    """A task of a run the process was asked for (``edgeorch run`` without a daemon, beside runs it took over):
    before every task without it, whatever their priorities."""


@frozen
class Running:
    """A lease held by a running attempt and when it is predicted to end (absolute seconds)."""

    lease: Lease
    pipeline: str = ""
    expected_end: float = 0.0


_BucketKey = tuple[str, ResourceRequest]


class _Bucket:
    """Tasks of one pipeline with one request, sorted by (order key, id).

    ``shape`` is a small integer naming the request (equal requests, equal
    shape), so a decision memoises per shape without hashing requests.
    Buckets hash by identity, which is what a decision's reasons are keyed by.
    """

    __slots__ = ("__weakref__", "entries", "key", "shape", "tasks")

    def __init__(self, key: _BucketKey, shape: int) -> None:
        self.key = key
        self.shape = shape
        self.entries: list[tuple[tuple[int, int, float, int], str]] = []
        self.tasks: dict[str, ReadyTask] = {}


def order_key(t: ReadyTask) -> tuple[int, int, float, int]:
    """Where ``t`` stands in the queue (smaller first; see the module docstring): ``(not first, -priority, ready_at -
    critical_path, seq)``. Waiting counts like a longer chain: the key is fixed when the task is queued, and a task
    queued later with a chain longer by less than the time between them goes after it. Identical tasks of
    runs created one after another keep their arrival order even when their predicted paths differ by noise."""
    return (0 if t.first else 1, -t.priority, t.ready_at - t.critical_path, t.seq)


class ReadyQueue:
    """Ready tasks grouped in buckets (same pipeline and request), each kept sorted.

    ``add`` and ``remove`` are O(log n) plus a memmove; :func:`decide` reads
    the queue without changing it. The engine removes a task when it has
    started it (or failed it as unsatisfiable).
    """

    def __init__(self, tasks: Iterable[ReadyTask] = ()) -> None:
        self._buckets: dict[_BucketKey, _Bucket] = {}
        self._where: dict[str, _Bucket] = {}
        self._shapes: dict[ResourceRequest, int] = {}
        self._groups: dict[int, dict[_BucketKey, _Bucket]] = {}
        for t in tasks:
            self.add(t)

    def __len__(self) -> int:
        return len(self._where)

    def __contains__(self, task_id: object) -> bool:
        return task_id in self._where

    def add(self, task: ReadyTask) -> None:
        """Queue ``task``; raises :class:`ResourceError` if its id is already queued."""
        if task.id in self._where:
            raise ResourceError("task is already queued", value=task.id)
        key = (task.pipeline, task.request)
        b = self._buckets.get(key)
        if b is None:
            shape = self._shapes.setdefault(task.request, len(self._shapes))
            b = self._buckets[key] = _Bucket(key, shape)
            self._groups.setdefault(shape, {})[key] = b
        insort(b.entries, (order_key(task), task.id))
        b.tasks[task.id] = task
        self._where[task.id] = b

    def remove(self, task_id: str) -> ReadyTask:
        """Take ``task_id`` out; raises KeyError when it is not queued."""
        b = self._where.pop(task_id)
        task = b.tasks.pop(task_id)
        i = bisect_left(b.entries, (order_key(task), task_id))
        del b.entries[i]
        if not b.entries:
            del self._buckets[b.key]
            group = self._groups[b.shape]
            del group[b.key]
            if not group:
                del self._groups[b.shape]
        return task

    def get(self, task_id: str) -> ReadyTask | None:
        b = self._where.get(task_id)
        return None if b is None else b.tasks[task_id]

    def shape_groups(self) -> dict[int, list[_Bucket]]:
        """Non-empty buckets grouped by shape (request)."""
        return {shape: list(group.values()) for shape, group in self._groups.items()}

    def bucket_of(self, task_id: str) -> _Bucket | None:
        return self._where.get(task_id)


# -- one decision ----------------------------------------------------------------


_QUEUED = WaitReason("queued", "waits behind higher-priority tasks")


@frozen
class Decision:
    """The outcome of one :func:`decide` call.

    - ``start``: tasks to start now, in order, with their leases.
    - ``unsatisfiable``: tasks no state of the machine could ever serve, with
      the reason: the engine fails them with a clear error.
    - ``reserved``: the reserved head (or None) and ``shadow_time``, when it is
      predicted to start (absolute seconds; ``now``: the decision's time).
    - :meth:`reason` says why any other queued task waits.
    """

    start: tuple[tuple[ReadyTask, Lease], ...]
    unsatisfiable: tuple[tuple[ReadyTask, str], ...] = ()
    reserved: ReadyTask | None = None
    shadow_time: float | None = None
    bucket_reasons: Mapping[_Bucket, WaitReason] = field(default_factory=dict)
    shape_reasons: Mapping[int, WaitReason] = field(default_factory=dict)
    default_reason: WaitReason = _QUEUED
    now: float = 0.0

    def reason(self, queue: ReadyQueue, task_id: str) -> WaitReason | None:
        """Why ``task_id`` (still in ``queue``, unchanged since) waits; None if it starts or is unknown.

        O(1) per task apart from the scan of ``start``, so ``edgeorch resources``
        can list a reason for every queued task.
        """
        for t, _ in self.start:
            if t.id == task_id:
                return None
        b = queue.bucket_of(task_id)
        if b is None:
            return None
        base = self.bucket_reasons.get(b) or self.shape_reasons.get(b.shape)
        if self.reserved is not None and self.reserved.id == task_id:
            when = "" if self.shadow_time is None else f" (reserved: {_predicted(self.shadow_time - self.now)})"
            return WaitReason(base.kind if base else "reserved", (base.message if base else "reserved") + when)
        return base or self.default_reason


def decide(queue: ReadyQueue, inventory: Inventory, running: Iterable[Running] = (), *, now: float = 0.0,
           gpu_free: Mapping[str, int] | None = None, gpu_lease_used: Mapping[str, int] | None = None,
           drained: Mapping[str, str] | None = None, pools: Mapping[str, int] | None = None,
           max_parallel: Mapping[str, int] | None = None, parallelism: int | None = None,
           lookahead: int = 8, cpu_only_reason: str | None = None,
           host_available: int | None = None, gpu_unreadable: Mapping[str, str] | None = None) -> Decision:
    """Choose which queued tasks start now (see the module docstring for the policy).

    Pure: ``queue`` is not changed; the engine records each returned lease,
    starts the attempt, and then removes the task from the queue.
    ``running`` are the leases held now with predicted ends (an end in the
    past counts as "any moment": ``now``). ``max_parallel`` caps running
    tasks per pipeline, ``parallelism`` in all (engine.parallelism).
    ``gpu_free``/``gpu_lease_used``/``drained``/``host_available``/``gpu_unreadable``
    are the live readings, as for :class:`~.allocator.Capacity`; ``cpu_only_reason`` is
    quoted in the error of a GPU task on a daemon without GPUs.
    """
    running = list(running)
    max_parallel = max_parallel or {}
    cap = Capacity(inventory, (r.lease for r in running), gpu_free=gpu_free, gpu_lease_used=gpu_lease_used,
                   drained=drained, pools=pools, host_available=host_available, gpu_unreadable=gpu_unreadable)
    per_pipe = Counter(r.pipeline for r in running)
    total = len(running)
    ends = [(max(now, r.expected_end), i, r.lease) for i, r in enumerate(running)]

    # Two-level heap: ``top`` orders shapes by their best bucket head; each shape
    # has a heap of its buckets. A shape that does not fit is dropped with all its
    # buckets in one pop, so a full machine costs O(shapes), not O(buckets).
    shape_heaps: dict[int, list[tuple[tuple[int, int, float, int], int, int, _Bucket]]] = {}
    top: list[tuple[tuple[int, int, float, int], int]] = []
    for shape, group in queue.shape_groups().items():
        h = [(b.entries[0][0], k, 0, b) for k, b in enumerate(group)]
        heapq.heapify(h)
        shape_heaps[shape] = h
        top.append((h[0][0], shape))
    heapq.heapify(top)

    reasons: dict[_Bucket, WaitReason] = {}
    start: list[tuple[ReadyTask, Lease]] = []
    buckets: dict[str, _Bucket] = {}  # a started task's bucket (for the reason of one _pin_shared holds back)
    unsat: list[tuple[ReadyTask, str]] = []
    reserved: ReadyTask | None = None
    reserved_req: ResourceRequest | None = None
    shadow = math.inf
    cap_t: Capacity | None = None   # predicted capacity at the shadow time
    default = _QUEUED
    failed: dict[int, WaitReason] = {}  # by shape
    possible: set[int] = set()          # shapes checked by never_satisfiable
    shared_chosen = False  # a task that asked for no cores starts: it keeps one unleased core (see below)

    while top:
        if parallelism is not None and total >= parallelism:
            default = WaitReason("parallelism", f"waits for a run slot (engine.parallelism = {parallelism})")
            break
        _, shape = heapq.heappop(top)
        h = shape_heaps[shape]
        _, k, idx, b = heapq.heappop(h)
        pipeline, req = b.key
        if shape not in possible:
            possible.add(shape)
            never = never_satisfiable(req, inventory, pools or {}, cpu_only_reason=cpu_only_reason)
            if never is not None:
                # Every task of every bucket of this shape asks the same impossible thing.
                failed[shape] = WaitReason("unsatisfiable", never)
                for bb in [b] + [e[3] for e in h]:
                    unsat += [(bb.tasks[tid], never) for _, tid in bb.entries]
                continue
        mp = max_parallel.get(pipeline)
        if mp is not None and per_pipe[pipeline] >= mp:
            reasons[b] = WaitReason("max_parallel", f"pipeline {pipeline!r} already runs {mp} (max_parallel)")
            if h:
                heapq.heappush(top, (h[0][0], shape))
            continue
        # Within one decision capacity only shrinks (leases are taken, never given
        # back), so a shape that did not fit will not fit later either: drop it.
        why = cap.check(req)
        if why is None and shared_chosen and req.cpus and len(cap.free_cores) - req.cpus < 1:
            # A task before this one in order (higher priority, longer path, earlier) asked for no cores and
            # starts on the unleased ones: leasing the last of them would leave it none (_pin_shared would hold
            # it back: a stream of one-core tasks starved a priority-100 shared task).
            why = WaitReason("cpus", "waits for a core: the last unleased one is kept for the tasks before it "
                                     "that asked for no cores")
        if why is not None:
            failed[shape] = why
            if reserved is None:
                reserved = b.tasks[b.entries[idx][1]]
                reserved_req = req
                shadow, cap_t = _shadow(cap, req, ends)
                if cap_t is None:
                    # Cannot predict when it fits (memory held outside edgeorch, drained
                    # GPUs): reserving would idle the machine for nothing.
                    reserved, reserved_req = None, None
            continue
        # The request fits now. Before any reservation the first task goes; after
        # it, the first of ``lookahead`` tasks that does not delay the reserved head.
        stop = idx + 1 if reserved is None else min(len(b.entries), idx + lookahead)
        chosen = -1
        lease: Lease | None = None
        for j in range(idx, stop):
            task = b.tasks[b.entries[j][1]]
            got = cap.fit(req, task.id)
            assert isinstance(got, Lease)  # check() said it fits
            if cap_t is not None and now + task.duration > shadow:
                trial = cap_t.copy()
                trial.take(got)
                assert reserved_req is not None
                if trial.check(reserved_req) is not None:
                    continue
                cap_t = trial
            chosen, lease = j, got
            break
        if lease is None:
            assert reserved is not None
            reasons[b] = WaitReason(
                "reserved", f"held back: would delay the reserved task {reserved.id!r} (backfill only fits short tasks)")
        else:
            task = b.tasks[b.entries[chosen][1]]
            cap.take(lease)
            shared_chosen = shared_chosen or not req.cpus
            start.append((task, lease))
            buckets[task.id] = b
            total += 1
            per_pipe[pipeline] += 1
            ends.append((now + task.duration, len(ends), lease))
            if chosen + 1 < len(b.entries):
                heapq.heappush(h, (b.entries[chosen + 1][0], k, chosen + 1, b))
        if h:
            heapq.heappush(top, (h[0][0], shape))
    start = _pin_shared(start, cap.free_cores, reasons, buckets)
    return Decision(tuple(start), tuple(unsat), reserved, None if reserved is None else shadow,
                    reasons, failed, default, now)


def _predicted(seconds: float) -> str:
    """When a reserved task should start, said from now (a clock reading meant nothing to a person; a start
    already due is a running task outliving its predicted duration)."""
    if seconds < 1:
        return "its turn is next, as soon as a running task ends (they run past their predicted durations)"
    return f"predicted to start in about {seconds:.0f}s, as running tasks end"


def _pin_shared(start: list[tuple[ReadyTask, Lease]], free: set[int], reasons: dict[_Bucket, WaitReason],
                buckets: dict[str, _Bucket]) -> list[tuple[ReadyTask, Lease]]:
    """The decision's starts, each task that asked for no cores pinned to the cores nobody leased once the whole
    decision is taken: :meth:`Capacity.fit` gave it the cores free when it was chosen, and a task with dedicated
    cores chosen after it in the same decision could take some of those (both ran on them). A shared task left
    no core at all waits (its bucket says why)."""
    dedicated = sum(1 for _, lease in start if lease.cpus)
    if dedicated == 0 or dedicated == len(start):  # no core was leased under a shared task's feet (the usual case)
        return start
    cores = tuple(sorted(free))
    out: list[tuple[ReadyTask, Lease]] = []
    for task, lease in start:
        if lease.cpus or lease.affinity == cores:
            out.append((task, lease))
        elif cores:
            out.append((task, replace(lease, affinity=cores)))
        else:
            reasons[buckets[task.id]] = WaitReason("cpus", "waits for an unleased core (every core is leased)")
    return out


def _shadow(cap: Capacity, req: ResourceRequest,
            ends: list[tuple[float, int, Lease]]) -> tuple[float, Capacity | None]:
    """When ``req`` will fit as running leases end by prediction, and the capacity then.

    (inf, None) when it does not fit even after every lease has ended.
    """
    cap_t = cap.copy()
    for end, _, lease in sorted(ends):
        cap_t.release(lease)
        if cap_t.check(req) is None:
            return end, cap_t
    return math.inf, None


def fifo_decide(tasks: list[ReadyTask], inventory: Inventory, running: Iterable[Running] = (), *,
                pools: Mapping[str, int] | None = None) -> list[tuple[ReadyTask, Lease]]:
    """Plain FIFO, the benchmark's baseline: start tasks in arrival order until one does not fit."""
    cap = Capacity(inventory, (r.lease for r in running), pools=pools)
    out: list[tuple[ReadyTask, Lease]] = []
    for t in sorted(tasks, key=lambda t: t.seq):
        lease = cap.fit(t.request, t.id)
        if not isinstance(lease, Lease):
            break
        cap.take(lease)
        out.append((t, lease))
    return out


