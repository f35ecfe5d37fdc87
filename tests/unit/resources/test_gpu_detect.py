"""GPU detection: 'no GPU here' and 'GPUs here but NVML broken' never look alike (issue 18, item 5)."""

from __future__ import annotations

from pathlib import Path

import pynvml
import pytest

from edgeorch.config import ResourcesConfig
from edgeorch.resources import Inventory, ResourceRequest
from edgeorch.resources.allocator import never_satisfiable
from edgeorch.resources.gpus.detect import detect_gpus, no_nvidia_here, nvidia_pci_devices
from edgeorch.resources.model import GpuBackendError, ResourceError

from .nvml_stub import StubNvml

AUTO = ResourcesConfig(gpu_backend="auto")
REFUSED = "running CPU-only: GPU pipelines are refused until this is fixed"


def pci_bus(root: Path, devices: dict[str, tuple[str, str]]) -> Path:
    """A fake /sys/bus/pci/devices: address → (vendor, class)."""
    for addr, (vendor, cls) in devices.items():
        d = root / "sys/bus/pci/devices" / addr
        d.mkdir(parents=True)
        (d / "vendor").write_text(vendor + "\n")
        (d / "class").write_text(cls + "\n")
    return root


@pytest.fixture
def two_gpus(tmp_path: Path) -> Path:
    return pci_bus(tmp_path, {"0000:17:00.0": ("0x10de", "0x030200"), "0000:65:00.0": ("0x10de", "0x030000"),
                              "0000:65:00.1": ("0x10de", "0x040300"),  # the card's audio function
                              "0000:00:1f.0": ("0x8086", "0x060100")})


def test_nvidia_gpus_on_the_pci_bus_are_found_without_nvml(two_gpus: Path, tmp_path: Path) -> None:
    assert nvidia_pci_devices(two_gpus) == ["0000:17:00.0", "0000:65:00.0"]
    assert nvidia_pci_devices(tmp_path / "nowhere") == []


