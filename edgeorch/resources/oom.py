"""How an attempt killed for exceeding its memory bound is reported (pure): one rule for host and container tasks.

A kernel OOM kill reaches edgeorch as "killed by signal 9" (a host task in its
own memory cgroup) or as exit code 137 (a container runtime's 128 + 9). The
signal alone cannot tell an OOM kill from a ``kill -9``; what can is a record
of the kill where it happened:

- a host task in a per-attempt cgroup v2 (``resources/memory.py``): the
  ``oom_kill`` count of its ``memory.events`` (:func:`~.memory.oom_kills`);
- a podman container: the ``oom`` marker its monitor (conmon) writes when the
  container's memory cgroup reports a kill (``containers/command.py``).

:func:`explain` turns the exit and that record into the attempt's reason:
``killed: out of memory (memory bound 64M)``. Without a record, a SIGKILL of a
task with a memory bound that edgeorch did not stop itself says the bound
probably did it (a runtime without an OOM record, such as Docker's ``--rm``
client). None means "nothing to add" (the usual wording applies).
"""

from __future__ import annotations

import signal as _signal

from .allocator import _fmt


def bound_text(memory: int) -> str:
    """``memory bound 64M``: the words every OOM reason uses for the bound (bytes, 0: none)."""
    return f"memory bound {_fmt(memory)}" if memory else "no memory bound of its own"


def explain(exit_code: int | None, signal: int | None, *, memory: int, killed: bool | None,
            stopped: bool) -> str | None:
    """The reason of an attempt that ended with ``exit_code`` or ``signal``, where an OOM kill may be why.

    ``memory``: the attempt's memory bound in bytes (0: none). ``killed``: the
    record of an OOM kill where the attempt ran says one happened (True),
    none did (False), or there is no such record (None). ``stopped``: edgeorch
    itself stopped the attempt (timeout, cancel, GPU watcher): then its SIGKILL
    is edgeorch's, never read as an OOM kill.

    - recorded kill, ended by SIGKILL: ``killed: out of memory (memory bound N)``;
    - recorded kill, failed otherwise (a process inside was killed, the main
      one exited non-zero): ``exited with code C after a process was killed:
      out of memory (memory bound N)``;
    - no record, SIGKILL, a bound, not stopped by edgeorch: ``killed by signal
      9 (SIGKILL), probably out of memory (memory bound N; no OOM record to
      confirm it)``;
    - anything else (success included): None.
    """
    if stopped:
        return None
    sigkill = signal == _signal.SIGKILL
    if killed:
        if sigkill:
            return f"killed: out of memory ({bound_text(memory)})"
        if exit_code not in (None, 0):
            return (f"exited with code {exit_code} after a process was killed: out of memory "
                    f"({bound_text(memory)})")
        return None
    if killed is None and sigkill and memory:
        return f"killed by signal 9 (SIGKILL), probably out of memory ({bound_text(memory)}; no OOM record to confirm it)"
    return None


__all__ = ["bound_text", "explain"]
