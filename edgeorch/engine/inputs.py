"""A task's declared inputs: hashed before an attempt starts (in the engine's hashing worker), re-checked at the start.

What an entry's hash is (docs/lineage.md, "What is hashed"):

- a **file** (a symbolic link is followed): the sha256 of its content;
- a **folder**: the sha256 of its *manifest*, the text ``<sha256>  <name>\\n``
  for every regular file below it (``name`` relative to the folder, ``/``
  separated), sorted by name as bytes: exactly what
  ``find . -type f -printf '%P\\0' | LC_ALL=C sort -z | xargs -0 sha256sum``
  prints inside the folder (for names without a newline or backslash), so
  ``... | sha256sum`` reproduces it. Links to files are followed, links to
  folders are not descended, FIFOs, sockets and devices are left out;
- a **glob**: the manifest of the files it matches (a matched folder
  contributes every file below it), names relative to the glob's leading
  folder without wildcards (:func:`~edgeorch.pipelines.inputs.glob_base`).
  A glob that matches no file is an error, like a missing path.

Hashing happens when the task becomes ready (its cache key needs the hashes),
which may be long before it starts (a queue for a GPU). So every file and
folder looked at is *stamped* (device, inode, size, mtime, ctime): when the
attempt starts, :func:`changed_since` re-reads the stamps (``stat`` only, on
the loop) and, if anything changed, the engine hashes again before starting.
A changed folder listing (a file added, removed or renamed) changes its
folder's stamp.

Nothing here touches the state file; :func:`hash_inputs` runs in a worker
thread and only reads the filesystem.
"""

from __future__ import annotations

import glob
import hashlib
import os
import stat
from dataclasses import field, replace
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from ..pipelines.inputs import glob_base, is_glob, template_is_glob
from ..records import frozen
from .files import Refused, hash_regular_file

Stamp = tuple[int, int, int, int, int]
"""``(st_dev, st_ino, st_size, st_mtime_ns, st_ctime_ns)``: what says a file or folder is unchanged."""


@frozen
class ConsumedItem:
    """One thing an attempt consumed, as recorded in the ``consumed`` table.

    ``kind``: ``file``, ``folder`` or ``glob`` (a declared input; ``spec`` is
    the entry as written, ``path`` absolute: a glob's absolute pattern), or
    ``upstream`` (an output of a task in ``needs``; ``source_*`` say whose).
    ``sha256``: the content's, or a folder's or glob's manifest hash;
    ``size``: bytes (all files together for a folder or glob); ``members``:
    a folder's or glob's ``(name, sha256, size)``, sorted by name.
    """

    kind: str
    path: str
    sha256: str
    size: int
    spec: str | None = None
    files: int | None = None
    members: tuple[tuple[str, str, int], ...] = ()
    source_run: int | None = None
    source_task: str | None = None
    source_attempt: int | None = None

    def to_row(self) -> dict[str, Any]:
        """The fields :meth:`edgeorch.store.lineage.Lineage.record_consumed` takes."""
        return {"kind": self.kind, "spec": self.spec, "path": self.path, "sha256": self.sha256, "size": self.size,
                "files": self.files, "members": self.members, "source_run": self.source_run,
                "source_task": self.source_task, "source_attempt": self.source_attempt}


@frozen
class InputsSnapshot:
    """A task's declared inputs as hashed: one item per entry (declaration order) and the stamps taken.

    A container task's image counts as one more input (kind ``image``: its reference and digest).
    """

    items: tuple[ConsumedItem, ...]
    stamps: tuple[tuple[str, Stamp], ...] = field(default=(), repr=False)
    image: Any = None
    """A container task's image as resolved with its inputs (``containers.image.ResolvedImage``, also the last
    of ``items``); None for a host task."""
    unplaced: tuple[tuple[str, Any], ...] = field(default=(), repr=False)
    """The data versions hashed but not put in the run's folder yet (``(entry as written, DatasetInput)``):
    a cached task's versions are placed only once its cache missed (:func:`place_datasets`), never for a hit.
    Their items are in ``items`` already (a version's hash is its manifest's: nothing to read)."""

    def key(self) -> list[list[str]]:
        """What the cache key takes from the inputs: ``[entry as written, kind, sha256]`` per entry."""
        return [[i.spec or "", i.kind, i.sha256] for i in self.items]


