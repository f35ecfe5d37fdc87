"""Commands the daemon runs and cannot stop once it is killed, marked so that the next one can.

A deployment's ``reload``/``health`` command and a rule's ``notify`` command run in sessions of their own, as
children of the daemon: a daemon killed (``kill -9``, the OOM killer) leaves them running, and the daemon that
starts next runs the same step again (a deployment recovered, a pending response redone), the old one beside
the new. Each such command gets an environment variable naming what it belongs to (:func:`marked_value`: the
deployment's or firing's id and the state file); before a step is run again, every process of the daemon's user
whose environment carries that mark is killed with its process group (:func:`stop_marked`). A task's processes
are never marked: they are the engine's, and outlive the daemon on purpose (live restore). Only when an
attempt's supervisor has vanished does recovery kill a container attempt's processes, by the task variables that
name the attempt (:func:`stop_carrying`, from ``engine/executors/local``).
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable, Mapping


def stop_left(pid: int, variable: str, value: str | None) -> None:
    """Kill what a marked command that has ended (or timed out) left running: the process group it leads
    (``pid``: it ran in a session of its own) and every process carrying ``variable=value`` (one it started in
    another session, ``setsid`` or a daemonising script, which the group kill cannot reach: it held the command's
    output open, and the command's end was waited for until it was gone). ``value`` None: the group only."""
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    if value:
        stop_marked(variable, value)


def marked_value(ident: int | str, state_file: str | os.PathLike[str]) -> str:
    """The mark of one deployment's or firing's commands of one state file: ``<id>@<state file>``."""
    return f"{ident}@{os.fspath(state_file)}"


def stop_marked(variable: str, value: str) -> list[int]:
    """Kill (SIGKILL, with their process groups) the processes of this user whose environment has ``variable`` set
    to ``value``; their pids, sorted (none: []). This process is never one of them, nor its own group; a process
    that cannot be read (another user's, gone meanwhile) is skipped. Reads ``/proc`` (a few hundred small files):
    called when a step is recovered, not on a hot path."""
    return stop_carrying({variable: value})


def stop_carrying(marks: Mapping[str, str], *, only: Callable[[int], object] | None = None) -> list[int]:
    """:func:`stop_marked` for every one of ``marks`` at once (each ``variable=value`` in the environment).
    ``only``: of those, the pids it is true of (a container's processes, not its runtime's that carry the marks
    too). Root's call reaches every user's processes (a container's may run as another uid)."""
    want = {f"{k}={v}".encode() for k, v in marks.items()}
    me, uid, found = os.getpid(), os.getuid(), []
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) == me:
            continue
        try:
            if uid != 0 and os.stat(f"/proc/{name}").st_uid != uid:
                continue
            with open(f"/proc/{name}/environ", "rb") as f:
                env = f.read()
        except OSError:
            continue
        if want <= set(env.split(b"\0")) and _alive(name) and (only is None or only(int(name))):
            found.append(int(name))
    for pid in found:
        try:
            group = os.getpgid(pid)
        except ProcessLookupError:
            continue
        if group != os.getpgrp():  # never this process's own group (a command run in it would be an error)
            _kill(os.killpg, group)
        _kill(os.kill, pid)
    return sorted(found)


def _alive(pid: str) -> bool:
    """Whether process ``pid`` is not a zombie or dying (``Z``, ``X``: killed already, awaiting its reaper)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[0] not in (b"Z", b"X")
    except (OSError, IndexError):
        return False


def _kill(how: Callable[[int, int], None], ident: int) -> None:
    try:
        how(ident, signal.SIGKILL)
    except ProcessLookupError:
        pass
