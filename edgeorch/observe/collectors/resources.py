"""Cores, memory, GPUs (live NVML readings), pools, leases and the queue with its waiting reasons.

Read from the engine's resources report, the same document the
``resources`` op returns (``edgeorch resources``), so the metrics and the CLI
never disagree. GPU readings are taken now, from the GPU backend (NVML on a
real machine).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Any

from prometheus_client.core import Metric

from ...resources.cpus import parse_cpu_list
from ..collect import Sources, gauge


def collect(src: Sources) -> Iterator[Metric]:
    rep = src.engine.resources_report()
    yield from _queue(rep["queue"])
    yield from _cpus(rep["cpus"])
    mem = rep["memory"]
    yield gauge("edgeorch_memory_available_bytes", "Host memory available now (MemAvailable).",
                mem["available_now"])
    yield gauge("edgeorch_memory_leased_bytes", "Host memory leased to running attempts.", mem["leased"])
    yield from _gpus(rep["gpus"], rep["leases"])
    yield gauge("edgeorch_pool_slots", "Slots of each [resources.pools] pool.", labels=["pool"],
                rows=[([name], p["size"]) for name, p in sorted(rep["pools"].items())])
    yield gauge("edgeorch_pool_slots_free", "Free slots of each pool.", labels=["pool"],
                rows=[([name], p["free"]) for name, p in sorted(rep["pools"].items())])
    by_pipeline: Counter[str] = Counter(_pipeline_of(src, lease) for lease in rep["leases"])
    yield gauge("edgeorch_leases", "Leases held by running attempts (cores, memory, GPUs or a pool slot), by pipeline.",
                labels=["pipeline"], rows=sorted(((p,), n) for p, n in by_pipeline.items()))


def _pipeline_of(src: Sources, lease: dict[str, Any]) -> str:
    ctx = src.engine.runs.get(lease["run_id"])
    return ctx.pipeline.name if ctx is not None else ""


def _queue(queue: list[dict[str, Any]]) -> Iterator[Metric]:
    yield gauge("edgeorch_queue_length", "Ready tasks waiting for a slot or resources.", len(queue))
    reasons: Counter[tuple[str, str]] = Counter((q["pipeline"], q["reason_kind"]) for q in queue)
    yield gauge("edgeorch_queue_tasks",
                "Waiting tasks by pipeline and why they wait (cpus, memory, gpus, gpu_memory, gpu_model, pool, "
                "max_parallel, parallelism, reserved, drained, unsatisfiable; starting: admitted now).",
                labels=["pipeline", "reason"], rows=sorted(reasons.items()))


def _cpus(cpus: dict[str, Any]) -> Iterator[Metric]:
    cores = cpus["cores"]
    yield gauge("edgeorch_cpu_cores", "Cores tasks may use (after reserved_cpus and the cgroup cpuset).", len(cores))
    yield gauge("edgeorch_cpu_cores_free", "Cores no lease holds now.", len(parse_cpu_list(cpus["free"])))
    yield gauge("edgeorch_cpu_core_leased", "1 while a lease holds the core (dedicated to one attempt).",
                labels=["core"], rows=[([c["id"]], 1 if c["held_by"] else 0) for c in cores])


def _gpus(gpus: list[dict[str, Any]], leases: list[dict[str, Any]]) -> Iterator[Metric]:
    held: Counter[str] = Counter(g for lease in leases for g in lease["gpus"])
    shares: Counter[str] = Counter()
    for lease in leases:
        for g in lease["gpus"]:
            if not lease["gpu_exclusive"] and lease["gpu_memory"]:
                shares[g] += lease["gpu_memory"]
    whole = {g for lease in leases if lease["gpu_exclusive"] for g in lease["gpus"]}
    ids = [g["uuid"] for g in gpus]
    yield gauge("edgeorch_gpu_info", "Always 1 per GPU (or MIG instance) edgeorch may lease; name and index say which.",
                labels=["gpu", "name", "index"], rows=[((g["uuid"], g["name"], g["index"]), 1) for g in gpus])
    yield gauge("edgeorch_gpu_memory_total_bytes", "GPU memory.", labels=["gpu"],
                rows=[((g["uuid"],), g["memory_total"]) for g in gpus])
    read = [g for g in gpus if "memory_free" in g]
    yield gauge("edgeorch_gpu_up", "1 when the GPU's live reading succeeded at this scrape, 0 when it failed.",
                labels=["gpu"], rows=[((g["uuid"],), 1 if "memory_free" in g else 0) for g in gpus])
    yield gauge("edgeorch_gpu_memory_used_bytes", "GPU memory in use now, by any process (NVML).", labels=["gpu"],
                rows=[((g["uuid"],), g["memory_used"]) for g in read if g.get("memory_used") is not None])
    yield gauge("edgeorch_gpu_utilization_ratio", "GPU utilisation over the driver's last sample period (0 to 1).",
                labels=["gpu"], rows=[((g["uuid"],), g["utilization"] / 100.0) for g in read
                                      if g.get("utilization") is not None])
    yield gauge("edgeorch_gpu_temperature_celsius", "GPU temperature.", labels=["gpu"],
                rows=[((g["uuid"],), g["temperature"]) for g in read if g.get("temperature") is not None])
    yield gauge("edgeorch_gpu_ecc_uncorrected_errors", "Uncorrected ECC errors the driver reports for the GPU.",
                labels=["gpu"], rows=[((g["uuid"],), g["ecc_uncorrected"]) for g in read
                                      if g.get("ecc_uncorrected") is not None])
    yield gauge("edgeorch_gpu_drained", "1 when the GPU was drained as unhealthy (it gets no new lease).",
                labels=["gpu"], rows=[((g["uuid"],), 1 if g.get("drained") else 0) for g in gpus])
    yield gauge("edgeorch_gpu_leases", "Leases holding the GPU now (whole or a memory share).", labels=["gpu"],
                rows=[((u,), held.get(u, 0)) for u in ids])
    yield gauge("edgeorch_gpu_leased_memory_bytes",
                "GPU memory leased now: the whole memory for an exclusive lease, else the sum of the shares.",
                labels=["gpu"],
                rows=[((g["uuid"],), g["memory_total"] if g["uuid"] in whole else shares.get(g["uuid"], 0))
                      for g in gpus])
