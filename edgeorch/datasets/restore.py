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
  naming the object and the version; a full disk or a folder it may not write:
  :class:`RestoreFailed`, naming ``dest``, the version's file and, for a full
  disk, what it needs and what is free) removes the temporary folder and leaves
  ``dest`` as it was (with ``force``, a failed second rename puts the old
  folder back). Only a failed sync of ``dest``'s parent after the rename
  leaves the version in place, and its error says so.
- A restore killed (``kill -9``, a power cut) leaves its temporary folder:
  the next restore to the same ``dest`` removes it (:func:`remove_abandoned`).
  Each restore holds an ``flock`` on its own temporary folder while it works,
  so a leftover is one whose lock can be taken and which is older than
  :data:`FRESH_S` (a restore makes its folder, then locks it); the folder of a
  restore still under way is left alone. What it leaves is in the result
  (``left_behind``, each with why), and the command says so. The old content a killed ``force``
  had renamed aside is removed only once ``dest`` is a folder again (before,
  it may be the only copy). Nothing is removed in a folder others may write
  to, unless it is sticky (``/tmp``): there another user could rename one of
  this user's folders to such a name.
- Paths from the manifest that are absolute or contain ``..`` are refused
  (a tampered state file cannot write outside ``dest``).
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import os
import re
import secrets
import shutil
import stat as stat_mod
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path, PurePosixPath
from typing import Any

from ..durable import fsync_dir, syncfs
from ..errors import ConflictError, EdgeorchError, UsageError
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


class RestoreFailed(EdgeorchError):
    """The version could not be written as ``dest`` (a full disk, a folder this user may not write, an I/O error):
    nothing of it is left there. Exit 77 when permission was denied, else 1."""

    code = "restore_failed"

    def __init__(self, message: str, *, reason: str, denied: bool = False, **kw: Any) -> None:
        super().__init__(message, **kw)
        self.reason = reason
        """Why, without the version or ``dest`` (for a caller that names them its own way)."""
        if denied:
            self.exit_code = 77


def check_dest(dest: Path, *, force: bool) -> None:
    """Refuse a ``dest`` that restore may not replace (:class:`ConflictError`, exit 5, naming it)."""
    if not os.path.lexists(dest):
        return
    if os.path.islink(dest) or not os.path.isdir(dest):
        raise ConflictError("exists and is not a folder", file=str(dest), expected="a new or empty folder",
                            hint="restore writes a folder; choose another DEST")
    if os.path.ismount(dest):  # the final rename cannot replace it (EBUSY), after the whole version was written
        raise UsageError("is a mount point: a restore puts its folder in place by a rename, which a mount point "
                         "refuses", file=str(dest), expected="a folder that is not a mount point",
                         hint=f"restore into a folder inside it: {os.path.join(dest, 'NAME')}")
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
    total, done = manifest.size, 0
    writing: str | None = None  # the version's file being written, for a failure's message
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        left = remove_abandoned(dest)
        tmp = _beside(dest, "restore")
        os.mkdir(tmp, 0o755)
        try:
            lock = _hold(tmp)
        except OSError:
            os.rmdir(tmp)
            raise
    except OSError as exc:
        raise _failed(exc, dest, manifest, None) from None
    try:
        folders = {tmp}
        for f in manifest.files:
            writing = str(f["path"])
            target = tmp / writing
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
        writing = None
        if durable:
            _make_durable(tmp, [tmp / str(f["path"]) for f in manifest.files],
                          [d for d in folders if d == tmp or tmp in d.parents])
        _swap_into_place(tmp, dest, force=force, durable=durable)
    except BaseException as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(exc, OSError) and not isinstance(exc, EdgeorchError):
            raise _failed(exc, dest, manifest, writing) from None
        raise
    finally:
        os.close(lock)
    return {"dataset": manifest.ref, "dest": str(dest), "files": len(manifest.files), "bytes": total,
            "left_behind": left}


def _failed(exc: OSError, dest: Path, manifest: Manifest, writing: str | None) -> RestoreFailed:
    """``exc`` as the user sees it: ``dest`` named (never the temporary folder), the version's file being written,
    and for a full disk what the version needs and what is free there."""
    what = f"cannot restore {manifest.ref}" + (f" (writing its file {writing})" if writing else "")
    reason = exc.strerror or str(exc)
    hint = None
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        try:
            free = shutil.disk_usage(dest.parent).free
            reason += f": the version needs {manifest.size} bytes, {free} are free there"
        except OSError:
            pass
        hint = "free space there, or restore into a folder on another file system"
    denied = exc.errno in (errno.EACCES, errno.EPERM)
    if denied:
        hint = "restore into a folder this user may write"
    elif exc.errno == errno.EROFS:
        hint = "that file system is mounted read-only: restore into a folder on another one"
    return RestoreFailed(f"{what}: {reason}; nothing of it was left there", file=str(dest), hint=hint, denied=denied,
                         reason=reason)


