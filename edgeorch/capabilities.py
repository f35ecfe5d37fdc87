"""The one capability the daemon may hold (``CAP_LEASE``), and keeping it from everything it starts.

A drop folder others may write to is only safe when the daemon can ask the kernel whether a dropped file is still
open for writing (:mod:`edgeorch.triggers.drop.writers`): a read lease, granted on another user's file only with
``CAP_LEASE``. The shipped unit gives the daemon that capability as an *ambient* one (the only way a service of
a non-root user gets one), and ambient capabilities pass to every program started after ``execve``: tasks, health
checks, notify commands. :func:`keep_from_children` clears the ambient set at the daemon's start; the daemon's
own effective set keeps ``CAP_LEASE``, and nothing it starts has it. Linux only; elsewhere nothing is done.
"""

from __future__ import annotations

import ctypes
import os

CAP_LEASE = 28
_PR_CAP_AMBIENT = 47
_PR_CAP_AMBIENT_CLEAR_ALL = 4


def keep_from_children() -> None:
    """Clear this process's ambient capabilities (``prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL)``): what it
    starts from now on gets none. Its own effective set is unchanged. Best effort: an old kernel (before 4.3)
    has no ambient set, and nothing to clear."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_CAP_AMBIENT, _PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0)
    except (OSError, AttributeError):  # pragma: no cover - no libc symbols
        pass


def can_lease_any_file() -> bool:
    """Whether this process may take a lease on a file it does not own: root, or ``CAP_LEASE`` in its effective
    set (read from ``/proc/self/status``)."""
    if os.geteuid() == 0:
        return True
    try:
        with open("/proc/self/status", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith("CapEff:"):
                    return bool(int(line.split()[1], 16) >> CAP_LEASE & 1)
    except (OSError, ValueError):
        pass
    return False
