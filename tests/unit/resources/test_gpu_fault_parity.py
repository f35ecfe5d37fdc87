"""The fake backend and the NVML backend (over the pynvml stand-in) agree on NVML's failures (issue 18).

Tests of the layers above use the fake; the NVML backend is what runs on a
GPU. Where they disagree on a fault, a test can pass on the fake while the
daemon misbehaves on hardware. So each fault NVML really returns is
injected into both, through each one's own controls, and the backend
contract's answer is compared: which call fails with which code, which
health event it gives, and what a scheduling decision then does.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from edgeorch.config import ResourcesConfig
from edgeorch.resources import CpuCore, FakeBackend, Inventory, ResourceRequest
from edgeorch.resources.admission import Admission
from edgeorch.resources.gpus.backend import GpuBackend
from edgeorch.resources.gpus.nvml import NvmlBackend
from edgeorch.resources.memory import CgroupSupport
from edgeorch.resources.model import (
    NVML_ERROR_NO_PERMISSION,
    NVML_ERROR_RESET_REQUIRED,
    NVML_ERROR_UNKNOWN,
    GpuBackendError,
)

from .nvml_stub import G, Handle, StubNvml

UUID = "GPU-0"
Inject = Callable[[int | None], None]  # an NVML code fails the memory query; None heals it


def _fake() -> tuple[GpuBackend, Inject]:
    fake = FakeBackend({"gpu": [{"uuid": UUID, "memory": "80G"}]})
    return fake, lambda code: fake.fail_with(UUID, code)


def _stub() -> tuple[GpuBackend, Inject]:
    stub = StubNvml(gpus=[Handle(UUID, 80 * G)])

    def inject(code: int | None) -> None:
        if code is None:
            stub.heal("nvmlDeviceGetMemoryInfo", UUID)
        else:
            stub.fail("nvmlDeviceGetMemoryInfo", UUID, code=code)

    return NvmlBackend(stub), inject


BACKENDS = {"fake": _fake, "nvml-stub": _stub}


@pytest.fixture(params=sorted(BACKENDS))
def faulty(request: pytest.FixtureRequest) -> tuple[GpuBackend, Inject]:
    return BACKENDS[request.param]()


def _admission(backend: GpuBackend) -> Admission:
    inv = Inventory(cpus=(CpuCore(0, 0),), memory_available=8 * G, gpus=backend.devices())
    return Admission(ResourcesConfig(), inv, backend, backend.name, CgroupSupport(False, None, "not used"))


def test_a_gpu_that_needs_a_reset_fails_its_reads_and_is_drained_once(faulty: tuple[GpuBackend, Inject]) -> None:
    backend, inject = faulty
    adm = _admission(backend)
    assert backend.poll_health(0) == []
    inject(NVML_ERROR_RESET_REQUIRED)
    with pytest.raises(GpuBackendError) as e:
        backend.free_memory(UUID)
    assert e.value.nvml_code == NVML_ERROR_RESET_REQUIRED
    adm.push("1/t", ResourceRequest(gpu_memory=G), "p", 0, 60.0, 60.0)
    d = adm.decide(0.0, parallelism=4, max_parallel={})
    assert d.start == () and d.reason(adm.queue, "1/t").kind == "drained"
    assert adm.take_new_drains() == {UUID: "the GPU requires a reset (NVML_ERROR_RESET_REQUIRED)"}
    assert backend.poll_health(0) == []  # reported once


@pytest.mark.parametrize("code", [NVML_ERROR_NO_PERMISSION, NVML_ERROR_UNKNOWN])
def test_a_gpu_that_cannot_be_read_waits_with_the_error_and_is_not_drained(faulty: tuple[GpuBackend, Inject],
                                                                           code: int) -> None:
    backend, inject = faulty
    inject(code)
    with pytest.raises(GpuBackendError) as e:
        backend.free_memory(UUID)
    assert e.value.nvml_code == code
    assert backend.poll_health(0) == []  # a refused or unknown reading is no health event
    adm = _admission(backend)
    adm.push("1/t", ResourceRequest(gpu_memory=G), "p", 0, 60.0, 60.0)
    d = adm.decide(0.0, parallelism=4, max_parallel={})
    why = d.reason(adm.queue, "1/t")
    assert d.start == () and why.kind == "gpu_unreadable" and UUID in why.message
    assert adm.take_new_drains() == {}
    inject(None)  # healed: the next fresh reading schedules it
    assert adm.reader is not None
    adm.reader.invalidate()
    assert len(adm.decide(1.0, parallelism=4, max_parallel={}).start) == 1
