"""One daemon per state directory.

:func:`acquire_state_lock` takes an exclusive POSIX record lock
(``fcntl(F_SETLK)``) on ``<state_dir>/edgeorch.lock`` and writes our pid into
the file for the error message of the next would-be holder.

Why this lock and not another:

- a pid file alone is wrong after a crash (the pid may be reused); the kernel
  drops a lock when its process dies, ``kill -9`` included;
- POSIX record locks, unlike ``flock`` and OFD locks, are *not* inherited by
  ``fork()``. Task supervisors (shims) are forked from the daemon and outlive
  it by design (live restore); with ``flock`` they would keep the state
  locked after the daemon died and no new daemon could start.

The price of POSIX locks: closing *any* descriptor of the lock file in this
process drops the lock, so nothing but the handle may open that file, and two
acquisitions in one process would not conflict in the kernel. The module
therefore refuses a second acquisition in the same process itself.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import stat
import threading
from pathlib import Path

from ..errors import StateBusyError, StateError
from ..store.db import make_state_folder
from .listening import LISTENING, activated_here, connect_errno

LOCK_NAME = "edgeorch.lock"

_held: set[Path] = set()
_held_guard = threading.Lock()


class StateLock:
    """A held lock; :meth:`release` (or leaving the ``with`` block, or exiting) frees it."""

    def __init__(self, path: Path, fd: int, stamp: str = "") -> None:
        self.path = path
        self._fd: int | None = fd
        self._stamp = stamp or f"{os.getpid()}\n"  # what the lock file says while this process holds it

    @property
    def held(self) -> bool:
        return self._fd is not None

    def relock_if_replaced(self) -> bool:
        """Lock the file now at :attr:`path` when it is not the file this lock holds; True when it did.

        A removed lock file (a "stale lock" clean-up, ``rm`` in the state folder) let another daemon create and
        lock a new one, and run beside this one on the same state. The file at the path (a new one when there
        is none, or one a refused daemon left) is locked and holds this pid from then on. When another process
        holds it, nothing is taken and :class:`StateError` is raised naming it: another writer runs on this
        state (a daemon started while both the lock file and the socket were gone; with the socket there it is
        refused). Nothing is done after :meth:`release`. Raises OSError when the file cannot be made.
        """
        if self._fd is None:
            return False
        held = os.fstat(self._fd)
        try:
            st = os.stat(self.path)
            if (st.st_dev, st.st_ino) == (held.st_dev, held.st_ino):
                return False  # ours (opening it again, then closing it, would drop the lock: not done)
        except FileNotFoundError:
            pass
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW | os.O_NONBLOCK, 0o640)
        try:  # every way out but the last closes it: a failure each 2 s leaked one descriptor each time
            if not stat.S_ISREG(os.fstat(fd).st_mode):  # a fifo put there: never locked, written or waited on
                raise OSError(errno.EINVAL, "it is not a regular file (remove it: a new one is made)")
            try:
                fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                raise StateError(f"{_holder(fd)[0]} holds the lock of state directory {self.path.parent} now: "
                                 "it started on this state after the lock file was removed", file=str(self.path),
                                 hint="one of the two must stop: this one does") from None
            os.ftruncate(fd, 0)
            os.pwrite(fd, self._stamp.encode(), 0)
        except BaseException:
            os.close(fd)
            raise
        old, self._fd = self._fd, fd
        os.close(old)  # the removed file's descriptor: this process's lock on the new file is not affected
        return True

    def release(self) -> None:
        """Drop the lock. Idempotent. The file stays (unlinking lock files races)."""
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        with contextlib.suppress(OSError):
            os.ftruncate(fd, 0)
        os.close(fd)  # closing drops the POSIX lock
        with _held_guard:
            _held.discard(self.path)

    def __enter__(self) -> StateLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    def __repr__(self) -> str:
        return f"StateLock({str(self.path)!r}, held={self.held})"


def state_in_use(state_dir: str | os.PathLike[str]) -> bool:
    """Whether some edgeorch process (a daemon, an ``edgeorch run`` without one) seems to hold ``state_dir``: its
    lock file names a live process running edgeorch. For what a read-only command says, not for deciding who
    writes (:func:`acquire_state_lock` does that); never takes the lock."""
    return state_holder(state_dir) is not None


def state_holder(state_dir: str | os.PathLike[str]) -> tuple[int, bool] | None:
    """``(pid, is_daemon)`` of the edgeorch process that holds the lock of ``state_dir`` now, else None. The
    holder is the kernel's answer (``F_GETLK``), not the file's text alone: a stale or forged ``1234 daemon``
    naming a live daemon of another state made commands wait 30 s for it. A hint for what to say (see
    :func:`state_in_use`), never a decision. Call it only from a process that does not hold that lock (opening
    the file and closing it would drop a POSIX lock this process holds on it)."""
    found = _edgeorch_holder(Path(state_dir) / LOCK_NAME)
    return None if found is None else (found[0], _is_daemon(found[1]))


def _edgeorch_holder(path: Path) -> tuple[int, list[str]] | None:
    """The pid and command line of the edgeorch process holding a POSIX lock on the lock file at ``path`` now
    (``F_GETLK``: it takes nothing), else None (no such file, not a regular one, no holder, not edgeorch)."""
    fd = _open_lock_file(path)
    if fd is None:
        return None
    try:
        pid = _lock_owner(fd)
    finally:
        os.close(fd)
    argv = _command_line(str(pid)) if pid is not None else []
    return (pid, argv) if pid is not None and any("edgeorch" in a for a in argv) else None


def _open_lock_file(path: Path) -> int | None:
    """A read-only descriptor of the lock file at ``path``, or None: never through a link, never a fifo or a device
    (a fifo hung `edgeorch run` for good; a link to /dev/zero read without end)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return None
    try:
        if stat.S_ISREG(os.fstat(fd).st_mode):
            return fd
    except OSError:
        pass
    os.close(fd)
    return None


