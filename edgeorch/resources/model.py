"""Plain data of the resources layer: requests, leases, inventory, wait reasons.

Everything here is a frozen dataclass with no I/O, so the allocator and the
policy can be pure functions over it and the engine can store it as JSON
(``to_dict``/``from_dict``) in its leases table.

Units: memory in bytes, durations in seconds, CPU ids as the kernel numbers
them (``/proc/cpuinfo``'s ``processor``), GPUs by NVML UUID (``GPU-…`` or
``MIG-…``), never by index: indices change with ``CUDA_VISIBLE_DEVICES`` and
across reboots, UUIDs do not.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..errors import EdgeorchError
from ..errors import UnsatisfiableError as UnsatisfiableError  # defined with every error; the client maps it back
from ..records import frozen
from ..units import parse_size, size_refusal


class ResourceError(EdgeorchError, ValueError):
    """A resource request, a device table or a lease is malformed."""

    code = "bad_resources"


class GpuBackendError(EdgeorchError):
    """A GPU backend call failed.

    ``nvml_code`` is the NVML return code (``pynvml.NVML_ERROR_*``; the fake
    backend uses the same numbers) so callers can tell a lost GPU (15) from an
    unsupported query (3) without importing pynvml.
    """

    code = "gpu_backend"

    def __init__(self, message: str, *, nvml_code: int | None = None, uuid: str | None = None, **kw: Any) -> None:
        self.nvml_code = nvml_code
        self.uuid = uuid
        super().__init__(message, **kw)


# NVML return codes the layer reacts to (same values as pynvml's constants).
NVML_ERROR_NOT_SUPPORTED = 3
NVML_ERROR_NO_PERMISSION = 4
NVML_ERROR_NOT_FOUND = 6
NVML_ERROR_DRIVER_NOT_LOADED = 9
NVML_ERROR_TIMEOUT = 10
NVML_ERROR_LIBRARY_NOT_FOUND = 12
NVML_ERROR_FUNCTION_NOT_FOUND = 13
NVML_ERROR_GPU_IS_LOST = 15
NVML_ERROR_RESET_REQUIRED = 16
NVML_ERROR_LIB_RM_VERSION_MISMATCH = 18
NVML_ERROR_UNKNOWN = 999


@frozen
class ResourceRequest:
    """What one task asks for.

    - ``cpus``: dedicated cores (0: share the cores nobody leased).
    - ``memory``: bytes of host RAM, admission-checked (0: no claim).
    - ``gpus``: whole GPUs, exclusive (0: none).
    - ``gpu_memory``: with ``gpus == 0``, a share of ONE GPU by memory budget
      (several such tasks may share a GPU); with ``gpus > 0``, the minimum
      total memory each of the whole GPUs must have. Also the budget the
      watcher enforces per GPU.
    - ``gpu_model``: a case-insensitive substring of the device name
      (``"A100"``, ``"H100 80GB"``).
    - ``pool``: a named concurrency pool from config (``pool = "db"``).

    The constructor validates; a bad value raises :class:`ResourceError`
    naming the field.
    """

    cpus: int = 0
    memory: int = 0
    gpus: int = 0
    gpu_memory: int = 0
    gpu_model: str | None = None
    pool: str | None = None

    def __post_init__(self) -> None:
        for name in ("cpus", "memory", "gpus", "gpu_memory"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                raise ResourceError("must be an integer >= 0", field=name, value=v, expected="an integer >= 0")
        for name in ("gpu_model", "pool"):
            v = getattr(self, name)
            if v is not None and (not isinstance(v, str) or not v.strip()):
                raise ResourceError("must be a non-empty string", field=name, value=v, expected="a non-empty string")

    def __hash__(self) -> int:
        # Requests are dict keys on the scheduler's hot path (buckets, per-decision
        # memo); hashing six fields each time was the largest cost of a decision.
        h = self.__dict__.get("_hash")
        if h is None:
            h = hash((self.cpus, self.memory, self.gpus, self.gpu_memory, self.gpu_model, self.pool))
            object.__setattr__(self, "_hash", h)
        return h

    @property
    def wants_gpu(self) -> bool:
        return self.gpus > 0 or self.gpu_memory > 0

    @property
    def gpu_share(self) -> bool:
        """True for a memory share of one GPU (``gpu_memory`` without ``gpus``)."""
        return self.gpus == 0 and self.gpu_memory > 0

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], *, file: str | None = None, prefix: str = "") -> ResourceRequest:
        """Build from a pipeline TOML table (``cpus = 4``, ``memory = "8G"`` …).

        Sizes accept what :func:`edgeorch.units.parse_size` does. Unknown keys
        and bad values raise :class:`ResourceError` with ``file`` and the
        dotted field (``prefix`` + key).
        """
        known = {"cpus", "memory", "gpus", "gpu_memory", "gpu_model", "pool"}

        def fld(key: str) -> str:
            return f"{prefix}.{key}" if prefix else key

        for key in data:
            if key not in known:
                raise ResourceError("unknown resource key", file=file, field=fld(key),
                                    expected="one of " + ", ".join(sorted(known)))
        kw: dict[str, Any] = {}
        for key in ("cpus", "gpus"):
            if key in data:
                v = data[key]
                if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                    raise ResourceError("must be a count", file=file, field=fld(key), value=v, expected="an integer >= 0")
                kw[key] = v
        for key in ("memory", "gpu_memory"):
            if key in data:
                try:
                    kw[key] = parse_size(data[key])
                except ValueError as exc:
                    problem, expected = size_refusal(exc)
                    raise ResourceError(problem, file=file, field=fld(key), value=data[key], expected=expected) from None
        for key in ("gpu_model", "pool"):
            if key in data:
                v = data[key]
                if not isinstance(v, str) or not v.strip():
                    raise ResourceError("must be a non-empty string", file=file, field=fld(key), value=v,
                                        expected="a non-empty string")
                kw[key] = v
        return cls(**kw)


@frozen
class CpuCore:
    """One logical CPU the daemon may hand out; ``numa_node`` -1 when unknown."""

    id: int
    numa_node: int = -1


@frozen
class GpuDevice:
    """One allocatable GPU (a whole GPU or a MIG instance).

    ``parent`` is the UUID of the physical GPU for a MIG instance, else None.
    A physical GPU in MIG mode is NOT listed as allocatable: its instances are
    (CUDA cannot use the parent while MIG is on).
    ``cpu_affinity`` is the set of CPUs close to the device (empty: unknown).

    ``memory_reserved`` is what the driver keeps for itself (bytes; 0:
    unknown): free memory never exceeds ``memory_total − memory_reserved``,
    even on an idle GPU (:attr:`memory_usable`).

    ``compute_mode`` is NVML's compute mode: ``default`` (any number of
    processes), ``exclusive_process`` (one process may hold a context, so at
    most one lease), ``prohibited`` (no CUDA context at all: never leased).

    ``memory_group`` names the memory this device shares with other listed
    devices (None: its own). Compute instances of one MIG GPU instance are
    separate devices that share the instance's memory, each reporting all of
    it; they carry the same group (``<parent>/gi<N>``).
    """

    uuid: str
    name: str
    memory_total: int
    index: int = 0
    compute_capability: tuple[int, int] = (0, 0)
    numa_node: int = -1
    cpu_affinity: frozenset[int] = frozenset()
    parent: str | None = None
    mig_enabled: bool = False
    memory_reserved: int = 0
    compute_mode: str = "default"
    memory_group: str | None = None

    @property
    def physical(self) -> str:
        """UUID of the physical GPU (itself unless a MIG instance)."""
        return self.parent or self.uuid

    @property
    def memory_usable(self) -> int:
        """The most that can ever be free: total minus the driver's reservation."""
        return max(0, self.memory_total - self.memory_reserved)

    @property
    def memory_key(self) -> str:
        """What this device's memory is accounted under (its group, else its UUID)."""
        return self.memory_group or self.uuid


