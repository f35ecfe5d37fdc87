"""The NVML backend where real NVML differs from the happy path (issue 18), over the pynvml stand-in.

Old drivers, exceptions that are not NVMLError, devices the daemon may not
open, optional readings failing, MIG compute instances, garbage PIDs,
compute modes, the driver's memory reservation, GH200's NUMA node, row
remapping and health-event registration.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import pynvml
import pytest

from edgeorch.resources.gpus.nvml import NvmlBackend, translate
from edgeorch.resources.model import (
    NVML_ERROR_FUNCTION_NOT_FOUND,
    NVML_ERROR_GPU_IS_LOST,
    NVML_ERROR_LIB_RM_VERSION_MISMATCH,
    NVML_ERROR_NO_PERMISSION,
    NVML_ERROR_RESET_REQUIRED,
    NVML_ERROR_UNKNOWN,
    GpuBackendError,
)

from .conftest import G
from .nvml_stub import CONTEXT, Handle, StubNvml, mig_gpu

M = 1024**2


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


# -- item 1: every pynvml exception is mapped -------------------------------------------------


def test_driver_older_than_r510_lists_processes_through_v2() -> None:
    stub = StubNvml(driver=470)  # no ..._v3 symbol: pynvml raises NVMLLibraryMismatchError
    b = NvmlBackend(stub)
    assert [p.pid for p in b.processes("GPU-0")] == [321, 322]
    b.processes("GPU-0")
    # The working listing is remembered: the mismatching one was tried once.
    assert stub.calls["nvmlDeviceGetComputeRunningProcesses"] == 1
    assert stub.calls["nvmlDeviceGetComputeRunningProcesses_v2"] == 2


def test_driver_without_any_process_listing_is_a_backend_error_not_a_crash() -> None:
    b = NvmlBackend(StubNvml(driver=440))
    with pytest.raises(GpuBackendError) as e:
        b.processes("GPU-0")
    assert e.value.nvml_code == NVML_ERROR_FUNCTION_NOT_FOUND


RAISED: list[tuple[str, Callable[[], BaseException], int]] = [
    ("mismatch", lambda: pynvml.NVMLLibraryMismatchError("Unversioned function called"), NVML_ERROR_FUNCTION_NOT_FOUND),
    ("oserror", lambda: OSError(22, "Invalid argument"), NVML_ERROR_UNKNOWN),
    ("runtime", lambda: RuntimeError("a bug in the bindings"), NVML_ERROR_UNKNOWN),
    ("unknown", lambda: pynvml.NVMLError(pynvml.NVML_ERROR_UNKNOWN), NVML_ERROR_UNKNOWN),
    ("reset", lambda: pynvml.NVMLError(pynvml.NVML_ERROR_RESET_REQUIRED), NVML_ERROR_RESET_REQUIRED),
    ("permission", lambda: pynvml.NVMLError(pynvml.NVML_ERROR_NO_PERMISSION), NVML_ERROR_NO_PERMISSION),
]


@pytest.mark.parametrize(("label", "exc", "code"), RAISED, ids=[r[0] for r in RAISED])
@pytest.mark.parametrize("call", ["reading", "free_memory", "processes"])
def test_anything_pynvml_raises_becomes_a_gpu_backend_error(label: str, exc: Callable[[], BaseException], code: int,
                                                            call: str) -> None:
    stub = StubNvml()
    b = NvmlBackend(stub)
    for fn in ("nvmlDeviceGetMemoryInfo", "nvmlDeviceGetComputeRunningProcesses",
               "nvmlDeviceGetComputeRunningProcesses_v2"):
        stub.fail(fn, "GPU-0", exc=exc)
    with pytest.raises(GpuBackendError) as e:
        getattr(b, call)("GPU-0")
    assert e.value.nvml_code == code and e.value.uuid == "GPU-0"


def test_poll_health_and_close_swallow_whatever_pynvml_raises() -> None:
    stub = StubNvml()
    b = NvmlBackend(stub)
    stub.fail("nvmlEventSetWait", exc=lambda: OSError("ctypes"))
    stub.fail("nvmlDeviceGetMemoryInfo", exc=lambda: pynvml.NVMLLibraryMismatchError("x"))
    assert b.poll_health(0) == []
    stub.fail("nvmlShutdown", exc=lambda: RuntimeError("late"))
    b.close()


def test_translate_names_the_call_and_keeps_the_code() -> None:
    e = translate(pynvml.NVMLError(pynvml.NVML_ERROR_GPU_IS_LOST), pynvml, "nvmlDeviceGetMemoryInfo", "GPU-x")
    assert (e.nvml_code, e.uuid) == (NVML_ERROR_GPU_IS_LOST, "GPU-x")
    assert e.message == "NVML: nvmlDeviceGetMemoryInfo: GPU is lost"
    assert translate(AttributeError("no nvmlDeviceGetRemappedRows"), pynvml, "f").nvml_code == 13
    assert "OSError" in translate(OSError("x"), pynvml, "f").message


def test_driver_upgraded_without_reboot_fails_the_start_with_its_code() -> None:
    stub = StubNvml()
    stub.fail("nvmlInit", code=pynvml.NVML_ERROR_LIB_RM_VERSION_MISMATCH)
    with pytest.raises(GpuBackendError) as e:
        NvmlBackend(stub)
    assert e.value.nvml_code == NVML_ERROR_LIB_RM_VERSION_MISMATCH


# -- item 5: discovery per device ----------------------------------------------------------------


@pytest.mark.parametrize("code", [pynvml.NVML_ERROR_NO_PERMISSION, pynvml.NVML_ERROR_GPU_IS_LOST,
                                  pynvml.NVML_ERROR_UNKNOWN])
def test_one_device_that_cannot_be_opened_leaves_the_others_usable(code: int) -> None:
    stub = StubNvml()
    stub.fail("nvmlDeviceGetName", "GPU-0", code=code)
    b = NvmlBackend(stub)
    assert [d.uuid for d in b.devices()] == ["MIG-1a", "MIG-1b"]
    (problem,) = b.problems
    assert problem.startswith("GPU 0 (GPU-0) cannot be opened and is not used: NVML: nvmlDeviceGetName: ")


def test_a_mig_parent_needs_no_privileged_query() -> None:
    stub = StubNvml(privileged=False)  # the parent's whole-memory query is NO_PERMISSION
    b = NvmlBackend(stub)
    assert [d.uuid for d in b.devices() if d.parent] == ["MIG-1a", "MIG-1b"] and b.problems == ()


def test_a_failing_optional_discovery_query_keeps_the_device(caplog: pytest.LogCaptureFixture) -> None:
    stub = StubNvml()
    stub.fail("nvmlDeviceGetCudaComputeCapability", "GPU-0", code=pynvml.NVML_ERROR_UNKNOWN)
    stub.fail("nvmlDeviceGetCpuAffinity", "GPU-0", exc=lambda: OSError("denied"))
    (dev, *_) = NvmlBackend(stub).devices()
    assert (dev.uuid, dev.compute_capability, dev.cpu_affinity) == ("GPU-0", (0, 0), frozenset())
    assert "compute capability unreadable" in caplog.text


# -- item 6: optional readings never make a GPU unschedulable -----------------------------------


@pytest.mark.parametrize("code", [pynvml.NVML_ERROR_UNKNOWN, pynvml.NVML_ERROR_NO_PERMISSION,
                                  pynvml.NVML_ERROR_RESET_REQUIRED])
def test_a_failing_optional_reading_is_none_named_and_logged_once(code: int,
                                                                   caplog: pytest.LogCaptureFixture) -> None:
    stub = StubNvml()
    b = NvmlBackend(stub)
    stub.fail("nvmlDeviceGetTemperature", "GPU-0", code=code)
    stub.fail("nvmlDeviceGetTotalEccErrors", "GPU-0", exc=lambda: pynvml.NVMLLibraryMismatchError("x"))
    with caplog.at_level(logging.WARNING, "edgeorch.resources"):
        r1 = b.reading("GPU-0")
        r2 = b.reading("GPU-0")
    assert r1.memory_free == r2.memory_free == 80 * G - 512 * M - 3 * G
    assert r1.temperature is None and r1.ecc_corrected is None and r1.utilization_gpu == 37
    assert [p.split(":")[0] for p in r1.problems] == ["temperature"]  # FUNCTION_NOT_FOUND is "not supported"
    assert caplog.text.count("temperature unreadable") == 1


def test_a_lost_gpu_is_lost_even_in_an_optional_reading() -> None:
    stub = StubNvml()
    b = NvmlBackend(stub)
    stub.fail("nvmlDeviceGetTemperature", "GPU-0", code=pynvml.NVML_ERROR_GPU_IS_LOST)
    with pytest.raises(GpuBackendError) as e:
        b.reading("GPU-0")
    assert e.value.nvml_code == NVML_ERROR_GPU_IS_LOST


def test_free_memory_is_one_query() -> None:
    stub = StubNvml()
    b = NvmlBackend(stub)
    before = sum(stub.calls.values())
    assert b.free_memory("GPU-0") == b.reading("GPU-0").memory_free
    assert stub.calls["nvmlDeviceGetMemoryInfo"] > 0
    after_free = sum(stub.calls.values())
    b.free_memory("MIG-1a")
    assert sum(stub.calls.values()) - after_free == 1 and after_free > before


# -- item 9: what can ever be free --------------------------------------------------------------


def test_the_drivers_reservation_is_known_where_memory_info_v2_exists() -> None:
    (gpu0, *_) = NvmlBackend(StubNvml()).devices()
    assert (gpu0.memory_total, gpu0.memory_reserved, gpu0.memory_usable) == (80 * G, 512 * M, 80 * G - 512 * M)
    (old, *_) = NvmlBackend(StubNvml(driver=470)).devices()
    assert (old.memory_total, old.memory_reserved) == (80 * G, 0)  # v1 only: unknown


# -- item 4: MIG compute instances ----------------------------------------------------------------


def test_compute_instances_of_one_gpu_instance_share_its_memory() -> None:
    stub = StubNvml(gpus=[mig_gpu("GPU-2", 80 * G, [(1, 40 * G, ["MIG-c0", "MIG-c1"]), (2, 20 * G, ["MIG-d0"])])])
    b = NvmlBackend(stub)
    devs = {d.uuid: d for d in b.devices()}
    assert {u: (d.memory_total, d.memory_group) for u, d in devs.items()} == {
        "MIG-c0": (40 * G, "GPU-2/gi1"), "MIG-c1": (40 * G, "GPU-2/gi1"), "MIG-d0": (20 * G, "GPU-2/gi2")}
    stub.add_cuda_process(stub.gpus[0].mig[0], 77, 10 * G)
    # What one compute instance's process uses is gone from its sibling's free memory too.
    assert b.free_memory("MIG-c1") == 40 * G - 10 * G - CONTEXT
    stub.events.append((stub.gpus[0], pynvml.nvmlEventTypeXidCriticalError, 48, 1))
    assert sorted(e.uuid for e in b.poll_health(0)) == ["MIG-c0", "MIG-c1"]


# -- item 8: PIDs from a struct-layout mismatch --------------------------------------------------


def test_impossible_pids_are_an_error_naming_the_versions() -> None:
    stub = StubNvml()
    stub.gpus[0].procs = [(1184, 2 * G), (0, 1184), (4294967295, 4294967295)]
    b = NvmlBackend(stub)
    with pytest.raises(GpuBackendError, match=r"impossible PIDs \(0, 4294967295\) on GPU-0: nvidia-ml-py .* "
                                              r"driver 550\.54\.15"):
        b.processes("GPU-0")


def test_unknown_process_memory_is_none() -> None:
    stub = StubNvml()
    stub.gpus[0].procs = [(500, 0xFFFFFFFFFFFFFFFF)]
    assert [p.used_memory for p in NvmlBackend(stub).processes("GPU-0")] == [None]


# -- item 10: compute mode -----------------------------------------------------------------------


@pytest.mark.parametrize(("mode", "name"), [(pynvml.NVML_COMPUTEMODE_DEFAULT, "default"),
                                            (pynvml.NVML_COMPUTEMODE_EXCLUSIVE_PROCESS, "exclusive_process"),
                                            (pynvml.NVML_COMPUTEMODE_PROHIBITED, "prohibited")])
def test_compute_mode_is_read_at_discovery(mode: int, name: str) -> None:
    stub = StubNvml()
    stub.gpus[0].compute_mode = mode
    stub.gpus[1].compute_mode = mode
    assert {d.compute_mode for d in NvmlBackend(stub).devices()} == {name}


# -- item 12: GH200's NUMA node --------------------------------------------------------------------


def test_a_numa_node_without_cpus_is_replaced_by_the_cpus_node(tmp_path: Path) -> None:
    for node, cpus in ((0, "0-71"), (1, "")):  # node 1: the GPU's own memory (GH200), no CPU
        f = tmp_path / f"sys/devices/system/node/node{node}/cpulist"
        f.parent.mkdir(parents=True)
        f.write_text(cpus + "\n")
    stub = StubNvml(gpus=[Handle("GPU-gh", 96 * G, name="NVIDIA GH200 480GB", numa=1, affinity=(0xFF,))])
    (dev,) = NvmlBackend(stub, sys_root=tmp_path).devices()
    assert dev.numa_node == 0


def test_an_x86_gpu_without_sysfs_node_takes_its_affinitys_node(tmp_path: Path) -> None:
    for node, cpus in ((0, "0-3"), (1, "4-7")):
        f = tmp_path / f"sys/devices/system/node/node{node}/cpulist"
        f.parent.mkdir(parents=True)
        f.write_text(cpus + "\n")
    stub = StubNvml(gpus=[Handle("GPU-x", 24 * G, affinity=(0b11110000,))])  # numa None: NOT_SUPPORTED
    (dev,) = NvmlBackend(stub, sys_root=tmp_path).devices()
    assert dev.numa_node == 1


# -- item 11: health: row remapping, reset required, event registration ----------------------------


def test_row_remapping_pending_or_failed_is_reported_once_and_checked_once_a_minute() -> None:
    clock = Clock()
    stub = StubNvml()
    b = NvmlBackend(stub, clock=clock)
    assert b.poll_health(0) == []
    stub.gpus[0].remapped = (0, 1, 1, 0)  # one uncorrectable row, remap pending
    assert b.poll_health(0) == []  # not checked again before a minute has passed
    clock.t = 61.0
    assert [(e.uuid, e.kind) for e in b.poll_health(0)] == [("GPU-0", "remap_pending")]
    stub.gpus[1].remapped = (0, 1, 0, 1)
    clock.t = 122.0
    assert sorted((e.uuid, e.kind) for e in b.poll_health(0)) == [("MIG-1a", "remap_failed"),
                                                                  ("MIG-1b", "remap_failed")]
    clock.t = 200.0
    assert b.poll_health(0) == []


def test_a_gpu_requiring_a_reset_is_reported_once() -> None:
    stub = StubNvml()
    b = NvmlBackend(stub)
    stub.fail("nvmlDeviceGetMemoryInfo", "GPU-0", code=pynvml.NVML_ERROR_RESET_REQUIRED)
    assert [(e.uuid, e.kind) for e in b.poll_health(0)] == [("GPU-0", "reset_required")]
    assert b.poll_health(0) == []


def test_health_events_that_cannot_be_registered_are_named() -> None:
    stub = StubNvml()
    stub.fail("nvmlDeviceRegisterEvents", "GPU-1", code=pynvml.NVML_ERROR_NO_PERMISSION)
    (problem,) = NvmlBackend(stub).problems
    assert problem.startswith("GPU GPU-1: XID/ECC events cannot be watched (NVML: nvmlDeviceRegisterEvents: "
                              "Insufficient Permissions)")
    stub = StubNvml()
    stub.fail("nvmlEventSetCreate", code=pynvml.NVML_ERROR_UNKNOWN)
    (problem,) = NvmlBackend(stub).problems
    assert problem.startswith("health events (XID, ECC) cannot be watched")
