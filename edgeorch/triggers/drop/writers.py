"""Whether anyone still holds a file open for writing, asked of the kernel through a file lease.

A claimed file has moved into a claim folder only the daemon's user may enter (``0700``), so nobody can
open it by name any more; but a process that opened it for writing BEFORE the claim (a writer still
busy, a program that keeps its log open, a dropper who means harm) can still write through that
descriptor after the sha256 was recorded. The kernel knows: it refuses a read lease (``F_SETLEASE``,
``F_RDLCK``) with ``EAGAIN`` while any descriptor anywhere is open for writing on the file, or a writable
shared mapping of it exists. So the claim asks before hashing (a file kept open is not hashed again at every
retry) and after: a file with a writer is not claimed yet (the claim is deferred and retried, the file kept
safe in the inbox). Without one, a new writer needs the file's path (closed to others) or a process that
kept some other descriptor of it (even read-only, or ``O_PATH``) and may write the file (its owner): such a
process can reopen it for writing through ``/proc/<pid>/fd``. That case is not covered: edgeorch neither
copies nor chowns a claimed file.

The lease is taken and given back at once; it only asks. While it is held (microseconds) a writer's
``open`` would make the kernel signal the lease's owner, so the descriptor is first told to use
``SIGURG`` for that, whose default action is to ignore it (``SIGIO``'s would end the daemon).

Edge cases: the kernel grants a lease only to the file's owner or a process with ``CAP_LEASE`` (root;
the shipped unit gives it to the daemon alone: :mod:`edgeorch.capabilities`), so a daemon running as its own
user without it cannot ask about a file another user dropped (``EACCES``: said at start for a drop folder
others may write to); some
filesystems (NFS, FUSE) and ``fs.leases-enable = 0`` refuse leases (``EINVAL``, ``ENOLCK``). The answer
is then "not known" (None) and the claim relies on the stat taken before and after the hash, as before.
"""

from __future__ import annotations

import errno
import fcntl
import signal

_UNKNOWN_ERRNOS = frozenset({errno.EACCES, errno.EPERM, errno.EINVAL, errno.ENOLCK, errno.EBADF, errno.ENOSYS})


def open_for_writing(fd: int) -> bool | None:
    """True when some process holds the file of ``fd`` (opened read-only) open for writing or mapped
    writable; False when nobody does; None when the kernel would not say (see the module's edge cases).

    ``fd`` must be a descriptor opened ``O_RDONLY`` (a read lease needs one); it is left open, with no lease
    on it. Never raises for the cases above; any other ``OSError`` is raised.
    """
    try:
        fcntl.fcntl(fd, fcntl.F_SETSIG, signal.SIGURG)
        fcntl.fcntl(fd, fcntl.F_SETLEASE, fcntl.F_RDLCK)
    except OSError as exc:
        if exc.errno == errno.EAGAIN:
            return True
        if exc.errno in _UNKNOWN_ERRNOS:
            return None
        raise
    fcntl.fcntl(fd, fcntl.F_SETLEASE, fcntl.F_UNLCK)
    return False
