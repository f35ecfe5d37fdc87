"""Drop-in folders: which files count, when they are complete, and how they are claimed.

Pure rules (:func:`check_watch`, :func:`is_candidate`, :class:`SettleTracker`,
:class:`Batcher`, :func:`reconcile`) plus small I/O helpers (:func:`inspect`,
:func:`scan`, :func:`prepare_claim` / :func:`perform_claim` / :func:`claim`,
:func:`quarantine`, :func:`requeue`). Nothing here touches SQLite: the caller
records what these return (see ``docs/triggers.md``, "Claim protocol").

Arrival rules
-------------
* Only direct children of the watched folder count (no recursion).
* Hidden and temporary names never trigger: ``.*`` (this covers rsync's
  ``.name.XXXXXX`` and editors' swap files), ``*.part``, ``*.partial``,
  ``*.filepart``, ``*.tmp``, ``*.temp``, ``*~``, ``*.crdownload``,
  ``*.download``. The final rename of such a file is an arrival.
* A file is *ready* when it was renamed into the folder (``moved_to``:
  complete at once) or, written in place, was closed after writing and then
  kept the same (size, mtime_ns) for ``settle`` seconds.
* Before it is claimed, a ready file is inspected without following links:
  symlinks, hard links (``st_nlink > 1``), non-regular files, files over
  ``max_size`` and names that are not valid are refused with a reason.
"""

from __future__ import annotations

import errno
import fnmatch
import hashlib
import heapq
import json
import logging
import os
import secrets
import stat as stat_mod
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from ..errors import ConfigError, EdgeorchError
from ..tomlcheck import TableReader

WATCH_KEYS = ("folder", "patterns", "pipeline", "mode", "batch_size", "batch_window", "settle", "max_size",
              "param", "env", "skip_duplicates")
MODES = ("per_file", "batch")
DEFAULT_PARAM = "input"
DEFAULT_ENV = "EDGEORCH_INPUT"
TEMP_PATTERNS = ("*.part", "*.partial", "*.filepart", "*.tmp", "*.temp", "*~", "*.crdownload", "*.download")
"""Besides hidden names (``.*``): names of files still being written by some tool."""
MAX_NAME_BYTES = 255

_log = logging.getLogger("edgeorch.triggers")
_IDENT_CHARS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_")
_HASH_CHUNK = 1 << 20


# ---------------------------------------------------------------------------
# configuration


@dataclass(frozen=True)
class WatchSpec:
    """A validated ``[[watch]]`` table.

    ``folder`` is absolute. ``settle``/``batch_window`` are seconds;
    ``max_size`` bytes (None: no limit). The claimed file's path reaches the
    task as the pipeline param ``param`` and the environment variable ``env``
    (in batch mode: a JSON array of paths in the param, and the env var names a
    file listing the paths one per line; see ``Triggers._start_batch``).
    """

    folder: Path
    pipeline: str
    patterns: tuple[str, ...] = ("*",)
    mode: str = "per_file"
    batch_size: int = 100
    batch_window: float = 10.0
    settle: float = 1.0
    max_size: int | None = None
    param: str = DEFAULT_PARAM
    env: str = DEFAULT_ENV
    skip_duplicates: bool = True


def check_watch(table: Any, file: str, prefix: str = "watch", *, base: Path | None = None,
                pipeline: str | None = None,
                error_cls: type[EdgeorchError] = ConfigError) -> tuple[WatchSpec | None, list[EdgeorchError]]:
    """Validate one ``[[watch]]`` table; collect every problem.

    ``base`` resolves a relative ``folder`` (the folder of the file the table
    came from). ``pipeline`` is the owning pipeline when the table sits in a
    pipeline file: then ``pipeline`` in the table is optional and must match.
    Errors are ``error_cls`` (ConfigError for config.toml, PipelineError for
    pipelines) naming file, field (``watch[0].mode``), value and expectation;
    unknown keys get a did-you-mean.
    """
    errors: list[EdgeorchError] = []
    r = TableReader(table, file=file, prefix=prefix, errors=errors, error_cls=error_cls)
    folder_s = r.str("folder", None, required=True)
    target = r.str("pipeline", None, required=pipeline is None)
    if pipeline is not None and target is not None and target != pipeline:
        r.fail("pipeline", "names another pipeline than the one this file declares", value=target,
               expected=f"{pipeline!r} or no pipeline key")
    target = target or pipeline
    patterns = r.str_list("patterns", ["*"])
    mode = r.choice("mode", MODES, "per_file")
    batch_size = r.int("batch_size", 100, minimum=1, maximum=1_000_000)
    batch_window = r.duration("batch_window", 10.0)
    settle = r.duration("settle", 1.0)
    max_size = r.size("max_size", None)
    param = r.str("param", DEFAULT_PARAM)
    env = r.str("env", DEFAULT_ENV)
    skip_dup = r.bool("skip_duplicates", True)
    r.finish(list(WATCH_KEYS))

    if patterns is not None:
        if not patterns:
            r.fail("patterns", "must not be empty", value=patterns, expected="at least one glob such as '*.csv'")
        for pat in patterns:
            if not pat or "/" in pat:
                r.fail("patterns", "is not a file-name glob", value=pat,
                       expected="a glob matched against the file name, without '/', e.g. '*.csv'")
    if mode != "batch":
        for key in ("batch_size", "batch_window"):
            if key in r.data:
                r.fail(key, "applies to mode = \"batch\" only", value=r.data[key], expected="mode = \"batch\"")
    if param is not None and not _is_ident(param):
        r.fail("param", "is not a valid param name", value=param, expected="letters, digits and '_'")
    if env is not None and not (_is_ident(env) and not env[0].isdigit()):
        r.fail("env", "is not a valid environment variable name", value=env,
               expected="letters, digits and '_', not starting with a digit")
    if settle is not None and settle > 3600:
        r.fail("settle", "is out of range", value=r.data.get("settle"), expected="at most 1h")
    folder: Path | None = None
    if folder_s is not None:
        folder = Path(os.path.expanduser(folder_s))
        if not folder.is_absolute():
            folder = (base or Path.cwd()) / folder
        folder = Path(os.path.normpath(folder))
    if errors or folder is None or target is None:
        return None, errors
    return WatchSpec(
        folder=folder, pipeline=target, patterns=tuple(patterns), mode=mode, batch_size=batch_size,
        batch_window=batch_window, settle=settle, max_size=max_size, param=param, env=env,
        skip_duplicates=skip_dup,
    ), errors


