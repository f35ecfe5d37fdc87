"""Looking at a ready file before it is claimed, without following links; scanning a folder.

:func:`inspect` returns :class:`Accept` or a :class:`Refuse` with a machine-readable code;
:func:`scan` lists the candidate names of a folder (start-up and periodic rescans).
"""

from __future__ import annotations

import errno
import os
import stat as stat_mod
from collections.abc import Iterable
from pathlib import Path
from typing import Literal

from ...records import frozen
from .names import is_candidate, name_problem

RefuseCode = Literal["gone", "outside", "bad_name", "symlink", "not_regular", "hardlink", "too_big", "unreadable",
                     "transient"]

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


def _os_refusal(p: Path, what: str, exc: OSError) -> Refuse:
    if exc.errno in TRANSIENT_ERRNOS:
        return Refuse(p, "transient", f"cannot {what} now: {exc.strerror} (will retry)")
    return Refuse(p, "unreadable", f"cannot {what}: {exc.strerror}")


def inspect(path: Path | str, folder: Path | str, *, max_size: int | None = None) -> Accept | Refuse:
    """Decide whether ``path`` (a direct child of ``folder``) may be claimed, without following links.

    Uses ``os.lstat`` and then ``open(O_NOFOLLOW | O_NONBLOCK)`` + ``fstat`` of
    the same inode (a FIFO does not block, a symlink swapped in between is
    caught). Refuses: paths not directly in ``folder`` (``..``, subfolders),
    invalid names, symlinks, non-regular files, ``st_nlink > 1`` (a hard link
    shares its content with a file elsewhere, which could change it after the
    claim), files over ``max_size``, unreadable files.
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
        return Refuse(p, "symlink", f"symbolic link (to {target}); links are never followed")
    if not stat_mod.S_ISREG(st.st_mode):
        return Refuse(p, "not_regular", f"not a regular file ({file_kind(st.st_mode)})")
    if st.st_nlink > 1:
        return Refuse(p, "hardlink", f"hard link ({st.st_nlink} names share this file); copy or move it in instead")
    if max_size is not None and st.st_size > max_size:
        return Refuse(p, "too_big", f"{st.st_size} bytes is over max_size ({max_size} bytes)")
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


def file_kind(mode: int) -> str:
    for test, name in ((stat_mod.S_ISDIR, "directory"), (stat_mod.S_ISFIFO, "FIFO"), (stat_mod.S_ISSOCK, "socket"),
                       (stat_mod.S_ISCHR, "character device"), (stat_mod.S_ISBLK, "block device")):
        if test(mode):
            return name
    return "unknown type"


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