_FLOCK = "hhqqi4x"
"""``struct flock`` on Linux's LP64 ABIs (x86-64, arm64): type, whence, start, len, pid, padding."""


def _lock_owner(fd: int) -> int | None:
    """The pid of the process holding a POSIX lock on the file of ``fd`` (``F_GETLK``: tests, takes nothing),
    None when no one does (or the kernel cannot tell)."""
    import struct

    try:
        answer = fcntl.fcntl(fd, fcntl.F_GETLK, struct.pack(_FLOCK, fcntl.F_WRLCK, os.SEEK_SET, 0, 0, 0))
    except OSError:
        return None
    kind, _whence, _start, _len, pid = struct.unpack(_FLOCK, answer)
    return pid if kind != fcntl.F_UNLCK and pid > 0 else None


WAITING_NAME = "edgeorch.lock.waiting"
"""Where a daemon that waits for an ``edgeorch run`` to let the state go says so: it holds a POSIX lock on this
file while it waits (the kernel's answer, as for the state lock: a forged or stale pid in it means nothing), so
that a command finding neither an answer nor a daemon holding the state can tell the user a daemon is on its way
(:func:`waiting_daemon`), and a second daemon does not wait beside it."""


def announce_waiting(state_dir: str | os.PathLike[str]) -> tuple[int | None, int | None]:
    """Take the waiting mark (:data:`WAITING_NAME`) for this daemon: ``(fd, None)`` while it holds it (give it to
    :func:`stop_waiting`), ``(None, pid)`` when another process holds it (another daemon waits already),
    ``(None, None)`` when it cannot be taken (a fifo or a link put there, an unwritable folder: a hint not given,
    nothing else changes). Never through a link, never blocking on a fifo."""
    path = Path(state_dir) / WAITING_NAME
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW | os.O_NONBLOCK, 0o640)
    except OSError:
        return None, None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            return None, None
        try:
            fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            other = _lock_owner(fd)
            os.close(fd)
            return None, other if other is not None else -1
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()} {DAEMON_MARK}\n".encode(), 0)  # for a person looking; the lock is the fact
    except OSError:
        os.close(fd)
        return None, None
    return fd, None


def stop_waiting(state_dir: str | os.PathLike[str], fd: int) -> None:
    """Give the waiting mark back (the state is this daemon's now, or it gives up): the file is removed while
    it is still the one locked, then the lock goes with the descriptor."""
    path = Path(state_dir) / WAITING_NAME
    with contextlib.suppress(OSError):
        held, there = os.fstat(fd), os.lstat(path)
        if (held.st_dev, held.st_ino) == (there.st_dev, there.st_ino):
            path.unlink()
    with contextlib.suppress(OSError):
        os.close(fd)


