"""Claiming a ready file: record the intent, rename it into its claim folder, verify, hash.

Nothing here touches SQLite: the caller records what these return (docs/triggers.md,
"Claim protocol"). The identity checks are made on the opened descriptor, so nothing can be
swapped in between a check and the read.
"""

from __future__ import annotations

import errno
import hashlib
import os
import stat as stat_mod
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ...errors import EdgeorchError
from ...records import frozen
from ...durable import sync_dirs
from ...trust import close_folder
from .inspection import (TRANSIENT_ERRNOS, Refuse, file_kind, has_cap_fowner, inspect, move_problem,
                         sparse_problem)
from .names import display_path
from .owncopy import CopyInterrupted, take_ownership
from .spec import check_same_filesystem
from .writers import open_for_writing

_HASH_CHUNK = 1 << 20


@frozen
class ClaimIntent:
    """What the caller records (state ``claiming``) BEFORE the rename.

    ``source`` is the path in the drop folder, ``dest`` the path in the inbox;
    ``dev``/``ino`` identify the file, so a new file with the same name is
    never mistaken for this one after a crash.
    """

    claim_id: str
    source: Path
    dest: Path
    size: int
    mtime_ns: int
    dev: int
    ino: int
    max_size: int | None = None
    """The watch's ``max_size`` and ``allow_sparse``: applied again when the file's size changed after it was
    inspected (:func:`verify_and_hash`), so nothing that grows after the look escapes them."""
    allow_sparse: bool = False


