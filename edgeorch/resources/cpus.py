"""CPU and host-memory inventory of the daemon.

The daemon may use fewer cores than the machine has: under systemd
(``AllowedCPUs=``), in a container or under ``taskset``. The usable set is
``sched_getaffinity(0)`` ∩ the cgroup cpuset (v2 ``cpuset.cpus.effective``,
v1 ``cpuset.effective_cpus``), minus ``reserved_cpus`` from config (kept for
the daemon itself). Every reader takes a ``root`` so tests can point it at a
fake ``/sys``/``/proc`` tree.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Hashable, Iterable
from pathlib import Path
from typing import TypeVar

from ..errors import ConfigError
from .model import CpuCore, GpuDevice, Inventory

log = logging.getLogger("edgeorch.resources")

K = TypeVar("K", bound=Hashable)


def parse_cpu_list(text: str) -> set[int]:
    """CPU ids of a kernel list such as ``"0-3,8,10-11"``; empty text → empty set.

    Raises ``ValueError`` on anything else.
    """
    out: set[int] = set()
    text = text.strip()
    if not text:
        return out
    for part in text.split(","):
        part = part.strip()
        if "-" in part:
            lo, hi = part.split("-", 1)
            a, b = int(lo), int(hi)
            if b < a:
                raise ValueError(f"bad CPU range {part!r}")
            out.update(range(a, b + 1))
        else:
            out.add(int(part))
    return out


def format_cpu_list(cpus: set[int] | frozenset[int] | tuple[int, ...] | list[int]) -> str:
    """The kernel's compact form (``0-3,8``) of a CPU set; empty set → ``""``."""
    ids = sorted(set(cpus))
    parts: list[str] = []
    i = 0
    while i < len(ids):
        j = i
        while j + 1 < len(ids) and ids[j + 1] == ids[j] + 1:
            j += 1
        parts.append(str(ids[i]) if i == j else f"{ids[i]}-{ids[j]}")
        i = j + 1
    return ",".join(parts)


def core_groups(cores: Iterable[tuple[int, K]]) -> list[tuple[K, str]]:
    """``(core id, key)`` pairs grouped by key, in the order of each group's lowest core, each group's cores
    said as ``core 5`` or ``cores 0-3,8`` (:func:`format_cpu_list`): how a person reads many cores (by holder,
    by NUMA node) instead of one line per core."""
    groups: dict[K, list[int]] = {}
    for core, key in sorted(cores, key=lambda pair: pair[0]):
        groups.setdefault(key, []).append(core)
    return [(key, f"core {ids[0]}" if len(ids) == 1 else f"cores {format_cpu_list(ids)}") for key, ids in groups.items()]


def _read(path: Path) -> str | None:
    try:
        return path.read_text()
    except OSError:
        return None


def cgroup_cpuset(root: Path = Path("/")) -> set[int] | None:
    """CPUs allowed by this process's cgroup cpuset, or None when unknown.

    cgroup v2: the ``0::/path`` line of ``/proc/self/cgroup`` and
    ``cpuset.cpus.effective`` there (walking up to the root, since the file
    exists only where the controller is enabled). v1: the ``cpuset``
    hierarchy's ``cpuset.effective_cpus`` (or ``cpuset.cpus``).
    """
    text = _read(root / "proc/self/cgroup")
    if text is None:
        return None
    v1_path: str | None = None
    v2_path: str | None = None
    for line in text.splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        if parts[0] == "0" and parts[1] == "":
            v2_path = parts[2]
        elif "cpuset" in parts[1].split(","):
            v1_path = parts[2]
    fs = root / "sys/fs/cgroup"
    candidates: list[Path] = []
    if v1_path is not None:
        base = fs / "cpuset"
        p = Path(v1_path.lstrip("/"))
        for anc in [p, *p.parents]:
            candidates += [base / anc / "cpuset.effective_cpus", base / anc / "cpuset.cpus"]
    if v2_path is not None:
        p = Path(v2_path.lstrip("/"))
        for anc in [p, *p.parents]:
            candidates += [fs / anc / "cpuset.cpus.effective"]
    for c in candidates:
        val = _read(c)
        if val is not None and val.strip():
            try:
                return parse_cpu_list(val)
            except ValueError:
                return None
    return None


