"""A stand-in for the ``pynvml`` module: the same functions over a small simulated machine.

It lets the NVML backend's own code (MIG discovery, affinity bitmasks,
unsupported queries, events, a lost GPU) run on machines without a GPU. It
raises the real ``pynvml`` exceptions (``NVMLError`` subclasses and
``NVMLLibraryMismatchError``), so error translation is exercised too.

Where real NVML differs from what code naively expects, the stand-in does
what NVML does (each checked against nvidia-ml-py's ``pynvml.py`` and
NVIDIA's documentation), so a test cannot pass by sharing the code's
assumptions:

- the driver reserves memory: an idle GPU's free memory is below its total
  (``nvmlDeviceGetMemoryInfo`` v1 counts the reservation in ``used``; v2,
  ``version=pynvml.nvmlMemory_v2``, reports it as ``reserved``);
- a process's ``usedGpuMemory`` includes its CUDA context
  (:meth:`StubNvml.add_cuda_process`);
- NVML reports host PIDs (:attr:`StubNvml.pid_offset` models a PID namespace);
- ``nvmlDeviceGetNumaNodeId`` is NOT_SUPPORTED on x86 (``Handle.numa`` None);
  on GH200 it names the GPU memory's own node, which has no CPUs;
- the whole-GPU memory query on a MIG parent needs privileges
  (NO_PERMISSION unless ``privileged``);
- several compute instances of one GPU instance are separate MIG devices
  that each report all of the instance's memory (``Gi`` is shared);
- drivers older than R510 lack ``..._v3`` symbols: pynvml's unversioned
  ``nvmlDeviceGetComputeRunningProcesses`` then raises
  ``NVMLLibraryMismatchError``, which is not an ``NVMLError``;
  ``nvmlMemory_v2`` needs R510 too;
- page retirement is NOT_SUPPORTED where row remapping replaced it (Ampere+);
- compute modes (``Handle.compute_mode``);
- any call can be made to fail (:meth:`StubNvml.fail`: NO_PERMISSION,
  UNKNOWN, RESET_REQUIRED, any exception) or to block until released
  (:meth:`StubNvml.block`), as NVML does on a wedged GPU.

Handles are plain objects; a MIG handle knows its parent. ``calls`` counts
every call by function name.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import pynvml

G = 1024**3
M = 1024**2
CONTEXT = 300 * M
"""What a CUDA context costs in NVML's per-process memory (a few hundred MiB on real GPUs)."""


@dataclass(eq=False)
class Gi:
    """A MIG GPU instance's memory, shared by its compute instances."""

    total: int
    used: int = 0


@dataclass(eq=False)
class Handle:
    uuid: str
    total: int
    name: str = "NVIDIA A100-SXM4-80GB"
    reserved: int = 512 * M
    used: int = 0
    mig: list[Handle] = field(default_factory=list)
    parent: Handle | None = None
    gi: int = 0
    ci: int = 0
    gi_mem: Gi | None = None
    lost: bool = False
    procs: list[tuple[int, int | None]] = field(default_factory=list)
    compute_mode: int = pynvml.NVML_COMPUTEMODE_DEFAULT
    numa: int | None = None
    cc: tuple[int, int] = (8, 0)
    affinity: tuple[int, ...] = (0b1111,)
    bus: str = "00000000:81:00.0"
    ecc: bool = True
    remapped: tuple[int, int, int, int] | None = (0, 0, 0, 0)
    temperature: int = 41


def _err(code: int) -> pynvml.NVMLError:
    return pynvml.NVMLError(code)


def mig_gpu(uuid: str, total: int, instances: list[tuple[int, int, list[str]]], **kw: Any) -> Handle:
    """A MIG-enabled GPU: ``instances`` = [(gpu instance id, memory, [compute instance MIG uuids])]."""
    parent = Handle(uuid, total, **kw)
    for gi, mem, cis in instances:
        shared = Gi(mem)
        for ci, mu in enumerate(cis):
            parent.mig.append(Handle(mu, mem, name=parent.name, parent=parent, gi=gi, ci=ci, gi_mem=shared,
                                     reserved=0, remapped=None))
    return parent


