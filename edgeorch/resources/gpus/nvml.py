"""The real GPU backend: NVML through nvidia-ml-py's ``pynvml`` module.

Every pynvml call goes through :meth:`NvmlBackend._call`, which turns
whatever pynvml raises into :class:`GpuBackendError` carrying an NVML code
(:func:`translate`), so callers never import pynvml and no pynvml exception
reaches the engine. pynvml raises more than ``NVMLError``: an unversioned
wrapper such as ``nvmlDeviceGetComputeRunningProcesses`` raises
``NVMLLibraryMismatchError`` (a plain ``Exception``) when the driver lacks
its ``_v3`` symbol (drivers older than R510); a function this nvidia-ml-py
does not have is an ``AttributeError``; ctypes can raise ``OSError``.

What is required and what is optional:

- Discovery is per device: a device that cannot be opened (cgroup-denied,
  lost, a query needing privileges) is left out and named in
  :attr:`NvmlBackend.problems`; the others are used. Only its handle, UUID,
  name and memory are required; compute capability, CPU affinity, NUMA node,
  MIG mode and compute mode are optional. A MIG parent's own memory query
  needs root (NO_PERMISSION otherwise) and is not needed: its instances are
  what is handed out.
- In a reading only the memory query is required. Any other failure of an
  optional query becomes ``None``: quietly for "not supported" (codes 3 and
  13), otherwise named in ``GpuReading.problems`` and logged once per
  device, query and code (NVML's "Unknown Error" in a container after a
  systemd daemon-reload must not make a GPU unschedulable silently).

The ``nvml`` constructor argument exists for tests: it defaults to the real
``pynvml`` module and may be any object with the same functions.
"""

from __future__ import annotations

import logging
import os
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..cpus import numa_nodes
from ..model import (
    COMPUTE_MODES,
    NVML_ERROR_FUNCTION_NOT_FOUND,
    NVML_ERROR_GPU_IS_LOST,
    NVML_ERROR_NOT_FOUND,
    NVML_ERROR_NOT_SUPPORTED,
    NVML_ERROR_RESET_REQUIRED,
    NVML_ERROR_UNKNOWN,
    GpuBackendError,
    GpuDevice,
    GpuProcess,
    GpuReading,
    HealthEvent,
)
from .backend import GpuBackend

log = logging.getLogger("edgeorch.resources")

# Codes that mean "this device/driver cannot tell", turned into None readings without a word.
_UNSUPPORTED = {NVML_ERROR_NOT_SUPPORTED, NVML_ERROR_FUNCTION_NOT_FOUND}
_ALL_INSTANCES = 0xFFFFFFFF  # eventData.gpuInstanceId when the event is for the whole GPU
_BAD_PIDS = {0, 0xFFFFFFFF}  # what a process struct read with the wrong layout yields
_NOT_AVAILABLE = 0xFFFFFFFFFFFFFFFF  # NVML_VALUE_NOT_AVAILABLE_ulonglong (older pynvml passes it through)

REMAP_CHECK_S = 60.0
"""Seconds between two row-remapping checks in :meth:`NvmlBackend.poll_health` (the first is at once)."""