def numa_nodes(root: Path = Path("/")) -> dict[int, int]:
    """CPU id → NUMA node from ``/sys/devices/system/node/node*/cpulist``; {} when absent."""
    out: dict[int, int] = {}
    base = root / "sys/devices/system/node"
    try:
        entries = list(base.iterdir())
    except OSError:
        return out
    for entry in entries:
        name = entry.name
        if not (name.startswith("node") and name[4:].isdigit()):
            continue
        text = _read(entry / "cpulist")
        if text is None:
            continue
        try:
            for cpu in parse_cpu_list(text):
                out[cpu] = int(name[4:])
        except ValueError:
            continue
    return out


def available_memory(root: Path = Path("/")) -> int:
    """``MemAvailable`` of ``/proc/meminfo`` in bytes; 0 when unreadable."""
    text = _read(root / "proc/meminfo") or ""
    for line in text.splitlines():
        if line.startswith("MemAvailable:"):
            fields = line.split()
            try:
                return int(fields[1]) * (1024 if len(fields) > 2 and fields[2] == "kB" else 1)
            except (IndexError, ValueError):
                return 0
    return 0


def usable_cpus(reserved: tuple[int, ...] | list[int] = (), *, affinity: set[int] | None = None,
                root: Path = Path("/")) -> list[int]:
    """Sorted CPU ids the daemon may lease: affinity ∩ cpuset − reserved.

    ``affinity`` defaults to ``os.sched_getaffinity(0)``. Reserved ids the
    daemon does not have are ignored (config may be shared by machines).
    Raises :class:`ConfigError` when ``reserved_cpus`` would leave no core.
    """
    allowed = set(affinity) if affinity is not None else set(os.sched_getaffinity(0))
    cs = cgroup_cpuset(root)
    if cs is not None and allowed & cs:
        allowed &= cs
    usable = allowed - set(reserved)
    absent = sorted(set(reserved) - allowed)
    if absent:  # ignored (a config shared by machines), but said: a typo ([1] for [0]) went unnoticed
        log.warning("resources.reserved_cpus names core(s) %s that the daemon does not have (it has %s): ignored",
                    format_cpu_list(set(absent)), format_cpu_list(allowed))
    if not usable:
        raise ConfigError(
            "reserved_cpus leaves no core for tasks", field="resources.reserved_cpus", value=list(reserved),
            expected=f"a subset of the daemon's CPUs {format_cpu_list(allowed)} that leaves at least one",
        )
    return sorted(usable)


def reserved_cpus_problem(reserved: tuple[int, ...] | list[int], config_file: str | None) -> ConfigError | None:
    """The error a daemon's start on this machine would stop with for ``reserved_cpus`` (:func:`usable_cpus`: none
    left for tasks), naming ``config_file``; None when the cores leave one (``edgeorch validate``)."""
    try:
        usable_cpus(reserved)
    except ConfigError as exc:
        exc.in_file(config_file)
        return exc
    return None


def read_inventory(reserved: tuple[int, ...] | list[int] = (), gpus: tuple[GpuDevice, ...] = (), *,
                   affinity: set[int] | None = None, root: Path = Path("/")) -> Inventory:
    """The daemon's :class:`Inventory`: usable cores with NUMA nodes, MemAvailable, ``gpus``."""
    nodes = numa_nodes(root)
    cores = tuple(CpuCore(c, nodes.get(c, -1)) for c in usable_cpus(reserved, affinity=affinity, root=root))
    return Inventory(cpus=cores, memory_available=available_memory(root), gpus=tuple(gpus))


def pin_processes(pids: Iterable[int], cores: Iterable[int]) -> int:
    """Pin every thread of each of ``pids`` to ``cores`` (a running task moved off cores leased since it
    started); returns how many threads were moved. A process or thread gone meanwhile, or one this user may
    not move, is skipped: the move is best effort, never an error of the task."""
    mask = set(cores)
    moved = 0
    for pid in pids:
        try:
            tids = [int(t) for t in os.listdir(f"/proc/{pid}/task")]
        except (OSError, ValueError):
            continue
        for tid in tids:
            try:
                os.sched_setaffinity(tid, mask)
                moved += 1
            except OSError:  # gone (ProcessLookupError), not ours (PermissionError), or outside its cpuset
                continue
    return moved