COMPUTE_MODES = ("default", "exclusive_thread", "prohibited", "exclusive_process")
"""NVML compute modes by their number (``NVML_COMPUTEMODE_*``: 0, 1, 2, 3)."""


@frozen
class Inventory:
    """What the daemon may hand out: cores, host memory, allocatable GPUs.

    ``memory_available`` is host RAM the daemon may promise (MemAvailable at
    the time of reading); 0 means "unknown: do not admission-check memory".
    """

    cpus: tuple[CpuCore, ...] = ()
    memory_available: int = 0
    gpus: tuple[GpuDevice, ...] = ()

    def gpu(self, uuid: str) -> GpuDevice | None:
        for g in self.gpus:
            if g.uuid == uuid:
                return g
        return None


@frozen
class Lease:
    """The hardware granted to one attempt.

    - ``cpus``: dedicated cores (exclusive to this lease).
    - ``affinity``: the cores the attempt is pinned to: ``cpus`` when it has
      dedicated cores, else the shared cores (not leased by anyone) at the
      time of the grant.
    - ``gpus``: UUIDs the attempt sees (``CUDA_VISIBLE_DEVICES``).
    - ``gpu_exclusive``: whole GPUs (True) or a memory share (False).
    - ``gpu_memory``: budget per GPU in bytes (0: none; whole GPUs with no
      budget are not policed by the watcher).
    """

    holder: str
    cpus: tuple[int, ...] = ()
    affinity: tuple[int, ...] = ()
    memory: int = 0
    gpus: tuple[str, ...] = ()
    gpu_exclusive: bool = False
    gpu_memory: int = 0
    pool: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (what the engine stores in SQLite)."""
        return {
            "holder": self.holder, "cpus": list(self.cpus), "affinity": list(self.affinity),
            "memory": self.memory, "gpus": list(self.gpus), "gpu_exclusive": self.gpu_exclusive,
            "gpu_memory": self.gpu_memory, "pool": self.pool,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Lease:
        """Inverse of :meth:`to_dict`; raises :class:`ResourceError` on a bad record."""
        try:
            return cls(
                holder=str(d["holder"]), cpus=tuple(int(c) for c in d.get("cpus", ())),
                affinity=tuple(int(c) for c in d.get("affinity", ())), memory=int(d.get("memory", 0)),
                gpus=tuple(str(g) for g in d.get("gpus", ())), gpu_exclusive=bool(d.get("gpu_exclusive", False)),
                gpu_memory=int(d.get("gpu_memory", 0)), pool=d.get("pool"),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ResourceError(f"malformed lease record: {exc}", value=dict(d)) from None


@frozen
class WaitReason:
    """Why a request cannot start now.

    ``kind`` is one of: ``cpus``, ``memory``, ``gpus``, ``gpu_memory``,
    ``gpu_model``, ``pool``, ``max_parallel``, ``parallelism``, ``reserved``
    (held back so the reserved head of the queue is not delayed),
    ``drained`` (every fitting GPU is drained), ``unsatisfiable`` (never:
    the engine should fail the task, see :func:`allocator.never_satisfiable`).
    ``message`` is a sentence for ``edgeorch resources``.
    """

    kind: str
    message: str

    def __str__(self) -> str:
        return self.message


@frozen
class GpuReading:
    """Live readings of one device; ``None`` where the device does not report it (or the read failed).

    ``remap_pending`` / ``remap_failed``: row remapping (Ampere and later,
    which replaced page retirement): a remap waits for a GPU reset / a row
    could not be remapped. ``problems`` names optional readings that failed
    for another reason than "not supported" (they are None here).
    """

    uuid: str
    memory_free: int
    memory_used: int
    utilization_gpu: int | None = None
    utilization_memory: int | None = None
    temperature: int | None = None
    ecc_corrected: int | None = None
    ecc_uncorrected: int | None = None
    retired_pages: int | None = None
    remap_pending: bool | None = None
    remap_failed: bool | None = None
    problems: tuple[str, ...] = ()


@frozen
class GpuProcess:
    """One process using GPU memory on a device (``used_memory`` None: unknown)."""

    uuid: str
    pid: int
    used_memory: int | None


@frozen
class HealthEvent:
    """A device health event: ``kind`` is one of :data:`HEALTH_KINDS`.

    ``xid`` (``code`` the XID number), ``ecc_uncorrectable``, ``lost`` (fell
    off the bus), ``remap_pending`` (a memory row remap waits for a GPU
    reset), ``remap_failed`` (a row could not be remapped), ``reset_required``
    (NVML says the GPU needs a reset). ``code`` is 0 except for ``xid``.
    """

    uuid: str
    kind: str
    code: int = 0
    message: str = ""


HEALTH_KINDS = ("xid", "ecc_uncorrectable", "lost", "remap_pending", "remap_failed", "reset_required")

__all__ = [
    "HEALTH_KINDS",
    "CpuCore",
    "GpuBackendError",
    "GpuDevice",
    "GpuProcess",
    "GpuReading",
    "HealthEvent",
    "Inventory",
    "Lease",
    "ResourceError",
    "ResourceRequest",
    "UnsatisfiableError",
    "WaitReason",
]
