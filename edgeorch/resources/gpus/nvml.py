"""The real GPU backend: NVML through nvidia-ml-py's ``pynvml`` module.

Every pynvml call goes through :meth:`NvmlBackend._call`, which turns a
``pynvml.NVMLError`` into :class:`GpuBackendError` carrying the NVML code,
so callers never import pynvml. Queries a device does not support
(``NVML_ERROR_NOT_SUPPORTED``, or a function missing from an old driver)
become ``None`` readings, as the contract in :mod:`.backend` requires.

The ``nvml`` constructor argument exists for tests: it defaults to the real
``pynvml`` module and may be any object with the same functions.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..model import (
    NVML_ERROR_GPU_IS_LOST,
    NVML_ERROR_NOT_FOUND,
    GpuBackendError,
    GpuDevice,
    GpuProcess,
    GpuReading,
    HealthEvent,
)
from .backend import GpuBackend

# Codes that mean "this device/driver cannot tell", turned into None readings.
_UNSUPPORTED = {3, 13}  # NVML_ERROR_NOT_SUPPORTED, NVML_ERROR_FUNCTION_NOT_FOUND
_ALL_INSTANCES = 0xFFFFFFFF  # eventData.gpuInstanceId when the event is for the whole GPU


def _bitmask_to_cpus(words: Any) -> frozenset[int]:
    """CPU ids set in NVML's array of 64-bit affinity words."""
    out: set[int] = set()
    for w, word in enumerate(words):
        value = int(word)
        bit = 0
        while value:
            if value & 1:
                out.add(w * 64 + bit)
            value >>= 1
            bit += 1
    return frozenset(out)


