"""Durable file operations: folder fsyncs, filesystem syncs, atomic writes (old or new, never half).

The one place these rules live (drop folders, dataset stores and restores, the
audit key file and model slots call them):

- :func:`fsync_dir`: a rename into or out of a folder, or a new entry in it,
  survives a power cut once the folder is fsynced.
- :func:`sync_dirs`: the same for many folders. Each ``fsync`` of a folder ends
  with a flush of the disk's write cache, and a claim group of a burst has
  hundreds of new folders (measured with tasks running: 500 folders 0.15-0.47 s
  fsynced one by one). From :data:`MANY` distinct folders on: one
  ``syncfs(2)`` of their filesystem (every dirty inode and the journal, then
  one flush: 0.01-0.02 s) while this machine holds little unsynced data
  (:data:`SYNCFS_MAX_UNSYNCED`, read from ``/proc/meminfo``) and its kernel
  reports write-back errors to ``syncfs`` (Linux 5.8 and later), else
  :data:`FSYNC_THREADS` fsyncs in flight at once, whose flushes the kernel
  merges (0.03-0.05 s). ``syncfs`` also writes every other process's unsynced
  data on that filesystem: beside 1 GB of it, 500 folders took 440 ms by
  ``syncfs``, 80 ms by fsyncs one by one, 45 ms in parallel; on a slow disk a
  claim would wait seconds. Hence the check.
- :func:`syncfs`: ``syncfs(2)``, for a caller that wrote everything to be
  synced itself (a dataset restore's many files); Linux reports write-back
  errors to it since 5.8, raised here as ``OSError``. False (nothing done)
  where libc has none: callers fall back to fsyncs.
- :func:`write_atomic`: temp file + fsync + rename + folder fsync; :func:`replacing`, the same for a file
  written in parts (an export), or without the syncs (a metrics text file).
"""

from __future__ import annotations

import contextlib
import errno
import functools
import os
import secrets
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import IO, Any

MANY = 16
"""From this many distinct folders on, :func:`sync_dirs` syncs them together (``syncfs`` or parallel fsyncs)."""
FSYNC_THREADS = 16
"""How many folder fsyncs :func:`sync_dirs` keeps in flight (they wait on the disk, not on a CPU)."""
SYNCFS_MAX_UNSYNCED = 8 << 20
"""``syncfs`` only while the machine's dirty + under-writeback memory is at most this (bytes): its cost is
bounded by writing that much."""


