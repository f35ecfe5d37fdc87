"""The object store of dataset chunks: ``<state dir>/datasets/objects/<aa>/<sha256>[.zst]``.

Contract:

- An object is one chunk, named by the sha256 of its *uncompressed* bytes;
  ``.zst`` marks one stored zstd-compressed (the codec is in the name, so an
  object found on disk always says how to read it; the state file's
  ``dataset_chunks.codec`` says the same). A chunk is stored compressed only
  when that makes it smaller.
- :meth:`ObjectStore.put` is atomic and idempotent: the bytes go to a
  temporary file under ``tmp/`` (named with this process's pid), are fsynced,
  and renamed into place; a chunk already present (under either name) is
  read back and checked first, and written again only when it is corrupted
  (a damaged object never passes for the chunk: adding the data again heals
  it, as :meth:`ObjectStore.read`'s hint says). The folders that received renames are fsynced by
  :meth:`ObjectStore.sync` once per snapshot, before the version's rows are
  committed: a committed version never names an object a power cut undid.
- :meth:`ObjectStore.read` checks the sha256 of what it decoded and raises
  :class:`CorruptObject` naming the object's path when it differs.
- **Pins** make removal safe against adds in flight, within the one writing
  process (the one-writer rule, docs/architecture.md): a snapshot pins every
  chunk it uses *before* looking for its object and keeps the pins until its
  version is committed (or abandoned); :meth:`ObjectStore.remove_unreferenced`
  never removes a pinned object, and checks the pin and unlinks under the same
  lock, so an object is either seen by the snapshot (and kept) or gone before it
  looks (and written again).
- Objects no row names (an add that crashed or was abandoned before its
  commit, a removal interrupted after its commit) are garbage: the next prune
  removes them, with temporary files left by other (dead) processes.
"""

from __future__ import annotations

import hashlib
import logging
import os
import secrets
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from ..durable import sync_dirs
from ..errors import EdgeorchError
from ..records import frozen

log = logging.getLogger(__name__)

_HEAL = ("adding the same data again (edgeorch datasets add NAME PATH) writes the object anew, which repairs every "
         "version that names it; an older version restores only if it does not share this chunk")

CODECS = ("raw", "zstd")
"""How an object's bytes are stored: as they are, or one zstd frame."""

ZSTD_LEVEL = 3
"""zstd's default level: about 300 MB/s per core for text, and most of the ratio of the higher levels."""

_SUFFIX = {"raw": "", "zstd": ".zst"}


class CorruptObject(EdgeorchError):
    """A stored object is missing, unreadable or does not hash to its name (restore refuses it)."""

    code = "corrupt"
    exit_code = 1


@frozen
class StoredObject:
    """What :meth:`ObjectStore.put` or :meth:`ObjectStore.find` knows of one chunk's object."""

    sha256: str
    codec: str
    stored_size: int
    written: bool = False
    """True when this call wrote it (False: it was already there)."""


_PIN_LOCK = threading.Lock()
_PINS: dict[str, Counter[str]] = {}


