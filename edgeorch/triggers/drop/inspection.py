"""Looking at a ready file before it is claimed, without following links; scanning a folder.

:func:`inspect` returns :class:`Accept` or a :class:`Refuse` with a machine-readable code;
:func:`scan` lists the candidate names of a folder (start-up and periodic rescans).
"""

from __future__ import annotations

import errno
import functools
import os
import stat as stat_mod
from collections.abc import Iterable
from pathlib import Path
from typing import Literal

from ...filekinds import file_kind
from ...records import frozen
from ...textui import clip
from .names import display_path, is_candidate, name_problem

LINK_TARGET_SHOWN = 200
"""How much of a refused link's target its refusal says."""

RefuseCode = Literal["gone", "outside", "bad_name", "symlink", "not_regular", "hardlink", "too_big", "sparse",
                     "not_movable", "unreadable", "transient"]

TRANSIENT_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EMFILE, errno.ENFILE, errno.EIO, errno.EAGAIN,
                              errno.ENOMEM, errno.EINTR, errno.EBUSY, errno.ENOBUFS, errno.ETIMEDOUT})
"""Errors that say nothing about the file, only about the machine right now (disk full, out of
descriptors, I/O hiccup): the claim is tried again later, never turned into a final state."""


@frozen
class Accept:
    """A file that may be claimed, as seen by ``lstat`` (identity: ``dev``, ``ino``)."""

    path: Path
    size: int
    mtime_ns: int
    dev: int
    ino: int


@frozen
class Refuse:
    """A file that must not be claimed; ``code`` is machine-readable, ``reason`` for people.

    ``code == "gone"``: the file vanished (nothing to record); ``code ==
    "transient"``: the machine could not look right now (disk full, out of
    descriptors, EIO): try again later, record nothing.
    """

    path: Path
    code: RefuseCode
    reason: str

    @property
    def final(self) -> bool:
        """Is this a refusal to record (not ``gone``, not ``transient``)?"""
        return self.code not in ("gone", "transient")


SPARSE_MIN_SIZE = 1 << 30
"""Files smaller than this (1 GiB) are never called sparse: one hashes in a second or two, in the long-file
lane (``service.LONG_CLAIM_BYTES``) where it holds up no other file (``cp`` of a sparse 500 MB image is claimed)."""

SPARSE_RATIO = 64
"""A file is *sparse* when its allocated blocks cover less than 1/64 of its size (over 98% holes). Far below
what compression on ZFS or btrfs gives ordinary data, so a compressed file is not mistaken for one."""

CAP_FOWNER = 3
"""Linux capability number of ``CAP_FOWNER`` (may move other users' files out of a sticky folder)."""


def sparse_problem(size: int, blocks: int) -> str | None:
    """Why a regular file of ``size`` bytes with ``blocks`` 512-byte blocks allocated (``st_blocks``) is refused as
    sparse (None: it is not). Pure. A sparse file costs its writer almost no disk but the daemon a full read
    and hash of its size (``truncate -s 300G`` is 80 minutes of hashing zeros)."""
    allocated = blocks * 512
    if size < SPARSE_MIN_SIZE or allocated * SPARSE_RATIO >= size:
        return None
    return (f"sparse file: {size} bytes long but only {allocated} bytes allocated on disk (mostly holes, e.g. "
            f"made by truncate); refused because hashing it would read all {size} bytes; "
            "allow_sparse = true in the watch accepts sparse files")


def move_problem(folder: os.stat_result, file: os.stat_result, euid: int, fowner: bool) -> str | None:
    """Why this process may not move ``file`` out of ``folder`` by ``rename`` (None: it may). Pure.

    In a sticky folder (mode 1777, like /tmp) only the file's owner, the folder's owner and a process
    with ``CAP_FOWNER`` may rename or remove an entry (the kernel's sticky check; ``rename`` fails with
    EPERM), whatever the folder's write permission says.
    """
    if not folder.st_mode & stat_mod.S_ISVTX or fowner or euid in (file.st_uid, folder.st_uid):
        return None
    return (f"cannot be claimed: the watched folder is sticky (mode {stat_mod.S_IMODE(folder.st_mode):o}) and "
            f"the file belongs to {_user(file.st_uid)}, not to the daemon's user {_user(euid)}, so the daemon "
            "may not move it out; drop files into a folder without the sticky bit, or make the daemon's user "
            "the folder's owner")


def _user(uid: int) -> str:
    try:
        import pwd

        return f"{pwd.getpwuid(uid).pw_name} (uid {uid})"
    except (KeyError, ImportError):
        return f"uid {uid}"


