"""The NVML backend: the real missing-library path here, and its logic over a pynvml stand-in."""

from __future__ import annotations

from pathlib import Path

import pynvml
import pytest

from edgeorch.config import ResourcesConfig
from edgeorch.errors import ConfigError
from edgeorch.resources.gpus.detect import detect_gpus, open_gpu_backend
from edgeorch.resources.gpus.nvml import NvmlBackend, _bitmask_to_cpus
from edgeorch.resources.model import NVML_ERROR_GPU_IS_LOST, NVML_ERROR_LIBRARY_NOT_FOUND, GpuBackendError

from .conftest import G
from .nvml_stub import StubNvml


def _nvml_library_present() -> bool:
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError_LibraryNotFound:
        return False
    except pynvml.NVMLError:
        return True
    pynvml.nvmlShutdown()
    return True


no_library = pytest.mark.skipif(_nvml_library_present(), reason="this machine has the NVML library")


@no_library
def test_real_pynvml_without_library_raises_library_not_found() -> None:
    with pytest.raises(GpuBackendError) as e:
        NvmlBackend()
    assert e.value.nvml_code == NVML_ERROR_LIBRARY_NOT_FOUND


@no_library
def test_auto_detect_without_library_runs_cpu_only_and_says_so(tmp_path: Path) -> None:
    (tmp_path / "dev").mkdir()
    (tmp_path / "dev/nvidiactl").write_text("")  # a driver's node: NVML is tried (a bare CPU box skips it)
    found = detect_gpus(ResourcesConfig(gpu_backend="auto"), sys_root=tmp_path)
    assert found.backend is None
    assert found.message == "no NVML library: running CPU-only"


@no_library
def test_explicit_nvml_without_library_is_an_error() -> None:
    with pytest.raises(GpuBackendError, match="Library Not Found"):
        open_gpu_backend(ResourcesConfig(gpu_backend="nvml"))


def test_backend_none_is_cpu_only_without_probing() -> None:
    backend, message = open_gpu_backend(ResourcesConfig(gpu_backend="none"))
    assert backend is None and "CPU-only" in message


def test_fake_backend_from_config(tmp_path: Path) -> None:
    table = tmp_path / "gpus.toml"
    table.write_text('[[gpu]]\nuuid = "GPU-a"\nmemory = "24G"\n')
    backend, message = open_gpu_backend(ResourcesConfig(gpu_backend="fake", fake_gpus=table))
    assert backend is not None and message == "fake: 1 GPU device"


def test_fake_backend_needs_a_table() -> None:
    with pytest.raises(ConfigError) as e:
        open_gpu_backend(ResourcesConfig(gpu_backend="fake"))
    assert e.value.field == "resources.fake_gpus"


def test_stub_library_not_found_is_translated() -> None:
    with pytest.raises(GpuBackendError) as e:
        NvmlBackend(StubNvml(missing_library=True))
    assert e.value.nvml_code == NVML_ERROR_LIBRARY_NOT_FOUND


def _sysfs(root: Path, pci: dict[str, int], nodes: dict[int, str]) -> Path:
    """A fake /sys: PCI devices' numa_node and the NUMA nodes' cpulists."""
    for bus, node in pci.items():
        f = root / "sys/bus/pci/devices" / bus / "numa_node"
        f.parent.mkdir(parents=True)
        f.write_text(f"{node}\n")
    for node, cpus in nodes.items():
        f = root / f"sys/devices/system/node/node{node}/cpulist"
        f.parent.mkdir(parents=True)
        f.write_text(cpus + "\n")
    return root


def test_discovery_lists_whole_gpus_and_mig_instances(tmp_path: Path) -> None:
    _sysfs(tmp_path, {"0000:81:00.0": 1, "0000:82:00.0": 0}, {})
    b = NvmlBackend(StubNvml(), sys_root=tmp_path)
    devs = {d.uuid: d for d in b.devices()}
    assert list(devs) == ["GPU-0", "MIG-1a", "MIG-1b"]
    assert devs["GPU-0"].compute_capability == (9, 0) and devs["GPU-0"].cpu_affinity == {0, 1, 2, 3}
    assert devs["MIG-1a"].parent == "GPU-1" and devs["MIG-1a"].memory_total == 10 * G
    # NVML's NUMA query is NOT_SUPPORTED on x86: the PCI device's sysfs node is used.
    assert devs["GPU-0"].numa_node == 1 and devs["MIG-1b"].numa_node == 0
    assert b.problems == ()


def test_readings_turn_unsupported_into_none() -> None:
    stub = StubNvml()
    stub.gpus[0].remapped = None  # a pre-Ampere GPU: page retirement instead of row remapping
    b = NvmlBackend(stub)
    r = b.reading("GPU-0")
    assert (r.utilization_gpu, r.temperature, r.ecc_corrected, r.retired_pages) == (37, 41, 3, 1)
    assert r.memory_free == 80 * G - 512 * 1024**2 - 3 * G  # the driver's reservation is never free
    assert (r.remap_pending, r.problems) == (None, ())
    m = b.reading("MIG-1a")
    assert (m.utilization_gpu, m.retired_pages) == (None, None)
    assert (m.remap_pending, m.remap_failed) == (False, False)  # Ampere: rows are remapped, pages not retired


def test_processes_with_unknown_memory() -> None:
    b = NvmlBackend(StubNvml())
    assert [(p.pid, p.used_memory) for p in b.processes("GPU-0")] == [(321, 2 * G), (322, None)]


def test_events_map_to_mig_instances_and_lost_gpus_are_probed() -> None:
    stub = StubNvml()
    b = NvmlBackend(stub)
    parent = stub.gpus[1]
    stub.events.append((parent, pynvml.nvmlEventTypeXidCriticalError, 48, 2))
    stub.events.append((stub.gpus[0], pynvml.nvmlEventTypeDoubleBitEccError, 0, 0xFFFFFFFF))
    events = b.poll_health(0)
    assert [(e.uuid, e.kind, e.code) for e in events] == [("MIG-1b", "xid", 48), ("GPU-0", "ecc_uncorrectable", 0)]
    parent.lost = True
    assert [(e.uuid, e.kind) for e in b.poll_health(0)] == [("MIG-1a", "lost"), ("MIG-1b", "lost")]
    assert b.poll_health(0) == []
    with pytest.raises(GpuBackendError) as e:
        b.reading("MIG-1a")
    assert e.value.nvml_code == NVML_ERROR_GPU_IS_LOST


def test_close_shuts_nvml_down_once() -> None:
    stub = StubNvml()
    b = NvmlBackend(stub)
    b.close()
    b.close()
    assert stub.shutdowns == 1


def test_affinity_bitmask_words() -> None:
    assert _bitmask_to_cpus([0b101, 1]) == {0, 2, 64}
