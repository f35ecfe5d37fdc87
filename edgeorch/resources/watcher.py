"""Pure checks behind the GPU watcher: budgets against readings, health events to drains.

The daemon's watcher (``Admission.watch``) reads ``backend.processes(uuid)``
for every leased GPU and ``backend.poll_health()`` through the GPU reader;
these functions turn the readings into actions, so they are tested without a
GPU or a clock.

What NVML's per-process figures are, and so what a budget check can and
cannot do (docs/resources.md, "What a budget is"):

- ``usedGpuMemory`` includes the process's CUDA context (a few hundred MiB
  per process and GPU): a budget is the task's whole footprint, context
  included;
- it is unknown (None) on WDDM/WSL2 and for other users' processes without
  privileges: such a process cannot be checked, and the attempt is warned
  once that its budget is not enforced;
- NVML's PIDs are host PIDs: a daemon in a container with its own PID
  namespace never finds its tasks among them (:func:`pids_not_visible`);
- the check runs every few seconds, so it stops a task *after* it went over,
  and cannot prevent another program from taking memory in between.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

from ..records import frozen
from .allocator import _fmt
from .model import GpuProcess, HealthEvent, Lease


@frozen
class BudgetAction:
    """``action`` is ``stop`` or ``warn`` for the attempt holding lease ``holder``.

    ``why`` says which check: ``over`` (over its budget), ``unknown`` (its
    processes' GPU memory is not reported), ``invisible`` (NVML's PIDs are not
    in this daemon's PID namespace). Warnings are given once per attempt and ``why``.
    """

    holder: str
    action: str
    reason: str
    why: str = "over"


CONTEXT_NOTE = "NVML counts each process's CUDA context, typically 150-600M, in its use"
SMALL_BUDGET = 512 * 1024**2
"""Budgets below this are warned about at start: a CUDA context alone may exceed them."""


def small_budget_note(gpu_memory: int) -> str | None:
    """A sentence for a GPU budget so small that the CUDA context alone may break it (None: fine)."""
    if 0 < gpu_memory < SMALL_BUDGET:
        return (f"gpu_memory {_fmt(gpu_memory)} is small: {CONTEXT_NOTE}, so the task may be over its budget "
                "as soon as it starts CUDA")
    return None


def check_budgets(leases: Iterable[Lease], processes: Iterable[GpuProcess],
                  pids_of: Mapping[str, Iterable[int]], policy: str = "stop") -> list[BudgetAction]:
    """Attempts using more GPU memory than their lease's ``gpu_memory`` budget.

    ``pids_of`` maps a lease holder to the pids of its process tree (the
    executor knows them: every process below the attempt's shim, those that
    left its process group included). Usage is summed per GPU over
    those pids; a lease with ``gpu_memory == 0`` has no budget and is never
    flagged. ``policy`` is config's ``gpu_memory_policy``: ``stop`` or
    ``warn``. One action per holder, ordered by holder: over its budget (the
    worst GPU named, ``why="over"``), else, when some of its processes'
    usage is unknown (``used_memory`` None: counted 0), a ``warn`` that its
    budget is not enforced (``why="unknown"``).
    """
    by_gpu_pid: dict[tuple[str, int], int] = {}
    unknown: set[tuple[str, int]] = set()
    for p in processes:
        by_gpu_pid[(p.uuid, p.pid)] = by_gpu_pid.get((p.uuid, p.pid), 0) + (p.used_memory or 0)
        if p.used_memory is None:
            unknown.add((p.uuid, p.pid))
    out: list[BudgetAction] = []
    for lease in sorted(leases, key=lambda lease: lease.holder):
        if not lease.gpu_memory or not lease.gpus:
            continue
        pids = set(pids_of.get(lease.holder, ()))
        worst: tuple[int, str] | None = None
        blind: str | None = None
        for uuid in lease.gpus:
            used = sum(by_gpu_pid.get((uuid, pid), 0) for pid in pids)
            if used > lease.gpu_memory and (worst is None or used > worst[0]):
                worst = (used, uuid)
            if blind is None and any((uuid, pid) in unknown for pid in pids):
                blind = uuid
        if worst is not None:
            reason = (f"uses {_fmt(worst[0])} of GPU memory on {worst[1]}, over its "
                      f"gpu_memory budget of {_fmt(lease.gpu_memory)} ({CONTEXT_NOTE})")
            out.append(BudgetAction(lease.holder, policy, reason))
        elif blind is not None:
            out.append(BudgetAction(lease.holder, "warn", f"its gpu_memory budget of {_fmt(lease.gpu_memory)} is not "
                                    f"enforced: NVML does not report its processes' memory on {blind} "
                                    "(WDDM/WSL2, or no permission)", "unknown"))
    return out


def pids_not_visible(processes: Iterable[GpuProcess], visible: Callable[[int], bool],
                     ours: Iterable[int] = ()) -> bool:
    """True when NVML lists processes but none of their PIDs exists in this PID namespace.

    NVML reports host PIDs; a daemon in a container with its own PID
    namespace sees other numbers, so no budget can ever match a task. One
    PID that is one of ``ours`` (the attempts' pids, read from /proc) or
    ``visible`` is enough to say "no" (a foreign PID may just have exited).
    """
    pids = {p.pid for p in processes}
    return bool(pids) and not (pids & set(ours)) and not any(visible(pid) for pid in pids)


def lease_usage(leases: Iterable[Lease], processes: Iterable[GpuProcess],
                pids_of: Mapping[str, Iterable[int]]) -> dict[str, int]:
    """Per GPU UUID, what the share leases held now use, each counted up to its own budget.

    This is the allocator's ``gpu_lease_used``: ``processes`` must come from
    the same reading as the free memory it is used with, and ``leases`` be
    the leases held *now* (a released lease's processes are someone else's
    memory until they are gone). A lease over its budget counts as its
    budget: the excess is memory no other lease may count on. Whole-GPU
    leases are not counted (no share is placed beside them). Unknown usage
    counts 0, which only makes the allocator more careful.
    """
    by_gpu_pid: dict[tuple[str, int], int] = {}
    for p in processes:
        by_gpu_pid[(p.uuid, p.pid)] = by_gpu_pid.get((p.uuid, p.pid), 0) + (p.used_memory or 0)
    out: dict[str, int] = {}
    for lease in leases:
        if lease.gpu_exclusive or not lease.gpu_memory:
            continue
        pids = set(pids_of.get(lease.holder, ()))
        for u in lease.gpus:
            used = sum(by_gpu_pid.get((u, pid), 0) for pid in pids)
            out[u] = out.get(u, 0) + min(used, lease.gpu_memory)
    return out


# XIDs that NVIDIA's XID catalogue attributes to the application (bad kernel,
# page fault in user code, a process killed mid-kernel, a video decoder
# exception), not to the GPU: the task fails, the GPU stays usable. Draining
# on them would let one buggy training take the machine's GPUs out of service.
APPLICATION_XIDS = frozenset({13, 31, 43, 45, 68})


def drains_from_events(events: Iterable[HealthEvent], already: Mapping[str, str] | None = None, *,
                       ignore_xids: frozenset[int] = APPLICATION_XIDS) -> dict[str, str]:
    """GPUs to drain (UUID → reason) for XID, uncorrectable-ECC, lost, reset and row-remap events.

    GPUs in ``already`` keep their first reason and are not returned again,
    so the caller audits each drain once. XIDs in ``ignore_xids`` (default:
    the application-caused ones) and unknown event kinds are ignored.
    """
    already = already or {}
    out: dict[str, str] = {}
    for e in events:
        if e.uuid in already or e.uuid in out:
            continue
        if e.kind == "xid":
            if e.code in ignore_xids:
                continue
            out[e.uuid] = f"XID {e.code} reported by the driver"
        elif e.kind == "ecc_uncorrectable":
            out[e.uuid] = f"uncorrectable ECC error ({e.message})" if e.message else "uncorrectable ECC error"
        elif e.kind == "lost":
            out[e.uuid] = "GPU has fallen off the bus"
        elif e.kind == "reset_required":
            out[e.uuid] = "the GPU requires a reset (NVML_ERROR_RESET_REQUIRED)"
        elif e.kind == "remap_pending":
            out[e.uuid] = "a memory row remap is pending: the GPU needs a reset"
        elif e.kind == "remap_failed":
            out[e.uuid] = "a memory row could not be remapped: the GPU needs service"
    return out
