"""Taking a snapshot: a file or folder cut into chunks, each stored once in the object store.

:func:`take_snapshot` runs in a worker thread (it reads and hashes every byte;
nothing here touches the state file). It returns a :class:`Snapshot`, the
plain data a version is recorded from (``store.datasets.record_version``),
holding **pins** on every chunk it uses until :meth:`Snapshot.release`: the
caller releases them after the version's transaction committed, or gave up.

Contract:

- Regular files only. Inside a folder nothing is followed: a symbolic link,
  FIFO, socket or device raises :class:`SourceError` naming it (a dataset that
  silently left a file out would restore to something else). The top-level
  path itself may be a link to a file or folder (the user named it).
- Files are opened without following links, relative to their folder's
  descriptor; a file that changes while it is read (size or mtime) raises
  :class:`SourceError`, so a version is never a mix of two states of a file.
- Every object is written atomically (temp + fsync + rename) and the folders
  that received new objects are fsynced before this returns: a version
  committed from the snapshot never names an object a power cut could undo.
- A folder's own state folder (the object store's ``<state dir>``, or the
  store itself) below it is left out, never read: ``edgeorch datasets add
  NAME .`` in a project whose state is ``./var`` would otherwise store the
  live database (torn while the daemon writes it), its socket (refused) and
  the store's own objects. :attr:`Snapshot.left_out` names what was.
- On any error (or ``cancel``), the pins are released and the error raised;
  objects already written are garbage for the next prune. A chunk the store
  cannot take (a full disk) is a :class:`~edgeorch.errors.StateError` naming
  the objects folder; a source that cannot be read is a :class:`SourceError`.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import stat as stat_mod
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, cast

from ..errors import EdgeorchError, NotFoundError, StateError, UsageError
from ..records import frozen
from .chunker import DEFAULT, ChunkParams, iter_chunks
from .objects import ZSTD_LEVEL, ObjectStore

Progress = Callable[[int, int], None]
"""``progress(bytes_done, bytes_total)``, called from the worker thread after each chunk."""

MayRead = Callable[[int, os.stat_result], bool]
"""``may_read(fd, st)``: whether the requester may read the opened file (the daemon's peer check)."""


class SourceError(UsageError):
    """The path to snapshot holds something a dataset cannot hold, or changed while it was read."""


class SnapshotCancelled(EdgeorchError):
    """The snapshot was cancelled (its requester went away)."""

    code = "cancelled"
    exit_code = 130


@frozen
class FileEntry:
    """One file of a version: its path (relative, ``/``-separated), size, permission bits, sha256, chunks."""

    path: str
    size: int
    mode: int
    sha256: str
    chunks: tuple[str, ...]


@frozen
class ChunkEntry:
    """One distinct chunk of a snapshot and its object: ``written`` when this snapshot stored it."""

    sha256: str
    size: int
    stored_size: int
    codec: str
    written: bool


@dataclass
class Snapshot:
    """The files and chunks of a snapshot; see the module docstring for the pins."""

    source: str
    files: list[FileEntry]
    chunks: dict[str, ChunkEntry]
    objects: ObjectStore
    _pinned: list[str] = field(default_factory=list, repr=False)
    left_out: list[str] = field(default_factory=list)
    """Folders below the source that were not read (relative, ``/``-separated): edgeorch's own state."""

    @property
    def size(self) -> int:
        """Bytes of content (what a plain copy would take)."""
        return sum(f.size for f in self.files)

    @property
    def manifest_sha256(self) -> str:
        """The version's content identity: sha256 over the sorted (path, size, mode, sha256) of its files."""
        doc = [[f.path, f.size, f.mode, f.sha256] for f in sorted(self.files, key=lambda f: f.path)]
        return hashlib.sha256(json.dumps(doc, separators=(",", ":")).encode()).hexdigest()

    def release(self) -> None:
        """Drop the pins (idempotent): call once the version is committed, or abandoned."""
        pinned, self._pinned = self._pinned, []
        if pinned:
            self.objects.unpin(pinned)


def take_snapshot(source: Path | str, objects: ObjectStore, *, compress: bool = False,
                  params: ChunkParams = DEFAULT, progress: Progress | None = None,
                  cancel: threading.Event | None = None, may_read: MayRead | None = None,
                  name: str | None = None) -> Snapshot:
    """Chunk and store ``source`` (a file: one entry named ``name`` or its own name; a folder: its tree).

    Raises :class:`~edgeorch.errors.NotFoundError` when ``source`` does not
    exist, :class:`SourceError` for what a dataset cannot hold (see the module
    docstring), a file or folder that cannot be read or that ``may_read``
    refuses, :class:`SnapshotCancelled` when ``cancel`` is set, and
    :class:`~edgeorch.errors.StateError` when the object store cannot take a
    chunk (a full disk).
    """
    src = Path(source)
    try:
        st = os.stat(src)
    except FileNotFoundError:
        raise NotFoundError("no such file or folder", file=str(src), expected="a file or folder to add") from None
    except OSError as exc:
        raise SourceError(f"cannot read: {exc.strerror}", file=str(src)) from None
    snap = Snapshot(str(src), [], {}, objects)
    job = _Job(snap, compress, params, progress, cancel, may_read)
    try:
        store_root = Path(os.path.realpath(objects.root))
        if Path(os.path.realpath(src)).is_relative_to(store_root) and Path(os.path.realpath(src)) != store_root:
            # Its subfolders and objects were taken (`datasets add folds var/datasets/objects` made a version of
            # 1,258 chunk files); the store itself, and the state folder, are refused below.
            raise SourceError("is inside edgeorch's own dataset store (stored chunks, not data)", file=str(src),
                              expected="a file or folder of data",
                              hint="`edgeorch datasets restore NAME DEST` rebuilds a version's files")
        _check_text_name(os.path.dirname(os.path.abspath(src)), os.path.basename(os.path.abspath(src)))
        if stat_mod.S_ISREG(st.st_mode):
            _check_text_name(str(src.parent), name or src.name)
            job.total = st.st_size
            real = Path(os.path.realpath(src))  # the user named this path: a link to a file is followed
            dir_fd = os.open(real.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            try:
                job.add_file(real.name, name or src.name, dir_fd, shown=src)
            finally:
                os.close(dir_fd)
        elif stat_mod.S_ISDIR(st.st_mode):
            own = _folder_ids([objects.root.parent, objects.root])
            if (st.st_dev, st.st_ino) in own:
                raise SourceError("is edgeorch's own state folder (its live database, socket and stored data), "
                                  "not data", file=str(src), expected="a file or folder of data",
                                  hint="back the state up with sqlite3's .backup (docs/operations.md)")
            job.total = _tree_size(src, own)
            root = Path(os.path.realpath(src))
            for dirpath, dirs, files, dir_fd in _walk(root):
                rel = Path(dirpath).relative_to(root)
                for d in _prune(dirs, dir_fd, own):
                    snap.left_out.append((rel / d).as_posix())
                dirs.sort()
                for name in (*dirs, *files):
                    _check_text_name(dirpath, name)
                for d in dirs:  # fwalk lists a link to a folder among the folders and never enters it
                    if os.path.islink(os.path.join(dirpath, d)):
                        raise SourceError("is a symbolic link; a dataset holds regular files only and never "
                                          "follows links", file=os.path.join(dirpath, d))
                for f in sorted(files):
                    job.add_file(f, (rel / f).as_posix(), dir_fd, shown=Path(dirpath, f))
        else:
            raise SourceError("is neither a regular file nor a folder", file=str(src),
                              expected="a file or folder to add")
        snap.files.sort(key=lambda e: e.path)
        if job.folders:
            try:
                ObjectStore.sync([*job.folders, objects.objects, objects.root])
            except OSError as exc:
                raise StateError(f"cannot make the stored chunks durable: {exc.strerror}",
                                 file=str(objects.objects)) from None
    except BaseException:
        snap.release()
        raise
    return snap


class _Job:
    """The state of one snapshot while it runs (the worker thread's only)."""

    def __init__(self, snap: Snapshot, compress: bool, params: ChunkParams, progress: Progress | None,
                 cancel: threading.Event | None, may_read: MayRead | None) -> None:
        self.snap = snap
        self.params = params
        self.progress = progress
        self.cancel = cancel
        self.may_read = may_read
        self.total = 0
        self.done = 0
        self.folders: set[Path] = set()
        self.compress = None
        if compress:
            import zstandard

            self.compress = zstandard.ZstdCompressor(level=ZSTD_LEVEL).compress

    def add_file(self, name: str, rel: str, dir_fd: int, *, shown: Path) -> None:
        """Chunk, hash and store one file opened as ``name`` in ``dir_fd``; append its entry as ``rel``."""
        try:
            fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=dir_fd)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise SourceError("is a symbolic link; a dataset holds regular files only and never follows links",
                                  file=str(shown)) from None
            raise SourceError(f"cannot read: {exc.strerror}", file=str(shown)) from None
        try:
            st = os.fstat(fd)
            if not stat_mod.S_ISREG(st.st_mode):
                raise SourceError("is not a regular file (a FIFO, socket or device); a dataset holds regular "
                                  "files only", file=str(shown))
            if self.may_read is not None and not self.may_read(fd, st):
                raise SourceError("cannot read: Permission denied", file=str(shown),
                                  hint="the daemon adds a file for you only if you could read it yourself")
            entry = self._chunk(fd, rel, shown)
            after = os.fstat(fd)
        finally:
            os.close(fd)
        if (after.st_size, after.st_mtime_ns) != (st.st_size, st.st_mtime_ns) or entry.size != st.st_size:
            raise SourceError("changed while it was being added", file=str(shown),
                              hint="add it again once whatever writes it has finished")
        self.snap.files.append(entry)

    def _chunk(self, fd: int, rel: str, shown: Path) -> FileEntry:
        snap, objects = self.snap, self.snap.objects
        whole = hashlib.sha256()
        shas: list[str] = []
        size = 0
        with os.fdopen(fd, "rb", buffering=0, closefd=False) as f:
            chunks = iter_chunks(cast(BinaryIO, f), self.params, size_hint=os.fstat(fd).st_size)
            while True:
                try:
                    chunk = next(chunks)
                except StopIteration:
                    break
                except OSError as exc:  # EIO on the source: its fault, not the store's
                    raise SourceError(f"cannot read: {exc.strerror}", file=str(shown)) from None
                if self.cancel is not None and self.cancel.is_set():
                    raise SnapshotCancelled("the add was cancelled")
                whole.update(chunk)
                sha = hashlib.sha256(chunk).hexdigest()
                if sha not in snap.chunks:
                    objects.pin([sha])  # before looking for its object: see objects.py, "Pins"
                    snap._pinned.append(sha)
                    try:
                        stored = objects.put(sha, chunk, compress=self.compress)
                    except OSError as exc:  # a full disk, EIO: the state dir cannot take the chunk
                        full = exc.errno in (errno.ENOSPC, errno.EDQUOT)
                        # Said for what happened: a read-only file system was told to free space.
                        raise StateError(f"cannot store a chunk of {shown} in the object store: {exc.strerror}",
                                         file=str(objects.objects),
                                         hint="free space on the state dir's disk; `edgeorch datasets prune` "
                                              "removes old versions and what a failed add left" if full else
                                              "the object store must be writable by this user, on a file system "
                                              "mounted read-write") from None
                    snap.chunks[sha] = ChunkEntry(sha, len(chunk), stored.stored_size, stored.codec, stored.written)
                    if stored.written:
                        self.folders.add(objects.folder_of(sha))
                shas.append(sha)
                size += len(chunk)
                self.done += len(chunk)
                if self.progress is not None:
                    self.progress(self.done, self.total)
        return FileEntry(rel, size, os.fstat(fd).st_mode & 0o7777, whole.hexdigest(), tuple(shas))


def _unreadable(exc: OSError) -> None:
    """A folder the walk cannot list: refuse the snapshot (a version silently missing a folder is wrong)."""
    raise SourceError(f"cannot read: {exc.strerror}", file=exc.filename) from None


def _check_text_name(folder: str, name: str) -> None:
    """A :class:`SourceError` for a name that is not UTF-8 (its bytes, as ``os.fsdecode`` leaves them, are lone
    surrogates): a version records its files' paths (and its source's) as text, and such a name was an internal
    error at the record, after every chunk was stored. Checked for the source first, then for each folder's
    entries before they are read (chunks stored before that are unreferenced: the next prune's)."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        shown = os.fsencode(os.path.join(folder, name)).decode("utf-8", "backslashreplace")
        raise SourceError("its name is not valid UTF-8; a dataset records its files' names as text", file=shown,
                          expected="file and folder names in UTF-8", hint="rename it (e.g. with convmv)") from None


def _walk(root: Path) -> Iterator[tuple[str, list[str], list[str], int]]:
    """``os.fwalk`` of ``root`` (links not followed, top down); a folder that cannot be read is a
    :class:`SourceError`. fwalk hands a folder it cannot open to ``onerror`` but raises the error of one it
    opened and cannot list (``/proc`` has such folders): that one names the folder last walked, under which
    it lies (fwalk's error names only a descriptor)."""
    walk = os.fwalk(root, follow_symlinks=False, onerror=_unreadable)
    last = str(root)
    while True:
        try:
            item = next(walk)
        except StopIteration:
            return
        except OSError as exc:
            raise SourceError(f"cannot read a folder at or under this one: {exc.strerror}", file=last) from None
        last = item[0]
        yield item


def _folder_ids(paths: list[Path]) -> frozenset[tuple[int, int]]:
    """The (device, inode) of each of ``paths`` that is a folder now."""
    ids = set()
    for p in paths:
        try:
            st = os.stat(p)
        except OSError:
            continue
        if stat_mod.S_ISDIR(st.st_mode):
            ids.add((st.st_dev, st.st_ino))
    return frozenset(ids)


def _prune(dirs: list[str], dir_fd: int, skip: frozenset[tuple[int, int]]) -> list[str]:
    """Take the folders that are one of ``skip`` out of ``dirs`` (in place: a top-down walk then does not enter
    them); return their names."""
    out = []
    for d in list(dirs):
        try:
            st = os.stat(d, dir_fd=dir_fd, follow_symlinks=False)
        except OSError:
            continue
        if (st.st_dev, st.st_ino) in skip:
            dirs.remove(d)
            out.append(d)
    return sorted(out)


def _tree_size(root: Path, skip: frozenset[tuple[int, int]] = frozenset()) -> int:
    """Bytes of the regular files under ``root`` but the folders ``skip`` (for progress; links not followed).
    Never raises: a part that cannot be read counts nothing here, and the snapshot's own walk refuses it,
    naming it."""
    total = 0
    try:
        for _dirpath, dirs, files, dir_fd in os.fwalk(root, follow_symlinks=False, onerror=lambda exc: None):
            _prune(dirs, dir_fd, skip)
            for f in files:
                try:
                    st = os.stat(f, dir_fd=dir_fd, follow_symlinks=False)
                except OSError:
                    continue
                if stat_mod.S_ISREG(st.st_mode):
                    total += st.st_size
    except OSError:  # fwalk raises some errors of a folder it enters despite onerror (a stat of the folder)
        pass
    return total
