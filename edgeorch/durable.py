"""Durable file operations: folder fsyncs, filesystem syncs, atomic writes (old or new, never half).

The one place these rules live (drop folders, dataset stores and restores, the
audit key file and model slots call them):

- :func:`fsync_dir`: a rename into or out of a folder, or a new entry in it,
  survives a power cut once the folder is fsynced.
- :func:`sync_dirs`: the same for many folders. Each ``fsync`` of a folder ends
  with a flush of the disk's write cache, and a claim group of a burst has
  hundreds of new folders: from :data:`SYNCFS_AT` distinct folders on, one
  ``syncfs(2)`` of their filesystem (every dirty inode and the journal, then
  one flush) replaces them (measured: 500 folders 67 ms fsynced one by one, 7 ms
  by ``syncfs``; several times that when tasks write meanwhile). Its cost
  grows with whatever else is dirty on that filesystem (another process's
  large unsynced writes), so small groups keep their own fsyncs.
- :func:`syncfs`: ``syncfs(2)``; Linux reports write-back errors to it since
  5.8, raised here as ``OSError``. False (nothing done) where libc has none:
  callers fall back to fsyncs.
- :func:`write_atomic`: temp file + fsync + rename + folder fsync.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable, Iterable
from pathlib import Path

SYNCFS_AT = 16
"""From this many distinct folders on, :func:`sync_dirs` syncs their filesystem(s) once instead."""


def fsync_dir(path: Path | str) -> None:
    """fsync one folder (its entries' changes: renames, new and removed names). Raises ``OSError``."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def sync_dirs(paths: Iterable[Path | str]) -> None:
    """Make the entries of each distinct folder in ``paths`` durable (see the module docstring).

    Fewer than :data:`SYNCFS_AT` folders: an fsync each. More: one :func:`syncfs`
    per filesystem they are on (a folder that cannot be opened raises, as its
    fsync would). Raises ``OSError`` when a folder or a filesystem cannot be
    synced: then nothing is known to be durable.
    """
    folders = list(dict.fromkeys(os.fspath(p) for p in paths))
    if len(folders) >= SYNCFS_AT and _sync_filesystems(folders):
        return
    for folder in folders:
        fsync_dir(folder)


def _sync_filesystems(folders: list[str]) -> bool:
    """One :func:`syncfs` per filesystem holding ``folders``; False (nothing synced) where it is missing."""
    one_per_device: dict[int, str] = {}
    for folder in folders:
        one_per_device.setdefault(os.stat(folder).st_dev, folder)
    for folder in one_per_device.values():
        if not syncfs(folder):
            return False
    return True


def syncfs(path: Path | str) -> bool:
    """``syncfs(2)`` of the filesystem holding folder ``path``; False where libc has none (nothing done).

    Raises ``OSError`` (naming ``path``) when the kernel reports a write-back error.
    """
    fn = _libc_syncfs()
    if fn is None:  # pragma: no cover - not glibc/musl on Linux
        return False
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        if fn(fd) != 0:
            import ctypes

            err = ctypes.get_errno()
            raise OSError(err, os.strerror(err), os.fspath(path))
    finally:
        os.close(fd)
    return True


_SYNCFS: list[Callable[[int], int] | None] = []
"""The libc function once looked up (``[fn]`` or ``[None]``): ctypes' lookup costs more than the call."""


def _libc_syncfs() -> Callable[[int], int] | None:
    if not _SYNCFS:
        try:
            import ctypes

            _SYNCFS.append(ctypes.CDLL(None, use_errno=True).syncfs)
        except (OSError, AttributeError):  # pragma: no cover
            _SYNCFS.append(None)
    return _SYNCFS[0]


def write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` by temp file + fsync + rename (+ fsync of the folder): old or new, never half."""
    # A short temporary name: one derived from ``path.name`` could pass NAME_MAX.
    tmp = path.with_name(f".tmp-{os.getpid()}-{secrets.token_hex(6)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
    try:
        view = memoryview(data)
        while view:  # write() may take only part (a nearly full disk): the rest, or its error, follows
            view = view[os.write(fd, view):]
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        try:
            os.unlink(tmp)  # nothing half-written is ever renamed into place, nor left behind
        except OSError:
            pass
        raise
    os.close(fd)
    os.rename(tmp, path)
    fsync_dir(path.parent)
