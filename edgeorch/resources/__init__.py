"""Resources: CPU cores, host memory and NVIDIA GPUs handed to tasks, never oversubscribed.

The engine's path through this package:

1. At start: ``backend, msg = open_gpu_backend(cfg.resources)`` (log ``msg``
   once), ``inventory = read_inventory(cfg.resources.reserved_cpus,
   backend.devices() if backend else ())``, ``cg = memory.detect()``.
2. Validation/admission: ``never_satisfiable(request, inventory, pools,
   cpu_only_reason=msg)`` → fail the task with that text instead of waiting.
3. Each scheduling pass: ``decide(queue, inventory, running, now=…,
   gpu_free=…, drained=…, pools=…, max_parallel=…)`` → record each lease,
   start each attempt, ``queue.remove(task.id)``.
4. In the child after fork: ``apply_affinity(lease)``, env ``lease_env(lease)``.
5. Watcher: ``check_budgets(...)`` and ``drains_from_events(backend.poll_health())``.
"""

from .allocator import Capacity, allocate, never_satisfiable
from .child import THREAD_VARS, apply_affinity, lease_env
from .cpus import format_cpu_list, parse_cpu_list, read_inventory, usable_cpus
from .gpus import FakeBackend, GpuBackend, open_gpu_backend
from .model import (
    CpuCore,
    GpuBackendError,
    GpuDevice,
    GpuProcess,
    GpuReading,
    HealthEvent,
    Inventory,
    Lease,
    ResourceError,
    ResourceRequest,
    UnsatisfiableError,
    WaitReason,
)
from .policy import Decision, DurationModel, ReadyQueue, ReadyTask, Running, critical_paths, decide, ewma
from .watcher import BudgetAction, check_budgets, drains_from_events, lease_usage

__all__ = [
    "THREAD_VARS",
    "BudgetAction",
    "Capacity",
    "CpuCore",
    "Decision",
    "DurationModel",
    "FakeBackend",
    "GpuBackend",
    "GpuBackendError",
    "GpuDevice",
    "GpuProcess",
    "GpuReading",
    "HealthEvent",
    "Inventory",
    "Lease",
    "ReadyQueue",
    "ReadyTask",
    "ResourceError",
    "ResourceRequest",
    "Running",
    "UnsatisfiableError",
    "WaitReason",
    "allocate",
    "apply_affinity",
    "check_budgets",
    "critical_paths",
    "decide",
    "drains_from_events",
    "ewma",
    "format_cpu_list",
    "lease_env",
    "lease_usage",
    "never_satisfiable",
    "open_gpu_backend",
    "parse_cpu_list",
    "read_inventory",
    "usable_cpus",
]