def translate(exc: BaseException, nvml: Any, what: str, uuid: str | None = None) -> GpuBackendError:
    """The :class:`GpuBackendError` for anything a pynvml call raised.

    - ``NVMLError`` (and its per-code subclasses): its code (``exc.value``).
    - ``NVMLLibraryMismatchError`` (pynvml's unversioned wrappers when the
      driver lacks the newest symbol) and ``AttributeError`` (a function this
      nvidia-ml-py does not have): ``NVML_ERROR_FUNCTION_NOT_FOUND``, so
      callers treat it like a function missing from an old driver.
    - Anything else (``OSError`` from ctypes, a bug in the bindings):
      ``NVML_ERROR_UNKNOWN`` with the exception's type in the message.
    """
    where = f"{what}: " if what else ""
    nvml_error = getattr(nvml, "NVMLError", None)
    mismatch = getattr(nvml, "NVMLLibraryMismatchError", None)
    if isinstance(nvml_error, type) and isinstance(exc, nvml_error):
        code = getattr(exc, "value", None)
        try:
            text = str(exc)
        except Exception:  # noqa: BLE001 - str() calls nvmlErrorString, which can itself fail
            text = f"NVML error {code}"
        return GpuBackendError(f"NVML: {where}{text}", nvml_code=code if isinstance(code, int) else None, uuid=uuid)
    if isinstance(mismatch, type) and isinstance(exc, mismatch):
        return GpuBackendError(f"NVML: {where}this driver's NVML lacks the function nvidia-ml-py calls "
                               f"(driver older than the bindings): {exc}", nvml_code=NVML_ERROR_FUNCTION_NOT_FOUND,
                               uuid=uuid)
    if isinstance(exc, AttributeError):
        return GpuBackendError(f"NVML: {where}not in this nvidia-ml-py ({exc})", nvml_code=NVML_ERROR_FUNCTION_NOT_FOUND,
                               uuid=uuid)
    return GpuBackendError(f"NVML: {where}{type(exc).__name__}: {exc}", nvml_code=NVML_ERROR_UNKNOWN, uuid=uuid)


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


def _text(v: Any) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


def bindings_version() -> str:
    """The installed nvidia-ml-py version (``"unknown"`` when it cannot be read)."""
    from importlib import metadata

    try:
        return metadata.version("nvidia-ml-py")
    except metadata.PackageNotFoundError:
        return "unknown"


