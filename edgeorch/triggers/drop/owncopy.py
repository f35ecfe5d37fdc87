"""A claimed file another user owns is replaced by the daemon's own copy before it is hashed.

A claimed file keeps its owner, whoever dropped it. Its claim folder (mode 0700) keeps others from reaching it by
path, but not its owner from reopening a descriptor kept from before the drop: ``/proc/self/fd/N`` opened for
writing checks the file's own mode, which its owner may change (``fchmod`` needs no write access). A dropper
could so rewrite the content after its sha256 was recorded: the lineage, the duplicate check and the data
versions would name bytes the run never read. The copy is the daemon user's, its inode new; the dropper's old
inode leaves the inbox and whatever is written through it later reaches nothing edgeorch reads. Files of the
daemon's own user (the usual single-user box, and the ingest benchmark) are never copied; those its group or
others may write lose those bits (the same reopen checks them).
"""

from __future__ import annotations

import errno
import os
import stat as stat_mod
import threading
from pathlib import Path

from .writers import open_for_writing

COPY_PREFIX = ".own-copy-"
"""The copy's name while it is written, beside the claimed file in its claim folder (which holds nothing else; a
leftover of a crash is replaced by the next try)."""

_CHUNK = 1 << 20
_COPY_CHUNK = 16 << 20
"""Bytes copied between two looks at ``cancel``."""
_NO_COPY_RANGE = {errno.EXDEV, errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP, errno.EPERM}


def copy_name(dest: Path) -> Path:
    return dest.parent / f"{COPY_PREFIX}{dest.name}"


def own_mode(mode: int) -> int:
    """The copy's permission bits: the dropped file's, readable and writable by the daemon's user, writable by
    nobody else, never setuid, setgid or sticky."""
    return (stat_mod.S_IMODE(mode) | 0o600) & 0o755


class CopyInterrupted(Exception):
    """The copy was stopped between two chunks (``cancel`` was set: the daemon is stopping); nothing replaced."""


def take_ownership(dest: Path, identity: tuple[int, int], size: int, mtime_ns: int, max_size: int | None,
                   cancel: threading.Event | None = None, *, redo: bool = True) -> tuple[int, int] | None:
    """Make the claimed file ``dest`` one nobody but the daemon's user can write; returns the identity ``(dev,
    ino)`` the hash then checks when it changed (a copy), else None.

    - Another user's file is replaced by a copy the daemon's user owns (its owner could change its mode: only a
      new inode keeps a descriptor kept from before the drop from writing what the run reads).
    - A file of the daemon's own user that its group or others may write (a group-writable drop folder, a
      producer's umask 002) loses those write bits (``fchmod``: the reopen of a kept descriptor checks them).
    - Anything else is left as it is (None), and so is a file that is not one to copy: the hash's checks then
      refuse or defer it, as for any file.

    ``identity`` (device, inode), ``size`` and ``mtime_ns`` are what the claim's intent recorded of the file,
    ``max_size`` the watch's. The copy keeps the original's modification time: a ``dest`` of the daemon's user
    that is not the intent's inode but has its size and modification time is this function's copy from a claim
    interrupted by a crash (only the daemon's user can write the claim folder), whose identity is returned as is,
    when ``redo`` (``dest`` was there before this try: the claim's rename was done by an earlier one); any other
    file there stays "swapped in" (a file of the daemon's user renamed into the drop folder under the claimed
    name between the claim's look and its rename, its size and mtime matched, is never taken for a copy). The source is read through one ``O_NOFOLLOW`` descriptor and
    checked on it first: the intent's inode, a regular file, one name, no writer holding it; at most the
    watch's ``max_size`` is copied (a file grown after the look is refused by the hash's checks, never copied
    whole), and its holes stay holes (a sparse file of 8 GB, where a watch allows them, is not written out).
    ``cancel`` is looked at between chunks (:class:`CopyInterrupted`: a stop never waits for a long copy).
    Raises OSError for the caller's transient handling.
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
            if (st.st_dev, st.st_ino) != identity:
                if redo and (st.st_size, st.st_mtime_ns) == (size, mtime_ns):
                    return st.st_dev, st.st_ino  # the copy made before a crash
                return None
            if stat_mod.S_ISREG(st.st_mode) and st.st_mode & 0o022:
                os.fchmod(fd, stat_mod.S_IMODE(st.st_mode) & ~0o022)
            return None
        if not stat_mod.S_ISREG(st.st_mode) or (st.st_dev, st.st_ino) != identity or st.st_nlink != 1:
            return None
        if open_for_writing(fd) or (max_size is not None and st.st_size > max_size):
            return None
        tmp = copy_name(dest)
        out = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        try:
            _copy(fd, out, st.st_size, cancel)
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


def _copy(src: int, dst: int, size: int, cancel: threading.Event | None) -> None:
    """``size`` bytes of ``src`` to ``dst`` at the same offsets, its data only: ``dst`` is first sized to
    ``size`` (all hole), then each data extent (``SEEK_DATA``/``SEEK_HOLE``; the whole file where the file system
    cannot say) is copied in chunks, ``cancel`` looked at before each. A source shorter than ``size`` now stops
    the copy (the hash's size check refuses it)."""
    os.ftruncate(dst, size)
    pos = 0
    while pos < size:
        try:
            start = os.lseek(src, pos, os.SEEK_DATA)
            end = min(os.lseek(src, start, os.SEEK_HOLE), size)
        except OSError as exc:
            if exc.errno == errno.ENXIO:
                return  # no data after pos: the rest is a hole
            if exc.errno not in (errno.EINVAL, errno.EOPNOTSUPP):
                raise
            start, end = pos, size  # no hole support here: copy it all
        if start >= size:
            return
        while start < end:
            if cancel is not None and cancel.is_set():
                raise CopyInterrupted(f"the copy was interrupted after {start} of {size} bytes")
            n = _copy_range(src, dst, start, min(_COPY_CHUNK, end - start))
            if n == 0:
                return
            start += n
        pos = end


def _copy_range(src: int, dst: int, offset: int, count: int) -> int:
    """Up to ``count`` bytes at ``offset`` from ``src`` to ``dst``: ``copy_file_range`` (a reflink where the file
    system shares blocks), else a read and a write. The bytes copied (0: the source ends here)."""
    try:
        return os.copy_file_range(src, dst, count, offset, offset)
    except OSError as exc:
        if exc.errno not in _NO_COPY_RANGE:
            raise
    chunk = os.pread(src, min(count, _CHUNK), offset)
    if chunk:
        view = memoryview(chunk)
        written = 0
        while written < len(chunk):
            written += os.pwrite(dst, view[written:], offset + written)
    return len(chunk)
