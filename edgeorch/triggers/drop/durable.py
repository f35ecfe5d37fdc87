"""Durable file operations: folder fsyncs and atomic writes (old or new, never half)."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterable
from pathlib import Path


def sync_dirs(paths: Iterable[Path]) -> None:
    """fsync each distinct folder once (makes renames into and out of them durable)."""
    for p in dict.fromkeys(Path(x) for x in paths):
        fsync_dir(p)


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


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