class NvmlBackend(GpuBackend):
    """GPUs as NVML reports them. Construction calls ``nvmlInit`` and discovers the devices.

    Raises :class:`GpuBackendError` when NVML cannot start (``nvml_code`` 12
    ``NVML_ERROR_LIBRARY_NOT_FOUND`` where libnvidia-ml.so is missing, 9
    ``DRIVER_NOT_LOADED`` where the kernel driver is absent, 18
    ``LIB_RM_VERSION_MISMATCH`` after a driver upgrade without reboot) or
    cannot count the devices. A single device that cannot be opened does not
    raise: it is named in :attr:`problems`.
    """

    name = "nvml"

    def __init__(self, nvml: Any = None, *, sys_root: Path = Path("/"),
                 clock: Callable[[], float] = time.monotonic) -> None:
        if nvml is None:
            # Imported here, not at module level, so CPU-only use never loads it.
            import pynvml  # type: ignore[import-untyped]

            nvml = pynvml
        self._n = nvml
        self._sys_root = sys_root
        self._clock = clock
        self._call("nvmlInit")
        self._open = True
        self._handles: dict[str, Any] = {}     # allocatable uuid -> handle
        self._phys_of: dict[str, str] = {}     # allocatable uuid -> physical uuid
        self._phys: dict[str, Any] = {}        # physical uuid -> handle
        self._probe: dict[str, Any] = {}       # physical uuid -> a handle whose memory query works unprivileged
        self._gi: dict[tuple[str, int], list[str]] = {}  # (physical uuid, GPU instance id) -> MIG uuids
        self._lost: set[str] = set()
        self._reported: set[tuple[str, str]] = set()  # (physical uuid, event kind) reported once
        self._warned: set[tuple[str, str, int | None]] = set()
        self._next_remap_check = 0.0
        self._events: Any = None
        self._proc_fns: tuple[str, ...] = ()  # the process listing that works with this driver, once known
        self.driver_version = self._optional("", "driver version", "nvmlSystemGetDriverVersion")
        try:
            self._devices, problems = self._discover()
            self._events, event_problems = self._register_events()
            self.problems = tuple(problems + event_problems)
        except BaseException:
            self.close()
            raise

    # -- plumbing ----------------------------------------------------------

    def _call(self, fn: Callable[..., Any] | str, *args: Any, uuid: str | None = None) -> Any:
        """``fn(*args)`` (a pynvml function or its name); anything raised becomes GpuBackendError."""
        name = fn if isinstance(fn, str) else getattr(fn, "__name__", "")
        try:
            call: Callable[..., Any] = getattr(self._n, fn) if isinstance(fn, str) else fn
            return call(*args)
        except Exception as exc:  # noqa: BLE001 - every pynvml failure is translated, none escapes
            raise translate(exc, self._n, name, uuid) from None

    def _optional(self, uuid: str, what: str, fn: str, *args: Any, problems: list[str] | None = None) -> Any:
        """``fn(*args)``, or None when it fails: an optional query.

        A lost GPU still raises (the device is gone, not the reading). "Not
        supported" is silent; any other failure is appended to ``problems``
        and logged once per (device, query, code).
        """
        try:
            return self._call(fn, *args, uuid=uuid or None)
        except GpuBackendError as exc:
            if exc.nvml_code == NVML_ERROR_GPU_IS_LOST:
                raise
            if exc.nvml_code not in _UNSUPPORTED:
                text = f"{what}: {exc.message}"
                if problems is not None:
                    problems.append(text)
                key = (uuid, what, exc.nvml_code)
                if key not in self._warned:
                    self._warned.add(key)
                    log.warning("GPU %s: %s unreadable (left out, the GPU stays schedulable): %s", uuid or "-", what,
                                exc.message)
            return None

    def _numa_node(self, uuid: str, handle: Any, affinity: frozenset[int], cpu_node: dict[int, int]) -> int:
        """The NUMA node of the CPUs near the GPU, or -1.

        NVML's node is NOT_SUPPORTED on most x86 drivers; on GH200 it is the
        GPU memory's own node, which has no CPUs and is useless for placing
        cores. So a node is accepted only where CPUs live (when the machine's
        node map is known), then the PCI device's sysfs ``numa_node``, then
        the node holding most of the GPU's CPU affinity.
        """
        with_cpus = set(cpu_node.values())

        def usable(node: Any) -> bool:
            return isinstance(node, int) and node >= 0 and (not with_cpus or node in with_cpus)

        node = self._optional(uuid, "NUMA node", "nvmlDeviceGetNumaNodeId", handle)
        if usable(node):
            return int(node)
        pci = self._optional(uuid, "PCI info", "nvmlDeviceGetPciInfo", handle)
        bus = getattr(pci, "busId", None) if pci is not None else None
        if bus:
            # NVML gives an 8-digit domain (00000000:17:00.0); sysfs a 4-digit one.
            dom, rest = _text(bus).split(":", 1)
            path = self._sys_root / "sys/bus/pci/devices" / f"{dom[-4:]}:{rest}".lower() / "numa_node"
            try:
                node = int(path.read_text().strip())
            except (OSError, ValueError):
                node = -1
            if usable(node):
                return int(node)
        near = Counter(cpu_node[c] for c in affinity if c in cpu_node)
        if near:
            return near.most_common(1)[0][0]
        return -1

    def _memory_total(self, h: Any, uuid: str) -> tuple[int, int]:
        """(total, reserved by the driver) in bytes; reserved 0 when this driver cannot say.

        ``nvmlDeviceGetMemoryInfo`` v2 (R510+) reports the reservation; v1
        counts it in ``used``, indistinguishable from processes' use.
        """
        v2 = getattr(self._n, "nvmlMemory_v2", None)
        if v2 is not None:
            try:
                mem = self._call("nvmlDeviceGetMemoryInfo", h, v2, uuid=uuid)
                return int(mem.total), int(getattr(mem, "reserved", 0) or 0)
            except GpuBackendError as exc:
                if exc.nvml_code == NVML_ERROR_GPU_IS_LOST:
                    raise
        mem = self._call("nvmlDeviceGetMemoryInfo", h, uuid=uuid)
        return int(mem.total), 0

    def _discover(self) -> tuple[tuple[GpuDevice, ...], list[str]]:
        out: list[GpuDevice] = []
        problems: list[str] = []
        words = max(1, ((os.cpu_count() or 1) + 63) // 64)
        cpu_node = numa_nodes(self._sys_root)
        for i in range(self._call("nvmlDeviceGetCount")):
            try:
                out += self._discover_one(i, words, cpu_node, problems)
            except GpuBackendError as exc:
                who = f"GPU {i}" + (f" ({exc.uuid})" if exc.uuid else "")
                problems.append(f"{who} cannot be opened and is not used: {exc.message}")
        return tuple(out), problems

    def _discover_one(self, i: int, words: int, cpu_node: dict[int, int], problems: list[str]) -> list[GpuDevice]:
        h = self._call("nvmlDeviceGetHandleByIndex", i)
        uuid = _text(self._call("nvmlDeviceGetUUID", h))
        name = _text(self._call("nvmlDeviceGetName", h, uuid=uuid))
        cap = self._optional(uuid, "compute capability", "nvmlDeviceGetCudaComputeCapability", h) or (0, 0)
        cap = (int(cap[0]), int(cap[1]))
        aff_words = self._optional(uuid, "CPU affinity", "nvmlDeviceGetCpuAffinity", h, words)
        aff = _bitmask_to_cpus(aff_words) if aff_words is not None else frozenset()
        numa = self._numa_node(uuid, h, aff, cpu_node)
        mig = self._optional(uuid, "MIG mode", "nvmlDeviceGetMigMode", h)
        mig_on = bool(mig) and mig[0] == getattr(self._n, "NVML_DEVICE_MIG_ENABLE", 1)
        mode_no = self._optional(uuid, "compute mode", "nvmlDeviceGetComputeMode", h)
        mode = COMPUTE_MODES[mode_no] if isinstance(mode_no, int) and 0 <= mode_no < len(COMPUTE_MODES) else "default"
        if not mig_on:
            total, reserved = self._memory_total(h, uuid)
            self._phys[uuid] = self._probe[uuid] = self._handles[uuid] = h
            self._phys_of[uuid] = uuid
            return [GpuDevice(uuid, name, total, i, cap, numa, aff, memory_reserved=reserved, compute_mode=mode)]
        out: list[GpuDevice] = []
        for j in range(self._call("nvmlDeviceGetMaxMigDeviceCount", h, uuid=uuid)):
            try:
                mh = self._call("nvmlDeviceGetMigDeviceHandleByIndex", h, j, uuid=uuid)
                muuid = _text(self._call("nvmlDeviceGetUUID", mh, uuid=uuid))
                mtotal, mreserved = self._memory_total(mh, muuid)
            except GpuBackendError as exc:
                if exc.nvml_code != NVML_ERROR_NOT_FOUND:  # NOT_FOUND: an empty slot
                    problems.append(f"GPU {i} ({uuid}) MIG device {j} cannot be opened and is not used: {exc.message}")
                continue
            gi = self._optional(muuid, "GPU instance id", "nvmlDeviceGetGpuInstanceId", mh)
            group = None
            if gi is not None:
                self._gi.setdefault((uuid, int(gi)), []).append(muuid)
                group = f"{uuid}/gi{int(gi)}"
            self._handles[muuid] = mh
            self._phys_of[muuid] = uuid
            self._probe.setdefault(uuid, mh)
            out.append(GpuDevice(muuid, name, mtotal, i, cap, numa, aff, parent=uuid, mig_enabled=True,
                                 memory_reserved=mreserved, compute_mode=mode, memory_group=group))
        self._phys[uuid] = h
        return out

    def _register_events(self) -> tuple[Any, list[str]]:
        """An NVML event set for XID and double-bit ECC events (None if unavailable), and what failed."""
        n = self._n
        if not self._phys:
            return None, []
        wanted = n.nvmlEventTypeXidCriticalError | n.nvmlEventTypeDoubleBitEccError
        try:
            es = self._call("nvmlEventSetCreate")
        except GpuBackendError as exc:
            return None, [f"health events (XID, ECC) cannot be watched: {exc.message}; "
                          "lost GPUs are still found by probing"]
        problems: list[str] = []
        for uuid, h in self._phys.items():
            supported = self._optional(uuid, "supported events", "nvmlDeviceGetSupportedEventTypes", h) or 0
            if not supported & wanted:
                problems.append(f"GPU {uuid}: reports no XID/ECC events; lost GPUs are still found by probing")
                continue
            try:
                self._call("nvmlDeviceRegisterEvents", h, supported & wanted, es, uuid=uuid)
            except GpuBackendError as exc:
                problems.append(f"GPU {uuid}: XID/ECC events cannot be watched ({exc.message}); "
                                "lost GPUs are still found by probing")
        return es, problems

    def _handle(self, uuid: str) -> Any:
        h = self._handles.get(uuid)
        if h is None:
            raise GpuBackendError("no such GPU", nvml_code=NVML_ERROR_NOT_FOUND, uuid=uuid, value=uuid)
        return h

    # -- the contract ------------------------------------------------------

    def devices(self) -> tuple[GpuDevice, ...]:
        return self._devices

    def free_memory(self, uuid: str) -> int:
        return int(self._call("nvmlDeviceGetMemoryInfo", self._handle(uuid), uuid=uuid).free)

    def reading(self, uuid: str) -> GpuReading:
        n = self._n
        h = self._handle(uuid)
        ph = self._phys[self._phys_of[uuid]]
        mem = self._call("nvmlDeviceGetMemoryInfo", h, uuid=uuid)
        probs: list[str] = []

        def opt(what: str, fn: str, *args: Any) -> Any:
            return self._optional(uuid, what, fn, *args, problems=probs)

        util = opt("utilisation", "nvmlDeviceGetUtilizationRates", h)
        temp = opt("temperature", "nvmlDeviceGetTemperature", ph, n.NVML_TEMPERATURE_GPU)
        ecc_c = opt("corrected ECC count", "nvmlDeviceGetTotalEccErrors", ph, n.NVML_MEMORY_ERROR_TYPE_CORRECTED,
                    n.NVML_VOLATILE_ECC)
        ecc_u = opt("uncorrected ECC count", "nvmlDeviceGetTotalEccErrors", ph, n.NVML_MEMORY_ERROR_TYPE_UNCORRECTED,
                    n.NVML_VOLATILE_ECC)
        retired: int | None = None
        for cause in (n.NVML_PAGE_RETIREMENT_CAUSE_MULTIPLE_SINGLE_BIT_ECC_ERRORS,
                      n.NVML_PAGE_RETIREMENT_CAUSE_DOUBLE_BIT_ECC_ERROR):
            pages = opt("retired pages", "nvmlDeviceGetRetiredPages", ph, cause)
            if pages is not None:
                retired = (retired or 0) + len(pages)
        remap = opt("row remapping", "nvmlDeviceGetRemappedRows", ph)
        return GpuReading(
            uuid=uuid, memory_free=int(mem.free), memory_used=int(mem.used),
            utilization_gpu=None if util is None else int(util.gpu),
            utilization_memory=None if util is None else int(util.memory),
            temperature=None if temp is None else int(temp),
            ecc_corrected=None if ecc_c is None else int(ecc_c),
            ecc_uncorrected=None if ecc_u is None else int(ecc_u),
            retired_pages=retired,
            remap_pending=None if remap is None else bool(remap[2]),
            remap_failed=None if remap is None else bool(remap[3]),
            problems=tuple(probs),
        )

    def _running_processes(self, h: Any, uuid: str) -> Any:
        """The compute processes on ``h``, through the newest listing this driver has.

        pynvml's ``nvmlDeviceGetComputeRunningProcesses`` calls the ``_v3``
        symbol (R510 and later) and raises NVMLLibraryMismatchError without
        it; ``_v2`` (R450 and later) has the same fields. The first that works
        is remembered, so an old driver costs one failed call, once.
        """
        names = self._proc_fns or ("nvmlDeviceGetComputeRunningProcesses", "nvmlDeviceGetComputeRunningProcesses_v2")
        last: GpuBackendError | None = None
        for name in names:
            try:
                procs = self._call(name, h, uuid=uuid)
            except GpuBackendError as exc:
                if exc.nvml_code != NVML_ERROR_FUNCTION_NOT_FOUND:
                    raise
                last = exc
                continue
            self._proc_fns = (name,)
            return procs
        assert last is not None
        raise last

    def processes(self, uuid: str) -> tuple[GpuProcess, ...]:
        procs = self._running_processes(self._handle(uuid), uuid)
        out = []
        bad = []
        for p in procs:
            pid = int(p.pid)
            if pid in _BAD_PIDS:
                bad.append(pid)
                continue
            used = getattr(p, "usedGpuMemory", None)
            out.append(GpuProcess(uuid, pid, None if used is None or int(used) == _NOT_AVAILABLE else int(used)))
        if bad:
            # The process struct was read with another layout than the driver wrote (early R535 drivers with
            # some nvidia-ml-py releases): every field is suspect, not only the PIDs shown to be impossible.
            raise GpuBackendError(
                f"NVML listed impossible PIDs ({', '.join(map(str, sorted(set(bad))))}) on {uuid}: nvidia-ml-py "
                f"{bindings_version()} and driver {self.driver_version or '?'} disagree on the process record "
                "layout; per-process GPU memory is unusable until nvidia-ml-py or the driver is upgraded",
                uuid=uuid, expected="a matching nvidia-ml-py (pip install -U nvidia-ml-py)")
        return tuple(sorted(out, key=lambda p: p.pid))

    def _instances(self, phys_uuid: str) -> list[str]:
        return [u for u, p in self._phys_of.items() if p == phys_uuid]

    def _report(self, phys_uuid: str, kind: str, message: str, *, once: bool = True) -> list[HealthEvent]:
        if once and (phys_uuid, kind) in self._reported:
            return []
        self._reported.add((phys_uuid, kind))
        return [HealthEvent(u, kind, 0, message) for u in self._instances(phys_uuid)]

    def poll_health(self, timeout_ms: int = 0) -> list[HealthEvent]:
        n = self._n
        out: list[HealthEvent] = []
        if self._events is not None:
            wait = max(0, int(timeout_ms))
            while True:
                try:
                    data = self._call("nvmlEventSetWait", self._events, wait)
                except GpuBackendError:
                    break  # NVML_ERROR_TIMEOUT: nothing (more) pending; others: probe below
                wait = 0
                try:
                    phys_uuid = _text(self._call("nvmlDeviceGetUUID", data.device))
                except GpuBackendError:
                    continue
                if data.eventType & n.nvmlEventTypeXidCriticalError:
                    kind, code, msg = "xid", int(data.eventData), f"XID {int(data.eventData)}"
                else:
                    kind, code, msg = "ecc_uncorrectable", 0, "uncorrectable (double-bit) ECC error"
                gi = int(getattr(data, "gpuInstanceId", _ALL_INSTANCES))
                targets = self._gi.get((phys_uuid, gi)) or self._instances(phys_uuid)
                out += [HealthEvent(u, kind, code, msg) for u in targets]
        for phys_uuid, h in self._probe.items():
            if phys_uuid in self._lost:
                continue
            try:
                self._call("nvmlDeviceGetMemoryInfo", h, uuid=phys_uuid)
            except GpuBackendError as exc:
                if exc.nvml_code == NVML_ERROR_GPU_IS_LOST:
                    self._lost.add(phys_uuid)
                    out += self._report(phys_uuid, "lost", "GPU has fallen off the bus")
                elif exc.nvml_code == NVML_ERROR_RESET_REQUIRED:
                    out += self._report(phys_uuid, "reset_required", "NVML: the GPU requires a reset")
        if self._clock() >= self._next_remap_check:
            self._next_remap_check = self._clock() + REMAP_CHECK_S
            for phys_uuid, h in self._phys.items():
                if phys_uuid in self._lost:
                    continue
                try:
                    remap = self._optional(phys_uuid, "row remapping", "nvmlDeviceGetRemappedRows", h)
                except GpuBackendError:
                    continue  # lost: found by the probe
                if remap is None:
                    continue
                if remap[3]:
                    out += self._report(phys_uuid, "remap_failed", "a memory row could not be remapped")
                elif remap[2]:
                    out += self._report(phys_uuid, "remap_pending", "a memory row remap waits for a GPU reset")
        return out

    def close(self) -> None:
        if not getattr(self, "_open", False):
            return
        self._open = False
        if self._events is not None:
            try:
                self._call("nvmlEventSetFree", self._events)
            except GpuBackendError:
                pass
        try:
            self._call("nvmlShutdown")
        except GpuBackendError:
            pass
