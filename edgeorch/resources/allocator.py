"""Pure allocation: which cores, GPUs and GPU memory a request gets, or why not.

Nothing here reads hardware or clocks: the inputs are the
:class:`~.model.Inventory`, the current :class:`~.model.Lease` s and the
live GPU readings, and the output is a new Lease or a
:class:`~.model.WaitReason`. The engine records the Lease, then starts the
attempt; two calls with the same inputs give the same answer.

Guarantees (property-tested in ``tests/unit/resources/test_allocator_props.py``):

- never more cores, host memory or pool slots than the inventory/config has;
- a GPU leased whole (``gpus = N``) carries no other lease, and a GPU with any
  lease is never leased whole;
- the memory shares on a GPU never add up to more than its memory, and the
  shares granted from one :class:`Capacity` never add up to more than the
  live free memory it was built with (other users of the GPU count);
- drained GPUs get no new lease.

Live GPU memory model: per GPU, ``external`` = total − live free − what
edgeorch's leased processes use now within their budgets (``gpu_lease_used``:
per share lease, min(its use, its budget), summed; the caller computes it
from the *same* reading as the live free memory and only for leases held
now), i.e. memory held by anything edgeorch does not lease, the driver's
reservation included. A share of M bytes fits when
``M <= total − external − sum(leased budgets)`` (= live free − what the
leases may still grow by) and ``M <= live free`` (minus what this Capacity
already granted). Leased budgets count in full even before the task
allocates them, so admission never promises the same bytes twice; it cannot
stop a task from allocating past its budget between two watcher checks, nor
another program from taking memory, so an out-of-memory error stays
possible (see docs/resources.md, "What a budget is").

MIG and compute modes, as CUDA enforces them:

- a CUDA process enumerates at most one MIG device, and no whole GPU once a
  MIG device is visible: ``gpus = N`` with N ≥ 2 is served by whole GPUs
  only (never two MIG devices, never a mix);
- compute instances of one MIG GPU instance share its memory
  (``GpuDevice.memory_group``): their shares are accounted against one pool,
  and a whole lease on one of them blocks its siblings;
- ``exclusive_process`` GPUs take one lease at most (one CUDA context);
  ``prohibited`` GPUs take none (no context can be created).

GPUs the caller could not read (``gpu_unreadable``: NVML not answering, an
error) get no new lease, and the wait says why.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from .cpus import format_cpu_list
from .model import GpuDevice, Inventory, Lease, ResourceRequest, WaitReason

GiB = 1024**3


def _fmt(n: int) -> str:
    """Bytes in the unit people read (GiB with one decimal, else MiB)."""
    return f"{n / GiB:.1f}G" if n >= GiB else f"{n / 1024**2:.0f}M"


def model_matches(device: GpuDevice, model: str | None) -> bool:
    """True when ``model`` is None or a case-insensitive substring of the device name."""
    return model is None or model.lower() in device.name.lower()


def never_satisfiable(request: ResourceRequest, inventory: Inventory, pools: Mapping[str, int] | None = None,
                      *, cpu_only_reason: str | None = None) -> str | None:
    """Why no state of this machine could ever grant ``request``; None when some could.

    Checked against the inventory alone (drained GPUs still count: draining
    is an operator matter, the wait says so). ``cpu_only_reason`` is the
    detect message ("no NVML library: running CPU-only"), quoted when a GPU
    is asked of a daemon without one. ``pools`` None skips the pool check.
    GPU memory is compared with what can ever be free on a GPU (its total
    less the driver's reservation), so a request for a card's full memory is
    refused at submission instead of waiting forever. GPUs in compute mode
    ``prohibited`` do not count; ``gpus`` ≥ 2 counts whole GPUs only (one
    CUDA process can use one MIG device).
    """
    if request.cpus > len(inventory.cpus):
        return (f"asks for {request.cpus} cpus but the daemon may use only {len(inventory.cpus)} "
                f"(after reserved_cpus and the cgroup cpuset)")
    if request.memory and inventory.memory_available and request.memory > inventory.memory_available:
        return f"asks for {_fmt(request.memory)} of memory but only {_fmt(inventory.memory_available)} is available"
    if pools is not None and request.pool is not None and request.pool not in pools:
        known = ", ".join(sorted(pools)) or "none configured"
        return f"pool {request.pool!r} is not configured in [resources.pools] (known: {known})"
    if not request.wants_gpu:
        return None
    if not inventory.gpus:
        why = f" ({cpu_only_reason})" if cpu_only_reason else ""
        return f"asks for a GPU but this daemon has none{why}"
    fitting = [g for g in inventory.gpus if model_matches(g, request.gpu_model)]
    if not fitting:
        names = ", ".join(sorted({g.name for g in inventory.gpus}))
        return f"gpu_model {request.gpu_model!r} matches no GPU (have: {names})"
    usable = [g for g in fitting if g.compute_mode != "prohibited"]
    if not usable:
        return ("every fitting GPU is in compute mode PROHIBITED (no CUDA context can be created): "
                + ", ".join(g.uuid for g in fitting))
    need = request.gpu_memory
    if need:  # (the policy calls this once per request shape and decision: no work for requests without memory)
        big = usable[0]
        for g in usable:
            if g.memory_usable > big.memory_usable:
                big = g
        if need > big.memory_usable:
            # The largest of those its gpu_model matches, said so (the machine's largest may be another model).
            which = f"GPU matching gpu_model {request.gpu_model!r} ({big.name})" if request.gpu_model else "GPU"
            if big.memory_reserved:
                return (f"asks for {_fmt(need)} of GPU memory but at most {_fmt(big.memory_usable)} can ever be free "
                        f"on the largest {which} ({_fmt(big.memory_total)}, of which the driver reserves "
                        f"{_fmt(big.memory_reserved)})")
            return f"asks for {_fmt(need)} of GPU memory but the largest {which} has {_fmt(big.memory_total)}"
    if request.gpus:
        whole = [g for g in usable if g.memory_usable >= need] if need else usable
        if request.gpus > 1:
            whole = [g for g in whole if g.parent is None]
        n = len(whole)
        if request.gpus > n:
            mig = sum(1 for g in usable if g.parent is not None)
            why = (" (MIG devices do not count: a CUDA process can use only one MIG device, and no whole GPU "
                   "beside it)" if request.gpus > 1 and mig else "")
            return f"asks for {request.gpus} GPUs but only {n} fitting GPU{'s exist' if n != 1 else ' exists'}{why}"
    return None


class _Mem:
    """Memory bookkeeping of one pool: a GPU, or a MIG GPU instance its compute instances share."""

    __slots__ = ("exclusive", "holders", "leased", "limit", "slack")

    def __init__(self, limit: int, slack: int, leased: int = 0, holders: int = 0, exclusive: bool = False) -> None:
        self.limit = limit          # total − external use
        self.slack = slack          # live free memory not yet granted by this Capacity
        self.leased = leased        # sum of share budgets
        self.holders = holders      # leases of any kind on any device of the pool
        self.exclusive = exclusive  # a whole lease on one of its devices

    def copy(self) -> _Mem:
        return _Mem(self.limit, self.slack, self.leased, self.holders, self.exclusive)


class _Gpu:
    """Mutable per-device bookkeeping inside a :class:`Capacity`; memory lives in its pool (``mem``)."""

    __slots__ = ("blocked", "dev", "drained", "exclusive", "mem", "mem_usable", "mig", "one_context", "prohibited",
                 "shares")

    def __init__(self, dev: GpuDevice, mem: _Mem, *, shares: int = 0, exclusive: bool = False,
                 drained: str | None = None, blocked: str | None = None) -> None:
        self.dev = dev
        self.mem = mem
        self.shares = shares
        self.exclusive = exclusive
        self.drained = drained
        self.blocked = blocked      # why it cannot be read now (NVML not answering, an error)
        # Read once: these run on the scheduler's hot path.
        self.prohibited = dev.compute_mode == "prohibited"
        self.one_context = dev.compute_mode == "exclusive_process"
        self.mem_usable = dev.memory_usable
        self.mig = dev.parent is not None

    def copy(self, mem: _Mem) -> _Gpu:
        """This device's bookkeeping over ``mem`` (a copy of its pool): no recomputation, it is on the hot path."""
        c = _Gpu.__new__(_Gpu)
        c.dev, c.mem, c.shares, c.exclusive, c.drained, c.blocked = (self.dev, mem, self.shares, self.exclusive,
                                                                     self.drained, self.blocked)
        c.prohibited, c.one_context, c.mem_usable, c.mig = self.prohibited, self.one_context, self.mem_usable, self.mig
        return c

    @property
    def leased(self) -> int:
        return self.mem.leased

    @property
    def slack(self) -> int:
        return self.mem.slack

    @property
    def limit(self) -> int:
        return self.mem.limit

    def usable(self) -> bool:
        return self.drained is None and self.blocked is None and not self.prohibited

    def share_room(self) -> int:
        mem = self.mem
        if self.exclusive or mem.exclusive or self.drained is not None or self.blocked is not None or self.prohibited:
            return -1
        if self.one_context and mem.holders:
            return -1  # one CUDA context per GPU: a second share could not start
        return min(mem.limit - mem.leased, mem.slack)

    def whole_free(self) -> bool:
        return (not self.exclusive and self.shares == 0 and self.mem.holders == 0 and self.drained is None
                and self.blocked is None and not self.prohibited)


class Capacity:
    """What is free now: built from inventory, leases and live readings; mutable.

    ``fit`` answers without changing anything; ``take``/``release`` update the
    bookkeeping (the policy uses a private copy to plan one decision).
    """

    __slots__ = ("_order", "free_cores", "gpus", "inventory", "mem_free", "mem_live", "node_of", "pool_free")

    def __init__(self, inventory: Inventory, leases: Iterable[Lease] = (), *,
                 gpu_free: Mapping[str, int] | None = None, gpu_lease_used: Mapping[str, int] | None = None,
                 drained: Mapping[str, str] | None = None, pools: Mapping[str, int] | None = None,
                 host_available: int | None = None, gpu_unreadable: Mapping[str, str] | None = None) -> None:
        """``gpu_free``: live free bytes per UUID (missing: assume what can ever be free minus leases);
        ``gpu_lease_used``: bytes edgeorch's share leases use now within their budgets, per UUID (for
        a MIG memory group: per group key or any member UUID); ``drained``: UUID → reason;
        ``gpu_unreadable``: UUID → why it could not be read now (no new lease); ``pools``: pool sizes
        from config; ``host_available``: MemAvailable now (None: only the leases are checked, against
        ``inventory.memory_available``), so memory taken by others also counts."""
        self.inventory = inventory
        self.node_of = {c.id: c.numa_node for c in inventory.cpus}
        self.free_cores = set(self.node_of)
        self.mem_free: int | None = inventory.memory_available or None
        self.mem_live: int | None = host_available
        gpu_free = gpu_free or {}
        gpu_lease_used = gpu_lease_used or {}
        drained = drained or {}
        unreadable = gpu_unreadable or {}
        self.gpus: dict[str, _Gpu] = {}
        self._order: list[str] = []
        pools_of: dict[str, _Mem] = {}
        for d in inventory.gpus:
            mem = pools_of.get(d.memory_key)
            if mem is None:
                live = gpu_free.get(d.uuid)
                if live is None:
                    mem = _Mem(d.memory_usable, d.memory_usable)
                else:
                    used = gpu_lease_used.get(d.memory_key, gpu_lease_used.get(d.uuid, 0))
                    external = max(0, d.memory_total - live - used)
                    mem = _Mem(d.memory_total - external, live)
                pools_of[d.memory_key] = mem
            self.gpus[d.uuid] = _Gpu(d, mem, drained=drained.get(d.uuid), blocked=unreadable.get(d.uuid))
            self._order.append(d.uuid)
        self.pool_free = dict(pools or {})
        for lease in leases:
            self._apply(lease, -1, live=False)

    def copy(self) -> Capacity:
        c = Capacity.__new__(Capacity)
        c.inventory, c.node_of, c._order = self.inventory, self.node_of, self._order
        c.free_cores = set(self.free_cores)
        c.mem_free = self.mem_free
        c.mem_live = self.mem_live
        mems: dict[int, _Mem] = {}
        c.gpus = {}
        for u, g in self.gpus.items():
            m = mems.get(id(g.mem))
            if m is None:
                m = mems[id(g.mem)] = g.mem.copy()
            c.gpus[u] = g.copy(m)
        c.pool_free = dict(self.pool_free)
        return c

    # -- bookkeeping ---------------------------------------------------------

    def _apply(self, lease: Lease, sign: int, *, live: bool) -> None:
        # sign -1 takes, +1 gives back. ``live`` also moves the live-free slack:
        # existing leases are already reflected in the live reading, new grants are not.
        if sign < 0:
            self.free_cores.difference_update(lease.cpus)
        else:
            self.free_cores.update(c for c in lease.cpus if c in self.node_of)
        if self.mem_free is not None:
            self.mem_free += sign * lease.memory
        if live and self.mem_live is not None:
            self.mem_live += sign * lease.memory
        if lease.pool is not None and lease.pool in self.pool_free:
            self.pool_free[lease.pool] += sign
        for u in lease.gpus:
            g = self.gpus.get(u)
            if g is None:
                continue  # a lease on a GPU that has gone: nothing to account
            if lease.gpu_exclusive:
                g.exclusive = sign < 0
                g.mem.exclusive = sign < 0
            else:
                g.mem.leased -= sign * lease.gpu_memory
                g.shares -= sign
            g.mem.holders -= sign
            if live:
                g.mem.slack += sign * (lease.gpu_memory if not lease.gpu_exclusive else 0)

    def take(self, lease: Lease) -> None:
        """Account a lease granted from this Capacity (as :meth:`fit` returned it)."""
        self._apply(lease, -1, live=True)

    def release(self, lease: Lease) -> None:
        """Give a lease back (its holder finished)."""
        self._apply(lease, +1, live=True)

    def summary(self) -> dict[str, object]:
        """JSON-ready view for ``edgeorch resources``: free cores, memory, per-GPU holdings, pools."""
        return {
            "cpus_total": len(self.node_of), "cpus_free": format_cpu_list(self.free_cores),
            "memory_unleased": self.mem_free, "memory_available_now": self.mem_live,
            "gpus": [
                {"uuid": g.dev.uuid, "name": g.dev.name, "memory_total": g.dev.memory_total,
                 "exclusive": g.exclusive, "shares": g.shares, "shared_memory_leased": g.leased,
                 "share_room": max(0, g.share_room()), "drained": g.drained, "unreadable": g.blocked,
                 "parent": g.dev.parent}
                for g in (self.gpus[u] for u in self._order)
            ],
            "pools_free": dict(self.pool_free),
        }

    # -- questions -------------------------------------------------------------

    def _gpu_candidates(self, req: ResourceRequest) -> tuple[list[_Gpu], WaitReason | None]:
        model = req.gpu_model
        eligible = [g for g in self.gpus.values() if not g.prohibited and (model is None or model_matches(g.dev, model))]
        if req.gpus > 1:  # one CUDA process sees one MIG device at most, and no whole GPU beside it
            eligible = [g for g in eligible if not g.mig]
        if req.gpu_share:
            ok = [g for g in eligible if g.share_room() >= req.gpu_memory]
            if ok:
                ok.sort(key=lambda g: (g.share_room(), g.dev.index))  # best fit: keep big holes for big asks
                return ok, None
            why = self._unusable(eligible, len(eligible))
            if why is not None:
                return [], why
            best = max((g.share_room() for g in eligible), default=0)
            return [], WaitReason("gpu_memory", f"waits for {_fmt(req.gpu_memory)} of GPU memory "
                                  f"(most free on one GPU: {_fmt(max(best, 0))})")
        need = req.gpu_memory
        big_enough = [g for g in eligible if g.mem_usable >= need] if need else eligible
        ok = [g for g in big_enough if g.whole_free() and (req.gpu_memory == 0 or g.slack >= req.gpu_memory)]
        if len(ok) >= req.gpus:
            return ok, None
        usable = [g for g in big_enough if g.drained is None and g.blocked is None]  # (prohibited: not eligible)
        if len(usable) < req.gpus:
            why = self._unusable(big_enough, req.gpus)
            if why is not None:
                return [], why
        if req.gpu_memory:
            free = [g for g in big_enough if g.whole_free()]
            most = max((g.slack for g in free), default=0)
            return [], WaitReason("gpus", f"waits for {req.gpus} whole GPU(s) with {_fmt(req.gpu_memory)} free "
                                  f"({len(ok)} such; most free on an unleased GPU: {_fmt(max(most, 0))})")
        return [], WaitReason("gpus", f"waits for {req.gpus} whole GPU(s) ({len(ok)} free)")

    @staticmethod
    def _unusable(gpus: list[_Gpu], need: int) -> WaitReason | None:
        """Why fewer than ``need`` of ``gpus`` can take a lease at all (drained, unreadable), or None."""
        blocked = [g for g in gpus if g.blocked is not None and g.drained is None]
        drained = [g for g in gpus if g.drained is not None]
        if len(gpus) - len(blocked) - len(drained) >= need:
            return None
        if blocked:
            return WaitReason("gpu_unreadable", "waits for a GPU reading: "
                              + "; ".join(f"{g.dev.uuid}: {g.blocked}" for g in blocked))
        if drained:
            what = "every fitting GPU is drained" if len(drained) == len(gpus) else f"waits for {need} GPU(s): drained"
            return WaitReason("drained", f"{what}: " + "; ".join(f"{g.dev.uuid}: {g.drained}" for g in drained))
        return None

    def check(self, req: ResourceRequest) -> WaitReason | None:
        """None when ``req`` fits now, else the first reason it does not (no Lease built)."""
        if req.pool is not None:
            left = self.pool_free.get(req.pool)
            if left is None:
                return WaitReason("unsatisfiable", f"pool {req.pool!r} is not configured")
            if left <= 0:
                return WaitReason("pool", f"waits for a slot in pool {req.pool!r}")
        if req.cpus > len(self.free_cores):
            return WaitReason("cpus", f"waits for {req.cpus} cores ({len(self.free_cores)} free)")
        if req.cpus == 0 and not self.free_cores:
            return WaitReason("cpus", "waits for an unleased core (every core is leased)")
        if req.memory and self.mem_free is not None and req.memory > self.mem_free:
            return WaitReason("memory", f"waits for {_fmt(req.memory)} of memory "
                              f"({_fmt(max(0, self.mem_free))} not leased)")
        if req.memory and self.mem_live is not None and req.memory > self.mem_live:
            return WaitReason("memory", f"waits for {_fmt(req.memory)} of memory "
                              f"({_fmt(max(0, self.mem_live))} available now)")
        if req.wants_gpu:
            _, why = self._gpu_candidates(req)
            return why
        return None

    def fit(self, req: ResourceRequest, holder: str) -> Lease | WaitReason:
        """The Lease ``req`` would get now, or why it must wait. Does not change ``self``."""
        why = self.check(req)
        if why is not None:
            return why
        chosen: list[_Gpu] = []
        if req.wants_gpu:
            cands, _ = self._gpu_candidates(req)
            if req.gpu_share:
                chosen = cands[:1]
            else:
                chosen = _pick_whole(cands, req.gpus)
        near_nodes = {g.dev.numa_node for g in chosen if g.dev.numa_node >= 0}
        near_cpus: set[int] = set()
        for g in chosen:
            near_cpus |= g.dev.cpu_affinity
        cores = self._pick_cores(req.cpus, near_nodes, near_cpus)
        affinity = tuple(cores) if cores else tuple(sorted(self.free_cores))
        return Lease(
            holder=holder, cpus=tuple(cores), affinity=affinity, memory=req.memory,
            gpus=tuple(g.dev.uuid for g in chosen), gpu_exclusive=bool(chosen) and not req.gpu_share,
            gpu_memory=req.gpu_memory if chosen else 0, pool=req.pool,
        )

    def _pick_cores(self, n: int, near_nodes: set[int], near_cpus: set[int]) -> list[int]:
        if n == 0:
            return []
        free = self.free_cores
        if near_nodes or near_cpus:
            # GPU task: cores close to the GPU first (NVML affinity, then its NUMA
            # node, then the rest). Tiers instead of one keyed sort: this runs once
            # per started task, on the scheduler's hot path.
            tier1 = sorted(free & near_cpus) if near_cpus else []
            if len(tier1) >= n:
                return tier1[:n]
            rest = free.difference(tier1)
            node_of = self.node_of
            tier2 = sorted(c for c in rest if node_of[c] in near_nodes)
            near = tier1 + tier2
            if len(near) >= n:
                return near[:n]
            return near + sorted(rest.difference(tier2))[: n - len(near)]
        by_node: dict[int, list[int]] = {}
        for c in free:
            by_node.setdefault(self.node_of[c], []).append(c)
        fits = [cs for cs in by_node.values() if len(cs) >= n]
        if fits:
            # Best fit: the node with the fewest free cores that still holds the task,
            # leaving bigger holes for bigger tasks.
            best: list[int] = min(fits, key=_size_then_first)
            return sorted(best)[:n]
        out: list[int] = []
        for cs in sorted(by_node.values(), key=lambda cs: -len(cs)):
            out += sorted(cs)[: n - len(out)]
            if len(out) == n:
                break
        return out


def _pick_whole(cands: list[_Gpu], n: int) -> list[_Gpu]:
    """``n`` of ``cands`` (all free), preferring one NUMA node, then index order."""
    by_node: dict[int, list[_Gpu]] = {}
    for g in cands:
        by_node.setdefault(g.dev.numa_node, []).append(g)
    fits = [gs for gs in by_node.values() if len(gs) >= n]
    if fits:
        best: list[_Gpu] = min(fits, key=len)
        return sorted(best, key=_gpu_index)[:n]
    return sorted(cands, key=_gpu_index)[:n]


def _size_then_first(cores: list[int]) -> tuple[int, int]:
    return (len(cores), min(cores))


def _gpu_index(g: _Gpu) -> int:
    return g.dev.index


def allocate(request: ResourceRequest, inventory: Inventory, leases: Iterable[Lease] = (), *, holder: str = "",
             gpu_free: Mapping[str, int] | None = None, gpu_lease_used: Mapping[str, int] | None = None,
             drained: Mapping[str, str] | None = None, pools: Mapping[str, int] | None = None,
             host_available: int | None = None, gpu_unreadable: Mapping[str, str] | None = None) -> Lease | WaitReason:
    """Grant ``request`` given the current ``leases`` and live readings, or say why it waits.

    A request that :func:`never_satisfiable` rejects gets a WaitReason of kind
    ``unsatisfiable``: the engine must fail the task rather than wait.
    """
    never = never_satisfiable(request, inventory, pools)
    if never is not None:
        return WaitReason("unsatisfiable", never)
    cap = Capacity(inventory, leases, gpu_free=gpu_free, gpu_lease_used=gpu_lease_used, drained=drained, pools=pools,
                   host_available=host_available, gpu_unreadable=gpu_unreadable)
    return cap.fit(request, holder)