class InputError(Exception):
    """A declared input cannot be hashed: the message names the task's field, the entry and the path."""


def upstream_items(upstream: dict[str, list[dict[str, Any]]]) -> list[ConsumedItem]:
    """The recorded outputs of the tasks in ``needs`` (``store.outputs.latest_artifacts`` rows) as consumed items."""
    return [ConsumedItem("upstream", a["path"], a["sha256"], a["size"], source_run=a["run_id"], source_task=up,
                         source_attempt=a["attempt_id"])
            for up, arts in sorted(upstream.items()) for a in arts]


def hash_inputs(task: str, declared: Sequence[tuple[str, str]], cwd: Path,
                datasets: Mapping[int, Any] | None = None, *, place: bool = True) -> InputsSnapshot:
    """Hash each declared entry ``(as written, substituted)`` of ``task``; relative paths are relative to ``cwd``.

    ``datasets``: the ``dataset:`` entries, by index, as resolved on the loop
    (:class:`~edgeorch.engine.datasetinputs.DatasetInput`): each is put in its
    folder in the run, verified or restored (:func:`_place_dataset`); with
    ``place=False`` only named (its manifest's hash is the item's), and left
    in :attr:`InputsSnapshot.unplaced` for :func:`place_datasets`.
    Raises :class:`InputError` naming ``tasks.<task>.inputs[i]``, the entry and
    the path for an input that is missing, matches nothing, is not a file or
    folder, or cannot be read. Runs in a worker thread (reads every byte).
    """
    stamps: dict[str, Stamp] = {}
    items = []
    unplaced: list[tuple[str, Any]] = []
    for i, (written, text) in enumerate(declared):
        where = f"tasks.{task}.inputs[{i}] = {written!r}"
        if datasets and i in datasets and not place:
            items.append(_dataset_item(written, datasets[i]))
            unplaced.append((where, datasets[i]))
            continue
        if datasets and i in datasets:
            try:
                items.append(_place_dataset(written, datasets[i], stamps))
            except InputError as exc:
                raise InputError(f"declared input {where}: {exc}") from None
            continue
        if not text.strip():  # an empty param: joined to the working folder it named all of it, hashed whole
            raise InputError(f"declared input {where}: is empty once its placeholders are filled in (a parameter "
                             "given as ''?); expected a file, folder or glob path")
        path = text if os.path.isabs(text) else os.path.join(cwd, text)
        pattern = template_is_glob(written)  # a wildcard a placeholder's value brought in is a name's, not one
        path = os.path.normpath(path) if not pattern else path
        try:
            items.append(_hash_glob(written, path, stamps) if pattern else _hash_path(written, path, stamps))
        except InputError as exc:
            raise InputError(f"declared input {where}: {exc}") from None
        except Refused as exc:
            raise InputError(f"declared input {where}: {exc}") from None
        except FileNotFoundError:
            raise InputError(f"declared input {where}: {path} does not exist") from None
        except OSError as exc:
            raise InputError(f"declared input {where}: cannot read {exc.filename or path}: "
                             f"{exc.strerror or exc}") from None
    return InputsSnapshot(tuple(items), tuple(stamps.items()), unplaced=tuple(unplaced))


def place_datasets(snapshot: InputsSnapshot) -> InputsSnapshot:
    """``snapshot`` with its :attr:`~InputsSnapshot.unplaced` data versions put in the run's folder and stamped
    (:func:`_place_dataset`), in the hashing worker, once the task is to start. Raises :class:`InputError` as
    :func:`hash_inputs` does (a version that cannot be restored)."""
    stamps = dict(snapshot.stamps)
    for where, d in snapshot.unplaced:
        try:
            _place_dataset(where, d, stamps)
        except InputError as exc:
            raise InputError(f"declared input {where}: {exc}") from None
    return replace(snapshot, stamps=tuple(stamps.items()), unplaced=())


