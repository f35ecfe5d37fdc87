"""The GPU reader: NVML off the event loop, snapshots of bounded age, stalls named, nvmlInit bounded (issue 18, item 3)."""

from __future__ import annotations

import threading

import pytest

from edgeorch.config import ResourcesConfig
from edgeorch.resources import CpuCore, FakeBackend, Inventory, ResourceRequest
from edgeorch.resources.admission import EMPTY, Admission
from edgeorch.resources.gpus.detect import detect_gpus
from edgeorch.resources.gpus.nvml import NvmlBackend
from edgeorch.resources.gpus.reader import GpuReader, GpuWorker
from edgeorch.resources.memory import CgroupSupport
from edgeorch.resources.model import NVML_ERROR_TIMEOUT, GpuBackendError

from .conftest import G
from .nvml_stub import StubNvml

GPU = "GPU-11111111-2222-3333-4444-555555555555"


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def _threaded_adm(backend: FakeBackend, clock: Clock) -> tuple[Admission, threading.Event]:
    inv = Inventory(cpus=(CpuCore(0, 0), CpuCore(1, 0)), memory_available=8 * G, gpus=backend.devices())
    reader = GpuReader(backend, [d.uuid for d in inv.gpus], worker=GpuWorker(), clock=clock, call_timeout=10.0)
    updated = threading.Event()
    adm = Admission(ResourcesConfig(), inv, backend, "fake: 1 GPU device",
                    CgroupSupport(False, None, "memory limits not enforced: test"), reader=reader)
    adm.on_gpu_update(updated.set)
    adm._own_cpus = 2
    return adm, updated


def test_a_wedged_gpu_stops_gpu_tasks_only_and_the_wait_names_the_stalled_call() -> None:
    fake = FakeBackend({"gpu": [{"uuid": GPU, "memory": "10G"}]})
    wedge = fake.block("free_memory")
    clock = Clock()
    adm, updated = _threaded_adm(fake, clock)
    try:
        adm.push("1/gpu", ResourceRequest(gpu_memory=2 * G), "p", 0, 60.0, 60.0)
        adm.push("1/cpu", EMPTY, "p", 0, 10.0, 60.0)
        d = adm.decide(0.0, parallelism=4, max_parallel={})  # returns at once: NVML is asked, not waited for
        assert [t.id for t, _ in d.start] == ["1/cpu"]
        assert d.reason(adm.queue, "1/gpu").kind == "gpu_unreadable"
        assert fake.entered("free_memory").wait(10)
        clock.t += 30.0  # the worker has now been inside free_memory for 30 s
        assert adm.reader is not None
        stall = adm.reader.stall()
        assert stall == f"NVML has not answered for 30 s (free memory of {GPU}): the GPU or its driver is wedged"
        adm.remove("1/cpu")
        d = adm.decide(1.0, parallelism=4, max_parallel={})
        assert d.start == () and stall in d.reason(adm.queue, "1/gpu").message
        # Asking again while a refresh hangs queues nothing more: no pile of NVML calls.
        adm.decide(2.0, parallelism=4, max_parallel={})
        wedge.set()
        assert updated.wait(10), "the reader never reported back"
        d = adm.decide(3.0, parallelism=4, max_parallel={})
        assert [t.id for t, _ in d.start] == ["1/gpu"]
    finally:
        wedge.set()
        adm.close()


def test_the_watcher_never_waits_for_a_blocked_process_listing() -> None:
    from edgeorch.resources import Lease

    fake = FakeBackend({"gpu": [{"uuid": GPU, "memory": "10G"}]})
    wedge = fake.block("processes")
    adm, _ = _threaded_adm(fake, Clock())
    try:
        adm.grant(7, 1, "t", Lease("1/t", gpus=(GPU,), gpu_memory=G), "p", 60.0, 0.0)
        actions, drains = adm.watch({7: [123]})  # asks, does not wait
        assert (actions, drains) == ([], {})
    finally:
        wedge.set()
        adm.close()


