"""A stand-in for the ``pynvml`` module: the same functions over a small simulated machine.

It lets the NVML backend's own code (MIG discovery, affinity bitmasks,
unsupported queries, events, a lost GPU) run on machines without a GPU. It
raises the real ``pynvml.NVMLError`` subclasses, so error translation is
exercised too. Handles are plain objects; a MIG handle knows its parent.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import pynvml

G = 1024**3


@dataclass(eq=False)
class Handle:
    uuid: str
    total: int
    used: int = 0
    mig: list[Handle] = field(default_factory=list)
    parent: Handle | None = None
    gi: int = 0
    lost: bool = False
    procs: list[tuple[int, int | None]] = field(default_factory=list)


def _err(code: int) -> pynvml.NVMLError:
    return pynvml.NVMLError(code)


class StubNvml:
    """Module-like object; ``events`` is a queue of (handle, eventType, eventData, gpuInstanceId)."""

    NVMLError = pynvml.NVMLError

    def __init__(self, *, missing_library: bool = False) -> None:
        for name in dir(pynvml):
            if name.startswith(("NVML_", "nvmlEventType")):
                setattr(self, name, getattr(pynvml, name))
        self.missing_library = missing_library
        mig_parent = Handle("GPU-1", 40 * G)
        mig_parent.mig = [Handle("MIG-1a", 10 * G, parent=mig_parent, gi=1),
                          Handle("MIG-1b", 20 * G, parent=mig_parent, gi=2)]
        self.gpus = [Handle("GPU-0", 80 * G, used=1 * G, procs=[(321, 2 * G), (322, None)]), mig_parent]
        self.events: list[tuple[Handle, int, int, int]] = []
        self.shutdowns = 0

    def _live(self, h: Handle) -> Handle:
        root = h.parent or h
        if root.lost:
            raise _err(pynvml.NVML_ERROR_GPU_IS_LOST)
        return h

    # lifecycle
    def nvmlInit(self) -> None:
        if self.missing_library:
            raise _err(pynvml.NVML_ERROR_LIBRARY_NOT_FOUND)

    def nvmlShutdown(self) -> None:
        self.shutdowns += 1

    # inventory
    def nvmlDeviceGetCount(self) -> int:
        return len(self.gpus)

    def nvmlDeviceGetHandleByIndex(self, i: int) -> Handle:
        return self.gpus[i]

    def nvmlDeviceGetUUID(self, h: Handle) -> str:
        return h.uuid

    def nvmlDeviceGetName(self, h: Handle) -> str:
        return "NVIDIA H100 80GB HBM3" if h.uuid == "GPU-0" else "NVIDIA A100-PCIE-40GB"

    def nvmlDeviceGetMemoryInfo(self, h: Handle, version: Any = None) -> SimpleNamespace:
        self._live(h)
        used = h.used + sum(m or 0 for _, m in h.procs)
        return SimpleNamespace(total=h.total, used=used, free=h.total - used)

    def nvmlDeviceGetCudaComputeCapability(self, h: Handle) -> tuple[int, int]:
        return (9, 0) if h.uuid == "GPU-0" else (8, 0)

    def nvmlDeviceGetCpuAffinity(self, h: Handle, words: int) -> list[int]:
        # GPU-0 near CPUs 0-3; GPU-1 near CPUs 64 and 65 (second word).
        return [0b1111] + [0] * (words - 1) if h.uuid == "GPU-0" else [0, 0b11][:max(words, 2)]

    def nvmlDeviceGetNumaNodeId(self, h: Handle) -> int:
        if h.uuid == "GPU-1":
            raise _err(pynvml.NVML_ERROR_NOT_SUPPORTED)
        return 0

    def nvmlDeviceGetPciInfo(self, h: Handle) -> SimpleNamespace:
        return SimpleNamespace(busId="00000000:81:00.0")

    def nvmlDeviceGetMigMode(self, h: Handle) -> list[int]:
        if not h.mig:
            raise _err(pynvml.NVML_ERROR_NOT_SUPPORTED)
        return [pynvml.NVML_DEVICE_MIG_ENABLE, pynvml.NVML_DEVICE_MIG_ENABLE]

    def nvmlDeviceGetMaxMigDeviceCount(self, h: Handle) -> int:
        return 7

    def nvmlDeviceGetMigDeviceHandleByIndex(self, h: Handle, i: int) -> Handle:
        if i >= len(h.mig):
            raise _err(pynvml.NVML_ERROR_NOT_FOUND)
        return h.mig[i]

    def nvmlDeviceGetGpuInstanceId(self, h: Handle) -> int:
        return h.gi

    # readings
    def nvmlDeviceGetUtilizationRates(self, h: Handle) -> SimpleNamespace:
        self._live(h)
        if h.parent is not None:
            raise _err(pynvml.NVML_ERROR_NOT_SUPPORTED)
        return SimpleNamespace(gpu=37, memory=12)

    def nvmlDeviceGetTemperature(self, h: Handle, sensor: int) -> int:
        return 41

    def nvmlDeviceGetTotalEccErrors(self, h: Handle, kind: int, counter: int) -> int:
        if h.uuid == "GPU-1":
            raise _err(pynvml.NVML_ERROR_NOT_SUPPORTED)
        return 0 if kind == pynvml.NVML_MEMORY_ERROR_TYPE_UNCORRECTED else 3

    def nvmlDeviceGetRetiredPages(self, h: Handle, cause: int) -> list[int]:
        if h.uuid == "GPU-1":
            raise _err(pynvml.NVML_ERROR_NOT_SUPPORTED)
        return [0x1000] if cause == pynvml.NVML_PAGE_RETIREMENT_CAUSE_DOUBLE_BIT_ECC_ERROR else []

    def nvmlDeviceGetComputeRunningProcesses(self, h: Handle) -> list[SimpleNamespace]:
        self._live(h)
        return [SimpleNamespace(pid=p, usedGpuMemory=m) for p, m in h.procs]

    # events
    def nvmlEventSetCreate(self) -> object:
        return object()

    def nvmlDeviceGetSupportedEventTypes(self, h: Handle) -> int:
        return pynvml.nvmlEventTypeXidCriticalError | pynvml.nvmlEventTypeDoubleBitEccError

    def nvmlDeviceRegisterEvents(self, h: Handle, types: int, es: object) -> None:
        return None

    def nvmlEventSetWait(self, es: object, timeout_ms: int) -> SimpleNamespace:
        if not self.events:
            raise _err(pynvml.NVML_ERROR_TIMEOUT)
        h, kind, data, gi = self.events.pop(0)
        return SimpleNamespace(device=h, eventType=kind, eventData=data, gpuInstanceId=gi)

    def nvmlEventSetFree(self, es: object) -> None:
        return None
