"""Shared builders for the resources tests: fake device tables and inventories."""

from __future__ import annotations

from typing import Any

import pytest

from edgeorch.resources.gpus.fake import FakeBackend
from edgeorch.resources.model import CpuCore, GpuDevice, Inventory

G = 1024**3


def gpu_table(n: int = 2, memory: str = "80G", *, mig_on_last: bool = False) -> dict[str, Any]:
    """A device table of ``n`` GPUs on two NUMA nodes (optionally the last in MIG mode)."""
    gpus: list[dict[str, Any]] = []
    for i in range(n):
        g: dict[str, Any] = {
            "uuid": f"GPU-{i:08d}-0000-0000-0000-000000000000", "name": "NVIDIA A100-SXM4-80GB",
            "memory": memory, "compute_capability": "8.0", "numa_node": i % 2,
            "cpus": "0-3" if i % 2 == 0 else "4-7", "utilization": 0, "temperature": 30,
        }
        if mig_on_last and i == n - 1:
            g["mig"] = [{"uuid": f"MIG-{i}-a", "memory": "10G"}, {"uuid": f"MIG-{i}-b", "memory": "20G"}]
        gpus.append(g)
    return {"gpu": gpus}


def machine(cores: int = 8, gpus: int = 2, gpu_mem: int = 80 * G, memory: int = 64 * G, nodes: int = 2,
            model: str = "NVIDIA A100-SXM4-80GB") -> Inventory:
    """A simulated machine: cores split evenly over ``nodes``, GPUs alternating nodes."""
    per = max(1, cores // nodes)
    cpus = tuple(CpuCore(c, min(c // per, nodes - 1)) for c in range(cores))
    devs = tuple(
        GpuDevice(f"GPU-{i}", model, gpu_mem, i, (8, 0), i % nodes,
                  frozenset(c.id for c in cpus if c.numa_node == i % nodes))
        for i in range(gpus)
    )
    return Inventory(cpus, memory, devs)


@pytest.fixture
def fake() -> FakeBackend:
    return FakeBackend(gpu_table(3, mig_on_last=True))
