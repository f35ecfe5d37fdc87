"""A real CUDA process started with a lease's environment: what it sees, what NVML says of it, the watcher's verdict."""

from __future__ import annotations

import os
import signal
import time

import pytest
from gpu_helpers import Results, start_child

from edgeorch.config import ResourcesConfig
from edgeorch.resources import CpuCore, Inventory, Lease, ResourceRequest
from edgeorch.resources.admission import Admission
from edgeorch.resources.child import lease_env
from edgeorch.resources.gpus.backend import GpuBackend
from edgeorch.resources.gpus.reader import GpuReader
from edgeorch.resources.memory import CgroupSupport

G = 1024**3


def _admission(nvml: GpuBackend) -> Admission:
    inv = Inventory(cpus=(CpuCore(0, 0),), memory_available=8 * G, gpus=nvml.devices())
    return Admission(ResourcesConfig(), inv, nvml, "nvml", CgroupSupport(False, None, "not used"),
                     reader=GpuReader(nvml, [d.uuid for d in inv.gpus]))


def _poll(cond, timeout: float, step: float = 0.02):  # type: ignore[no-untyped-def]
    """Poll external hardware state (NVML has no event for it) until ``cond()`` is truthy; (value, seconds)."""
    t0 = time.monotonic()
    while True:
        got = cond()
        if got or time.monotonic() - t0 > timeout:
            return got, time.monotonic() - t0
        time.sleep(step)


def test_a_leased_cuda_child_sees_its_device_shows_in_nvml_is_policed_and_vanishes(
        nvml: GpuBackend, libcuda: None, results: Results) -> None:
    adm = _admission(nvml)
    adm.push("1/child", ResourceRequest(gpu_memory=2 * G), "p", 0, 60.0, 60.0)
    decision = adm.decide(0.0, parallelism=4, max_parallel={})
    if not decision.start:
        pytest.fail(f"no GPU has 2G free for the test: {decision.reason(adm.queue, '1/child')}")
    ((_, lease),) = decision.start
    (uuid,) = lease.gpus
    env = {**os.environ, **lease_env(lease)}
    child, seen = start_child(env, G, hold=True)
    try:
        assert "error" not in seen, seen
        assert seen["count"] == 1 and seen["uuids"] == [uuid], f"lease {uuid}, CUDA sees {seen['uuids']}"
        mine, took = _poll(lambda: [p for p in nvml.processes(uuid) if p.pid == child.pid], 10)
        if not mine:
            others = [p.pid for p in nvml.processes(uuid)]
            pytest.fail(f"the child (pid {child.pid}) is not among NVML's processes on {uuid} ({others}): "
                        "host PIDs in a PID namespace?")
        used = mine[0].used_memory
        assert used is not None and G <= used <= G + 2 * G, used
        context = used - G
        # The watcher, through the engine's own Admission: 1G allocated + context is over a 1G budget …
        adm.grant(1, 1, "child", Lease("1/child", gpus=(uuid,), gpu_memory=G), "p", 60.0, 0.0)
        ((aid, action),), _ = adm.watch({1: [child.pid]})
        assert (aid, action.action) == (1, "stop") and "CUDA context" in action.reason
        adm.release(1)
        # … and within a 4G budget.
        adm.grant(2, 1, "child", Lease("1/child", gpus=(uuid,), gpu_memory=4 * G), "p", 60.0, 0.0)
        assert adm.watch({2: [child.pid]}) == ([], {})
        adm.release(2)
        child.send_signal(signal.SIGKILL)
        child.wait(10)
        gone, vanish = _poll(lambda: all(p.pid != child.pid for p in nvml.processes(uuid)), 10, 0.005)
        assert gone, "the killed child is still listed after 10 s"
    finally:
        if child.poll() is None:
            child.kill()
        child.wait(10)
    results.record("cuda_child", {"device": uuid, "listed_after_s": round(took, 3), "used_memory": used,
                                  "allocated": G, "context_overhead": context,
                                  "context_overhead_mib": round(context / 1024**2, 1),
                                  "gone_after_kill_s": round(vanish, 3), "cuda_free_after_alloc": seen.get("free")})
    assert vanish <= 1.0, f"NVML still listed the killed process {vanish:.2f} s later"


def test_on_mig_a_task_never_gets_two_mig_devices(nvml: GpuBackend, libcuda: None) -> None:
    migs = [d for d in nvml.devices() if d.parent is not None]
    if len(migs) < 2:
        pytest.skip("fewer than two MIG devices on this machine")
    adm = _admission(nvml)
    adm.push("1/two", ResourceRequest(gpus=2), "p", 0, 60.0, 60.0)
    decision = adm.decide(0.0, parallelism=4, max_parallel={})
    for _, lease in decision.start:
        assert not any(u.startswith("MIG-") for u in lease.gpus)
    # And the rule the allocator follows is CUDA's: two MIG devices listed, one enumerated.
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": f"{migs[0].uuid},{migs[1].uuid}"}
    child, seen = start_child(env, 0, hold=False)
    child.wait(30)
    assert seen.get("count") == 1, seen
