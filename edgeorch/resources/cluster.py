"""Pure rules for a cluster executor's machines (Ray): can any node ever serve a request, and what the
daemon's admission counts (docs/scale-out.md "Resources").

With ``[executor] kind = "ray"`` the daemon's policy still decides the order
(priorities, critical path, pools, ``parallelism``) and the cluster's scheduler
places each attempt on a node. The engine's :class:`~.admission.Admission` then
counts the cluster as one machine (:func:`cluster_inventory`: the nodes' CPUs,
memory and GPUs added up), so it never hands the cluster more than it has in
total, and :func:`never_on_cluster` refuses at submission a request that no
single node could ever hold (the sum is not enough: an attempt runs on one
node). No I/O here: the executor reads the nodes and builds :class:`ClusterNode`.

Facts a node declares for the GPU keys (docs/scale-out.md): ``gpu_model`` is
matched, as locally, as a case-insensitive substring of the node's
accelerator types (Ray's ``accelerator_type:<TYPE>`` resources, detected on
NVIDIA nodes or declared); ``gpu_memory`` against the memory of one GPU of the
node, which the node declares as the custom resource ``gpu_memory_mib``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import field
from typing import Any

from ..records import frozen
from .allocator import _fmt, never_satisfiable
from .model import CpuCore, GpuDevice, Inventory, ResourceRequest

MiB = 1024**2
GPU_MEMORY_RESOURCE = "gpu_memory_mib"
"""The custom resource a GPU node declares: the memory of ONE of its GPUs, in MiB (never consumed)."""
ACCELERATOR_PREFIX = "accelerator_type:"
"""Ray's resources naming a node's GPU type (``accelerator_type:A100``)."""


@frozen
class ClusterNode:
    """One machine of the cluster as its scheduler describes it (totals, not what is free now).

    ``gpu_memory`` is the memory of one of its GPUs in bytes (0: not
    declared); ``gpu_models`` its accelerator types; ``resources`` every
    total the node declares, by Ray's names (for reports).
    """

    node_id: str
    address: str
    alive: bool = True
    cpus: float = 0.0
    gpus: float = 0.0
    memory: int = 0
    gpu_memory: int = 0
    gpu_models: tuple[str, ...] = ()
    resources: Mapping[str, float] = field(default_factory=dict)

    @classmethod
    def from_ray(cls, entry: Mapping[str, Any]) -> ClusterNode:
        """From one element of ``ray.nodes()`` (``NodeID``, ``NodeManagerAddress``, ``Alive``, ``Resources``)."""
        res = {str(k): float(v) for k, v in (entry.get("Resources") or {}).items()
               if isinstance(v, (int, float)) and not isinstance(v, bool)}
        models = tuple(sorted(k[len(ACCELERATOR_PREFIX):] for k in res if k.startswith(ACCELERATOR_PREFIX)))
        return cls(node_id=str(entry.get("NodeID", "")), address=str(entry.get("NodeManagerAddress", "")),
                   alive=bool(entry.get("Alive", False)), cpus=res.get("CPU", 0.0), gpus=res.get("GPU", 0.0),
                   memory=int(res.get("memory", 0.0)), gpu_memory=int(res.get(GPU_MEMORY_RESOURCE, 0.0) * MiB),
                   gpu_models=models, resources=res)


def model_matches(models: Iterable[str], wanted: str | None) -> str | None:
    """The first accelerator type (sorted) that ``wanted`` is a case-insensitive substring of; None: none.

    ``wanted`` None matches anything (returns "")."""
    if wanted is None:
        return ""
    w = wanted.lower()
    for m in sorted(models):
        if w in m.lower():
            return m
    return None


def fits_node(req: ResourceRequest, node: ClusterNode) -> str | None:
    """Why ``node`` can never hold ``req`` (None: it can, when idle). The first reason, in key order."""
    if req.cpus > node.cpus:
        return f"{req.cpus} cpus (it has {node.cpus:g})"
    if req.memory and req.memory > node.memory:
        return f"{_fmt(req.memory)} of memory (it has {_fmt(node.memory)})"
    if not req.wants_gpu:
        return None
    if node.gpus <= 0:
        return "a GPU (it has none)"
    if req.gpus > node.gpus:
        return f"{req.gpus} GPUs (it has {node.gpus:g})"
    if model_matches(node.gpu_models, req.gpu_model) is None:
        have = ", ".join(node.gpu_models) or "no accelerator_type"
        return f"gpu_model {req.gpu_model!r} (it has {have})"
    if req.gpu_memory:
        if not node.gpu_memory:
            return f"{_fmt(req.gpu_memory)} of GPU memory (it declares no {GPU_MEMORY_RESOURCE})"
        if req.gpu_memory > node.gpu_memory:
            return f"{_fmt(req.gpu_memory)} of GPU memory (its GPUs have {_fmt(node.gpu_memory)})"
    return None


def never_on_cluster(req: ResourceRequest, nodes: Iterable[ClusterNode],
                     pools: Mapping[str, int] | None = None) -> str | None:
    """Why no node of the cluster could ever hold ``req``; None when one could.

    Only alive nodes count. Pools are the daemon's own (the same check and
    words as on one machine). The reason names the closest miss: what the
    first node that fails last (in the keys' order) lacks.
    """
    if req.pool is not None:
        why = never_satisfiable(ResourceRequest(pool=req.pool), Inventory(), pools or {})
        if why is not None:
            return why
    alive = [n for n in nodes if n.alive]
    if not alive:
        return "cannot be placed: the Ray cluster has no alive node"
    misses = []
    for node in alive:
        why = fits_node(req, node)
        if why is None:
            return None
        misses.append(f"{node.address or node.node_id[:12]} lacks {why}")
    count = f"{len(alive)} node{'s' if len(alive) != 1 else ''}"
    return f"fits no node of the Ray cluster ({count}: " + "; ".join(misses[:3]) + ("; ..." if len(misses) > 3 else "") + ")"


def cluster_inventory(nodes: Iterable[ClusterNode]) -> Inventory:
    """The alive nodes added up as one machine, for the daemon's admission (order and totals only).

    Cores are numbered 0..N-1 across the cluster (a lease's core numbers
    mean "this many of the cluster's CPUs", never cores to pin to); each GPU
    is a device ``ray:<node>:gpu<k>`` named after the node's first
    accelerator type, with the node's declared memory per GPU. Fractions of
    a CPU or GPU a node declares are not counted.
    """
    cpus: list[CpuCore] = []
    gpus: list[GpuDevice] = []
    memory = 0
    for node in sorted((n for n in nodes if n.alive), key=lambda n: n.node_id):
        start = len(cpus)
        cpus.extend(CpuCore(start + i) for i in range(int(node.cpus)))
        memory += node.memory
        for k in range(int(node.gpus)):
            gpus.append(GpuDevice(uuid=f"ray:{node.node_id[:12]}:gpu{k}",
                                  name=(node.gpu_models[0] if node.gpu_models else "GPU"),
                                  memory_total=node.gpu_memory, index=k))
    return Inventory(tuple(cpus), memory, tuple(gpus))


__all__ = ["ACCELERATOR_PREFIX", "GPU_MEMORY_RESOURCE", "ClusterNode", "cluster_inventory", "fits_node",
           "model_matches", "never_on_cluster"]
