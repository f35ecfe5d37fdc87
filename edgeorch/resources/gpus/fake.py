"""A GPU backend over a device table: simulated devices for tests and demos.

The table is a dict, or a TOML/JSON file with the same shape::

    [[gpu]]
    uuid = "GPU-11111111-2222-3333-4444-555555555555"
    name = "NVIDIA A100-SXM4-80GB"
    memory = "80G"                 # total
    reserved = "512M"              # optional: kept by the driver, never free
                                   # (default: 1/32 of memory, at most 512M)
    compute_capability = "8.0"     # or [8, 0]
    numa_node = 0                  # optional, -1 unknown (what NVML says on x86)
    cpus = "0-15"                  # optional CPU affinity (kernel list)
    used = "1G"                    # optional memory used by non-edgeorch users
    utilization = 0                # optional percent; omitted: unsupported
    temperature = 35               # optional °C
    ecc = true                     # ECC counters supported (default true)
    compute_mode = "default"       # default | exclusive_process | prohibited

    [[gpu.mig]]                    # any: the GPU is in MIG mode
    uuid = "MIG-…"
    memory = "10G"
    gi = 1                         # optional GPU instance id: compute instances
                                   # with the same gi share its memory

    [[gpu.process]]                # processes already on the GPU (or a MIG uuid)
    pid = 1234
    memory = "2G"                  # as NVML reports it (CUDA context included)

Tests then change the simulated world through the ``set_*``/``add_*``/
``inject_*`` methods; every method behaves as the contract in
:mod:`.backend` says, including NVML error codes (:meth:`fail_with`).

Where NVML surprises code written against a naive model, the fake does what
NVML does: an idle GPU's free memory is below its total (the driver's
reservation); :meth:`add_cuda_process` reports a process's allocation plus
its CUDA context (:data:`CUDA_CONTEXT`); NVML's PIDs are host PIDs
(:attr:`pid_offset` models a container's PID namespace); compute instances
of one MIG GPU instance each report all of its memory; any call can fail
with any NVML code or with an exception that is not a GpuBackendError
(:meth:`fail_with`), an optional reading can fail alone
(:meth:`fail_optional`), and any call can block until released
(:meth:`block`), as NVML does on a wedged GPU. :meth:`cuda_sees` answers
what a CUDA process would enumerate for a ``CUDA_VISIBLE_DEVICES`` value
(one MIG device at most, and no whole GPU once a MIG device is visible).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ...tomlcheck import load_toml
from ...units import SIZE_EXPECTED, parse_size, size_refusal
from ..cpus import parse_cpu_list
from ..model import (
    COMPUTE_MODES,
    NVML_ERROR_GPU_IS_LOST,
    NVML_ERROR_NOT_FOUND,
    NVML_ERROR_NOT_SUPPORTED,
    NVML_ERROR_RESET_REQUIRED,
    GpuBackendError,
    GpuDevice,
    GpuProcess,
    GpuReading,
    HealthEvent,
    ResourceError,
)
from .backend import GpuBackend

CUDA_CONTEXT = 300 * 1024**2
"""What a CUDA context adds to a process's memory in NVML's eyes (a few hundred MiB on real GPUs)."""

_CALLS = ("reading", "free_memory", "processes")
_OPTIONAL = ("utilization", "temperature", "ecc", "remap")


def default_reserved(total: int) -> int:
    """The driver's reservation when a table does not say: 1/32 of the memory, at most 512 MiB."""
    return min(512 * 1024**2, total // 32)


@dataclass
class _Sim:
    """Mutable simulated state of one allocatable device (or a MIG parent)."""

    device: GpuDevice
    used_external: int = 0
    processes: dict[int, int | None] = field(default_factory=dict)
    utilization: int | None = None
    temperature: int | None = None
    ecc: bool = True
    ecc_corrected: int = 0
    ecc_uncorrected: int = 0
    retired_pages: int = 0
    remap_pending: bool = False
    remap_failed: bool = False
    lost: bool = False
    error: int | None = None
    error_exc: Callable[[], BaseException] | None = None
    error_calls: tuple[str, ...] = _CALLS
    optional_errors: dict[str, int] = field(default_factory=dict)


class FakeBackend(GpuBackend):
    """Simulated GPUs behind the :class:`GpuBackend` contract."""

    name = "fake"

    def __init__(self, table: Mapping[str, Any] | None = None, *, file: str | None = None) -> None:
        """Build from ``table`` (see the module docstring); ``file`` names it in errors.

        Raises :class:`ResourceError` naming the file, the field
        (``gpu[1].memory``), the value and what was expected.
        """
        self._file = file
        self._phys: dict[str, _Sim] = {}
        self._sims: dict[str, _Sim] = {}
        self._order: list[str] = []
        self._events: list[HealthEvent] = []
        self._lock = threading.Lock()
        self._reported_lost: set[str] = set()
        self._reported: set[tuple[str, str]] = set()
        self._blocks: dict[str, threading.Event] = {}
        self._entered: dict[str, threading.Event] = {}
        self._closed = False
        self.pid_offset = 0
        """Added to every PID :meth:`processes` reports: NVML's host PIDs seen from a container's namespace."""
        self._parse(table or {"gpu": []})

    @classmethod
    def from_file(cls, path: str | Path) -> FakeBackend:
        """Load a ``.toml`` or ``.json`` table (by suffix; anything else is read as TOML)."""
        p = Path(path)
        if p.suffix.lower() == ".json":
            try:
                data = json.loads(p.read_text(encoding="utf-8"))
            except OSError as exc:
                raise ResourceError(f"cannot read device table: {exc.strerror}", file=str(p)) from None
            except (json.JSONDecodeError, UnicodeDecodeError) as exc:
                raise ResourceError(f"malformed JSON: {exc}", file=str(p)) from None
            if not isinstance(data, dict):
                raise ResourceError("must be an object", file=str(p), expected='{"gpu": [...]}')
        else:
            data = load_toml(p, ResourceError)
        return cls(data, file=str(p))

    # -- table parsing ---------------------------------------------------

    def _fail(self, fld: str, msg: str, value: Any = None, expected: str | None = None) -> ResourceError:
        return ResourceError(msg, file=self._file, field=fld, value=value, expected=expected)

    def _size(self, d: Mapping[str, Any], key: str, fld: str, default: int | None = None) -> int:
        if key not in d:
            if default is None:
                raise self._fail(f"{fld}.{key}", "is required", expected=SIZE_EXPECTED)
            return default
        try:
            return parse_size(d[key])
        except ValueError as exc:
            problem, expected = size_refusal(exc)
            raise self._fail(f"{fld}.{key}", problem, d[key], expected) from None

    def _int(self, d: Mapping[str, Any], key: str, fld: str, default: int | None) -> int | None:
        v = d.get(key, default)
        if v is not None and (isinstance(v, bool) or not isinstance(v, int)):
            raise self._fail(f"{fld}.{key}", "must be an integer", v, "an integer")
        return v

    def _uuid(self, d: Mapping[str, Any], fld: str, prefix: str) -> str:
        u = d.get("uuid")
        if not isinstance(u, str) or not u.startswith(prefix):
            raise self._fail(f"{fld}.uuid", "must be a device UUID", u, f"a string starting with {prefix!r}")
        if u in self._sims or u in self._phys:
            raise self._fail(f"{fld}.uuid", "is listed twice", u, "unique UUIDs")
        return u

    def _parse(self, table: Mapping[str, Any]) -> None:
        known_top = {"gpu"}
        for k in table:
            if k not in known_top:
                raise self._fail(k, "unknown key", expected="gpu")
        gpus = table.get("gpu", [])
        if not isinstance(gpus, list):
            raise self._fail("gpu", "must be an array of tables", type(gpus).__name__, "[[gpu]] tables")
        known = {"uuid", "name", "memory", "reserved", "compute_capability", "numa_node", "cpus", "used",
                 "utilization", "temperature", "ecc", "compute_mode", "mig", "process"}
        for i, g in enumerate(gpus):
            fld = f"gpu[{i}]"
            if not isinstance(g, dict):
                raise self._fail(fld, "must be a table", g, "a table")
            for k in g:
                if k not in known:
                    raise self._fail(f"{fld}.{k}", "unknown key", expected="one of " + ", ".join(sorted(known)))
            uuid = self._uuid(g, fld, "GPU-")
            name = g.get("name", "NVIDIA Fake GPU")
            if not isinstance(name, str):
                raise self._fail(f"{fld}.name", "must be a string", name, "a string")
            cc = g.get("compute_capability", "8.0")
            try:
                if isinstance(cc, str):
                    ma, mi = cc.split(".")
                    cap = (int(ma), int(mi))
                elif isinstance(cc, list) and len(cc) == 2 and all(isinstance(x, int) for x in cc):
                    cap = (cc[0], cc[1])
                else:
                    raise ValueError
            except ValueError:
                raise self._fail(f"{fld}.compute_capability", "is not a compute capability", cc,
                                 "a string like '8.0' or [8, 0]") from None
            cpus_raw = g.get("cpus", "")
            try:
                aff = frozenset(parse_cpu_list(cpus_raw)) if isinstance(cpus_raw, str) else None
            except ValueError:
                aff = None
            if aff is None:
                raise self._fail(f"{fld}.cpus", "is not a CPU list", cpus_raw, "a kernel CPU list like '0-15,32'")
            numa = self._int(g, "numa_node", fld, -1)
            total = self._size(g, "memory", fld)
            migs = g.get("mig", [])
            if not isinstance(migs, list) or not all(isinstance(m, dict) for m in migs):
                raise self._fail(f"{fld}.mig", "must be an array of tables", migs, "[[gpu.mig]] tables")
            reserved = self._size(g, "reserved", fld, default_reserved(total))
            if reserved > total:
                raise self._fail(f"{fld}.reserved", "is more than the GPU's memory", g.get("reserved"),
                                 f"at most {total} bytes")
            if self._size(g, "used", fld, 0) > total:  # shown as a card with no memory free, never said
                raise self._fail(f"{fld}.used", "is more than the GPU's memory", g.get("used"),
                                 f"at most {total} bytes")
            mode = g.get("compute_mode", "default")
            if mode not in COMPUTE_MODES or mode == "exclusive_thread":
                raise self._fail(f"{fld}.compute_mode", "is not a compute mode", mode,
                                 "default, exclusive_process or prohibited")
            phys = GpuDevice(uuid=uuid, name=name, memory_total=total, index=i, compute_capability=cap,
                             numa_node=numa if numa is not None else -1, cpu_affinity=aff,
                             mig_enabled=bool(migs), memory_reserved=reserved, compute_mode=mode)
            ecc = g.get("ecc", True)
            if not isinstance(ecc, bool):
                raise self._fail(f"{fld}.ecc", "must be true or false", ecc, "a boolean")
            psim = _Sim(phys, used_external=self._size(g, "used", fld, 0),
                        utilization=self._int(g, "utilization", fld, None),
                        temperature=self._int(g, "temperature", fld, None), ecc=ecc)
            self._phys[uuid] = psim
            if not migs:
                self._sims[uuid] = psim
                self._order.append(uuid)
            mig_total = 0
            gi_memory: dict[int, int] = {}
            for j, m in enumerate(migs):
                mfld = f"{fld}.mig[{j}]"
                for k in m:
                    if k not in ("uuid", "memory", "gi"):
                        raise self._fail(f"{mfld}.{k}", "unknown key", expected="uuid, memory, gi")
                muuid = self._uuid(m, mfld, "MIG-")
                mmem = self._size(m, "memory", mfld)
                gi = self._int(m, "gi", mfld, None)
                if gi is None:
                    mig_total += mmem
                    group = None
                elif gi in gi_memory:
                    if gi_memory[gi] != mmem:  # compute instances of one GPU instance all report its memory
                        raise self._fail(f"{mfld}.memory", "differs from the other compute instances of gi "
                                         f"{gi}", m.get("memory"), f"{gi_memory[gi]} bytes")
                    group = f"{uuid}/gi{gi}"
                else:
                    gi_memory[gi] = mmem
                    mig_total += mmem
                    group = f"{uuid}/gi{gi}"
                dev = GpuDevice(uuid=muuid, name=name, memory_total=mmem, index=i, compute_capability=cap,
                                numa_node=phys.numa_node, cpu_affinity=aff, parent=uuid, mig_enabled=True,
                                compute_mode=mode, memory_group=group)
                self._sims[muuid] = _Sim(dev, ecc=ecc)
                self._order.append(muuid)
            if mig_total > total:
                raise self._fail(f"{fld}.mig", "MIG instances hold more memory than the GPU", mig_total,
                                 f"at most {total} bytes in all")
            procs = g.get("process", [])
            if not isinstance(procs, list) or not all(isinstance(p, dict) for p in procs):
                raise self._fail(f"{fld}.process", "must be an array of tables", procs, "[[gpu.process]] tables")
            for j, p in enumerate(procs):
                pfld = f"{fld}.process[{j}]"
                pid = self._int(p, "pid", pfld, None)
                if pid is None or pid <= 0:
                    raise self._fail(f"{pfld}.pid", "must be a process id", p.get("pid"), "an integer > 0")
                target = p.get("uuid", uuid if not migs else None)
                if target not in self._sims:
                    raise self._fail(f"{pfld}.uuid", "must name this GPU or one of its MIG instances",
                                     target, "an allocatable UUID")
                self._sims[target].processes[pid] = self._size(p, "memory", pfld, 0)

    # -- the contract ------------------------------------------------------

    def _wait_if_blocked(self, call: str) -> None:
        ev = self._blocks.get(call)
        if ev is not None:
            self._entered.setdefault(call, threading.Event()).set()
            ev.wait()

    def _get(self, uuid: str, call: str) -> _Sim:
        self._wait_if_blocked(call)
        sim = self._sims.get(uuid)
        if sim is None:
            raise GpuBackendError("no such GPU", nvml_code=NVML_ERROR_NOT_FOUND, uuid=uuid, value=uuid)
        phys = self._phys[sim.device.physical]
        if phys.lost:
            raise GpuBackendError("GPU has fallen off the bus", nvml_code=NVML_ERROR_GPU_IS_LOST, uuid=uuid)
        for s in (sim, phys):
            if call not in s.error_calls:
                continue
            if s.error_exc is not None:
                raise s.error_exc()
            if s.error is not None:
                raise GpuBackendError(f"NVML error {s.error}", nvml_code=s.error, uuid=uuid)
        return sim

    def _group(self, sim: _Sim) -> list[_Sim]:
        """The devices sharing ``sim``'s memory (itself, or its MIG GPU instance's compute instances)."""
        key = sim.device.memory_group
        if key is None:
            return [sim]
        return [s for s in self._sims.values() if s.device.memory_group == key]

    def devices(self) -> tuple[GpuDevice, ...]:
        return tuple(self._sims[u].device for u in self._order)

    def _memory(self, sim: _Sim) -> tuple[int, int]:
        """(free, used) as NVML's memory query v1 reports them: the reservation counts as used."""
        group = self._group(sim)
        used = sum(s.used_external + sum(m or 0 for m in s.processes.values()) for s in group)
        total = sim.device.memory_total
        used = min(total, sim.device.memory_reserved + used)
        return total - used, used

    def free_memory(self, uuid: str) -> int:
        return self._memory(self._get(uuid, "free_memory"))[0]

    def reading(self, uuid: str) -> GpuReading:
        sim = self._get(uuid, "reading")
        phys = self._phys[sim.device.physical]
        free, used = self._memory(sim)
        total = sim.device.memory_total
        mig = sim.device.parent is not None
        failing = {**phys.optional_errors, **sim.optional_errors}
        problems = tuple(f"{what}: NVML error {code}" for what, code in sorted(failing.items())
                         if code != NVML_ERROR_NOT_SUPPORTED)

        def opt(what: str, value: Any) -> Any:
            return None if what in failing else value

        util = None if mig else opt("utilization", sim.utilization)
        return GpuReading(
            uuid=uuid, memory_free=free, memory_used=used,
            utilization_gpu=util,
            utilization_memory=None if util is None else min(100, used * 100 // max(1, total)),
            temperature=opt("temperature", phys.temperature),
            ecc_corrected=opt("ecc", phys.ecc_corrected if phys.ecc else None),
            ecc_uncorrected=opt("ecc", phys.ecc_uncorrected if phys.ecc else None),
            retired_pages=opt("ecc", phys.retired_pages if phys.ecc else None),
            remap_pending=opt("remap", phys.remap_pending if phys.ecc else None),
            remap_failed=opt("remap", phys.remap_failed if phys.ecc else None),
            problems=problems,
        )

    def processes(self, uuid: str) -> tuple[GpuProcess, ...]:
        sim = self._get(uuid, "processes")
        return tuple(GpuProcess(uuid, pid + self.pid_offset, mem) for pid, mem in sorted(sim.processes.items()))

    def _instances(self, phys_uuid: str) -> list[str]:
        return [u for u in self._order if self._sims[u].device.physical == phys_uuid]

    def poll_health(self, timeout_ms: int = 0) -> list[HealthEvent]:
        # Events are queued by inject_* synchronously; only block() makes this wait.
        self._wait_if_blocked("poll_health")
        with self._lock:  # inject_* may run on another thread than the GPU worker
            out, self._events = self._events, []
        for phys_uuid, p in self._phys.items():
            if p.lost and phys_uuid not in self._reported_lost:
                self._reported_lost.add(phys_uuid)
                out += [HealthEvent(u, "lost", 0, "GPU has fallen off the bus") for u in self._instances(phys_uuid)]
            # The NVML backend probes each GPU's memory query here: RESET_REQUIRED from it is a health event.
            needs_reset = any(s.error == NVML_ERROR_RESET_REQUIRED for s in (p, *map(self._sims.get,
                                                                                   self._instances(phys_uuid))) if s)
            if needs_reset and not p.lost and (phys_uuid, "reset_required") not in self._reported:
                self._reported.add((phys_uuid, "reset_required"))
                out += [HealthEvent(u, "reset_required", 0, "NVML: the GPU requires a reset")
                        for u in self._instances(phys_uuid)]
            for kind, on, msg in (("remap_failed", p.remap_failed, "a memory row could not be remapped"),
                                  ("remap_pending", p.remap_pending, "a memory row remap waits for a GPU reset")):
                if on and not p.lost and (phys_uuid, kind) not in self._reported:
                    self._reported.add((phys_uuid, kind))
                    out += [HealthEvent(u, kind, 0, msg) for u in self._instances(phys_uuid)]
        return out

    def close(self) -> None:
        self._closed = True

    # -- simulation controls (tests) ----------------------------------------

    def set_used(self, uuid: str, used: int) -> None:
        """Memory used on ``uuid`` by something outside edgeorch (bytes)."""
        self._sims[uuid].used_external = used

    def add_process(self, uuid: str, pid: int, memory: int | None) -> None:
        """A process appears on ``uuid`` with ``memory`` bytes as NVML reports them (None: unknown)."""
        self._sims[uuid].processes[pid] = memory

    def add_cuda_process(self, uuid: str, pid: int, allocated: int) -> None:
        """A CUDA process that allocated ``allocated`` bytes: NVML reports them plus its context."""
        self._sims[uuid].processes[pid] = allocated + CUDA_CONTEXT

    def remove_process(self, uuid: str, pid: int) -> None:
        self._sims[uuid].processes.pop(pid, None)

    def set_reading(self, uuid: str, *, utilization: int | None = None, temperature: int | None = None) -> None:
        phys = self._phys[self._sims[uuid].device.physical]
        phys.utilization = utilization
        phys.temperature = temperature

    def inject_xid(self, uuid: str, xid: int) -> None:
        """An XID critical error on ``uuid``'s physical GPU (reported per instance)."""
        phys = self._sims[uuid].device.physical
        with self._lock:
            self._events += [HealthEvent(u, "xid", xid, f"XID {xid}") for u in self._instances(phys)]

    def inject_ecc_uncorrectable(self, uuid: str, count: int = 1) -> None:
        """Uncorrectable ECC errors: counters go up and an event is queued."""
        phys_uuid = self._sims[uuid].device.physical
        phys = self._phys[phys_uuid]
        phys.ecc_uncorrected += count
        phys.retired_pages += count
        with self._lock:
            self._events += [HealthEvent(u, "ecc_uncorrectable", 0, f"{count} uncorrectable ECC error(s)")
                             for u in self._instances(phys_uuid)]

    def make_lost(self, uuid: str) -> None:
        """The physical GPU of ``uuid`` falls off the bus (NVML_ERROR_GPU_IS_LOST)."""
        self._phys[self._sims[uuid].device.physical].lost = True

    def set_remapped(self, uuid: str, *, pending: bool = False, failed: bool = False) -> None:
        """Row remapping on ``uuid``'s physical GPU: a remap pending (needs a reset) or failed."""
        phys = self._phys[self._sims[uuid].device.physical]
        phys.remap_pending, phys.remap_failed = pending, failed

    def fail_with(self, uuid: str, nvml_code: int | None, *, exc: Callable[[], BaseException] | None = None,
                  calls: tuple[str, ...] = _CALLS) -> None:
        """Make ``calls`` about ``uuid`` raise NVML error ``nvml_code`` (None and no ``exc``: stop).

        ``NVML_ERROR_RESET_REQUIRED`` is also reported once by :meth:`poll_health`
        (``reset_required``), as the NVML backend's probe of each GPU reports it.

        ``exc`` raises ``exc()`` instead: an exception that is not a
        GpuBackendError, as a backend with a bug would (the layers above must
        survive it). ``calls`` limits the failure to some of ``reading``,
        ``free_memory`` and ``processes``.
        """
        sim = self._sims[uuid]
        sim.error, sim.error_exc, sim.error_calls = nvml_code, exc, calls

    def fail_optional(self, uuid: str, reading: str, nvml_code: int | None) -> None:
        """An optional reading of ``uuid``'s GPU fails (None: heals): ``utilization``, ``temperature``,
        ``ecc`` or ``remap``. The reading is then None and, unless the code is NOT_SUPPORTED, named in
        ``GpuReading.problems``, as the NVML backend does."""
        assert reading in _OPTIONAL, reading
        phys = self._phys[self._sims[uuid].device.physical]
        if nvml_code is None:
            phys.optional_errors.pop(reading, None)
        else:
            phys.optional_errors[reading] = nvml_code

    def block(self, call: str) -> threading.Event:
        """Make ``call`` (``reading``, ``free_memory``, ``processes``, ``poll_health``) wait until the
        returned event is set: a wedged GPU."""
        assert call in (*_CALLS, "poll_health"), call
        ev = threading.Event()
        self._blocks[call] = ev
        self._entered[call] = threading.Event()
        return ev

    def entered(self, call: str) -> threading.Event:
        """Set once a call blocked by :meth:`block` is waiting (tests synchronise on it, never sleep)."""
        return self._entered.setdefault(call, threading.Event())

    def cuda_sees(self, visible: str | None) -> list[str]:
        """The devices a CUDA process enumerates for ``CUDA_VISIBLE_DEVICES=visible`` (None: unset).

        CUDA's rules: entries are read in order up to the first it does not
        know; once a MIG device is listed, only that first MIG device is
        enumerated (a process uses one MIG device, and no whole GPU beside it);
        a GPU in MIG mode is never usable itself.
        """
        listed = [d.uuid for d in self.devices()] if visible is None else [v.strip() for v in visible.split(",")]
        seen: list[str] = []
        for v in listed:
            if v not in self._sims:
                break
            seen.append(v)
        migs = [v for v in seen if self._sims[v].device.parent is not None]
        return migs[:1] if migs else seen
