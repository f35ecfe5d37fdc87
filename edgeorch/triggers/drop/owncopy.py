"""A claimed file another user owns is replaced by the daemon's own copy before it is hashed.

A claimed file keeps its owner, whoever dropped it. Its claim folder (mode 0700) keeps others from reaching it by
path, but not its owner from reopening a descriptor kept from before the drop: ``/proc/self/fd/N`` opened for
writing checks the file's own mode, which its owner may change (``fchmod`` needs no write access). A dropper
could so rewrite the content after its sha256 was recorded: the lineage, the duplicate check and the data
versions would name bytes the run never read. The copy is the daemon user's, its inode new; the dropper's old
inode leaves the inbox and whatever is written through it later reaches nothing edgeorch reads. Files of the
daemon's own user (the usual single-user box, and the ingest benchmark) are never copied.
"""

from __future__ import annotations

import errno
import os
import stat as stat_mod
from pathlib import Path

from .writers import open_for_writing

COPY_PREFIX = ".own-copy-"
"""The copy's name while it is written, beside the claimed file in its claim folder (which holds nothing else; a
leftover of a crash is replaced by the next try)."""

_CHUNK = 1 << 20
_NO_COPY_RANGE = {errno.EXDEV, errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP, errno.EPERM}


def copy_name(dest: Path) -> Path:
    return dest.parent / f"{COPY_PREFIX}{dest.name}"


def own_mode(mode: int) -> int:
    """The copy's permission bits: the dropped file's, readable and writable by the daemon's user, writable by
    nobody else, never setuid, setgid or sticky."""
    return (stat_mod.S_IMODE(mode) | 0o600) & 0o755


def take_ownership(dest: Path, identity: tuple[int, int], size: int, mtime_ns: int,
                   max_size: int | None) -> tuple[int, int] | None:
    """Replace the claimed file ``dest`` by a copy the daemon's user owns when another user owns it; returns the
    copy's ``(dev, ino)`` (the identity the hash then checks), or None when nothing was copied: ``dest`` is the
    daemon user's own file, or not one to copy (the hash's checks then refuse or defer it, as for any file).

    ``identity`` (device, inode), ``size`` and ``mtime_ns`` are what the claim's intent recorded of the file,
    ``max_size`` the watch's. The copy keeps the original's modification time: a ``dest`` of the daemon's user
    that is not the intent's inode but has its size and modification time is this function's copy from a claim
    interrupted by a crash (only the daemon's user can write the claim folder), whose identity is returned as is;
    any other file there stays "swapped in". The source is read through one ``O_NOFOLLOW`` descriptor and
    checked on it first: the intent's inode, a regular file, one name, no writer holding it; at most the
    watch's ``max_size`` is copied (a file grown after the look is refused by the hash's checks, never copied
    whole). Raises OSError for the caller's transient handling.
    """
    try:
        fd = os.open(dest, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return None  # a link swapped in: the hash's open refuses it
        raise
    try:
        st = os.fstat(fd)
        if st.st_uid == os.geteuid():
            if (st.st_dev, st.st_ino) != identity and (st.st_size, st.st_mtime_ns) == (size, mtime_ns):
                return st.st_dev, st.st_ino  # the copy made before a crash
            return None
        if not stat_mod.S_ISREG(st.st_mode) or (st.st_dev, st.st_ino) != identity or st.st_nlink != 1:
            return None
        if open_for_writing(fd) or (max_size is not None and st.st_size > max_size):
            return None
        tmp = copy_name(dest)
        out = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        try:
            _copy(fd, out, st.st_size)
            os.fchmod(out, own_mode(st.st_mode))
            os.utime(out, ns=(st.st_atime_ns, st.st_mtime_ns))  # how a redo knows its copy (above)
            os.fsync(out)  # the copy's bytes before its name replaces the original's (a crash keeps one of them)
            copied = os.fstat(out)
        except BaseException:
            os.close(out)
            os.unlink(tmp)
            raise
        os.close(out)
        os.rename(tmp, dest)  # the folder's fsync (the claim's) makes it durable
        return copied.st_dev, copied.st_ino
    finally:
        os.close(fd)


def _copy(src: int, dst: int, size: int) -> None:
    """``size`` bytes from ``src`` to ``dst`` from offset 0: ``copy_file_range`` (a reflink where the file
    system shares blocks), else read and write."""
    done = 0
    try:
        while done < size:
            n = os.copy_file_range(src, dst, size - done, done, done)
            if n == 0:
                break  # shorter than its size now: the hash's size check refuses it
            done += n
        return
    except OSError as exc:
        if exc.errno not in _NO_COPY_RANGE:
            raise
    while done < size:
        chunk = os.pread(src, min(_CHUNK, size - done), done)
        if not chunk:
            break
        os.pwrite(dst, chunk, done)
        done += len(chunk)