def waiting_daemon(state_dir: str | os.PathLike[str]) -> int | None:
    """The pid of the edgeorch daemon that holds the waiting mark of ``state_dir`` now, else None. Read only,
    through ``F_GETLK``; call it only from a process that does not hold that mark."""
    found = _edgeorch_holder(Path(state_dir) / WAITING_NAME)
    return found[0] if found is not None and _is_daemon(found[1]) else None


def holder_description(pid: int) -> str:
    """What a lock file's holder is, for a message: ``edgeorch run nightly`` (its command line from ``/proc``,
    printable and at most 100 characters) or ``an edgeorch process`` when it cannot be read."""
    argv = _command_line(str(pid))
    if not argv:
        return "an edgeorch process"
    from ..textui import printable

    shown = printable(" ".join(["edgeorch", *argv[argv.index("run"):]] if "run" in argv else argv))
    return shown if len(shown) <= 100 else shown[:97] + "..."


DAEMON_MARK = "daemon"
"""Written after a daemon's pid in the lock file (``1234 daemon``): once that process is gone without letting the
lock go (``kill -9``, a crash: a clean exit empties the file), :func:`crashed_daemon` can tell."""


def _pid_of(text: str) -> str:
    """The pid a lock file's text names (its first word; '' when none)."""
    words = text.split()
    return words[0] if words else ""


def crashed_daemon(state_dir: str | os.PathLike[str]) -> int | None:
    """The pid of the daemon that held ``state_dir`` last and is gone without letting it go (killed, crashed: a
    service manager is likely starting it again), else None. Read from the lock file; never takes the lock."""
    fd = _open_lock_file(Path(state_dir) / LOCK_NAME)
    if fd is None:
        return None
    try:
        words = os.pread(fd, 64, 0).decode("ascii", "replace").split()
    except OSError:
        return None
    finally:
        os.close(fd)
    if len(words) < 2 or words[1] != DAEMON_MARK or not words[0].isdigit():
        return None
    return int(words[0]) if not _command_line(words[0]) else None


def _exiting(pid: str) -> bool:
    """Whether process ``pid`` is there and its command line reads empty (a process ending, or a zombie: a kernel
    thread holds no lock file); False when it cannot be read (gone, or hidden from this user)."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read(1) == b""
    except OSError:
        return False


def _command_line(pid: str) -> list[str]:
    """The command line of process ``pid`` (from ``/proc``), [] when it is gone or cannot be read."""
    if not pid.isdigit():
        return []
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return [a.decode("utf-8", "replace") for a in f.read(4096).split(b"\0") if a]
    except OSError:
        return []


def _is_daemon(argv: list[str]) -> bool:
    """Whether a command line is an edgeorch daemon's (``edgeorch daemon``, ``python -m edgeorch daemon``)."""
    return "daemon" in argv[1:]


def _holder(fd: int) -> tuple[str, str, bool]:
    """Who holds the lock (read from the lock file: its pid, its command line from ``/proc``), what to do, and
    whether it is busy for a while only (a process that is not a daemon: its run ends, then the lock is free).

    A holder that cannot be told yet is busy for a moment too, so the caller asks again (a command for
    :data:`~edgeorch.cli.backend.BUSY_WAIT_S`, a daemon's start each poll): one that has just taken the lock and
    not written its pid, or one that let the lock go after this process's try (it exited: a gone process, or a
    zombie, has no command line; said "a daemon", a `run` beside a `pipelines pause` that was just ending failed
    with exit 4). One still holding it whose command line cannot be read is taken for a daemon, as before."""
    try:
        text = _pid_of(os.pread(fd, 64, 0).decode("ascii", "replace"))
    except OSError:
        text = ""
    daemon_hint = ("stop that daemon first (`systemctl stop edgeorch`, or `systemctl --user stop edgeorch` for a "
                   "per-user install), or use another state dir")
    moment = "it is being taken or let go this moment: try again"
    if not text.isdigit():  # a process that has just taken the lock: what it is cannot be told yet
        return "another edgeorch process (its pid is not recorded yet)", moment, True
    argv = _command_line(text)
    if not argv and (_lock_owner(fd) is None or _exiting(text)):
        # It let go since this process tried, or it is ending: an exiting process gives up its memory (its command
        # line reads empty) before its files (its lock): read as "a daemon" in that window, exit 4 (CI, stop 43).
        return f"another edgeorch process (pid {text}, which has just let it go)", moment, True
    if not argv or _is_daemon(argv):
        return f"another edgeorch daemon (pid {text})", daemon_hint, False
    shown = holder_description(int(text))
    runs = any(a in ("run", "retry", "cancel") for a in argv)
    return (f"another edgeorch process (pid {text}: `{shown}`)",
            "a command that runs pipelines without a daemon holds the state while its run lasts: wait for it "
            "to end (or stop it: the next daemon's start settles its run), then try again" if runs else
            "a command that changes the state without a daemon holds it for a moment: try again", True)


