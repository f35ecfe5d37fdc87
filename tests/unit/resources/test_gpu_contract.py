"""The GpuBackend contract, run against every backend (fake; NVML where a GPU is present).

Tests here only use the interface, so they hold for real hardware too.
Simulation-only behaviour (injected faults) is in test_fake_backend.py.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from edgeorch.config import ResourcesConfig
from edgeorch.resources.gpus.backend import GpuBackend
from edgeorch.resources.gpus.detect import detect_gpus
from edgeorch.resources.gpus.fake import FakeBackend
from edgeorch.resources.gpus.nvml import NvmlBackend
from edgeorch.resources.model import HEALTH_KINDS, NVML_ERROR_NOT_FOUND, GpuBackendError

from .conftest import gpu_table
from .nvml_stub import StubNvml


def _nvml() -> GpuBackend:
    """The real NVML backend; skipped only where there is no GPU, failed where NVML is present but broken.

    The daemon's own rule decides (:func:`detect_gpus`): "no GPU here" skips
    with its message; "GPUs here but NVML broken" fails with it, so the
    contract cannot pass by skipping on the machines it is meant for. With
    ``EDGEORCH_REQUIRE_GPU=1`` (tests/gpu/validate.sh) nothing is skipped.
    """
    found = detect_gpus(ResourcesConfig(gpu_backend="auto"))
    if found.worker is not None:
        found.worker.close()  # nothing queued: the backend is called from this thread from now on
    if found.backend is None:
        if found.broken or os.environ.get("EDGEORCH_REQUIRE_GPU") == "1":
            pytest.fail(f"no usable NVML: {found.message}")
        pytest.skip(f"no NVIDIA GPU/NVML on this machine: {found.message}")
    return found.backend


@pytest.fixture(params=["fake", "nvml-stub", pytest.param("nvml", marks=pytest.mark.gpu)])
def backend(request: pytest.FixtureRequest) -> Iterator[GpuBackend]:
    # nvml-stub: the NVML backend's code over a pynvml stand-in (runs everywhere);
    # nvml: the real library and GPUs (skipped with the reason where there are none).
    b: GpuBackend
    if request.param == "fake":
        b = FakeBackend(gpu_table(3, mig_on_last=True))
    elif request.param == "nvml-stub":
        b = NvmlBackend(StubNvml())
    else:
        b = _nvml()
    yield b
    b.close()


def test_devices_are_named_by_unique_uuid(backend: GpuBackend) -> None:
    devs = backend.devices()
    uuids = [d.uuid for d in devs]
    assert len(set(uuids)) == len(uuids) > 0
    assert all(u.startswith(("GPU-", "MIG-")) for u in uuids)


def test_devices_describe_memory_name_capability(backend: GpuBackend) -> None:
    for d in backend.devices():
        assert d.memory_total > 0 and d.name
        assert d.compute_capability[0] >= 1
        assert d.numa_node >= -1


def test_mig_parents_are_not_allocatable_but_instances_are(backend: GpuBackend) -> None:
    devs = backend.devices()
    listed = {d.uuid for d in devs}
    for d in devs:
        if d.parent is not None:
            assert d.mig_enabled and d.uuid.startswith("MIG-")
            assert d.parent not in listed
        else:
            assert not d.mig_enabled


def test_devices_are_stable_between_calls(backend: GpuBackend) -> None:
    assert backend.devices() == backend.devices()


def test_reading_reports_memory_within_total(backend: GpuBackend) -> None:
    for d in backend.devices():
        r = backend.reading(d.uuid)
        assert r.uuid == d.uuid
        assert 0 <= r.memory_free <= d.memory_total
        assert 0 <= r.memory_used <= d.memory_total
        for v in (r.utilization_gpu, r.utilization_memory):
            assert v is None or 0 <= v <= 100
        for v in (r.ecc_corrected, r.ecc_uncorrected, r.retired_pages):
            assert v is None or v >= 0


def test_mig_instances_report_no_utilisation(backend: GpuBackend) -> None:
    for d in backend.devices():
        if d.parent is not None:
            assert backend.reading(d.uuid).utilization_gpu is None


def test_processes_have_pids_and_memory(backend: GpuBackend) -> None:
    for d in backend.devices():
        procs = backend.processes(d.uuid)
        assert isinstance(procs, tuple)
        for p in procs:
            assert p.uuid == d.uuid and p.pid > 0
            assert p.used_memory is None or p.used_memory >= 0


@pytest.mark.parametrize("call", ["reading", "processes"])
def test_unknown_uuid_is_not_found(backend: GpuBackend, call: str) -> None:
    with pytest.raises(GpuBackendError) as e:
        getattr(backend, call)("GPU-does-not-exist")
    assert e.value.nvml_code == NVML_ERROR_NOT_FOUND


def test_poll_health_without_trouble_returns_a_list(backend: GpuBackend) -> None:
    events = backend.poll_health(0)
    assert isinstance(events, list)
    assert all(e.kind in HEALTH_KINDS for e in events)


def test_free_memory_never_exceeds_what_can_ever_be_free(backend: GpuBackend) -> None:
    for d in backend.devices():
        assert 0 <= backend.free_memory(d.uuid) <= d.memory_usable <= d.memory_total
        assert 0 <= d.memory_reserved < d.memory_total


def test_free_memory_agrees_with_the_full_reading(backend: GpuBackend) -> None:
    for d in backend.devices():
        # Two queries a moment apart: equal on an idle GPU, close on a busy one.
        assert abs(backend.free_memory(d.uuid) - backend.reading(d.uuid).memory_free) <= 256 * 1024**2


def test_compute_mode_and_memory_groups_are_consistent(backend: GpuBackend) -> None:
    devs = backend.devices()
    assert {d.compute_mode for d in devs} <= {"default", "exclusive_process", "prohibited", "exclusive_thread"}
    groups: dict[str, set[int]] = {}
    for d in devs:
        if d.memory_group is not None:
            assert d.parent is not None  # only MIG compute instances share memory
            groups.setdefault(d.memory_group, set()).add(d.memory_total)
    assert all(len(totals) == 1 for totals in groups.values())


def test_processes_have_plausible_pids(backend: GpuBackend) -> None:
    for d in backend.devices():
        for p in backend.processes(d.uuid):
            assert 0 < p.pid < 2**22  # the kernel's largest pid_max: anything else is a struct mismatch


def test_problems_are_sentences(backend: GpuBackend) -> None:
    assert isinstance(backend.problems, tuple) and all(isinstance(p, str) and p for p in backend.problems)


def test_close_is_idempotent(backend: GpuBackend) -> None:
    backend.close()
    backend.close()


def test_real_nvml_present_but_broken_fails_instead_of_skipping(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    from edgeorch.resources.gpus.detect import Detected

    me = sys.modules[__name__]
    monkeypatch.setattr(me, "detect_gpus", lambda cfg: Detected(None, "2 NVIDIA GPUs on the PCI bus but …", True))
    with pytest.raises(pytest.fail.Exception, match="no usable NVML: 2 NVIDIA GPUs"):
        _nvml()
    monkeypatch.setattr(me, "detect_gpus", lambda cfg: Detected(None, "no NVML library: running CPU-only"))
    with pytest.raises(pytest.skip.Exception):
        _nvml()
    monkeypatch.setenv("EDGEORCH_REQUIRE_GPU", "1")
    with pytest.raises(pytest.fail.Exception):
        _nvml()
