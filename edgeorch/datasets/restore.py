"""Restoring a version: its files rebuilt from verified chunks, moved into place whole.

Contract of :func:`restore`:

- ``dest`` is a folder; the version's files land under it with their
  relative paths and permission bits. An existing ``dest`` must be an empty
  folder, unless ``force`` (then it is replaced; never merged).
- Nothing is written into ``dest`` before everything was rebuilt: the files
  are written into a temporary folder next to ``dest`` (made durable by one
  ``syncfs`` of its filesystem, else a fsync per file and folder), every
  chunk's sha256 and every file's sha256 checked, and only then is that folder
  renamed onto ``dest`` (an empty ``dest`` is replaced in one rename; with
  ``force`` the old one is first renamed aside, then removed). A failure
  (a corrupted or missing object: :class:`~edgeorch.datasets.objects.CorruptObject`
  naming the object and the version; a full disk) removes the temporary
  folder and leaves ``dest`` as it was.
- Paths from the manifest that are absolute or contain ``..`` are refused
  (a tampered state file cannot write outside ``dest``).
"""

from __future__ import annotations

import errno
import hashlib
import os
import secrets
import shutil
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path, PurePosixPath
from typing import Any

from ..durable import fsync_dir, syncfs
from ..errors import ConflictError, UsageError
from ..records import frozen
from .objects import CorruptObject, ObjectStore


@frozen
class Manifest:
    """What restore needs of a version: ``ref`` (``name@version``, for messages), its files (``path``,
    ``size``, ``mode``, ``sha256``, ``chunks``) and each chunk's ``codec`` and ``size``."""

    ref: str
    files: Sequence[Mapping[str, Any]]
    chunks: Mapping[str, Mapping[str, Any]]

    @property
    def size(self) -> int:
        return sum(int(f["size"]) for f in self.files)


def check_dest(dest: Path, *, force: bool) -> None:
    """Refuse a ``dest`` that restore may not replace (:class:`ConflictError`, exit 5, naming it)."""
    if not os.path.lexists(dest):
        return
    if os.path.islink(dest) or not os.path.isdir(dest):
        raise ConflictError("exists and is not a folder", file=str(dest), expected="a new or empty folder",
                            hint="restore writes a folder; choose another DEST")
    if not force and any(True for _ in os.scandir(dest)):
        raise ConflictError("is not empty", file=str(dest), expected="a new or empty folder",
                            hint="--force replaces it (its content is removed)")


def restore(manifest: Manifest, objects: ObjectStore, dest: Path, *, force: bool = False,
            progress: Callable[[int, int], None] | None = None, durable: bool = True) -> dict[str, Any]:
    """Rebuild ``manifest``'s files as the folder ``dest`` (see the module docstring); returns a summary.

    ``durable`` False leaves out the sync before the rename (a run's copy of a version, verified file by file
    whenever it is used: :mod:`edgeorch.engine.datasetinputs`)."""
    dest = Path(os.path.abspath(dest))
    check_dest(dest, force=force)
    for f in manifest.files:
        p = PurePosixPath(str(f["path"]))
        if p.is_absolute() or ".." in p.parts or not p.parts:
            raise UsageError("the version names a file outside its folder; the state file was altered",
                             value=str(f["path"]), field=manifest.ref)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.parent / f".{dest.name}.restore-{secrets.token_hex(6)}"
    os.mkdir(tmp, 0o755)
    total, done = manifest.size, 0
    try:
        folders = {tmp}
        for f in manifest.files:
            target = tmp / str(f["path"])
            if target.parent not in folders:
                target.parent.mkdir(parents=True, exist_ok=True)
                folders.update([target.parent, *target.parent.parents])
            whole = hashlib.sha256()
            fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
            try:
                for sha in f["chunks"]:
                    info = manifest.chunks.get(sha)
                    if info is None:
                        raise CorruptObject(f"chunk {sha} has no record ({manifest.ref}, file {f['path']})")
                    data = objects.read(sha, str(info["codec"]), int(info["size"]),
                                        what=f"dataset {manifest.ref}, file {f['path']}")
                    whole.update(data)
                    view = memoryview(data)
                    while view:
                        view = view[os.write(fd, view):]
                    done += len(data)
                    if progress is not None:
                        progress(done, total)
                if whole.hexdigest() != f["sha256"]:
                    raise CorruptObject(f"file {f['path']} of dataset {manifest.ref} does not match its recorded "
                                        "sha256 after its chunks were joined; the state file's chunk list is wrong")
                # Permission bits only: setuid, setgid and sticky are never restored. Anyone who may add a version
                # planted a setuid file that root's restore then recreated, owned by root.
                os.fchmod(fd, int(f["mode"]) & 0o777)
            finally:
                os.close(fd)
        if durable:
            _make_durable(tmp, [tmp / str(f["path"]) for f in manifest.files],
                          [d for d in folders if d == tmp or tmp in d.parents])
        _swap_into_place(tmp, dest, force=force, durable=durable)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return {"dataset": manifest.ref, "dest": str(dest), "files": len(manifest.files), "bytes": total}


def _swap_into_place(tmp: Path, dest: Path, *, force: bool, durable: bool = True) -> None:
    """Rename ``tmp`` onto ``dest``: in one rename when ``dest`` is absent or empty; else (``force``) via an aside."""
    try:
        os.rename(tmp, dest)  # replaces an empty folder atomically
    except OSError as exc:
        if not force or exc.errno not in (errno.ENOTEMPTY, errno.EEXIST):
            raise
        aside = dest.parent / f".{dest.name}.old-{secrets.token_hex(6)}"
        os.rename(dest, aside)
        os.rename(tmp, dest)
        shutil.rmtree(aside, ignore_errors=True)
    if durable:
        fsync_dir(dest.parent)


def _make_durable(tmp: Path, files: list[Path], folders: list[Path]) -> None:
    """Everything written under ``tmp`` on disk before the rename: one ``syncfs(2)`` of its filesystem
    (a restore of many small files would spend most of its time in one fsync per file), else an
    fsync of each file and folder."""
    if syncfs(tmp):
        return
    for path in files:  # pragma: no cover - where syncfs(2) is missing
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    for folder in sorted(folders, key=lambda p: len(p.parts), reverse=True):  # pragma: no cover
        fsync_dir(folder)