def check_watches(tables: Iterable[Any], file: str, *, base: Path | None = None,
                  error_cls: type[EdgeorchError] = ConfigError) -> tuple[list[WatchSpec], list[EdgeorchError]]:
    """Validate ``Config.watches`` (``[[watch]]`` in config.toml): fields ``watch[i].<key>``."""
    specs: list[WatchSpec] = []
    errors: list[EdgeorchError] = []
    for i, table in enumerate(tables):
        spec, errs = check_watch(table, file, f"watch[{i}]", base=base, error_cls=error_cls)
        errors.extend(errs)
        if spec is not None:
            specs.append(spec)
    return specs, errors


def check_watch_set(specs: list[WatchSpec], *, inbox_dir: Path, state_dir: Path | None = None,
                    pipelines: Iterable[str] | None = None, file: str = "") -> list[EdgeorchError]:
    """Cross-checks over all watches: known pipelines, one watch per folder, folders outside the state dir.

    No I/O except :func:`check_same_filesystem` is left to the caller (the
    folder may not exist yet when the config is validated).
    """
    errors: list[EdgeorchError] = []
    known = set(pipelines) if pipelines is not None else None
    seen: dict[Path, str] = {}
    for spec in specs:
        if known is not None and spec.pipeline not in known:
            errors.append(ConfigError("names an unknown pipeline", file=file, field="watch.pipeline",
                                      value=spec.pipeline, expected=f"one of {', '.join(sorted(known)) or '(none)'}"))
        if spec.folder in seen:
            errors.append(ConfigError("is watched twice", file=file, field="watch.folder", value=str(spec.folder),
                                      expected=f"one [[watch]] per folder (also used by pipeline {seen[spec.folder]})"))
        seen[spec.folder] = spec.pipeline
        for inner in (inbox_dir, state_dir):
            if inner is not None and (_within(spec.folder, inner) or _within(inner, spec.folder)):
                errors.append(ConfigError("overlaps edgeorch's own folders", file=file, field="watch.folder",
                                          value=str(spec.folder), expected=f"a folder outside {inner}"))
    return errors


def check_same_filesystem(folder: Path, inbox_dir: Path) -> None:
    """Raise :class:`ConfigError` naming both paths unless a rename between them is atomic.

    ``inbox_dir`` may not exist yet: its nearest existing parent is checked.
    """
    def dev(p: Path) -> int:
        p = Path(os.path.abspath(p))
        while not p.exists() and p != p.parent:
            p = p.parent
        return os.stat(p).st_dev

    if dev(folder) != dev(inbox_dir):
        raise ConfigError(
            "the drop folder and the inbox are on different filesystems, so files cannot be claimed by an "
            "atomic rename", field="watch.folder", value=str(folder),
            expected=f"a folder on the same filesystem as the inbox {inbox_dir}",
            hint="move [inbox] dir (or [state] dir) onto the drop folder's filesystem, or watch a folder there",
        )


def _is_ident(text: str) -> bool:
    return bool(text) and all(c in _IDENT_CHARS for c in text)


def _within(inner: Path, outer: Path) -> bool:
    a, b = os.path.abspath(inner), os.path.abspath(outer)
    return a == b or a.startswith(b.rstrip("/") + "/")


# ---------------------------------------------------------------------------
# names and inspection


def is_hidden_or_temp(name: str) -> bool:
    """True for names that never trigger: hidden (``.*``) or a known partial-file suffix."""
    if not name or name.startswith("."):
        return True
    lower = name.lower()
    return any(fnmatch.fnmatchcase(lower, pat) for pat in TEMP_PATTERNS)


