"""Host-memory limits through cgroup v2, where the daemon has a delegated cgroup.

Under systemd with ``Delegate=yes`` the daemon owns its cgroup subtree and may
create a child cgroup per attempt with ``memory.max``. Elsewhere (cgroup v1,
no delegation, no write permission) the ``memory`` request is still
admission-checked by the allocator, but not enforced, and the state says so.

cgroup v2's "no internal processes" rule: a cgroup that enables controllers
for its children may not hold processes itself. :func:`prepare` therefore
moves the daemon into a ``daemon`` leaf before enabling ``+memory``; attempts
go into ``task-<name>`` siblings.

Every function takes ``root`` (default ``/``) so tests can use a fake tree.
"""

from __future__ import annotations

import errno
import os
import re
from pathlib import Path

from ..records import frozen

_NAME_OK = re.compile(r"^[A-Za-z0-9_.:-]{1,200}$")


@frozen
class CgroupSupport:
    """Whether memory limits can be enforced, where, and a sentence for the state."""

    enforced: bool
    path: Path | None
    message: str


def detect(root: Path = Path("/")) -> CgroupSupport:
    """Find the daemon's cgroup v2 and whether it is delegated to it (writable, memory available)."""
    try:
        text = (root / "proc/self/cgroup").read_text()
    except OSError:
        return CgroupSupport(False, None, "memory limits not enforced: cannot read /proc/self/cgroup")
    rel = None
    for line in text.splitlines():
        if line.startswith("0::"):
            rel = line[3:].strip()
    fs = root / "sys/fs/cgroup"
    if rel is None or not (fs / "cgroup.controllers").exists():
        return CgroupSupport(False, None, "memory limits not enforced: no cgroup v2 (unified) hierarchy")
    path = fs / rel.lstrip("/")
    if path.name == "daemon":  # already prepared (restart inside the same delegated unit)
        path = path.parent
    try:
        controllers = (path / "cgroup.controllers").read_text().split()
    except OSError:
        return CgroupSupport(False, None, f"memory limits not enforced: cannot read {path}/cgroup.controllers")
    if "memory" not in controllers:
        return CgroupSupport(False, None, "memory limits not enforced: the memory controller is not delegated "
                             "(systemd: Delegate=yes)")
    if not (os.access(path, os.W_OK) and os.access(path / "cgroup.subtree_control", os.W_OK)):
        return CgroupSupport(False, None, f"memory limits not enforced: {path} is not delegated to this user "
                             "(systemd: Delegate=yes)")
    return CgroupSupport(True, path, f"memory limits enforced with cgroup v2 memory.max under {path}")


def rootless_limits_problem(runtime: str, euid: int, root: Path = Path("/")) -> str | None:
    """Why a container runtime run by ``euid`` ignores ``--memory`` here, or None (it applies it, as far as can be
    told). Rootless podman ignores resource limits on cgroup v1 ("Resource limits are not supported and ignored on
    cgroups V1 rootless systems", in the attempt's log only) and, on cgroup v2, without the memory controller
    delegated to the user's systemd service. Root's runtimes, and Docker's daemon (root), apply them."""
    if euid == 0 or runtime != "podman":
        return None
    fs = root / "sys/fs/cgroup"
    if not (fs / "cgroup.controllers").exists():
        return "rootless podman ignores resource limits on cgroup v1"
    service = fs / f"user.slice/user-{euid}.slice/user@{euid}.service/cgroup.controllers"
    try:
        controllers = service.read_text().split()
    except OSError:
        return None  # no systemd user service to judge by: podman's own message, if any, is in the log
    if "memory" not in controllers:
        return (f"the memory controller is not delegated to user {euid}'s systemd service, so rootless podman "
                "ignores --memory (systemd: Delegate=memory for user@.service)")
    return None


def prepare(support: CgroupSupport, pid: int | None = None) -> None:
    """Move the daemon (``pid``, default this process) into ``<cgroup>/daemon`` and enable ``+memory``.

    Idempotent. Raises ``OSError`` when the kernel refuses; the daemon then
    reports limits as not enforced.
    """
    if not support.enforced or support.path is None:
        return
    leaf = support.path / "daemon"
    leaf.mkdir(exist_ok=True)
    (leaf / "cgroup.procs").write_text(f"{pid if pid is not None else os.getpid()}\n")
    sub = support.path / "cgroup.subtree_control"
    if "memory" not in sub.read_text().split():
        sub.write_text("+memory\n")


def prepare_failure(support: CgroupSupport, exc: OSError) -> str:
    """The state's sentence when :func:`prepare` failed: the kernel's reason, and for EBUSY what causes it.

    EBUSY is cgroup v2's "no internal processes" rule: processes other than
    the daemon (a shell or a wrapper that started it) are in its cgroup, so
    it cannot enable ``+memory`` for children there.
    """
    why = f"memory limits not enforced: cannot prepare {support.path}: {exc.strerror or exc}"
    if exc.errno == errno.EBUSY:
        why += (" (other processes share the daemon's cgroup; run it as the systemd service, whose unit has "
                "Delegate=yes, or in a cgroup of its own)")
    return why


def create_child(support: CgroupSupport, name: str, memory_max: int) -> Path | None:
    """Create ``<cgroup>/task-<name>`` with ``memory.max`` (and no swap beyond it); None if not enforced.

    ``name`` is an attempt id (letters, digits, ``_.:-``). ``memory_max`` 0
    writes ``max`` (no limit). The executor writes the child's pid into the
    returned folder's ``cgroup.procs`` (:func:`join`) before exec.
    """
    if not support.enforced or support.path is None:
        return None
    if not _NAME_OK.match(name):
        raise ValueError(f"bad cgroup name {name!r}")
    path = support.path / f"task-{name}"
    path.mkdir(exist_ok=True)
    (path / "memory.max").write_text(f"{memory_max if memory_max else 'max'}\n")
    swap = path / "memory.swap.max"
    if swap.exists():
        # Without this a task over its limit swaps instead of being OOM-killed.
        swap.write_text("0\n")
    return path


def join(path: Path) -> None:
    """Move the calling process into cgroup ``path`` (call in the child after fork)."""
    (path / "cgroup.procs").write_text("0\n")


def oom_kills(path: Path) -> int | None:
    """How many processes the kernel OOM-killed in cgroup ``path`` (``oom_kill`` of ``memory.events``).

    Read before the cgroup is removed. None when there is no such record
    (the file is gone or unreadable, or the kernel does not count kills).
    """
    try:
        text = (path / "memory.events").read_text()
    except OSError:
        return None
    for line in text.splitlines():
        key, _, value = line.partition(" ")
        if key == "oom_kill" and value.strip().isdigit():
            return int(value)
    return None


def remove_child(path: Path) -> None:
    """Remove an attempt's cgroup once its processes are gone; absent is fine."""
    try:
        path.rmdir()
    except FileNotFoundError:
        pass