def changed_since(snapshot: InputsSnapshot) -> str | None:
    """The first file or folder whose stamp differs from the snapshot's (gone, replaced, written), or None.

    ``stat`` calls only (one per file and folder hashed): cheap enough for the loop.
    """
    for path, old in snapshot.stamps:
        try:
            if _stamp(os.stat(path)) != old:
                return path
        except OSError:
            return path
    return None


def manifest_hash(members: Iterable[tuple[str, str, int]]) -> str:
    """sha256 of a manifest: ``<sha256>  <name>\\n`` per member, in the order given (sorted by name bytes)."""
    h = hashlib.sha256()
    for name, sha, _size in members:
        h.update(sha.encode("ascii") + b"  " + os.fsencode(name) + b"\n")
    return h.hexdigest()


def _place_dataset(written: str, d: Any, stamps: dict[str, Stamp]) -> ConsumedItem:
    """Make ``d.dest`` hold exactly the files of data version ``d`` (a ``DatasetInput``) and stamp them.

    Kept as it is when every file's sha256 and size match the version's and nothing else is there (an earlier
    task or attempt of the run put it there); else rebuilt from the object store beside it and renamed into
    place (a link or file in its place is removed first: a task may have put one there). Not made durable: a
    folder cut short by a crash differs from its version, and is rebuilt the next time. Recorded as consumed
    with the version's reference as its path and its manifest sha256 as its hash (the cache key's part).
    """
    from ..datasets.restore import RestoreFailed, remove_abandoned, restore
    from ..errors import EdgeorchError

    want = {str(f["path"]): (str(f["sha256"]), int(f["size"])) for f in d.manifest.files}
    _real_folder(os.path.dirname(d.dest))  # {run_dir}/datasets: never through a link a task put there
    found = _files_at(d.dest)
    if found is None or found[0] != want:
        if os.path.islink(d.dest) or (os.path.lexists(d.dest) and not os.path.isdir(d.dest)):
            os.unlink(d.dest)
        remove_abandoned(Path(d.dest), fresh_s=0)  # a kill -9 mid-placement: the run's tasks would see them
        shas = [sha for f in d.manifest.files for sha in f["chunks"]]
        d.objects.pin(shas)  # kept from a prune's garbage sweep while they are read
        try:
            restore(d.manifest, d.objects, Path(d.dest), force=True, durable=False)
        except RestoreFailed as exc:  # a full disk, no permission
            raise InputError(f"{d.ref} cannot be put in {d.dest}: {exc.reason}") from None
        except EdgeorchError as exc:  # a missing or corrupted object (CorruptObject), a tampered file list
            raise InputError(f"{d.ref} cannot be restored: {exc.one_line()}") from None
        except OSError as exc:
            raise InputError(f"{d.ref} cannot be put in {d.dest}: {exc.strerror or exc}") from None
        finally:
            d.objects.unpin(shas)
        found = _files_at(d.dest)
        if found is None or found[0] != want:
            raise InputError(f"{d.dest} does not hold {d.ref} after it was restored (changed meanwhile?)")
    stamps.update(found[1])
    return _dataset_item(written, d)


def _dataset_item(written: str, d: Any) -> ConsumedItem:
    """Data version ``d`` as a consumed item: its reference as the path, its manifest's sha256 as the hash."""
    return ConsumedItem("dataset", d.ref, d.manifest_sha256, sum(int(f["size"]) for f in d.manifest.files),
                        spec=written, files=len(d.manifest.files))


def _real_folder(path: str) -> None:
    """Make ``path`` a folder of its own: a link or a file a task put in its place is removed first (a link
    there sent a restore's writes and removals into the folder it named, outside the run's)."""
    if os.path.islink(path) or (os.path.lexists(path) and not os.path.isdir(path)):
        os.unlink(path)
    os.makedirs(path, exist_ok=True)