def is_candidate(name: str, patterns: Iterable[str]) -> bool:
    """May a file called ``name`` trigger? Not hidden/temporary, and matches one glob (case-sensitive)."""
    if "/" in name or is_hidden_or_temp(name):
        return False
    return any(fnmatch.fnmatchcase(name, pat) for pat in patterns)


def display_path(path: Path | str) -> str:
    """A printable, storable text for ``path``: valid UTF-8 always.

    Bytes that are not UTF-8 (a name ``os.fsdecode`` turned into lone
    surrogates) are written as ``\\xNN`` escapes, so such a name can be
    recorded in SQLite, logged and sent as JSON without an encoding error.
    """
    return os.fsencode(path).decode("utf-8", "backslashreplace")


def fit_name(name: str, reserve: int = 0) -> str:
    """``name`` itself when ``len(name in bytes) + reserve <= 255``, else a shortened name that fits.

    Derived names (``<name>.reason.json``, ``<name>.1.csv``) must never pass
    the file-name limit (NAME_MAX, 255 bytes on Linux), whatever the input's
    name. The shortened form keeps the head of the name, a ``~`` and 12 hex
    digits of the sha256 of the full name (so two long names sharing a head
    stay distinct) and the extension when it is short (``.csv``).
    """
    raw = os.fsencode(name)
    limit = MAX_NAME_BYTES - reserve
    if len(raw) <= limit:
        return name
    stem, dot, ext = raw.rpartition(b".")
    tail = b"." + ext if dot and stem and len(ext) <= 16 else b""
    mark = b"~" + hashlib.sha256(raw).hexdigest()[:12].encode()
    head = raw[: max(1, limit - len(mark) - len(tail))]
    return os.fsdecode(head.decode("utf-8", "ignore").encode() + mark + tail)


def name_problem(name: str) -> str | None:
    """Why ``name`` is not a valid input name (None when it is).

    Refused: undecodable bytes (not UTF-8), control characters (newline, tab,
    ...), a leading ``-`` (a task's command would read it as an option), more
    than 255 bytes, ``/``.
    """
    try:
        raw = name.encode("utf-8")
    except UnicodeEncodeError:
        return "the name is not valid UTF-8"
    if len(raw) > MAX_NAME_BYTES:
        return f"the name is longer than {MAX_NAME_BYTES} bytes"
    if "/" in name or name in (".", ".."):
        return "the name is not a plain file name"
    if any(ord(c) < 32 or ord(c) == 127 for c in name):
        return "the name contains control characters"
    if name.startswith("-"):
        return "the name starts with '-' (a command would take it for an option)"
    return None


RefuseCode = Literal["gone", "outside", "bad_name", "symlink", "not_regular", "hardlink", "too_big", "unreadable",
                     "transient"]

TRANSIENT_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EMFILE, errno.ENFILE, errno.EIO, errno.EAGAIN,
                              errno.ENOMEM, errno.EINTR, errno.EBUSY, errno.ENOBUFS, errno.ETIMEDOUT})
"""Errors that say nothing about the file, only about the machine right now (disk full, out of
descriptors, I/O hiccup): the claim is tried again later, never turned into a final state."""


def is_transient(exc: BaseException) -> bool:
    """True for an error worth retrying later (see :data:`TRANSIENT_ERRNOS`, :class:`ClaimDeferred`)."""
    return isinstance(exc, ClaimDeferred) or (isinstance(exc, OSError) and exc.errno in TRANSIENT_ERRNOS)


@dataclass(frozen=True)
class Accept:
    """A file that may be claimed, as seen by ``lstat`` (identity: ``dev``, ``ino``)."""

    path: Path
    size: int
    mtime_ns: int
    dev: int
    ino: int


@dataclass(frozen=True)
class Refuse:
    """A file that must not be claimed; ``code`` is machine-readable, ``reason`` for people.

    ``code == "gone"``: the file vanished (nothing to record); ``code ==
    "transient"``: the machine could not look right now (disk full, out of
    descriptors, EIO): try again later, record nothing.
    """

    path: Path
    code: RefuseCode
    reason: str

    @property
    def final(self) -> bool:
        """Is this a refusal to record (not ``gone``, not ``transient``)?"""
        return self.code not in ("gone", "transient")


def _os_refusal(p: Path, what: str, exc: OSError) -> Refuse:
    if exc.errno in TRANSIENT_ERRNOS:
        return Refuse(p, "transient", f"cannot {what} now: {exc.strerror} (will retry)")
    return Refuse(p, "unreadable", f"cannot {what}: {exc.strerror}")