class NvmlBackend(GpuBackend):
    """GPUs as NVML reports them. Construction calls ``nvmlInit``.

    Raises :class:`GpuBackendError` when NVML cannot start (``nvml_code`` 12
    ``NVML_ERROR_LIBRARY_NOT_FOUND`` where libnvidia-ml.so is missing, 9
    ``DRIVER_NOT_LOADED`` where the kernel driver is absent).
    """

    name = "nvml"

    def __init__(self, nvml: Any = None, *, sys_root: Path = Path("/")) -> None:
        if nvml is None:
            # Imported here, not at module level, so CPU-only use never loads it.
            import pynvml

            nvml = pynvml
        self._n = nvml
        self._sys_root = sys_root
        self._call(nvml.nvmlInit)
        self._open = True
        self._handles: dict[str, Any] = {}     # allocatable uuid -> handle
        self._phys_of: dict[str, str] = {}     # allocatable uuid -> physical uuid
        self._phys: dict[str, Any] = {}        # physical uuid -> handle
        self._gi: dict[tuple[str, int], str] = {}  # (physical uuid, GPU instance id) -> MIG uuid
        self._lost: set[str] = set()
        self._events: Any = None
        try:
            self._devices = self._discover()
            self._events = self._register_events()
        except BaseException:
            self.close()
            raise

    # -- plumbing ----------------------------------------------------------

    def _call(self, fn: Callable[..., Any], *args: Any, uuid: str | None = None) -> Any:
        try:
            return fn(*args)
        except self._n.NVMLError as exc:
            code = getattr(exc, "value", None)
            raise GpuBackendError(f"NVML: {exc}", nvml_code=code, uuid=uuid) from None

    def _maybe(self, fn: Callable[..., Any], *args: Any, uuid: str | None = None) -> Any:
        """``fn(*args)``, or None where the device does not support it."""
        try:
            return self._call(fn, *args, uuid=uuid)
        except GpuBackendError as exc:
            if exc.nvml_code in _UNSUPPORTED:
                return None
            raise

    def _numa_node(self, handle: Any) -> int:
        node = None
        if hasattr(self._n, "nvmlDeviceGetNumaNodeId"):
            try:
                node = self._maybe(self._n.nvmlDeviceGetNumaNodeId, handle)
            except GpuBackendError:
                node = None
        if node is None or node < 0:
            # Older drivers: the PCI device's numa_node in sysfs.
            pci = self._maybe(self._n.nvmlDeviceGetPciInfo, handle)
            bus = getattr(pci, "busId", None) if pci is not None else None
            if isinstance(bus, bytes):
                bus = bus.decode()
            if bus:
                # NVML gives an 8-digit domain (00000000:17:00.0); sysfs a 4-digit one.
                dom, rest = bus.split(":", 1)
                path = self._sys_root / "sys/bus/pci/devices" / f"{dom[-4:]}:{rest}".lower() / "numa_node"
                try:
                    node = int(path.read_text().strip())
                except (OSError, ValueError):
                    node = -1
        return -1 if node is None else int(node)

    def _discover(self) -> tuple[GpuDevice, ...]:
        n = self._n
        out: list[GpuDevice] = []
        words = max(1, ((os.cpu_count() or 1) + 63) // 64)
        for i in range(self._call(n.nvmlDeviceGetCount)):
            h = self._call(n.nvmlDeviceGetHandleByIndex, i)
            uuid = self._call(n.nvmlDeviceGetUUID, h)
            name = self._call(n.nvmlDeviceGetName, h)
            mem = self._call(n.nvmlDeviceGetMemoryInfo, h)
            cap = self._maybe(n.nvmlDeviceGetCudaComputeCapability, h) or (0, 0)
            aff_words = self._maybe(n.nvmlDeviceGetCpuAffinity, h, words)
            aff = _bitmask_to_cpus(aff_words) if aff_words is not None else frozenset()
            numa = self._numa_node(h)
            mig = self._maybe(n.nvmlDeviceGetMigMode, h)
            mig_on = bool(mig) and mig[0] == getattr(n, "NVML_DEVICE_MIG_ENABLE", 1)
            self._phys[uuid] = h
            if not mig_on:
                self._handles[uuid] = h
                self._phys_of[uuid] = uuid
                out.append(GpuDevice(uuid, name, int(mem.total), i, (int(cap[0]), int(cap[1])), numa, aff))
                continue
            for j in range(self._call(n.nvmlDeviceGetMaxMigDeviceCount, h)):
                try:
                    mh = self._call(n.nvmlDeviceGetMigDeviceHandleByIndex, h, j)
                except GpuBackendError as exc:
                    if exc.nvml_code == NVML_ERROR_NOT_FOUND:  # empty slot
                        continue
                    raise
                muuid = self._call(n.nvmlDeviceGetUUID, mh)
                mmem = self._call(n.nvmlDeviceGetMemoryInfo, mh)
                gi = self._maybe(n.nvmlDeviceGetGpuInstanceId, mh)
                if gi is not None:
                    self._gi[(uuid, int(gi))] = muuid
                self._handles[muuid] = mh
                self._phys_of[muuid] = uuid
                out.append(GpuDevice(muuid, name, int(mmem.total), i, (int(cap[0]), int(cap[1])), numa, aff,
                                     parent=uuid, mig_enabled=True))
        return tuple(out)

    def _register_events(self) -> Any:
        """An NVML event set for XID and double-bit ECC events, or None if unsupported."""
        n = self._n
        wanted = n.nvmlEventTypeXidCriticalError | n.nvmlEventTypeDoubleBitEccError
        try:
            es = self._call(n.nvmlEventSetCreate)
        except GpuBackendError:
            return None
        for uuid, h in self._phys.items():
            supported = self._maybe(n.nvmlDeviceGetSupportedEventTypes, h) or 0
            if supported & wanted:
                try:
                    self._call(n.nvmlDeviceRegisterEvents, h, supported & wanted, es, uuid=uuid)
                except GpuBackendError:
                    pass  # events are a bonus: lost GPUs are still found by probing
        return es

    def _handle(self, uuid: str) -> Any:
        h = self._handles.get(uuid)
        if h is None:
            raise GpuBackendError("no such GPU", nvml_code=NVML_ERROR_NOT_FOUND, uuid=uuid, value=uuid)
        return h

    # -- the contract ------------------------------------------------------

    def devices(self) -> tuple[GpuDevice, ...]:
        return self._devices

    def reading(self, uuid: str) -> GpuReading:
        n = self._n
        h = self._handle(uuid)
        ph = self._phys[self._phys_of[uuid]]
        mem = self._call(n.nvmlDeviceGetMemoryInfo, h, uuid=uuid)
        util = self._maybe(n.nvmlDeviceGetUtilizationRates, h, uuid=uuid)
        temp = self._maybe(n.nvmlDeviceGetTemperature, ph, n.NVML_TEMPERATURE_GPU, uuid=uuid)
        ecc_c = self._maybe(n.nvmlDeviceGetTotalEccErrors, ph, n.NVML_MEMORY_ERROR_TYPE_CORRECTED,
                            n.NVML_VOLATILE_ECC, uuid=uuid)
        ecc_u = self._maybe(n.nvmlDeviceGetTotalEccErrors, ph, n.NVML_MEMORY_ERROR_TYPE_UNCORRECTED,
                            n.NVML_VOLATILE_ECC, uuid=uuid)
        retired: int | None = None
        for cause in (n.NVML_PAGE_RETIREMENT_CAUSE_MULTIPLE_SINGLE_BIT_ECC_ERRORS,
                      n.NVML_PAGE_RETIREMENT_CAUSE_DOUBLE_BIT_ECC_ERROR):
            pages = self._maybe(n.nvmlDeviceGetRetiredPages, ph, cause, uuid=uuid)
            if pages is not None:
                retired = (retired or 0) + len(pages)
        return GpuReading(
            uuid=uuid, memory_free=int(mem.free), memory_used=int(mem.used),
            utilization_gpu=None if util is None else int(util.gpu),
            utilization_memory=None if util is None else int(util.memory),
            temperature=None if temp is None else int(temp),
            ecc_corrected=None if ecc_c is None else int(ecc_c),
            ecc_uncorrected=None if ecc_u is None else int(ecc_u),
            retired_pages=retired,
        )

    def processes(self, uuid: str) -> tuple[GpuProcess, ...]:
        procs = self._call(self._n.nvmlDeviceGetComputeRunningProcesses, self._handle(uuid), uuid=uuid)
        out = []
        for p in procs:
            used = getattr(p, "usedGpuMemory", None)
            out.append(GpuProcess(uuid, int(p.pid), None if used is None else int(used)))
        return tuple(sorted(out, key=lambda p: p.pid))

    def _instances(self, phys_uuid: str) -> list[str]:
        return [u for u, p in self._phys_of.items() if p == phys_uuid]

    def poll_health(self, timeout_ms: int = 0) -> list[HealthEvent]:
        n = self._n
        out: list[HealthEvent] = []
        if self._events is not None:
            wait = max(0, int(timeout_ms))
            while True:
                try:
                    data = n.nvmlEventSetWait(self._events, wait)
                except n.NVMLError:
                    break  # NVML_ERROR_TIMEOUT: nothing (more) pending; others: probe below
                wait = 0
                try:
                    phys_uuid = n.nvmlDeviceGetUUID(data.device)
                except n.NVMLError:
                    continue
                if data.eventType & n.nvmlEventTypeXidCriticalError:
                    kind, code, msg = "xid", int(data.eventData), f"XID {int(data.eventData)}"
                else:
                    kind, code, msg = "ecc_uncorrectable", 0, "uncorrectable (double-bit) ECC error"
                gi = int(getattr(data, "gpuInstanceId", _ALL_INSTANCES))
                targets = [self._gi[(phys_uuid, gi)]] if (phys_uuid, gi) in self._gi else self._instances(phys_uuid)
                out += [HealthEvent(u, kind, code, msg) for u in targets]
        for phys_uuid, h in self._phys.items():
            if phys_uuid in self._lost:
                continue
            try:
                n.nvmlDeviceGetMemoryInfo(h)
            except n.NVMLError as exc:
                if getattr(exc, "value", None) == NVML_ERROR_GPU_IS_LOST:
                    self._lost.add(phys_uuid)
                    out += [HealthEvent(u, "lost", 0, "GPU has fallen off the bus")
                            for u in self._instances(phys_uuid)]
        return out

    def close(self) -> None:
        if not getattr(self, "_open", False):
            return
        self._open = False
        if self._events is not None:
            try:
                self._n.nvmlEventSetFree(self._events)
            except self._n.NVMLError:
                pass
        try:
            self._n.nvmlShutdown()
        except self._n.NVMLError:
            pass