def acquire_state_lock(state_dir: str | os.PathLike[str], *, socket: str | os.PathLike[str] | None = None,
                       daemon: bool = False) -> StateLock:
    """Lock ``state_dir`` for this process, without waiting; ``daemon``: the holder is a daemon (said in the lock
    file, :data:`DAEMON_MARK`).

    Creates the directory (0750) and the lock file (0640) when missing.
    Raises :class:`StateError` naming the directory and the holder's pid when
    another process (or this one, through an earlier handle) holds it, and
    when the lock file cannot be opened. With ``socket`` (the daemon's control
    socket for this state) it also refuses, and lets the lock go, while a daemon
    listens there: its lock file was removed (a "stale lock" clean-up), and two
    writers would run the same runs (that daemon locks a new file itself:
    :meth:`StateLock.relock_if_replaced`). A socket systemd passed this process
    is not probed.
    """
    directory = Path(state_dir).absolute()
    path = directory / LOCK_NAME
    with _held_guard:
        if path in _held:
            raise StateError(
                f"state directory {directory} is already locked by this process (pid {os.getpid()})"
            )
        make_state_folder(directory)
        try:  # never through a link: it is truncated and written (a link to any file, and that file is emptied)
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o640)
        except OSError as exc:
            why = ("it is a symbolic link (never followed: the lock file is written); remove it"
                   if exc.errno == errno.ELOOP else exc.strerror)
            err = StateError(f"cannot open the lock file: {why}", file=str(path))
            if isinstance(exc, PermissionError):  # another user's state folder: exit 77, as every refusal of access
                err.exit_code = 77
                err.hint = ("run this as the user that owns the state folder (the daemon's user), or ask through "
                            "the daemon (a running one answers its socket's users)")
            raise err from None
        if not stat.S_ISREG(os.fstat(fd).st_mode):  # a fifo or a device opened for writing
            os.close(fd)
            raise StateError("cannot use the lock file: it is not a regular file", file=str(path),
                             hint="remove it (edgeorch makes a new one); no edgeorch process holds the state through "
                                  "it")
        try:
            fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder, hint, busy = _holder(fd)
            os.close(fd)
            # Held by a run without a daemon: busy (75), try again; by a daemon: go through it or stop it (4).
            raise (StateBusyError if busy else StateError)(f"state directory {directory} is in use by {holder}",
                                                            hint=hint) from None
        stamp = f"{os.getpid()} {DAEMON_MARK}\n" if daemon else f"{os.getpid()}\n"
        try:  # the holder's pid (what the next one names); a full disk refuses even these few bytes
            os.ftruncate(fd, 0)
            os.pwrite(fd, stamp.encode(), 0)
        except OSError as exc:
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                # A full disk: the POSIX lock is held all the same; the pid is for a person and for who waits (an
                # empty file reads "being taken this moment": they try again). gc --apply must get through here: it
                # is what frees that disk (its folders first, docs/state.md "Retention").
                stamp = ""
            else:
                os.close(fd)  # the lock goes with it
                raise StateError(f"cannot write the lock file: {exc.strerror or exc}", file=str(path),
                                 hint="free space on that file system, then try again") from None
        _held.add(path)
    lock = StateLock(path, fd, stamp)
    if socket is not None and not activated_here() and connect_errno(Path(socket)) in LISTENING:
        lock.release()
        raise StateError(
            f"another edgeorch daemon answers on {socket}, though the lock of state directory {directory} was free: "
            "this state's daemon whose lock file was removed, or one of another state directory given the same "
            "socket", hint="stop that daemon first (this state's makes its lock file again by itself), or give "
            "each state directory its own control.socket")
    return lock