def inspect(path: Path | str, folder: Path | str, *, max_size: int | None = None) -> Accept | Refuse:
    """Decide whether ``path`` (a direct child of ``folder``) may be claimed, without following links.

    Uses ``os.lstat`` and then ``open(O_NOFOLLOW | O_NONBLOCK)`` + ``fstat`` of
    the same inode (a FIFO does not block, a symlink swapped in between is
    caught). Refuses: paths not directly in ``folder`` (``..``, subfolders),
    invalid names, symlinks, non-regular files, ``st_nlink > 1`` (a hard link
    shares its content with a file elsewhere, which could change it after the
    claim), files over ``max_size``, unreadable files.
    """
    p = Path(os.path.abspath(path))
    folder_abs = Path(os.path.abspath(folder))
    if p.parent != folder_abs:
        return Refuse(p, "outside", f"{path} is not directly inside the watched folder {folder_abs}")
    problem = name_problem(p.name)
    if problem:
        return Refuse(p, "bad_name", problem)
    try:
        st = os.lstat(p)
    except FileNotFoundError:
        return Refuse(p, "gone", "the file vanished")
    except OSError as exc:
        return _os_refusal(p, "stat", exc)
    if stat_mod.S_ISLNK(st.st_mode):
        try:
            target = os.readlink(p)
        except OSError:
            target = "?"
        return Refuse(p, "symlink", f"symbolic link (to {target}); links are never followed")
    if not stat_mod.S_ISREG(st.st_mode):
        return Refuse(p, "not_regular", f"not a regular file ({_kind(st.st_mode)})")
    if st.st_nlink > 1:
        return Refuse(p, "hardlink", f"hard link ({st.st_nlink} names share this file); copy or move it in instead")
    if max_size is not None and st.st_size > max_size:
        return Refuse(p, "too_big", f"{st.st_size} bytes is over max_size ({max_size} bytes)")
    try:
        fd = os.open(p, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        return Refuse(p, "gone", "the file vanished")
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return Refuse(p, "symlink", "symbolic link (swapped in); links are never followed")
        return _os_refusal(p, "open", exc)
    try:
        fst = os.fstat(fd)
    finally:
        os.close(fd)
    if (fst.st_dev, fst.st_ino) != (st.st_dev, st.st_ino):
        return Refuse(p, "gone", "the file was replaced while being inspected")
    return Accept(p, st.st_size, st.st_mtime_ns, st.st_dev, st.st_ino)


def _kind(mode: int) -> str:
    for test, name in ((stat_mod.S_ISDIR, "directory"), (stat_mod.S_ISFIFO, "FIFO"), (stat_mod.S_ISSOCK, "socket"),
                       (stat_mod.S_ISCHR, "character device"), (stat_mod.S_ISBLK, "block device")):
        if test(mode):
            return name
    return "unknown type"


def scan(folder: Path | str, patterns: Iterable[str]) -> list[Path]:
    """Candidate names directly in ``folder`` (sorted), for start-up and periodic rescans.

    Returns every candidate name whatever its type, so symlinks and the like
    reach :func:`inspect` and get a recorded refusal. A missing folder yields [].
    """
    pats = tuple(patterns)
    base = Path(os.path.abspath(folder))
    try:
        with os.scandir(base) as it:
            names = [e.name for e in it if is_candidate(e.name, pats)]
    except FileNotFoundError:
        return []
    return [base / n for n in sorted(names)]


# ---------------------------------------------------------------------------
# settling

EventKind = Literal["created", "modified", "closed", "moved_to", "deleted", "scanned"]
Stat = tuple[int, int]
"""(size, mtime_ns) of a file; None when it is gone."""


def stat_of(path: Path) -> Stat | None:
    """``(size, mtime_ns)`` by ``lstat`` (no link following); None when the path is gone."""
    try:
        st = os.lstat(path)
    except OSError:
        return None
    return (st.st_size, st.st_mtime_ns)


def complete_at_once(path: Path) -> bool:
    """True when ``path`` appeared fully formed: not a regular file, or a hard link.

    Symlinks, FIFOs, sockets, folders and extra names of existing files get
    an ``IN_CREATE`` and never a close-after-write; they are ready at once (so
    that :func:`inspect` refuses them with a reason) instead of waiting forever.
    """
    try:
        st = os.lstat(path)
    except OSError:
        return False
    return not stat_mod.S_ISREG(st.st_mode) or st.st_nlink > 1


@dataclass
class _Pending:
    state: Literal["writing", "settling", "ready"]
    deadline: float = 0.0
    snapshot: Stat | None = None
    last_event: float = 0.0
    token: int = 0


DEFAULT_WRITING_TIMEOUT = 300.0


class SettleTracker:
    """Decides when files are complete. Pure apart from the injected ``stat`` functions.

    Times are seconds on one monotonic clock (the caller's: ``loop.time()``
    or a fake). Per path:

    * ``moved_to`` -> ready at once (a rename is atomic);
    * ``created`` -> ready at once if ``complete_at_once(path)`` (symlink,
      FIFO, hard link, ...: refused later, nothing to wait for), else writing;
    * ``modified`` -> writing: never ready until ``closed``;
    * ``closed`` / ``scanned`` -> settling: ready once ``stat`` returns the
      same (size, mtime_ns) at ``now >= deadline`` as when the deadline was
      set (``settle`` seconds after the event); a change restarts the wait.
      ``scanned`` does not disturb a file that events already describe,
      except one stuck in writing with no event for ``writing_timeout``
      seconds (its close event was lost in an inotify overflow);
    * ``deleted`` (also moved away) -> forgotten.

    ``ready(now)`` returns each ready path once and forgets it; a later event
    for the same name starts afresh (a new file). Costs are O(log n) per
    event and per ready file (a heap of deadlines), so a burst of tens of
    thousands of files stays cheap.
    """

    def __init__(self, settle: float, stat: Callable[[Path], Stat | None] = stat_of, *,
                 complete_at_once: Callable[[Path], bool] = complete_at_once,
                 writing_timeout: float = DEFAULT_WRITING_TIMEOUT) -> None:
        self.settle = settle
        self.stat = stat
        self.complete_at_once = complete_at_once
        self.writing_timeout = writing_timeout
        self._files: dict[Path, _Pending] = {}
        self._heap: list[tuple[float, int, Path]] = []
        self._seq = 0

    def __len__(self) -> int:
        return len(self._files)

    def _schedule(self, p: Path, entry: _Pending, deadline: float) -> None:
        self._seq += 1
        entry.deadline, entry.token = deadline, self._seq
        heapq.heappush(self._heap, (deadline, self._seq, p))

    def observe(self, kind: EventKind, path: Path | str, now: float) -> None:
        """Feed one event observed at ``now``."""
        p = Path(path)
        cur = self._files.get(p)
        if kind == "deleted":
            self._files.pop(p, None)
        elif kind == "moved_to" or (kind == "created" and self.complete_at_once(p)):
            entry = _Pending("ready", last_event=now)
            self._files[p] = entry
            self._schedule(p, entry, now)
        elif kind in ("created", "modified"):
            if cur is None or kind == "created" or cur.state != "ready":
                self._files[p] = _Pending("writing", last_event=now)
        elif kind in ("closed", "scanned"):
            if kind == "scanned" and cur is not None and not (
                    cur.state == "writing" and now - cur.last_event >= self.writing_timeout):
                return  # events already describe it better than a scan
            entry = _Pending("settling", snapshot=self.stat(p), last_event=now)
            self._files[p] = entry
            self._schedule(p, entry, now + self.settle)
        else:
            raise ValueError(f"unknown event kind {kind!r}")

    def next_deadline(self) -> float | None:
        """Earliest time ``ready`` may return something new; None when nothing is pending.

        Files that are being written (no close seen yet) have no deadline.
        """
        heap = self._heap
        while heap:
            deadline, token, p = heap[0]
            entry = self._files.get(p)
            if entry is not None and entry.token == token and entry.state != "writing":
                return deadline
            heapq.heappop(heap)  # stale: superseded, forgotten or back to writing
        return None

    def ready(self, now: float) -> list[Path]:
        """Paths complete at ``now`` (sorted); each is returned once."""
        out: list[Path] = []
        heap = self._heap
        while heap and heap[0][0] <= now:
            _, token, p = heapq.heappop(heap)
            f = self._files.get(p)
            if f is None or f.token != token or f.state == "writing":
                continue
            if f.state == "ready":
                out.append(p)
                del self._files[p]
                continue
            current = self.stat(p)
            if current is None:
                del self._files[p]
            elif current == f.snapshot:
                out.append(p)
                del self._files[p]
            else:
                f.snapshot = current
                self._schedule(p, f, now + self.settle)
        return sorted(out)

    def pending(self) -> list[Path]:
        return sorted(self._files)


class Batcher:
    """Groups ready files for ``mode = "batch"``: a batch closes at ``batch_size`` files or
    ``batch_window`` seconds after its first file, whichever comes first. Pure; injected time.
    """

    def __init__(self, batch_size: int, batch_window: float) -> None:
        self.batch_size = batch_size
        self.batch_window = batch_window
        self._items: list[Any] = []
        self._opened: float | None = None

    def add(self, item: Any, now: float) -> list[Any] | None:
        """Add one item; returns the batch when this item fills it."""
        if not self._items:
            self._opened = now
        self._items.append(item)
        if len(self._items) >= self.batch_size:
            return self._take()
        return None

    def due(self, now: float) -> list[Any] | None:
        """The open batch when its window has passed, else None."""
        if self._items and self._opened is not None and now >= self._opened + self.batch_window:
            return self._take()
        return None

    def next_deadline(self) -> float | None:
        return self._opened + self.batch_window if self._items and self._opened is not None else None

    def _take(self) -> list[Any]:
        items, self._items, self._opened = self._items, [], None
        return items


# ---------------------------------------------------------------------------
# claiming


@dataclass(frozen=True)
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


@dataclass(frozen=True)
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


@dataclass(frozen=True)
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


def prepare_claim(path: Path | str, folder: Path | str, inbox_dir: Path | str, claim_id: str, *,
                  max_size: int | None = None) -> ClaimIntent | Refuse:
    """Inspect ``path`` and name its inbox destination; no change on disk.

    Raises :class:`ConfigError` (both paths named) when the inbox is on
    another filesystem than ``folder``.
    """
    check_same_filesystem(Path(folder), Path(inbox_dir))
    verdict = inspect(path, folder, max_size=max_size)
    if isinstance(verdict, Refuse):
        return verdict
    return ClaimIntent(claim_id, verdict.path, claim_dest(Path(inbox_dir), claim_id, verdict.path.name),
                       verdict.size, verdict.mtime_ns, verdict.dev, verdict.ino)


def perform_claim(intent: ClaimIntent, *, fsync: bool = True) -> ClaimedFile:
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
    :class:`ClaimDeferred` for transient errors (try again later).
    """
    dest = intent.dest
    try:
        if not os.path.lexists(dest):
            try:
                st = os.lstat(intent.source)
            except FileNotFoundError:
                raise ClaimError("the file vanished before it was claimed", value=display_path(intent.source)) from None
            if (st.st_dev, st.st_ino) != (intent.dev, intent.ino):
                raise ClaimError("the file was replaced before it was claimed", value=display_path(intent.source))
            dest.parent.mkdir(parents=True, exist_ok=True)
            os.rename(intent.source, dest)
            if fsync:
                sync_dirs([dest.parent, intent.source.parent])
        stamp, size, digest = verify_and_hash(dest, (intent.dev, intent.ino))
    except OSError as exc:
        if isinstance(exc, (ClaimError, ClaimDeferred, ClaimRefused)):
            raise
        if exc.errno in TRANSIENT_ERRNOS:
            raise ClaimDeferred(f"cannot claim now: {exc.strerror} (will retry)",
                                value=display_path(intent.source)) from exc
        raise
    return ClaimedFile(intent.claim_id, intent.source, dest, size, digest, stamp)


def verify_and_hash(path: Path, identity: tuple[int, int] | None) -> tuple[FileStamp, int, str]:
    """Open ``path`` without following links; check the descriptor; hash through it.

    Checked on the open descriptor (``fstat``), so nothing can be swapped in
    between check and read: a regular file with ``st_nlink == 1`` (a second
    name would let someone change or read the content behind edgeorch's
    back) and, when ``identity`` is given, that ``(st_dev, st_ino)``.
    Failing that, raises :class:`ClaimRefused` (a file with more names is
    unlinked from the inbox first: nothing is lost, its other names keep it).
    The stat is taken again after hashing: a change meanwhile (someone
    writing through another handle) raises :class:`ClaimDeferred`.
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
        size, digest = _hash_fd(fd)
        after = os.fstat(fd)
    finally:
        os.close(fd)
    before_stamp, after_stamp = FileStamp.of(st), FileStamp.of(after)
    if before_stamp != after_stamp or size != after.st_size:
        raise ClaimDeferred("the file changed while it was hashed (someone still writes to it); will retry",
                            value=display_path(path))
    return after_stamp, size, digest


def _identity_problem(st: os.stat_result, identity: tuple[int, int] | None) -> str | None:
    if not stat_mod.S_ISREG(st.st_mode):
        return f"not a regular file ({_kind(st.st_mode)}) after the claim"
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
          max_size: int | None = None, fsync: bool = True) -> ClaimedFile | Refuse:
    """Claim one ready file: inspect, ``record_intent(intent)``, rename, hash.

    ``record_intent`` must durably record the intent (commit) before it
    returns; if it raises, nothing moves. The caller then records the
    returned :class:`ClaimedFile` (state ``claimed``, size, sha256) in the
    same transaction as the run it starts. Returns a :class:`Refuse` for
    files that must not be claimed (record it when ``verdict.final``).
    """
    intent = prepare_claim(path, folder, inbox_dir, claim_id, max_size=max_size)
    if isinstance(intent, Refuse):
        return intent
    if record_intent is not None:
        record_intent(intent)
    return perform_claim(intent, fsync=fsync)


