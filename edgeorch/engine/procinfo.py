"""Process identity from /proc: a pid is only trusted together with its start time.

Pids are reused; ``(pid, start_time)`` is not (start time is in clock ticks
since boot, field 22 of ``/proc/<pid>/stat``).
"""

from __future__ import annotations

import os


def _stat_fields(pid: int) -> list[bytes] | None:
    """Fields 3.. of ``/proc/<pid>/stat`` (state first), or None when no such process.

    The command name (field 2) may contain spaces and parentheses, so the
    split starts after the last ')'.
    """
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return None
    return data[data.rfind(b")") + 2 :].split()


def _start_and_state(pid: int) -> tuple[int | None, str | None]:
    """Start time and one-letter state of ``pid`` from one read of its stat file; ``(None, None)`` when gone."""
    fields = _stat_fields(pid)
    if not fields:
        return None, None
    try:
        return int(fields[19]), fields[0].decode()
    except (IndexError, ValueError):
        return None, None


def process_start_time(pid: int) -> int | None:
    """Start time of ``pid`` in clock ticks since boot, or None when no such process."""
    return _start_and_state(pid)[0]


def process_state(pid: int) -> str | None:
    """One-letter state (R, S, Z, ...) of ``pid``, or None when gone."""
    return _start_and_state(pid)[1]


def is_same_process(pid: int | None, start_time: int | None) -> bool:
    """True when ``pid`` is alive (not a zombie) and started at ``start_time`` (one read of its stat file)."""
    if not pid or start_time is None:
        return False
    started, state = _start_and_state(pid)
    return started == start_time and state not in (None, "Z", "X")


def open_pidfd(pid: int, start_time: int | None) -> int | None:
    """A pidfd for ``pid`` if it is still the live process started at ``start_time``, else None.

    A zombie is refused (it has ended: there is nothing to follow). The
    start time is checked again after opening, closing the race where the
    process exits and the pid is reused between the check and the open.
    ``start_time`` None opens whatever ``pid`` is now, unchecked.
    """
    if start_time is not None and not is_same_process(pid, start_time):
        return None
    try:
        fd = os.pidfd_open(pid)
    except OSError:
        return None
    if start_time is not None and process_start_time(pid) != start_time:
        os.close(fd)
        return None
    return fd


def children_map() -> dict[int, list[int]]:
    """Parent pid -> child pids of every process visible in /proc (one scan).

    Used to find all descendants of a process: a walk from it over this map.
    A process that exits during the scan is simply left out.
    """
    out: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        fields = _stat_fields(int(entry.name))
        if fields is None or len(fields) < 2:
            continue
        try:
            out.setdefault(int(fields[1]), []).append(int(entry.name))
        except ValueError:
            continue
    return out


def descendants(pid: int) -> list[int]:
    """Every living descendant of ``pid`` (children first); [] when none or when ``pid`` is gone."""
    kids = children_map()
    out: list[int] = []
    todo = list(kids.get(pid, ()))
    while todo:
        p = todo.pop(0)
        out.append(p)
        todo.extend(kids.get(p, ()))
    return out


def pid_namespace_ids(pid: int | str) -> list[int] | None:
    """``pid`` as each PID namespace it lives in numbers it, outermost first (``NSpid`` of
    ``/proc/<pid>/status``, Linux 4.1+; ``"self"`` for this process); None when gone or unreadable.

    A process in a container has one entry more than the processes outside it, and the container's
    own init (its PID 1) has ``1`` as the last entry.
    """
    try:
        with open(f"/proc/{pid}/status", "rb") as f:
            for line in f:
                if line.startswith(b"NSpid:"):
                    return [int(x) for x in line.split()[1:]]
    except (OSError, ValueError):
        return None
    return None


def in_nested_namespace(pid: int, depth: int) -> bool | None:
    """Whether ``pid`` lives in a PID namespace nested below one ``depth`` deep: a container's process, seen from
    a supervisor whose own ``NSpid`` has ``depth`` entries. None when it cannot be told (gone, ``NSpid`` unknown)."""
    ids = pid_namespace_ids(pid)
    if not ids:
        return None
    return len(ids) > depth