def fsync_dir(path: Path | str) -> None:
    """fsync one folder (its entries' changes: renames, new and removed names). Raises ``OSError``."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def sync_dirs(paths: Iterable[Path | str]) -> None:
    """Make the entries of each distinct folder of ``paths`` durable (see the module docstring); returns
    when all are.

    Fewer than :data:`MANY` folders: an fsync each, in this thread. More: one
    :func:`syncfs` per filesystem they are on when little is unsynced
    (:func:`unsynced_bytes`), else fsyncs from up to :data:`FSYNC_THREADS`
    threads at once. Raises the first ``OSError`` (in ``paths``' order for
    fsyncs) when a folder cannot be synced: then the caller must not take any
    of them as durable.
    """
    folders = list(dict.fromkeys(os.fspath(p) for p in paths))
    if len(folders) < MANY:
        for folder in folders:
            fsync_dir(folder)
        return
    unsynced = unsynced_bytes()
    if (unsynced is not None and unsynced <= SYNCFS_MAX_UNSYNCED and syncfs_reports_errors()
            and _sync_filesystems(folders)):
        return
    import concurrent.futures  # only for a burst: most processes never sync so many folders

    try:
        with concurrent.futures.ThreadPoolExecutor(min(FSYNC_THREADS, len(folders)),
                                                   thread_name_prefix="edgeorch-fsync") as pool:
            futures = [pool.submit(fsync_dir, folder) for folder in folders]
    except RuntimeError:  # no thread could be started (a limit on tasks): one by one, all of them again
        for folder in folders:
            fsync_dir(folder)
        return
    for done in futures:
        done.result()


def syncfs_reports_errors(release: str | None = None) -> bool:
    """True on Linux 5.8 and later (``release``: ``uname -r``, default this machine's), where ``syncfs``
    returns a write-back error; before, it returned 0 whatever happened, and a folder fsync must be used."""
    text = os.uname().release if release is None else release
    parts = text.split(".", 2)
    try:
        return (int(parts[0]), int("".join(c for c in parts[1] if c.isdigit()) or "x")) >= (5, 8)
    except (ValueError, IndexError):
        return False


def unsynced_bytes(meminfo: str = "/proc/meminfo") -> int | None:
    """This machine's memory not yet on disk (``Dirty`` + ``Writeback``), in bytes; None when unknown.

    Over all filesystems, so an upper bound of what a ``syncfs`` of one of them would write.
    """
    try:
        with open(meminfo, "rb") as f:
            text = f.read()
    except OSError:
        return None
    total, seen = 0, 0
    for line in text.splitlines():
        if line.startswith((b"Dirty:", b"Writeback:")):
            parts = line.split()
            if len(parts) < 2 or not parts[1].isdigit():
                return None
            total += int(parts[1]) * 1024
            seen += 1
    return total if seen == 2 else None


def _sync_filesystems(folders: list[str]) -> bool:
    """One :func:`syncfs` per filesystem holding ``folders``; False where it is missing (then fsync them)."""
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


@functools.cache
def _libc_syncfs() -> Callable[[int], int] | None:
    """libc's ``syncfs``, looked up once (ctypes' lookup costs more than the call); None where it has none."""
    try:
        import ctypes

        return ctypes.CDLL(None, use_errno=True).syncfs  # type: ignore[no-any-return]
    except (OSError, AttributeError):  # pragma: no cover - not glibc/musl on Linux
        return None


def write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` by temp file + fsync + rename (+ fsync of the folder): old or new, never half.

    Raises ``OSError`` naming ``path`` (see :func:`replacing`); ``path`` is then left as it was.
    """
    with replacing(path) as f:
        f.write(data)


@contextlib.contextmanager
def replacing(path: Path | str, *, text: bool = False, durable: bool = True,
              chmod: int | None = None) -> Iterator[IO[Any]]:
    """Write a new version of ``path`` and put it in place with one rename: a reader sees the old file or the
    new one, never half of it. The one rule for every file edgeorch replaces whole.

    Yields a file (bytes, or UTF-8 text with ``text``) open on a short temporary name beside ``path`` (a
    name derived from ``path``'s own could pass NAME_MAX): ``.tmp-<pid>-<hex>``, which a sweep can
    recognise after a kill -9. When the block, the write, the sync or the rename fails, the temporary
    file is removed, ``path`` is left as it was, and the error is raised again; an ``OSError`` of the
    file itself (the temporary one, or none named: a write to a full disk) names ``path`` then (the
    temporary name means nothing to whoever named ``path``). ``durable``: the file is fsynced before the
    rename and its folder after (a power cut leaves the old file or the new one). ``chmod``: the new
    file's mode whatever the umask (else 0644 less the umask).
    """
    path = Path(path)
    if path.name in ("", ".", ".."):
        raise IsADirectoryError(errno.EISDIR, "names a folder, not a file", str(path))
    tmp = path.with_name(f".tmp-{os.getpid()}-{secrets.token_hex(6)}")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
    except OSError as exc:
        raise _naming(exc, path) from None
    try:
        if chmod is not None:
            os.fchmod(fd, chmod)
        with os.fdopen(fd, "w" if text else "wb", encoding="utf-8" if text else None) as f:
            yield f
            f.flush()  # a full disk says so here, or at the fsync
            if durable:
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        try:
            os.unlink(tmp)  # nothing half-written is ever renamed into place, nor left behind
        except OSError:
            pass
        if isinstance(exc, OSError) and exc.filename in (None, str(tmp)):  # not another file's error of the block
            raise _naming(exc, path) from exc
        raise
    if durable:
        try:
            fsync_dir(path.parent)
        except OSError as exc:
            raise _naming(exc, path) from exc


def _naming(exc: OSError, path: Path) -> OSError:
    """``exc`` as an error about ``path`` (same errno, so the same subclass: ``FileNotFoundError``, ...)."""
    return OSError(exc.errno, exc.strerror, str(path)) if exc.errno else exc