@frozen
class FileStamp:
    """What identifies a file's content without reading it: inode and the fields a write changes."""

    dev: int
    ino: int
    size: int
    mtime_ns: int
    ctime_ns: int

    @classmethod
    def of(cls, st: os.stat_result) -> FileStamp:
        return cls(st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


@frozen
class ClaimedFile:
    """A file moved into the inbox: its new ``path``, ``size`` and ``sha256`` (hex) of the content.

    ``stamp`` is the file as it was while it was hashed (see :func:`changed_since`).
    """

    claim_id: str
    source: Path
    path: Path
    size: int
    sha256: str
    stamp: FileStamp | None = None


class ClaimError(EdgeorchError, OSError):
    """A claim could not be made (file gone, inbox unusable); nothing was moved."""

    code = "claim_failed"


class ClaimDeferred(EdgeorchError, OSError):
    """The claim cannot finish NOW (disk full, out of descriptors, EIO, the file is still being
    written through another handle): nothing final happened; :func:`perform_claim` may be called
    again for the same intent later (it is idempotent)."""

    code = "claim_deferred"


class ClaimInterrupted(ClaimDeferred):
    """The hash was stopped between two chunks (``cancel`` was set: the daemon is stopping). Nothing final
    happened: the record stays ``claiming`` and the next start's recovery (``finish``) hashes it again."""

    code = "claim_interrupted"


class ClaimNotPermitted(EdgeorchError, OSError):
    """The rename into the inbox was refused by the system (EPERM, EACCES: a sticky folder, an immutable
    file); nothing moved, the file stays in the drop folder. The message says why and what to do."""

    code = "claim_not_permitted"


class NotQuick(Exception):
    """The claim needs more than quick steps (:func:`perform_claim`'s ``quick_max``): a copy of another user's file,
    or a hash of that many bytes or more. Nothing but the rename was done; :func:`perform_claim` without
    ``quick_max`` (in a worker thread) does the rest: it is idempotent after the rename."""


class ClaimRefused(EdgeorchError, OSError):
    """The file in the claim folder is not the file that was inspected (a hard link or another
    file swapped in between the check and the rename). ``removed``: the inbox name was unlinked
    (its content lives on under its other names); else the file is still at the claim path."""

    code = "claim_refused"

    def __init__(self, message: str, *, removed: bool, **kw: Any) -> None:
        super().__init__(message, **kw)
        self.removed = removed


def claim_dest(inbox_dir: Path, claim_id: str, name: str) -> Path:
    """Where a claim puts the file: ``<inbox_dir>/<claim_id>/<name>`` (one folder per claim)."""
    if "/" in claim_id or claim_id in ("", ".", ".."):
        raise ValueError(f"bad claim id {claim_id!r}")
    return Path(inbox_dir) / claim_id / name


CLAIM_PREFIX = "in-"
"""Claim folders are ``in-<input id>``, or ``in-<input id>-<k>`` when that name was taken."""


def claim_folder_name(input_id: int, k: int = 0) -> str:
    """``in-<id>`` (``k == 0``) or ``in-<id>-<k>``: the names :func:`make_claim_folder` tries, in order."""
    return f"{CLAIM_PREFIX}{input_id}" if k == 0 else f"{CLAIM_PREFIX}{input_id}-{k}"


CLAIM_FOLDER_MODE = 0o700
"""A claim folder is the daemon user's alone: nobody else reaches the claimed file by its path (another user's file
is also replaced by the daemon's own copy, :mod:`.owncopy`: its owner could reopen a descriptor kept from before
the drop). The daemon's tasks, its own user, read it."""


def make_claim_folder(inbox_dir: Path, input_id: int) -> Path:
    """Create the claim folder of ``input_id`` EXCLUSIVELY and return it: ``<inbox>/in-<id>``, or
    ``in-<id>-1``, ``in-<id>-2``, ... when the name is taken.

    Input ids can go back (a state file restored from a backup), so ``in-<id>`` may still hold
    the file of an input from the lost future: never share a folder with it. The caller records
    the returned path (``inputs.inbox_path``), the one truth about where the input is. When the
    folder cannot be made now (a transient error: disk full, see :func:`is_transient`), the first
    free name is returned uncreated: :func:`perform_claim` makes it (deferring while the error
    lasts), so the intent is still recorded and the claim retried. Other errors are raised.
    """
    base = Path(inbox_dir)
    for k in range(0, 1_000_000):
        folder = base / claim_folder_name(input_id, k)
        # One mkdir per claim in the usual case (it runs on the loop for every claimed file): the
        # name's existence is the mkdir's EEXIST, and the inbox is made only when it is missing.
        for _ in range(2):
            try:
                os.mkdir(folder, CLAIM_FOLDER_MODE)
            except FileExistsError:
                break  # taken (any kind of entry, a dangling link too): the next name
            except FileNotFoundError:  # no inbox yet (first claim, or removed by hand): make it, once
                try:
                    close_folder(base)
                except OSError as exc:
                    if is_transient(exc):
                        return folder
                    raise
                continue
            except OSError as exc:
                if is_transient(exc):
                    return folder
                raise
            return folder
        else:  # the inbox vanished again right after it was made: not ours to fight
            raise ClaimError("the inbox folder keeps disappearing", value=str(base))
    raise ClaimError("no free claim folder name", value=str(base / claim_folder_name(input_id)))  # pragma: no cover


def prepare_claim(path: Path | str, folder: Path | str, inbox_dir: Path | str, claim_id: str, *,
                  max_size: int | None = None, allow_sparse: bool = False) -> ClaimIntent | Refuse:
    """Inspect ``path`` and name its inbox destination; no change on disk.

    Raises :class:`ConfigError` (both paths named) when the inbox is on
    another filesystem than ``folder``.
    """
    check_same_filesystem(Path(folder), Path(inbox_dir))
    verdict = inspect(path, folder, max_size=max_size, allow_sparse=allow_sparse)
    if isinstance(verdict, Refuse):
        return verdict
    return ClaimIntent(claim_id, verdict.path, claim_dest(Path(inbox_dir), claim_id, verdict.path.name),
                       verdict.size, verdict.mtime_ns, verdict.dev, verdict.ino, max_size, allow_sparse)


def perform_claim(intent: ClaimIntent, *, fsync: bool = True, cancel: threading.Event | None = None,
                  quick_max: int | None = None) -> ClaimedFile:
    """Move the intended file into its claim folder by ``os.rename``, fsync, verify, hash it.

    ``fsync=False`` leaves the two folder fsyncs to the caller, who may group
    them for a burst (:func:`sync_dirs` once, then commit the records): the
    renames must be durable before the ``claimed`` records are committed, or
    a power loss could leave a ``claimed`` record whose rename was undone.

    After the rename the claimed file is opened (``O_NOFOLLOW``) and checked
    ON THAT DESCRIPTOR (:func:`verify_and_hash`): a regular file, one link,
    the inspected device/inode; the sha256 is read from the same descriptor.

    Idempotent after a crash or a deferral: if the source is already gone and
    ``dest`` exists, only the check and hash are done. Raises
    :class:`ClaimError` when the source vanished (and ``dest`` does not
    exist) or was replaced by another file (other inode): nothing moves
    then; :class:`ClaimRefused` when the moved file is not the inspected one;
    :class:`ClaimDeferred` for transient errors (try again later);
    :class:`ClaimInterrupted` when ``cancel`` is set during the hash (checked between chunks, so a stop
    never waits for a long hash); :class:`ClaimNotPermitted` when the system refuses the rename.

    ``quick_max`` (bytes): only quick steps, for a caller on the event loop: a file of another user (a copy, its
    fsync) or of ``quick_max`` bytes or more as it is after the rename (it may have grown since it was inspected),
    checked again on the hash's descriptor, raises :class:`NotQuick` before any copy or hash.
    """
    dest = intent.dest
    redo = True  # dest was there already: a claim interrupted after its rename, finished now
    try:
        if not os.path.lexists(dest):
            redo = False
            try:
                st = os.lstat(intent.source)
            except FileNotFoundError:
                raise ClaimError("the file vanished before it was claimed", value=display_path(intent.source)) from None
            if (st.st_dev, st.st_ino) != (intent.dev, intent.ino):
                raise ClaimError("the file was replaced before it was claimed", value=display_path(intent.source))
            dest.parent.mkdir(mode=CLAIM_FOLDER_MODE, parents=True, exist_ok=True)
            try:
                os.rename(intent.source, dest)
            except PermissionError as exc:
                raise ClaimNotPermitted(_rename_refused(intent.source, exc), value=display_path(intent.source)) from exc
            if fsync:  # the inbox too: the claim folder's own entry must survive a power loss
                sync_dirs([dest.parent, dest.parent.parent, intent.source.parent])
        settled = False  # the daemon user's own file, writable by nobody else: take_ownership would do nothing
        if quick_max is not None:
            now = os.lstat(dest)
            if now.st_uid != os.geteuid() or now.st_size >= quick_max:
                raise NotQuick(display_path(intent.source))
            settled = not redo and not now.st_mode & 0o022  # its open and fstat saved (the hash's check the inode)
        identity = (intent.dev, intent.ino)
        try:  # another user's file: the daemon's copy; the daemon user's, writable by others: those bits off
            copied = None if settled else take_ownership(dest, identity, intent.size, intent.mtime_ns,
                                                         intent.max_size, cancel, redo=redo)
        except CopyInterrupted as exc:
            raise ClaimInterrupted(f"{exc} (the daemon is stopping); the next start finishes it") from None
        if copied is not None:
            identity = copied
            if fsync:
                sync_dirs([dest.parent])
        stamp, size, digest = verify_and_hash(dest, identity, cancel, intent, quick_max=quick_max)
    except OSError as exc:
        if isinstance(exc, (ClaimError, ClaimDeferred, ClaimRefused, ClaimNotPermitted)):
            raise
        if exc.errno in TRANSIENT_ERRNOS:
            raise ClaimDeferred(f"cannot claim now: {exc.strerror} (will retry)",
                                value=display_path(intent.source)) from exc
        raise
    return ClaimedFile(intent.claim_id, intent.source, dest, size, digest, stamp)


def _rename_refused(source: Path, exc: OSError) -> str:
    """Why the system refused to move ``source`` out of its folder: the sticky rule when it applies, else
    the error itself."""
    try:
        why = move_problem(os.stat(source.parent), os.lstat(source), os.geteuid(), has_cap_fowner())
    except OSError:
        why = None
    return why or (f"cannot be claimed: the system refused to move it into the inbox ({exc.strerror}); "
                   "the daemon's user needs write permission on the watched folder and an ordinary file")


def verify_and_hash(path: Path, identity: tuple[int, int] | None, cancel: threading.Event | None = None,
                    intent: ClaimIntent | None = None, *, quick_max: int | None = None) -> tuple[FileStamp, int, str]:
    """Open ``path`` without following links; check the descriptor; hash through it.

    Checked on the open descriptor (``fstat``), so nothing can be swapped in
    between check and read: a regular file with ``st_nlink == 1`` (a second
    name would let someone change or read the content behind edgeorch's
    back) and, when ``identity`` is given, that ``(st_dev, st_ino)``.
    Failing that, raises :class:`ClaimRefused` (a file with more names is
    unlinked from the inbox first: nothing is lost, its other names keep it).
    The stat is taken again after hashing: a change meanwhile (someone
    writing through another handle) raises :class:`ClaimDeferred`, as does a
    file some process still holds open for writing when the hash ends (asked
    of the kernel, :func:`~.writers.open_for_writing`: such a writer could
    change it after the claim, through the descriptor it has), and the
    hash never reads past the size checked before it (a file grown to 1 TiB
    meanwhile costs nothing more). With ``intent``, a file whose size is not
    the inspected one (it grew after the look: a writer's handle still open)
    meets the watch's ``max_size`` and sparse rule again, on the descriptor,
    before any byte is read: failing them raises :class:`ClaimRefused`. A file of ``quick_max`` bytes or more
    raises :class:`NotQuick` before any byte is read (see :func:`perform_claim`).
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise ClaimRefused("a symbolic link was swapped in during the claim; links are never followed",
                               removed=False, value=display_path(path)) from None
        raise
    try:
        st = os.fstat(fd)
        problem = _identity_problem(st, identity)
        if problem:
            removed = False
            if stat_mod.S_ISREG(st.st_mode) and st.st_nlink > 1:
                os.unlink(path)  # its other names keep the content: nothing is lost
                removed = True
            raise ClaimRefused(problem, removed=removed, value=display_path(path))
        if intent is not None and st.st_size != intent.size:
            problem = _size_problem(st, intent)
            if problem:
                raise ClaimRefused(f"it changed after it was inspected ({intent.size} -> {st.st_size} bytes): "
                                   f"{problem}", removed=False, value=display_path(path))
        if quick_max is not None and st.st_size >= quick_max:
            raise NotQuick(display_path(path))
        if open_for_writing(fd):  # asked first too: a file kept open is not hashed again at every retry
            raise ClaimDeferred(STILL_OPEN, value=display_path(path))
        size, digest = _hash_fd(fd, cancel, st.st_size)
        after = os.fstat(fd)
        writing = open_for_writing(fd)
    finally:
        os.close(fd)
    before_stamp, after_stamp = FileStamp.of(st), FileStamp.of(after)
    if before_stamp != after_stamp or size != after.st_size:
        raise ClaimDeferred("the file changed while it was hashed (someone still writes to it); will retry",
                            value=display_path(path))
    if writing:
        raise ClaimDeferred(STILL_OPEN, value=display_path(path))
    return after_stamp, size, digest


STILL_OPEN = ("another process still holds the file open for writing (`fuser -v` on it names the process); "
              "it is claimed once that process closes it; will retry")
"""Why a claim waits: the sha256 recorded must be of the content the run reads, and a writer's open
descriptor could change it after the hash (:mod:`.writers`)."""


def _size_problem(st: os.stat_result, intent: ClaimIntent) -> str | None:
    """The inspection's size rules (``max_size``, :func:`~.inspection.sparse_problem`) for the file as it is now."""
    if intent.max_size is not None and st.st_size > intent.max_size:
        return f"{st.st_size} bytes is over max_size ({intent.max_size} bytes)"
    return None if intent.allow_sparse else sparse_problem(st.st_size, st.st_blocks)


def _identity_problem(st: os.stat_result, identity: tuple[int, int] | None) -> str | None:
    if not stat_mod.S_ISREG(st.st_mode):
        return f"not a regular file ({file_kind(st.st_mode)}) after the claim"
    if identity is not None and (st.st_dev, st.st_ino) != identity:
        return "another file was swapped in during the claim (not the inspected inode)"
    if st.st_nlink != 1:
        return (f"a hard link appeared during the claim ({st.st_nlink} names share this file); "
                "copy or move files in instead")
    return None


def changed_since(path: Path | str, stamp: FileStamp) -> str | None:
    """Why the file at ``path`` is no longer the one stamped (None: same inode, size, mtime, ctime).

    Cheap (one ``lstat``): the check made just before a run is created for a claimed file.
    """
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return "the claimed file is gone"
    if FileStamp.of(st) != stamp:
        return "the claimed file changed after it was hashed"
    return None


def claim(path: Path | str, folder: Path | str, inbox_dir: Path | str, claim_id: str, *,
          record_intent: Callable[[ClaimIntent], None] | None = None,
          max_size: int | None = None, allow_sparse: bool = False, fsync: bool = True) -> ClaimedFile | Refuse:
    """Claim one ready file: inspect, ``record_intent(intent)``, rename, hash.

    ``record_intent`` must durably record the intent (commit) before it
    returns; if it raises, nothing moves. The caller then records the
    returned :class:`ClaimedFile` (state ``claimed``, size, sha256) in the
    same transaction as the run it starts. Returns a :class:`Refuse` for
    files that must not be claimed (record it when ``verdict.final``).
    """
    intent = prepare_claim(path, folder, inbox_dir, claim_id, max_size=max_size, allow_sparse=allow_sparse)
    if isinstance(intent, Refuse):
        return intent
    if record_intent is not None:
        record_intent(intent)
    return perform_claim(intent, fsync=fsync)


def hash_file(path: Path, cancel: threading.Event | None = None) -> tuple[int, str]:
    """``(size, sha256 hex)`` of ``path``, read through an ``O_NOFOLLOW`` descriptor (``cancel``: see
    :func:`_hash_fd`)."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        return _hash_fd(fd, cancel)
    finally:
        os.close(fd)


def _hash_fd(fd: int, cancel: threading.Event | None = None, limit: int | None = None) -> tuple[int, str]:
    """Read and hash the whole file, or its first ``limit`` bytes; raises :class:`ClaimInterrupted` as soon as
    ``cancel`` is set (checked before each 1 MiB chunk: a stop waits milliseconds, not the rest of a 300 GB
    file)."""
    h = hashlib.sha256()
    size = 0
    with os.fdopen(fd, "rb", closefd=False) as f:
        while limit is None or size < limit:
            if cancel is not None and cancel.is_set():
                raise ClaimInterrupted(f"the hash was interrupted after {size} bytes (the daemon is stopping); "
                                       "the next start finishes it")
            chunk = f.read(_HASH_CHUNK if limit is None else min(_HASH_CHUNK, limit - size))
            if not chunk:
                break
            h.update(chunk)
            size += len(chunk)
    return size, h.hexdigest()


def is_transient(exc: BaseException) -> bool:
    """True for an error worth retrying later (see :data:`TRANSIENT_ERRNOS`, :class:`ClaimDeferred`)."""
    return isinstance(exc, ClaimDeferred) or (isinstance(exc, OSError) and exc.errno in TRANSIENT_ERRNOS)