class StubNvml:
    """Module-like object; ``events`` is a queue of (handle, eventType, eventData, gpuInstanceId)."""

    NVMLError = pynvml.NVMLError
    NVMLLibraryMismatchError = pynvml.NVMLLibraryMismatchError
    nvmlMemory_v2 = pynvml.nvmlMemory_v2

    def __init__(self, *, missing_library: bool = False, driver: int = 550, privileged: bool = False,
                 gpus: list[Handle] | None = None) -> None:
        for name in dir(pynvml):
            if name.startswith(("NVML_", "nvmlEventType")):
                setattr(self, name, getattr(pynvml, name))
        self.missing_library = missing_library
        self.driver = driver
        self.privileged = privileged
        if gpus is None:
            mig_parent = mig_gpu("GPU-1", 40 * G, [(1, 10 * G, ["MIG-1a"]), (2, 20 * G, ["MIG-1b"])],
                                 name="NVIDIA A100-PCIE-40GB", affinity=(0, 0b11), bus="00000000:82:00.0")
            gpus = [Handle("GPU-0", 80 * G, name="NVIDIA H100 80GB HBM3", used=1 * G, cc=(9, 0),
                           procs=[(321, 2 * G), (322, None)], remapped=(0, 0, 0, 0)),
                    mig_parent]
        self.gpus = gpus
        self.events: list[tuple[Handle, int, int, int]] = []
        self.shutdowns = 0
        self.inits = 0
        self.pid_offset = 0
        self.calls: Counter[str] = Counter()
        self._fail: dict[tuple[str, str | None], Callable[[], BaseException]] = {}
        self._block: dict[str, threading.Event] = {}

    # -- fault controls (tests) ----------------------------------------------

    def fail(self, name: str, uuid: str | None = None, *, code: int | None = None,
             exc: Callable[[], BaseException] | None = None) -> None:
        """Make ``name`` raise (NVMLError ``code``, or ``exc()``) for ``uuid``'s handle (None: any)."""
        assert (code is None) != (exc is None)
        self._fail[(name, uuid)] = exc if exc is not None else (lambda: _err(code))  # type: ignore[arg-type]

    def heal(self, name: str, uuid: str | None = None) -> None:
        self._fail.pop((name, uuid), None)

    def block(self, name: str) -> threading.Event:
        """Calls to ``name`` wait until the returned event is set (a wedged GPU)."""
        ev = threading.Event()
        self._block[name] = ev
        return ev

    def add_cuda_process(self, h: Handle, pid: int, allocated: int) -> None:
        """A CUDA process that allocated ``allocated`` bytes: NVML reports them plus its context."""
        h.procs.append((pid, allocated + CONTEXT))

    def _enter(self, name: str, h: Handle | None = None) -> None:
        self.calls[name] += 1
        ev = self._block.get(name)
        if ev is not None:
            ev.wait(60)
        for key in ((name, h.uuid if h is not None else None), (name, None)):
            make = self._fail.get(key)
            if make is not None:
                raise make()

    def _live(self, h: Handle) -> Handle:
        root = h.parent or h
        if root.lost:
            raise _err(pynvml.NVML_ERROR_GPU_IS_LOST)
        return h

    # lifecycle
    def nvmlInit(self) -> None:
        self._enter("nvmlInit")
        if self.missing_library:
            raise _err(pynvml.NVML_ERROR_LIBRARY_NOT_FOUND)
        self.inits += 1

    def nvmlShutdown(self) -> None:
        self._enter("nvmlShutdown")
        self.shutdowns += 1

    def nvmlSystemGetDriverVersion(self) -> str:
        self._enter("nvmlSystemGetDriverVersion")
        return f"{self.driver}.54.15"

    # inventory
    def nvmlDeviceGetCount(self) -> int:
        self._enter("nvmlDeviceGetCount")
        return len(self.gpus)

    def nvmlDeviceGetHandleByIndex(self, i: int) -> Handle:
        self._enter("nvmlDeviceGetHandleByIndex", self.gpus[i])
        return self.gpus[i]

    def nvmlDeviceGetUUID(self, h: Handle) -> str:
        self._enter("nvmlDeviceGetUUID", h)
        self._live(h)
        return h.uuid

    def nvmlDeviceGetName(self, h: Handle) -> str:
        self._enter("nvmlDeviceGetName", h)
        return h.name

    def nvmlDeviceGetMemoryInfo(self, h: Handle, version: Any = None) -> SimpleNamespace:
        self._enter("nvmlDeviceGetMemoryInfo", h)
        self._live(h)
        if version is not None and self.driver < 510:
            raise _err(pynvml.NVML_ERROR_FUNCTION_NOT_FOUND)  # no nvmlDeviceGetMemoryInfo_v2 symbol
        if h.mig and not self.privileged:
            raise _err(pynvml.NVML_ERROR_NO_PERMISSION)  # a MIG parent's whole memory: root only
        if h.gi_mem is not None:
            total, reserved = h.gi_mem.total, 0
            used = h.gi_mem.used + sum(m or 0 for c in (h.parent.mig if h.parent else []) if c.gi_mem is h.gi_mem
                                       for _, m in c.procs)
        else:
            total, reserved = h.total, h.reserved
            used = h.used + sum(m or 0 for _, m in h.procs)
        used = min(total - reserved, used)
        free = total - reserved - used
        if version is None:  # v1: the reservation counts as used
            return SimpleNamespace(total=total, used=used + reserved, free=free)
        return SimpleNamespace(version=version, total=total, reserved=reserved, used=used, free=free)

    def nvmlDeviceGetCudaComputeCapability(self, h: Handle) -> tuple[int, int]:
        self._enter("nvmlDeviceGetCudaComputeCapability", h)
        return h.cc

    def nvmlDeviceGetCpuAffinity(self, h: Handle, words: int) -> list[int]:
        self._enter("nvmlDeviceGetCpuAffinity", h)
        return (list(h.affinity) + [0] * words)[:max(words, len(h.affinity))]

    def nvmlDeviceGetNumaNodeId(self, h: Handle) -> int:
        self._enter("nvmlDeviceGetNumaNodeId", h)
        if h.numa is None:
            raise _err(pynvml.NVML_ERROR_NOT_SUPPORTED)  # x86: NVML does not know; sysfs does
        return h.numa

    def nvmlDeviceGetPciInfo(self, h: Handle) -> SimpleNamespace:
        self._enter("nvmlDeviceGetPciInfo", h)
        return SimpleNamespace(busId=h.bus)

    def nvmlDeviceGetMigMode(self, h: Handle) -> list[int]:
        self._enter("nvmlDeviceGetMigMode", h)
        if not h.mig:
            raise _err(pynvml.NVML_ERROR_NOT_SUPPORTED)
        return [pynvml.NVML_DEVICE_MIG_ENABLE, pynvml.NVML_DEVICE_MIG_ENABLE]

    def nvmlDeviceGetMaxMigDeviceCount(self, h: Handle) -> int:
        self._enter("nvmlDeviceGetMaxMigDeviceCount", h)
        return 7

    def nvmlDeviceGetMigDeviceHandleByIndex(self, h: Handle, i: int) -> Handle:
        self._enter("nvmlDeviceGetMigDeviceHandleByIndex", h)
        if i >= len(h.mig):
            raise _err(pynvml.NVML_ERROR_NOT_FOUND)
        return h.mig[i]

    def nvmlDeviceGetGpuInstanceId(self, h: Handle) -> int:
        self._enter("nvmlDeviceGetGpuInstanceId", h)
        return h.gi

    def nvmlDeviceGetComputeInstanceId(self, h: Handle) -> int:
        self._enter("nvmlDeviceGetComputeInstanceId", h)
        return h.ci

    def nvmlDeviceGetComputeMode(self, h: Handle) -> int:
        self._enter("nvmlDeviceGetComputeMode", h)
        return h.compute_mode

    def nvmlDeviceGetPersistenceMode(self, h: Handle) -> int:
        self._enter("nvmlDeviceGetPersistenceMode", h)
        return pynvml.NVML_FEATURE_ENABLED

    # readings
    def nvmlDeviceGetUtilizationRates(self, h: Handle) -> SimpleNamespace:
        self._enter("nvmlDeviceGetUtilizationRates", h)
        self._live(h)
        if h.parent is not None:
            raise _err(pynvml.NVML_ERROR_NOT_SUPPORTED)
        return SimpleNamespace(gpu=37, memory=12)

    def nvmlDeviceGetTemperature(self, h: Handle, sensor: int) -> int:
        self._enter("nvmlDeviceGetTemperature", h)
        return h.temperature

    def nvmlDeviceGetTotalEccErrors(self, h: Handle, kind: int, counter: int) -> int:
        self._enter("nvmlDeviceGetTotalEccErrors", h)
        if not h.ecc:
            raise _err(pynvml.NVML_ERROR_NOT_SUPPORTED)
        return 0 if kind == pynvml.NVML_MEMORY_ERROR_TYPE_UNCORRECTED else 3

    def nvmlDeviceGetRetiredPages(self, h: Handle, cause: int) -> list[int]:
        self._enter("nvmlDeviceGetRetiredPages", h)
        if not h.ecc or h.remapped is not None:
            raise _err(pynvml.NVML_ERROR_NOT_SUPPORTED)  # Ampere and later remap rows instead
        return [0x1000] if cause == pynvml.NVML_PAGE_RETIREMENT_CAUSE_DOUBLE_BIT_ECC_ERROR else []

    def nvmlDeviceGetRemappedRows(self, h: Handle) -> tuple[int, int, int, int]:
        self._enter("nvmlDeviceGetRemappedRows", h)
        if h.remapped is None:
            raise _err(pynvml.NVML_ERROR_NOT_SUPPORTED)
        return h.remapped

    def _processes(self, h: Handle) -> list[SimpleNamespace]:
        self._live(h)
        return [SimpleNamespace(pid=p + self.pid_offset, usedGpuMemory=m, gpuInstanceId=h.gi, computeInstanceId=h.ci)
                for p, m in h.procs]

    def nvmlDeviceGetComputeRunningProcesses(self, h: Handle) -> list[SimpleNamespace]:
        self._enter("nvmlDeviceGetComputeRunningProcesses", h)
        if self.driver < 510:  # pynvml's @throwOnVersionMismatch over the missing _v3 symbol
            raise pynvml.NVMLLibraryMismatchError("Unversioned function called and the pyNVML version does not "
                                                  "match the NVML lib version.")
        return self._processes(h)

    def nvmlDeviceGetComputeRunningProcesses_v2(self, h: Handle) -> list[SimpleNamespace]:
        self._enter("nvmlDeviceGetComputeRunningProcesses_v2", h)
        if self.driver < 450:
            raise _err(pynvml.NVML_ERROR_FUNCTION_NOT_FOUND)
        return self._processes(h)

    # events
    def nvmlEventSetCreate(self) -> object:
        self._enter("nvmlEventSetCreate")
        return object()

    def nvmlDeviceGetSupportedEventTypes(self, h: Handle) -> int:
        self._enter("nvmlDeviceGetSupportedEventTypes", h)
        return pynvml.nvmlEventTypeXidCriticalError | pynvml.nvmlEventTypeDoubleBitEccError

    def nvmlDeviceRegisterEvents(self, h: Handle, types: int, es: object) -> None:
        self._enter("nvmlDeviceRegisterEvents", h)
        return None

    def nvmlEventSetWait(self, es: object, timeout_ms: int) -> SimpleNamespace:
        self._enter("nvmlEventSetWait")
        if not self.events:
            raise _err(pynvml.NVML_ERROR_TIMEOUT)
        h, kind, data, gi = self.events.pop(0)
        return SimpleNamespace(device=h, eventType=kind, eventData=data, gpuInstanceId=gi)

    def nvmlEventSetFree(self, es: object) -> None:
        self._enter("nvmlEventSetFree")
        return None