class ObjectStore:
    """The chunk objects under ``root`` (``<state dir>/datasets``); see the module docstring."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.objects = self.root / "objects"
        self.tmp = self.root / "tmp"
        self._key = os.path.abspath(self.root)
        self._closed = False

    def _close_root(self) -> None:
        """Make the store's folder closed to other users (``0750``; an older one, ``0755``, loses the others'
        bits) before the first object is written: objects hold whatever was added, a file of mode 0600
        included, and a folder that others may enter lets them list and read every one. The state folder's
        group (the control socket's, docs/operations.md) keeps reading them, as it reads the state file."""
        if self._closed:
            return
        from ..trust import withdraw

        self.root.mkdir(mode=0o750, parents=True, exist_ok=True)
        try:
            if withdraw(self.root, 0o007) is not None:
                log.info("the data versions' folder %s was open to every user: closed to them", self.root)
        except OSError:
            pass  # another user's, or a read-only file system: the write below says what matters
        self._closed = True

    def close_existing(self) -> None:
        """At a daemon's start: the store's folder, when there, closed to other users as before a write
        (:meth:`_close_root`). One an older edgeorch made ``0755`` stayed open, every object readable, until the
        next ``datasets add``."""
        if self.root.is_dir():
            self._close_root()

    # -- names ---------------------------------------------------------------------------------

    def path(self, sha256: str, codec: str) -> Path:
        """Where the object of ``sha256`` stored with ``codec`` lives (whether or not it exists)."""
        return self.objects / sha256[:2] / (sha256 + _SUFFIX[codec])

    def find(self, sha256: str) -> StoredObject | None:
        """The object of ``sha256`` on disk (either codec), or None."""
        for codec in CODECS:
            try:
                st = os.stat(self.path(sha256, codec))
            except FileNotFoundError:
                continue
            return StoredObject(sha256, codec, st.st_size)
        return None

    # -- pins ----------------------------------------------------------------------------------

    def pin(self, shas: Iterable[str]) -> None:
        """Keep these chunks' objects from removal until :meth:`unpin` (counted: pin twice, unpin twice)."""
        with _PIN_LOCK:
            _PINS.setdefault(self._key, Counter()).update(shas)

    def unpin(self, shas: Iterable[str]) -> None:
        with _PIN_LOCK:
            pins = _PINS.get(self._key)
            if pins is None:
                return
            pins.subtract(shas)
            for sha in [s for s, n in pins.items() if n <= 0]:
                del pins[sha]

    def pinned(self) -> frozenset[str]:
        """The chunks pinned now (for tests and diagnostics)."""
        with _PIN_LOCK:
            return frozenset(_PINS.get(self._key, ()))

    # -- writing -------------------------------------------------------------------------------

    def put(self, sha256: str, data: bytes | memoryview, *, compress: Callable[[bytes | memoryview], bytes] | None
            = None) -> StoredObject:
        """Store ``data`` (whose sha256 is ``sha256``) unless its object exists; the caller has pinned it.

        ``compress``: a zstd compressor's ``compress``; its output is kept only
        when smaller than ``data``. Not durable until :meth:`sync` of the
        object's folder (:meth:`folder_of`).
        """
        found = self.find(sha256)
        if found is not None:
            try:
                self.read(sha256, found.codec, len(data))
                return found
            except CorruptObject as exc:  # replaced below by these bytes, which hash to its name
                log.warning("%s: written again from the data being added", exc.message)
        codec, payload = "raw", data
        if compress is not None:
            packed = compress(data)
            if len(packed) < len(data):
                codec, payload = "zstd", packed
        final = self.path(sha256, codec)
        self._close_root()
        final.parent.mkdir(parents=True, exist_ok=True)
        self.tmp.mkdir(parents=True, exist_ok=True)
        tmp = self.tmp / f"{os.getpid()}-{secrets.token_hex(8)}"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o640)
        try:
            view = memoryview(payload)
            while view:  # a short write (nearly full disk): the rest, or its error, follows
                view = view[os.write(fd, view):]
            os.fsync(fd)
        except BaseException:
            os.close(fd)
            _unlink_quietly(tmp)
            raise
        os.close(fd)
        if found is not None:  # the corrupted one: under the other name it would be found first; a folder at
            bad = self.path(sha256, found.codec)  # the same name would refuse the rename (a file is replaced by it)
            if found.codec != codec or (bad.is_dir() and not bad.is_symlink()):
                _remove_tree_at(bad)
        os.rename(tmp, final)
        return StoredObject(sha256, codec, len(payload), written=True)

    def folder_of(self, sha256: str) -> Path:
        return self.objects / sha256[:2]

    @staticmethod
    def sync(folders: Iterable[Path]) -> None:
        """Make each folder's entries durable once (:func:`~edgeorch.durable.sync_dirs`): the renames into
        them survive a power cut."""
        sync_dirs(folders)

    # -- reading -------------------------------------------------------------------------------

    def read(self, sha256: str, codec: str, size: int, *, what: str = "") -> bytes:
        """The chunk's bytes, checked: decoded, ``size`` long and hashing to ``sha256``.

        Raises :class:`CorruptObject` naming the object's path (and ``what``:
        the dataset version and file it was read for) when the object is
        missing, cannot be read or decoded, or holds other bytes.
        """
        path = self.path(sha256, codec)
        where = f" ({what})" if what else ""
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            raise CorruptObject(f"the object is missing{where}", file=str(path),
                                hint=_HEAL)
        except OSError as exc:
            raise CorruptObject(f"the object cannot be read: {exc.strerror}{where}", file=str(path)) from None
        data = raw
        if codec == "zstd":
            import zstandard

            try:
                data = zstandard.ZstdDecompressor().decompress(raw, max_output_size=size)
            except zstandard.ZstdError as exc:
                raise CorruptObject(f"the object is not a valid zstd frame ({exc}){where}",
                                    file=str(path)) from None
        if len(data) != size or hashlib.sha256(data).hexdigest() != sha256:
            raise CorruptObject(f"the object is corrupted: its content does not hash to its name{where}",
                                file=str(path), hint=_HEAL)
        return data

    # -- garbage -------------------------------------------------------------------------------

    def list_objects(self) -> Iterator[tuple[str, Path, int]]:
        """Every object file on disk: ``(sha256, path, size)``; names that are not objects are skipped."""
        try:
            folders = sorted(os.scandir(self.objects), key=lambda e: e.name)
        except FileNotFoundError:
            return
        for folder in folders:
            if len(folder.name) != 2 or not folder.is_dir(follow_symlinks=False):
                continue
            with os.scandir(folder.path) as it:
                for e in it:
                    sha = e.name[:-4] if e.name.endswith(".zst") else e.name
                    if len(sha) == 64 and sha.startswith(folder.name) and e.is_file(follow_symlinks=False):
                        yield sha, Path(e.path), e.stat(follow_symlinks=False).st_size

    def remove_unreferenced(self, candidates: Iterable[tuple[str, Path, int]],
                            referenced: Callable[[list[str]], set[str]]) -> tuple[int, int]:
        """Unlink each candidate object that ``referenced`` does not name and no snapshot pins.

        ``referenced(shas)`` returns those of ``shas`` the state file has rows
        for; it must run on the one writing thread (the daemon's loop) with
        no commit possible between its answer and the unlinks, which is why the
        caller hands over small batches (:func:`batched`). Returns ``(objects
        removed, bytes freed)``; an object already gone is skipped.
        """
        batch = list(candidates)
        if not batch:
            return 0, 0
        known = referenced(sorted({sha for sha, _, _ in batch}))
        removed = freed = 0
        with _PIN_LOCK:
            pins = _PINS.get(self._key, Counter())
            for sha, path, size in batch:
                if sha in known or pins.get(sha, 0) > 0:
                    continue
                try:
                    os.unlink(path)
                except FileNotFoundError:
                    continue
                removed += 1
                freed += size
        return removed, freed

    def stale_temp_files(self) -> list[Path]:
        """Temporary files of other processes (a writer that died mid-put): safe to remove.

        One process writes a state dir at a time, so a temporary file whose pid
        is not ours belongs to a writer that is gone.
        """
        mine = f"{os.getpid()}-"
        try:
            return [Path(e.path) for e in os.scandir(self.tmp) if not e.name.startswith(mine)]
        except FileNotFoundError:
            return []


DATASETS_DIR = "datasets"
"""The object store's folder under the state dir."""


def object_store(state_dir: Path) -> ObjectStore:
    """The object store of a state dir: ``<state dir>/datasets`` (cheap: numba is not loaded)."""
    return ObjectStore(Path(state_dir) / DATASETS_DIR)


def batched(items: Iterable[tuple[str, Path, int]], size: int) -> Iterator[list[tuple[str, Path, int]]]:
    """``items`` in lists of at most ``size``."""
    batch: list[tuple[str, Path, int]] = []
    for item in items:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def _unlink_quietly(path: Path) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


def _remove_tree_at(path: Path) -> None:
    """Remove whatever is at ``path`` (a file, a link, a folder made there by mistake); nothing there is fine."""
    import shutil

    try:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink()
    except FileNotFoundError:
        pass
