"""Pure checks behind the GPU watcher: budgets against readings, health events to drains.

The daemon's watcher loop (engine side) reads ``backend.processes(uuid)`` for
every leased GPU and ``backend.poll_health()``; these functions turn the
readings into actions, so they are tested without a GPU or a clock.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from .allocator import _fmt
from .model import GpuProcess, HealthEvent, Lease


@dataclass(frozen=True)
class BudgetAction:
    """``action`` is ``stop`` or ``warn`` for the attempt holding lease ``holder``."""

    holder: str
    action: str
    reason: str


def check_budgets(leases: Iterable[Lease], processes: Iterable[GpuProcess],
                  pids_of: Mapping[str, Iterable[int]], policy: str = "stop") -> list[BudgetAction]:
    """Attempts using more GPU memory than their lease's ``gpu_memory`` budget.

    ``pids_of`` maps a lease holder to the pids of its process tree (the
    executor knows them: its process group). Usage is summed per GPU over
    those pids; a lease with ``gpu_memory == 0`` has no budget and is never
    flagged. Processes with unknown usage (``used_memory`` None) count 0.
    ``policy`` is config's ``gpu_memory_policy``: ``stop`` or ``warn``.
    One action per holder, naming the worst GPU, ordered by holder.
    """
    by_gpu_pid: dict[tuple[str, int], int] = {}
    for p in processes:
        by_gpu_pid[(p.uuid, p.pid)] = by_gpu_pid.get((p.uuid, p.pid), 0) + (p.used_memory or 0)
    out: list[BudgetAction] = []
    for lease in sorted(leases, key=lambda lease: lease.holder):
        if not lease.gpu_memory or not lease.gpus:
            continue
        pids = set(pids_of.get(lease.holder, ()))
        worst: tuple[int, str] | None = None
        for uuid in lease.gpus:
            used = sum(by_gpu_pid.get((uuid, pid), 0) for pid in pids)
            if used > lease.gpu_memory and (worst is None or used > worst[0]):
                worst = (used, uuid)
        if worst is not None:
            reason = (f"uses {_fmt(worst[0])} of GPU memory on {worst[1]}, over its "
                      f"gpu_memory budget of {_fmt(lease.gpu_memory)}")
            out.append(BudgetAction(lease.holder, policy, reason))
    return out


def lease_usage(leases: Iterable[Lease], processes: Iterable[GpuProcess],
                pids_of: Mapping[str, Iterable[int]]) -> dict[str, int]:
    """Per GPU UUID, bytes used by leased attempts' processes (the allocator's ``gpu_lease_used``)."""
    pid_ok = {pid for pids in pids_of.values() for pid in pids}
    leased = {u for lease in leases for u in lease.gpus}
    out: dict[str, int] = {}
    for p in processes:
        if p.uuid in leased and p.pid in pid_ok:
            out[p.uuid] = out.get(p.uuid, 0) + (p.used_memory or 0)
    return out


# XIDs that NVIDIA's XID catalogue attributes to the application (bad kernel,
# page fault in user code, a process killed mid-kernel), not to the GPU: the
# task fails, the GPU stays usable. Draining on them would let one buggy
# training take the machine's GPUs out of service.
APPLICATION_XIDS = frozenset({13, 31, 43, 45})


def drains_from_events(events: Iterable[HealthEvent], already: Mapping[str, str] | None = None, *,
                       ignore_xids: frozenset[int] = APPLICATION_XIDS) -> dict[str, str]:
    """GPUs to drain (UUID → reason) for XID, uncorrectable-ECC and lost events.

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
    return out