FRESH_S = 1.0
"""A temporary folder younger than this (seconds, by its modification time: a restore adds its files right after
making it) is never taken for a killed restore's."""


SIDE_KINDS = ("restore", "old")
"""What a restore names beside ``dest``: its temporary folder, and the old content a ``force`` sets aside."""


def _beside(dest: Path, kind: str) -> Path:
    """A new name beside ``dest`` for a restore's ``kind`` of folder: ``.<dest name>.<kind>-<12 hex>`` (the names
    :func:`remove_abandoned` recognises)."""
    return dest.parent / f".{dest.name}.{kind}-{secrets.token_hex(6)}"


def _hold(folder: Path) -> int:
    """A descriptor of ``folder`` holding an exclusive ``flock`` on it, for as long as it stays open (a restore's
    own temporary folder: :func:`remove_abandoned` leaves a held one alone)."""
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BaseException:
        os.close(fd)
        raise
    return fd


def remove_abandoned(dest: Path, *, fresh_s: float = FRESH_S) -> list[dict[str, str]]:
    """Remove what killed restores to ``dest`` left beside it: their temporary folders (``.<name>.restore-<12
    hex>``) and the old content a ``force`` had renamed aside (``.<name>.old-<12 hex>``). Only folders of this
    user that no restore holds locked and that are ``fresh_s`` seconds old or more; others' folders and links are
    left alone, and so is an old content while ``dest`` is not a folder (a ``force`` killed between its two renames:
    it may be the only copy). Nothing in a folder others may write to unless it is sticky (see the module's doc).
    ``fresh_s=0``: a folder no other process restores into (a run's own datasets folder). Returns what it left in
    place, each ``{"path", "why"}`` (a caller says so: hidden folders of a killed restore can hold gigabytes)."""
    pattern = re.compile(re.escape(f".{dest.name}.") + f"({'|'.join(SIDE_KINDS)})-[0-9a-f]{{12}}")
    try:
        parent = os.stat(dest.parent)
        entries = [(e, m.group(1)) for e in os.scandir(dest.parent) if (m := pattern.fullmatch(e.name))]
    except OSError:
        return []
    if parent.st_mode & 0o022 and not parent.st_mode & stat_mod.S_ISVTX:
        why = "its folder is writable by other users (not sticky): another user could have named it so"
        return [{"path": e.path, "why": why} for e, _ in entries]
    placed = os.path.isdir(dest) and not os.path.islink(dest)
    left: list[dict[str, str]] = []
    for entry, kind in entries:
        if kind == "old" and not placed:
            left.append({"path": entry.path, "why": "the old content a killed --force set aside, while DEST is "
                                                    "missing: it may be the only copy"})
            continue
        try:
            fd = os.open(entry.path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except OSError:
            continue  # a link, gone, or not a folder: not a restore's
        try:
            st = os.fstat(fd)
            if st.st_uid != os.geteuid() or not stat_mod.S_ISDIR(st.st_mode):
                continue  # not this user's: not a restore of this user's
            # A folder made a moment ago may be one whose restore has not locked it yet (mkdir, then flock).
            if time.time() - st.st_mtime < fresh_s:
                left.append({"path": entry.path, "why": f"made less than {FRESH_S:g} s ago: maybe a restore starting"})
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                left.append({"path": entry.path, "why": "a restore under way holds it"})
                continue
            shutil.rmtree(entry.path, ignore_errors=True)
        finally:
            os.close(fd)
    return left


def _swap_into_place(tmp: Path, dest: Path, *, force: bool, durable: bool = True) -> None:
    """Rename ``tmp`` onto ``dest``: in one rename when ``dest`` is absent or empty; else (``force``) via an aside."""
    try:
        os.rename(tmp, dest)  # replaces an empty folder atomically
    except OSError as exc:
        if not force or exc.errno not in (errno.ENOTEMPTY, errno.EEXIST):
            raise
        aside = _beside(dest, "old")
        os.rename(dest, aside)
        try:
            os.rename(tmp, dest)
        except OSError:
            os.rename(aside, dest)  # the old folder back: dest as it was
            raise
        shutil.rmtree(aside, ignore_errors=True)
    if durable:
        try:
            fsync_dir(dest.parent)
        except OSError as exc:  # in place, but maybe not after a power cut: said as it is
            reason = exc.strerror or str(exc)
            raise RestoreFailed(f"the version is in place, but its folder could not be synced to disk: {reason}; "
                                "it may not survive a power cut", file=str(dest), reason=reason) from None


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