def hash_file(path: Path) -> tuple[int, str]:
    """``(size, sha256 hex)`` of ``path``, read through an ``O_NOFOLLOW`` descriptor."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        return _hash_fd(fd)
    finally:
        os.close(fd)


def _hash_fd(fd: int) -> tuple[int, str]:
    h = hashlib.sha256()
    size = 0
    with os.fdopen(fd, "rb", closefd=False) as f:
        while chunk := f.read(_HASH_CHUNK):
            h.update(chunk)
            size += len(chunk)
    return size, h.hexdigest()


def sync_dirs(paths: Iterable[Path]) -> None:
    """fsync each distinct folder once (makes renames into and out of them durable)."""
    for p in dict.fromkeys(Path(x) for x in paths):
        _fsync_dir(p)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# ---------------------------------------------------------------------------
# recovery

InputState = Literal["claiming", "claimed", "started", "duplicate", "refused", "quarantined", "done", "vanished",
                     "lost"]


@dataclass(frozen=True)
class InputRecord:
    """One row of the store's ``inputs`` table, as :func:`reconcile` needs it.

    ``state``: ``claiming`` (intent recorded, rename maybe not done),
    ``claimed`` (in the inbox, hashed; no run yet), ``started`` (run created),
    or a final state (duplicate, refused, quarantined, done, vanished, lost).
    """

    id: int
    pipeline: str
    state: str
    source: Path
    inbox_path: Path | None = None
    dev: int | None = None
    ino: int | None = None
    sha256: str | None = None
    run_id: str | None = None


ActionKind = Literal["ingest", "rename", "finish", "submit", "link_run", "forget", "lost", "adopt"]


@dataclass(frozen=True)
class Action:
    """One step to bring store and disk back in line.

    * ``ingest`` path: a drop-folder file with no claim: treat as a new
      arrival (settle, inspect, claim);
    * ``rename`` record: intent recorded, file still in the drop folder:
      :func:`perform_claim` then record ``claimed``;
    * ``finish`` record: renamed but not recorded: :func:`perform_claim`
      (only hashes) then record ``claimed``;
    * ``submit`` record: claimed, no run: start the run (records ``started``);
    * ``link_run`` record + run_id: the run exists (found by its trigger
      tag ``input:<id>``) but the record missed it: record ``started``;
    * ``forget`` record: the intended file vanished before the rename (the
      user removed it): record ``vanished``;
    * ``lost`` record: claimed but the inbox file is gone and no run: record
      ``lost`` with the reason (someone deleted the inbox);
    * ``adopt`` path: an inbox file no record names: record it as claimed
      (hash it; the duplicate check still applies).
    """

    kind: ActionKind
    path: Path | None = None
    record: InputRecord | None = None
    run_id: str | None = None
    reason: str = ""


FileId = tuple[int, int]
"""(st_dev, st_ino)."""


def reconcile(records: Iterable[InputRecord], drop_files: Mapping[Path, FileId], inbox_files: Iterable[Path],
              runs_by_input: Mapping[int, str]) -> list[Action]:
    """The actions that resolve every crash point without loss or double processing. Pure.

    ``records``: the store's inputs in EVERY state: a record in a final
    state (done, quarantined, duplicate, ...) gets no action but owns its
    inbox file, so the inbox files of processed inputs (kept for retry and
    lineage, docs/triggers.md "Inbox lifecycle") are never taken for
    strays. ``drop_files``: candidate files in the watched folders with
    their (dev, ino). ``inbox_files``: files found in claim folders.
    ``runs_by_input``: input id -> run id of runs whose trigger names the
    input (the engine's record that a run was created for it).

    Each record gets at most one action; each drop file at most one
    (``ingest`` unless it is the unmoved source of an intent); each inbox
    file not named by any record, and in a claim folder ``in-<id>`` whose id
    no record has, is ``adopt``-ed. Output order: records by
    id, then ingests, then adopts (by path).
    """
    actions: list[Action] = []
    inbox = {Path(p) for p in inbox_files}
    drop = {Path(p): fid for p, fid in drop_files.items()}
    named_inbox: set[Path] = set()
    owned_sources: set[Path] = set()
    known_ids: set[int] = set()
    for rec in sorted(records, key=lambda r: r.id):
        known_ids.add(rec.id)
        if rec.inbox_path is not None:
            named_inbox.add(Path(rec.inbox_path))
        if rec.state == "claiming":
            in_inbox = rec.inbox_path is not None and Path(rec.inbox_path) in inbox
            src_id = drop.get(Path(rec.source))
            same = src_id is not None and rec.dev is not None and src_id == (rec.dev, rec.ino)
            if in_inbox:
                actions.append(Action("finish", record=rec, reason="renamed into the inbox before the crash"))
            elif same:
                owned_sources.add(Path(rec.source))
                actions.append(Action("rename", record=rec, reason="intent recorded, rename not done"))
            else:
                actions.append(Action("forget", record=rec, reason="the file left the drop folder before the claim"))
        elif rec.state == "claimed":
            if rec.id in runs_by_input:
                actions.append(Action("link_run", record=rec, run_id=runs_by_input[rec.id],
                                      reason="run created, its record missed"))
            elif rec.inbox_path is not None and Path(rec.inbox_path) in inbox:
                actions.append(Action("submit", record=rec, reason="claimed, run not started"))
            else:
                actions.append(Action("lost", record=rec, reason="the claimed file is missing from the inbox"))
        elif rec.state == "started" and rec.run_id is None and rec.id in runs_by_input:
            actions.append(Action("link_run", record=rec, run_id=runs_by_input[rec.id], reason="run id not recorded"))
    for p in sorted(drop):
        if p not in owned_sources:
            actions.append(Action("ingest", path=p, reason="in the drop folder, not claimed"))
    for p in sorted(inbox - named_inbox):
        if claim_folder_id(p.parent.name) in known_ids:
            continue  # its record names another path (e.g. quarantined): the file is known, not a stray
        actions.append(Action("adopt", path=p, reason="in the inbox, not recorded"))
    return actions


def claim_folder_id(name: str) -> int | None:
    """The input id of a claim folder named ``in-<id>``; None for any other name."""
    if name.startswith("in-") and name[3:].isdigit() and name[3:].isascii():
        return int(name[3:])
    return None


def list_inbox(inbox_dir: Path | str) -> list[Path]:
    """Entries of claim folders (``<inbox>/in-<id>/<name>``), for :func:`reconcile`.

    Other names in the inbox (a batch's path list, ``batch-*.paths``) are
    not claims. Any entry but a folder counts (a symlink swapped in is a
    stray too); a claim folder that cannot be read is skipped with a log line.
    """
    out: list[Path] = []
    base = Path(inbox_dir)
    try:
        claims = list(os.scandir(base))
    except FileNotFoundError:
        return []
    for c in claims:
        if claim_folder_id(c.name) is None or not c.is_dir(follow_symlinks=False):
            continue
        try:
            with os.scandir(c.path) as it:
                out.extend(Path(e.path) for e in it if not e.is_dir(follow_symlinks=False))
        except OSError as exc:
            _log.error("cannot list claim folder %s: %s", display_path(c.path), exc.strerror)
    return sorted(out)


def file_ids(paths: Iterable[Path]) -> dict[Path, FileId]:
    """(dev, ino) by lstat for each existing path, for :func:`reconcile`'s ``drop_files``."""
    out: dict[Path, FileId] = {}
    for p in paths:
        try:
            st = os.lstat(p)
        except OSError:
            continue
        out[Path(p)] = (st.st_dev, st.st_ino)
    return out


# ---------------------------------------------------------------------------
# quarantine


@dataclass(frozen=True)
class Quarantined:
    """A file in quarantine and its reason document beside it."""

    path: Path
    reason_path: Path
    reason: dict[str, Any] = field(default_factory=dict)


REASON_SUFFIX = ".reason.json"


def quarantine(path: Path | str, quarantine_dir: Path | str, reason: str, *, source_name: str | None = None,
               details: Mapping[str, Any] | None = None, now: float | None = None) -> Quarantined:
    """Move ``path`` (an inbox file) into ``quarantine_dir`` and write ``<name>.reason.json`` beside it.

    Both steps are atomic (write temp + fsync + rename; ``os.rename``). The
    reason is written first: a crash between leaves a reason without its file
    (harmless, and :func:`requeue` ignores it) rather than an unexplained
    A name already in quarantine gets a ``.N`` before its suffix. Every
    name made here fits NAME_MAX whatever the input's name (:func:`fit_name`:
    a long name is shortened with a hash; ``source_name`` in the document
    keeps the original). ``details`` values are stored as JSON (paths in
    their :func:`display_path` form).
    Raises ``OSError`` when ``quarantine_dir`` is on another filesystem.
    """
    src = Path(path)
    qdir = Path(quarantine_dir)
    qdir.mkdir(parents=True, exist_ok=True)
    name = _free_name(qdir, source_name or src.name)
    dest = qdir / name
    doc = {"file": display_path(name), "source_name": display_path(source_name or src.name), "reason": reason,
           "quarantined_at": now if now is not None else time.time(), **(dict(details) if details else {})}
    reason_path = qdir / (name + REASON_SUFFIX)
    write_atomic(reason_path, json.dumps(doc, indent=2, sort_keys=True).encode() + b"\n")
    os.rename(src, dest)
    _fsync_dir(qdir)
    return Quarantined(dest, reason_path, doc)


def requeue(quarantined: Path | str, drop_folder: Path | str) -> Path:
    """Send a quarantined file back into ``drop_folder`` (atomic rename) and drop its reason file.

    It arrives as a rename (``moved_to``), so it is ingested at once. The
    original name is used unless taken, then ``name.N.ext``. Raises
    :class:`ClaimError` when ``quarantined`` is not a regular file in
    quarantine (a ``.reason.json`` itself, a symlink, missing).
    """
    src = Path(quarantined)
    if src.name.endswith(REASON_SUFFIX):
        raise ClaimError("names a reason file, not a quarantined input", value=str(src),
                         expected="the quarantined file beside it")
    try:
        st = os.lstat(src)
    except FileNotFoundError:
        raise ClaimError("no such quarantined file", value=str(src)) from None
    if not stat_mod.S_ISREG(st.st_mode):
        raise ClaimError("not a regular file", value=str(src))
    reason_path = src.with_name(src.name + REASON_SUFFIX)
    name = src.name
    try:
        doc = json.loads(reason_path.read_text())
        name = str(doc.get("source_name") or name)
    except (OSError, ValueError):
        pass
    drop = Path(drop_folder)
    dest = drop / _free_name(drop, name, reserve=0)
    os.rename(src, dest)
    _fsync_dir(drop)
    try:
        os.unlink(reason_path)
    except FileNotFoundError:
        pass
    return dest


def _free_name(folder: Path, name: str, *, reserve: int = len(REASON_SUFFIX)) -> str:
    """A name in ``folder`` that neither it nor its reason file uses, fitting NAME_MAX with ``reserve`` bytes."""
    def free(cand: str) -> bool:
        return not os.path.lexists(folder / cand) and not (
            reserve and os.path.lexists(folder / (cand + REASON_SUFFIX)))

    name = fit_name(name, reserve)
    if free(name):
        return name
    stem, dot, ext = name.partition(".")
    for n in range(1, 1_000_000):
        cand = fit_name(f"{stem}.{n}{dot}{ext}" if dot else f"{stem}.{n}", reserve)
        if free(cand):
            return cand
    raise ClaimError("no free name", value=name)  # pragma: no cover


def write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` by temp file + fsync + rename (+ fsync of the folder): old or new, never half."""
    # A short temporary name: one derived from ``path.name`` could pass NAME_MAX.
    tmp = path.with_name(f".tmp-{os.getpid()}-{secrets.token_hex(6)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.rename(tmp, path)
    _fsync_dir(path.parent)