def _files_at(folder: str) -> tuple[dict[str, tuple[str, int]], dict[str, Stamp]] | None:
    """Every entry below ``folder`` as ``{relative path: (sha256, size)}`` with the stamps taken, or None when it
    is no folder or holds something that is not a regular file (a link, a FIFO: never a version's)."""
    if os.path.islink(folder) or not os.path.isdir(folder):
        return None
    files: dict[str, tuple[str, int]] = {}
    stamps: dict[str, Stamp] = {}
    try:
        for dirpath, dirs, names in os.walk(folder, followlinks=False):
            stamps[dirpath] = _stamp(os.stat(dirpath))
            for name in dirs:
                if os.path.islink(os.path.join(dirpath, name)):
                    return None
            for name in names:
                full = os.path.join(dirpath, name)
                st = os.lstat(full)
                if not stat.S_ISREG(st.st_mode):
                    return None
                sha, fst = hash_regular_file(Path(full))
                stamps[full] = _stamp(fst)
                files[os.path.relpath(full, folder).replace(os.sep, "/")] = (sha, fst.st_size)
    except (OSError, Refused):
        return None
    return files, stamps


def _stamp(st: os.stat_result) -> Stamp:
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def _hash_path(written: str, path: str, stamps: dict[str, Stamp]) -> ConsumedItem:
    st = os.stat(path)
    if stat.S_ISDIR(st.st_mode):
        members: dict[str, tuple[str, int]] = {}
        _walk(path, "", members, stamps)
        return _manifest_item("folder", written, path, members)
    sha, fst = hash_regular_file(Path(path))
    stamps[path] = _stamp(fst)
    return ConsumedItem("file", path, sha, fst.st_size, spec=written)


def _hash_glob(written: str, pattern: str, stamps: dict[str, Stamp]) -> ConsumedItem:
    base = glob_base(pattern)
    members: dict[str, tuple[str, int]] = {}
    for match in sorted(glob.glob(pattern, recursive=True)):
        rel = os.path.relpath(match, base) if base else match
        st = os.stat(match)
        if stat.S_ISDIR(st.st_mode):
            _walk(match, rel, members, stamps)
        elif stat.S_ISREG(st.st_mode):
            sha, fst = hash_regular_file(Path(match))
            stamps[match] = _stamp(fst)
            members[rel] = (sha, fst.st_size)
    for folder in _listed_folders(pattern):  # a file added where the pattern looks changes these
        try:
            stamps[folder] = _stamp(os.stat(folder))
        except OSError:
            continue
    if not members:
        raise InputError(f"{pattern} matches no file")
    return _manifest_item("glob", written, pattern, members)


def _listed_folders(pattern: str) -> set[str]:
    """The folders whose listing decides what ``pattern`` matches (its leading folder and every folder a
    wildcard component is matched in)."""
    parts = pattern.split("/")
    out: set[str] = set()
    base = glob_base(pattern)
    if base and os.path.isdir(base):
        out.add(base)
    for k in range(1, len(parts)):
        prefix = "/".join(parts[:k]) or "/"
        if is_glob(prefix):
            out.update(p for p in glob.glob(prefix, recursive=True) if os.path.isdir(p))
    return out


def _walk(root: str, prefix: str, members: dict[str, tuple[str, int]], stamps: dict[str, Stamp]) -> None:
    """Add every regular file below ``root`` to ``members`` (names ``prefix/relative``); stamp each folder."""
    def fail(exc: OSError) -> None:
        raise exc

    for dirpath, _dirs, files in os.walk(root, onerror=fail, followlinks=False):
        stamps[dirpath] = _stamp(os.stat(dirpath))
        for name in files:
            full = os.path.join(dirpath, name)
            rel = os.path.relpath(full, root)
            try:
                sha, fst = hash_regular_file(Path(full))
            except Refused:
                continue  # a FIFO, socket or device is not data
            except FileNotFoundError:
                continue  # a dangling link, or removed while walking (the folder's stamp changed: hashed again)
            stamps[full] = _stamp(fst)
            members[f"{prefix}/{rel}" if prefix else rel] = (sha, fst.st_size)


def _manifest_item(kind: str, written: str, path: str, members: dict[str, tuple[str, int]]) -> ConsumedItem:
    ordered = tuple((name, members[name][0], members[name][1]) for name in sorted(members, key=os.fsencode))
    return ConsumedItem(kind, path, manifest_hash(ordered), sum(m[2] for m in ordered), spec=written,
                        files=len(ordered), members=ordered)