def test_a_refresh_reads_only_free_memory_per_device() -> None:
    stub = StubNvml()
    reader = GpuReader(NvmlBackend(stub), ["GPU-0", "MIG-1a", "MIG-1b"])
    reader.request()
    stub.calls.clear()
    reader.request()
    assert stub.calls["nvmlDeviceGetMemoryInfo"] == 3 + 2  # one per device, one liveness probe per physical GPU
    assert not {"nvmlDeviceGetTemperature", "nvmlDeviceGetTotalEccErrors", "nvmlDeviceGetUtilizationRates",
                "nvmlDeviceGetRetiredPages", "nvmlDeviceGetComputeRunningProcesses"} & set(stub.calls)
    snap = reader.latest()
    assert snap is not None and set(snap.free) == {"GPU-0", "MIG-1a", "MIG-1b"}


def test_a_snapshot_is_used_only_while_young() -> None:
    clock = Clock()
    reader = GpuReader(FakeBackend({"gpu": [{"uuid": GPU, "memory": "10G"}]}), [GPU], clock=clock)
    reader.request()
    assert reader.latest(2.0) is not None
    clock.t += 2.5
    assert reader.latest(2.0) is None and reader.latest() is not None


def test_a_refresh_under_way_when_invalidated_does_not_bring_freshness_back() -> None:
    # It read free memory before the invalidation and stores after it: its snapshot must not count as
    # fresh (an engine test once saw a GPU task placed on such a reading, never queued).
    fake = FakeBackend({"gpu": [{"uuid": GPU, "memory": "10G"}]})
    wedge = fake.block("poll_health")  # the last call of a refresh: free memory is read already
    reader = GpuReader(fake, [GPU], worker=GpuWorker(), clock=Clock())
    updated = threading.Event()
    reader.on_update = updated.set
    try:
        reader.request()
        assert fake.entered("poll_health").wait(10)
        reader.invalidate()
        wedge.set()
        assert updated.wait(10), "the refresh never finished"
        snap = reader.latest()
        assert snap is not None and GPU in snap.free  # kept for the report
        assert reader.latest(60.0) is None  # but stale: the next decision asks again
        updated.clear()
        reader.request()  # a refresh begun after the invalidation is fresh again
        assert updated.wait(10)
        assert reader.latest(60.0) is not None
    finally:
        wedge.set()
        reader.close()


def test_a_backend_bug_becomes_an_unreadable_gpu_not_a_dead_worker() -> None:
    fake = FakeBackend({"gpu": [{"uuid": GPU, "memory": "10G"}]})
    fake.fail_with(GPU, None, exc=lambda: RuntimeError("bug"))
    reader = GpuReader(fake, [GPU])
    reader.request()
    snap = reader.latest()
    assert snap is not None and snap.unreadable == {GPU: f"free memory of {GPU}: RuntimeError: bug"}
    fake.fail_with(GPU, None)
    reader.request()
    assert reader.latest().free == {GPU: fake.free_memory(GPU)}  # type: ignore[union-attr]


def test_nvml_init_that_hangs_is_given_up_on_and_closed_if_it_ever_returns() -> None:
    stub = StubNvml()
    hang = stub.block("nvmlInit")
    closed = threading.Event()
    real_shutdown = stub.nvmlShutdown

    def shutdown() -> None:
        real_shutdown()
        closed.set()

    stub.nvmlShutdown = shutdown  # type: ignore[method-assign]
    found = detect_gpus(ResourcesConfig(gpu_backend="auto"), nvml=stub, init_timeout=0.05)
    assert found.backend is None and found.broken
    assert "NVML did not answer within 0 s (nvmlInit or device discovery hung" in found.message
    assert found.message.endswith("running CPU-only: GPU pipelines are refused until this is fixed")
    with pytest.raises(GpuBackendError) as e:
        detect_gpus(ResourcesConfig(gpu_backend="nvml"), nvml=stub, init_timeout=0.05)
    assert e.value.nvml_code == NVML_ERROR_TIMEOUT
    hang.set()
    assert closed.wait(10), "a late NVML start was not shut down"
