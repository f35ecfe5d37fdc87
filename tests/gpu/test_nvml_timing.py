"""How long NVML calls and scheduling decisions take on a real GPU (p50/p99), recorded as JSON."""

from __future__ import annotations

import statistics
import time
from collections import defaultdict
from collections.abc import Callable
from typing import Any

from gpu_helpers import Results

from edgeorch.config import ResourcesConfig
from edgeorch.resources import CpuCore, Inventory, ResourceRequest
from edgeorch.resources.admission import Admission
from edgeorch.resources.gpus.backend import GpuBackend
from edgeorch.resources.gpus.nvml import NvmlBackend
from edgeorch.resources.gpus.reader import GpuReader, GpuWorker
from edgeorch.resources.memory import CgroupSupport

G = 1024**3


class TimingNvml:
    """pynvml with every ``nvml*`` function timed (seconds per call, by name)."""

    def __init__(self, module: Any) -> None:
        self._m = module
        self.times: dict[str, list[float]] = defaultdict(list)

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._m, name)
        if not (name.startswith("nvml") and callable(value)):
            return value

        def timed(*args: Any, **kw: Any) -> Any:
            t = time.perf_counter()
            try:
                return value(*args, **kw)
            finally:
                self.times[name].append(time.perf_counter() - t)

        timed.__name__ = name
        return timed


def pct(samples: list[float], q: float) -> float:
    s = sorted(samples)
    return s[min(len(s) - 1, round(q * (len(s) - 1)))]


def summary(samples: list[float]) -> dict[str, float]:
    return {"n": len(samples), "p50_ms": round(pct(samples, 0.5) * 1e3, 3), "p99_ms": round(pct(samples, 0.99) * 1e3, 3),
            "max_ms": round(max(samples) * 1e3, 3), "mean_ms": round(statistics.fmean(samples) * 1e3, 3)}


def repeat(fn: Callable[[], Any], n: int) -> list[float]:
    out = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return out


def test_each_nvml_call_is_timed(nvml: GpuBackend, results: Results) -> None:
    import pynvml

    proxy = TimingNvml(pynvml)
    backend = NvmlBackend(proxy)
    try:
        uuids = [d.uuid for d in backend.devices()]
        for _ in range(50):
            for u in uuids:
                backend.free_memory(u)
        for _ in range(10):
            for u in uuids:
                backend.reading(u)
                backend.processes(u)
            backend.poll_health(0)
    finally:
        backend.close()
    table = {name: summary(samples) for name, samples in sorted(proxy.times.items())}
    results.record("nvml_timing", {"calls": table})
    print("\nNVML call                                   n   p50 ms   p99 ms")
    for name, s in table.items():
        print(f"{name:42} {s['n']:4} {s['p50_ms']:8.3f} {s['p99_ms']:8.3f}")
    # A GPU answering its memory query this slowly would hold every GPU decision for that long.
    assert table["nvmlDeviceGetMemoryInfo"]["p99_ms"] < 500


def test_a_decision_never_waits_for_nvml_and_a_refresh_is_cheap(nvml: GpuBackend, results: Results) -> None:
    inv = Inventory(cpus=(CpuCore(0, 0), CpuCore(1, 0)), memory_available=8 * G, gpus=nvml.devices())
    cgroup = CgroupSupport(False, None, "not used")

    def adm(reader: GpuReader) -> Admission:
        a = Admission(ResourcesConfig(), inv, nvml, "nvml", cgroup, reader=reader)
        for i in range(8):
            a.push(f"1/s{i}", ResourceRequest(gpu_memory=64 * 1024**2), "p", 0, 60.0, 60.0)
        return a

    inline = adm(GpuReader(nvml, [d.uuid for d in inv.gpus]))
    refresh = repeat(lambda: (inline.reader.request(), inline.decide(0.0, parallelism=64, max_parallel={})), 30)  # type: ignore[union-attr]
    cached = repeat(lambda: inline.decide(0.0, parallelism=64, max_parallel={}), 200)
    worker = GpuWorker()
    threaded = adm(GpuReader(nvml, [d.uuid for d in inv.gpus], worker=worker))
    try:
        loop_side = repeat(lambda: threaded.decide(0.0, parallelism=64, max_parallel={}), 200)
    finally:
        worker.close(5.0)
    data = {"refresh_and_decide": summary(refresh), "decide_on_fresh_snapshot": summary(cached),
            "decide_on_event_loop_threaded": summary(loop_side), "devices": len(inv.gpus)}
    results.record("nvml_timing", {"decision": data})
    print(f"\ndecision: {data}")
    assert data["decide_on_event_loop_threaded"]["p99_ms"] < 50  # the loop side never calls NVML
