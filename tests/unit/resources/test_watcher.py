"""Watcher checks: GPU memory budgets against per-process readings; health events to drains."""

from __future__ import annotations

from edgeorch.resources.model import GpuProcess, HealthEvent, Lease
from edgeorch.resources.watcher import check_budgets, drains_from_events, lease_usage

from .conftest import G

LEASES = [
    Lease("a1", gpus=("GPU-0",), gpu_memory=20 * G),
    Lease("a2", gpus=("GPU-0",), gpu_memory=20 * G),
    Lease("a3", gpus=("GPU-1",), gpu_exclusive=True),
]
PIDS = {"a1": [100, 101], "a2": [200], "a3": [300]}


def test_task_over_budget_is_stopped_with_a_clear_reason() -> None:
    procs = [GpuProcess("GPU-0", 100, 15 * G), GpuProcess("GPU-0", 101, 6 * G), GpuProcess("GPU-0", 200, 19 * G),
             GpuProcess("GPU-1", 300, 70 * G), GpuProcess("GPU-0", 999, 30 * G)]
    actions = check_budgets(LEASES, procs, PIDS, policy="stop")
    assert [(a.holder, a.action) for a in actions] == [("a1", "stop")]
    assert actions[0].reason == ("uses 21.0G of GPU memory on GPU-0, over its gpu_memory budget of 20.0G "
                                 "(NVML counts each process's CUDA context, typically 150-600M, in its use)")


def test_warn_policy_and_unknown_usage() -> None:
    procs = [GpuProcess("GPU-0", 200, 25 * G), GpuProcess("GPU-0", 100, None)]
    # Unknown usage counts 0 (a1 is not over), and a1 is told once that its budget is not enforced.
    got = [(a.holder, a.action, a.why) for a in check_budgets(LEASES, procs, PIDS, policy="warn")]
    assert got == [("a1", "warn", "unknown"), ("a2", "warn", "over")]


def test_lease_usage_counts_only_leased_processes() -> None:
    procs = [GpuProcess("GPU-0", 100, 5 * G), GpuProcess("GPU-0", 999, 30 * G)]
    assert lease_usage(LEASES, procs, PIDS) == {"GPU-0": 5 * G}


def test_health_events_drain_once_with_reason() -> None:
    events = [HealthEvent("GPU-0", "xid", 79), HealthEvent("GPU-0", "lost"), HealthEvent("GPU-1", "ecc_uncorrectable",
                                                                                      message="2 errors"),
              HealthEvent("GPU-2", "lost"), HealthEvent("GPU-3", "xid", 13)]
    drains = drains_from_events(events, already={"GPU-2": "XID 48 reported by the driver"})
    assert drains == {"GPU-0": "XID 79 reported by the driver", "GPU-1": "uncorrectable ECC error (2 errors)"}