@functools.cache
def has_cap_fowner() -> bool:
    """Does this process hold ``CAP_FOWNER`` in its effective set (``/proc/self/status``)? Where that
    cannot be read: whether it runs as root. Read once: a daemon's capabilities do not change."""
    try:
        with open("/proc/self/status", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith("CapEff:"):
                    return bool(int(line.split()[1], 16) >> CAP_FOWNER & 1)
    except (OSError, ValueError, IndexError):
        pass
    return os.geteuid() == 0


def _os_refusal(p: Path, what: str, exc: OSError) -> Refuse:
    if exc.errno in TRANSIENT_ERRNOS:
        return Refuse(p, "transient", f"cannot {what} now: {exc.strerror} (will retry)")
    return Refuse(p, "unreadable", f"cannot {what}: {exc.strerror}")


def inspect(path: Path | str, folder: Path | str, *, max_size: int | None = None,
            allow_sparse: bool = False) -> Accept | Refuse:
    """Decide whether ``path`` (a direct child of ``folder``) may be claimed, without following links.

    Uses ``os.lstat`` and then ``open(O_NOFOLLOW | O_NONBLOCK)`` + ``fstat`` of
    the same inode (a FIFO does not block, a symlink swapped in between is
    caught). Refuses: paths not directly in ``folder`` (``..``, subfolders),
    invalid names, symlinks, non-regular files, ``st_nlink > 1`` (a hard link
    shares its content with a file elsewhere, which could change it after the
    claim), files over ``max_size``, sparse files (:func:`sparse_problem`) unless ``allow_sparse``,
    files this process may not move out of a sticky folder (:func:`move_problem`), unreadable files.
    """
    p = Path(os.path.abspath(path))
    folder_abs = Path(os.path.abspath(folder))
    if p.parent != folder_abs:
        return Refuse(p, "outside", f"{path} is not directly inside the watched folder {folder_abs}")
    problem = name_problem(p.name)
    if problem:
        return Refuse(p, "bad_name", problem)
    try:
        st = os.lstat(p)
    except FileNotFoundError:
        return Refuse(p, "gone", "the file vanished")
    except OSError as exc:
        return _os_refusal(p, "stat", exc)
    if stat_mod.S_ISLNK(st.st_mode):
        try:
            target = os.readlink(p)
        except OSError:
            target = "?"
        # Its target is the dropper's text, up to 4 KB: recorded with the refusal, so only its head.
        shown = clip(display_path(target), LINK_TARGET_SHOWN)
        return Refuse(p, "symlink", f"symbolic link (to {shown}); links are never followed")
    if not stat_mod.S_ISREG(st.st_mode):
        return Refuse(p, "not_regular", f"not a regular file ({file_kind(st.st_mode)})")
    if st.st_nlink > 1:
        return Refuse(p, "hardlink", f"hard link ({st.st_nlink} names share this file); copy or move it in instead")
    if max_size is not None and st.st_size > max_size:
        return Refuse(p, "too_big", f"{st.st_size} bytes is over max_size ({max_size} bytes)")
    sparse = None if allow_sparse else sparse_problem(st.st_size, st.st_blocks)
    if sparse:
        return Refuse(p, "sparse", sparse)
    if st.st_uid != os.geteuid():  # only then can a sticky folder forbid the move (one more stat, rarely)
        try:
            moved = move_problem(os.stat(folder_abs), st, os.geteuid(), has_cap_fowner())
        except OSError as exc:
            return _os_refusal(p, "stat the folder", exc)
        if moved:
            return Refuse(p, "not_movable", moved)
    try:
        fd = os.open(p, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        return Refuse(p, "gone", "the file vanished")
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return Refuse(p, "symlink", "symbolic link (swapped in); links are never followed")
        return _os_refusal(p, "open", exc)
    try:
        fst = os.fstat(fd)
    finally:
        os.close(fd)
    if (fst.st_dev, fst.st_ino) != (st.st_dev, st.st_ino):
        return Refuse(p, "gone", "the file was replaced while being inspected")
    return Accept(p, st.st_size, st.st_mtime_ns, st.st_dev, st.st_ino)


def scan(folder: Path | str, patterns: Iterable[str]) -> list[Path]:
    """Candidate names directly in ``folder`` (sorted), for start-up and periodic rescans.

    Returns every candidate name whatever its type, so symlinks and the like
    reach :func:`inspect` and get a recorded refusal. A missing folder yields [].
    """
    pats = tuple(patterns)
    base = Path(os.path.abspath(folder))
    try:
        with os.scandir(base) as it:
            names = [e.name for e in it if is_candidate(e.name, pats)]
    except FileNotFoundError:
        return []
    return [base / n for n in sorted(names)]