def test_a_bus_without_nvidia_skips_nvml_entirely(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The common CPU-only box: nothing NVIDIA on a readable bus and no NVIDIA node: NVML is never imported or
    started (an `edgeorch run` without a daemon paid ~60 ms for it)."""
    import sys

    root = pci_bus(tmp_path, {"0000:00:1f.0": ("0x8086", "0x060100")})
    monkeypatch.setitem(sys.modules, "pynvml", None)  # an import would raise: it must not be tried
    monkeypatch.delitem(sys.modules, "edgeorch.resources.gpus.nvml", raising=False)
    found = detect_gpus(AUTO, sys_root=root)
    assert (found.backend, found.message, found.broken) == (None, "no NVIDIA GPU on the PCI bus: running CPU-only",
                                                            False)
    assert "edgeorch.resources.gpus.nvml" not in sys.modules


@pytest.mark.parametrize("node", ["dev/nvidiactl", "dev/dxg", "proc/driver/nvidia"])
def test_an_nvidia_node_or_an_unreadable_bus_leaves_it_to_nvml(tmp_path: Path, node: str) -> None:
    root = pci_bus(tmp_path, {"0000:00:1f.0": ("0x8086", "0x060100")})
    assert no_nvidia_here(root)
    (root / node).parent.mkdir(parents=True, exist_ok=True)
    (root / node).write_text("")
    assert not no_nvidia_here(root)  # WSL2's GPUs, a driver, device nodes: NVML decides
    assert not no_nvidia_here(tmp_path / "no-sys")  # a container without /sys
    with pytest.raises(GpuBackendError):  # `nvml` asked for explicitly is always tried
        detect_gpus(ResourcesConfig(gpu_backend="nvml"), nvml=StubNvml(missing_library=True),
                    sys_root=pci_bus(tmp_path / "other", {"0000:00:1f.0": ("0x8086", "0x060100")}))


def test_no_gpu_here_is_quiet_cpu_only(tmp_path: Path) -> None:
    found = detect_gpus(AUTO, nvml=StubNvml(missing_library=True), sys_root=tmp_path)
    assert (found.backend, found.message, found.broken) == (None, "no NVML library: running CPU-only", False)


def test_gpus_here_but_no_nvml_library_is_broken_and_says_what_to_do(two_gpus: Path) -> None:
    found = detect_gpus(AUTO, nvml=StubNvml(missing_library=True), sys_root=two_gpus)
    assert found.backend is None and found.broken
    assert found.message.startswith("2 NVIDIA GPUs on the PCI bus (0000:17:00.0, 0000:65:00.0) but NVML cannot start "
                                    "(NVML: nvmlInit: NVML Shared Library Not Found; libnvidia-ml.so.1 is not on")
    assert found.message.endswith(REFUSED)
    # A GPU pipeline is then refused with that sentence, not a bare "this daemon has none".
    why = never_satisfiable(ResourceRequest(gpus=1), Inventory(), cpu_only_reason=found.message)
    assert why is not None and "but NVML cannot start" in why


def test_a_driver_upgraded_without_reboot_is_broken_even_without_pci_info(tmp_path: Path) -> None:
    stub = StubNvml()
    stub.fail("nvmlInit", code=pynvml.NVML_ERROR_LIB_RM_VERSION_MISMATCH)
    found = detect_gpus(AUTO, nvml=stub, sys_root=tmp_path)
    assert found.broken and "the driver was upgraded without a reboot: reboot" in found.message


def test_nvml_seeing_no_gpu_while_the_bus_has_some_is_broken(two_gpus: Path, tmp_path: Path) -> None:
    stub = StubNvml(gpus=[])
    found = detect_gpus(AUTO, nvml=stub, sys_root=two_gpus)
    assert found.broken and "NVML sees no GPU (device nodes hidden from this process?" in found.message
    quiet = detect_gpus(AUTO, nvml=StubNvml(gpus=[]), sys_root=tmp_path / "no-gpu-machine")
    assert (quiet.message, quiet.broken) == ("NVML sees no GPU: running CPU-only", False)


def test_one_device_that_cannot_be_opened_keeps_the_others_and_is_said(tmp_path: Path) -> None:
    stub = StubNvml()
    stub.fail("nvmlDeviceGetName", "GPU-0", code=pynvml.NVML_ERROR_NO_PERMISSION)
    found = detect_gpus(AUTO, nvml=stub, sys_root=tmp_path)
    assert found.backend is not None and found.broken
    assert [d.uuid for d in found.backend.devices()] == ["MIG-1a", "MIG-1b"]
    assert found.message.startswith("nvml: 2 GPU devices (2 MIG instances); 1 problem: GPU 0 (GPU-0) cannot be opened")
    assert found.worker is not None
    found.worker.submit("close", found.backend.close).result(5)
    found.worker.close()


def test_no_device_openable_is_broken_cpu_only_and_an_error_when_nvml_is_required(tmp_path: Path) -> None:
    stub = StubNvml()
    stub.fail("nvmlDeviceGetName", code=pynvml.NVML_ERROR_UNKNOWN)
    found = detect_gpus(AUTO, nvml=stub, sys_root=tmp_path)
    assert found.backend is None and found.broken and "NVML could open none of its GPUs" in found.message
    with pytest.raises(GpuBackendError, match="NVML could open none of its GPUs"):
        detect_gpus(ResourcesConfig(gpu_backend="nvml"), nvml=stub, sys_root=tmp_path)


def test_a_healthy_machine_is_not_broken(tmp_path: Path) -> None:
    found = detect_gpus(AUTO, nvml=StubNvml(), sys_root=tmp_path)
    assert found.backend is not None and not found.broken
    assert found.message == "nvml: 3 GPU devices (2 MIG instances)"
    assert found.worker is not None
    found.worker.submit("close", found.backend.close).result(5)
    found.worker.close()


def test_a_backend_the_config_names_that_cannot_start_is_a_config_error_naming_the_field(tmp_path: Path) -> None:
    """`gpu_backend = "nvml"` without NVML stopped a start with exit 1 and NVML's words alone; a `fake_gpus` table
    that cannot be read named neither the field nor exited 2 (docs: a config error is exit 2)."""
    with pytest.raises(GpuBackendError) as err:
        detect_gpus(ResourcesConfig(gpu_backend="nvml"), nvml=StubNvml(missing_library=True), sys_root=tmp_path)
    assert err.value.exit_code == 2 and err.value.field == "resources.gpu_backend"
    assert err.value.render().startswith("resources.gpu_backend: ") and "gpu_backend = \"auto\"" in err.value.render()
    missing = tmp_path / "gpus.toml"
    with pytest.raises(ResourceError) as err2:
        detect_gpus(ResourcesConfig(gpu_backend="fake", fake_gpus=missing))
    assert err2.value.exit_code == 2
    assert err2.value.render() == (f"{missing}: resources.fake_gpus: cannot read file: No such file or directory "
                                   f"(found '{missing}')")
    found = detect_gpus(ResourcesConfig(gpu_backend="auto"), nvml=StubNvml(missing_library=True), sys_root=tmp_path)
    assert found.backend is None  # auto: CPU-only, no error


def test_a_device_table_that_is_wrong_is_a_config_error_and_used_past_memory_is_refused(tmp_path: Path) -> None:
    """A broken `fake_gpus` table exited 1 (`bad_resources`), and `used` beyond the card's memory was accepted."""
    table = tmp_path / "gpus.toml"
    table.write_text('[[gpu]]\nuuid = "GPU-1"\nname = "X"\nmemory = "8G"\nused = "20G"\n')
    with pytest.raises(ResourceError) as err:
        detect_gpus(ResourcesConfig(gpu_backend="fake", fake_gpus=table))
    assert err.value.exit_code == 2 and err.value.field == "gpu[0].used", err.value.render()
    assert "is more than the GPU's memory" in err.value.render() and str(table) in err.value.render()
