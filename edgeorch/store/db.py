"""The one connection to the state file: pragmas, transactions, migrations.

Contract:

- One :class:`Database` per :class:`~edgeorch.store.Store`; every aggregate
  (``store.runs``, ``store.inputs``, ...) writes through it, so they share one
  connection and one transaction.
- :meth:`Database.transaction` is ``BEGIN IMMEDIATE`` ... ``COMMIT``; nested,
  it is a SAVEPOINT inside the outer one, so writes of several aggregates in one
  ``with store.transaction():`` commit or roll back together.
- WAL mode with ``synchronous=FULL``: a committed transition survives power
  loss, which is the usual failure on edge machines (``durable=False`` relaxes
  one commit, see :meth:`Database.transaction`).
- The pragmas are set here and nowhere else; migrations (``schema.MIGRATIONS``)
  are applied here, each in its own transaction, when the file is opened for
  writing.
"""

from __future__ import annotations

import logging
import os
import stat
import sqlite3
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

from ..errors import StateError
from .schema import MIGRATIONS, SCHEMA_VERSION

BUSY_TIMEOUT_MS = 10_000
log = logging.getLogger(__name__)


def make_state_folder(directory: Path, mode: int = 0o750, *, what: str = "the state folder",
                      hint: str = "set [state] dir in the config to a folder", inner: bool = False) -> None:
    """Make a folder of the state (and its parents) when missing; a :class:`StateError` naming it when it cannot be.

    The one rule for the daemon's lock, the state file, the runs folder and every offline writer: a file at
    the path (a ``[state] dir`` that names one), a parent that is a file, no permission, a read-only file
    system is said as such (``what``, ``hint``), never an internal error. ``inner``: a folder inside the state
    folder (the runs folder) that nobody but the owner and its group enters: every access of others is taken.
    """
    try:
        directory.mkdir(mode=mode, parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):  # the path, or a parent of it, is not a folder
        raise StateError(f"{what}'s path is not a folder", file=str(directory),
                         expected="a folder, or a path where one can be made", hint=hint) from None
    except OSError as exc:
        raise StateError(f"cannot make {what}: {exc.strerror}", file=str(directory), hint=hint) from None
    _closed_to_others(directory, what, inner=inner)


WAL_SIZE_LIMIT = 64 << 20
"""Bytes the WAL file is truncated to once a checkpoint resets it (``journal_size_limit``): far above what the
automatic checkpoints (1,000 pages, ~4 MB) leave, so everyday commits never pay for a truncation."""


def _closed_to_others(path: Path, what: str, *, inner: bool = False) -> None:
    """Take read and write from "others" on ``path`` (a state folder or file of this user's), keeping the rest;
    ``inner`` (a folder inside the state folder: the runs folder), execute too.

    The state holds every run's parameters, the audit log, dataset versions: a user with no access on the control
    socket must not read them past it. A folder made by a parent's ``mkdir`` (numba's cache under ``./var``),
    or under a umask of 022, or before this rule, is ``0755``; the state file ``0644``. Execute stays on the state
    folder itself (a user named in ``[control] readers`` reaches the socket inside through it, and nothing is
    listed), never on the runs folder: the run folders in it (``0755`` from an older edgeorch) are numbered, so an
    open one was read by path, every task's log and output (an upgraded state folder, ``0751`` with the runs
    folder ``0751``). Another user's file (a state in a shared folder, root's) is left as it is.
    """
    from ..trust import withdraw

    try:
        mode = withdraw(path, 0o007 if inner else 0o006)
    except OSError:
        return  # read-only file system, gone meanwhile: the next open says what matters
    if mode is not None:
        log.info("%s %s was open to every user: made it %o", what, path, mode)


def _identity(path: Path) -> tuple[int, int] | None:
    """``(st_dev, st_ino)`` of ``path``, or None when there is nothing there."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


def _nonempty(path: Path) -> bool:
    try:
        return os.stat(path).st_size > 0
    except OSError:
        return False


REPLACED = "was replaced by another file"
REMOVED = "was removed"
WAL_REMOVED = "lost its -wal file (removed)"
""":meth:`Database.check_in_place`'s answer when the ``-wal`` file was removed: the commits since the last checkpoint
live in the deleted file this connection still holds open; :meth:`Database.rescue_wal` copies them into the state
file."""

CORRUPTION_MARKS = ("malformed", "file is not a database", "disk i/o error")
"""What SQLite's message says when the state file itself cannot be read (not a busy or full disk)."""


def is_corruption(exc: BaseException) -> bool:
    """Whether ``exc`` says the state file is corrupt or unreadable (a truncated file, a replayed foreign WAL, a
    removed ``-wal``): nothing a retry fixes; the daemon stops on it (docs/operations.md)."""
    return isinstance(exc, sqlite3.DatabaseError) and any(m in str(exc).lower() for m in CORRUPTION_MARKS)


class StateFullError(StateError):
    """A write of the state file refused for lack of space (SQLite's ``SQLITE_FULL``: the disk, or a
    ``max_page_count``). Same code and exit as any :class:`StateError`; told apart only by what can react to it:
    ``edgeorch gc`` then removes the planned runs' folders before their rows (edgeorch/retention/gc.py)."""


FULL_HINT = ("free space on that file system: `edgeorch gc --apply` removes old runs (by [retention], or give "
             "--older-than), and on a full disk it removes their folders first. The daemon stops on a write it cannot "
             "make (exit 4): start it again once there is room (running tasks go on meanwhile and are collected "
             "then); a refused request can be sent again")
"""The one hint of a full state disk (:meth:`Database._write_error`): what works on a full disk, and what really
happens to the daemon (it stopped; nothing goes on by itself)."""


def is_full(exc: BaseException) -> bool:
    """Whether SQLite refused a write for lack of space (``SQLITE_FULL``: "database or disk is full")."""
    code = getattr(exc, "sqlite_errorcode", None)
    return code == sqlite3.SQLITE_FULL if code is not None else "full" in str(exc).lower()


DAMAGED_HINT = ("restore it from a backup, with the daemon stopped (docs/operations.md, \"Back up the state file\"); "
                "`sqlite3 FILE 'PRAGMA integrity_check'` lists the damage, `sqlite3 FILE '.recover'` may save what is "
                "left. Running tasks go on (live restore): a daemon started on a good file collects them")
"""The one hint of a damaged state file, wherever it is found (:func:`corruption_error`, the check at open,
:func:`damaged_while_running`)."""


def corruption_error(exc: BaseException, path: Path | str | None) -> StateError | None:
    """``exc`` as the :class:`StateError` of a damaged state file (``path``, when known), or None when it says
    nothing of the kind (:func:`is_corruption`). The one wording, with what to do."""
    if not is_corruption(exc):
        return None
    return StateError(f"the state file is damaged: {exc}", file=str(path) if path is not None else None,
                      hint=DAMAGED_HINT)


def damaged_while_running(exc: BaseException, path: Path | str) -> StateError:
    """The daemon's fail-stop when a request met a damaged page (``exc``, :func:`is_corruption`): the file is
    malformed, which is not the same as the file changed under the daemon (replaced, removed: ``check_in_place``).
    A page damaged before the start is refused by the check at open; one damaged since (disk trouble) lands
    here, found by whatever query reads it first."""
    return StateError(f"the state file is damaged: {exc} (found by a request while the daemon ran): stopping, so "
                      "that nothing more is written to it", file=str(path), hint=DAMAGED_HINT)


class Database:
    """The shared connection; the aggregates' only way to the SQL."""

    def __init__(self, path: Path, *, clock: Callable[[], float], readonly: bool = False,
                 check: bool = False) -> None:
        """``check``: refuse a damaged file even after a clean close (the daemon's start: one read of the whole
        file, :meth:`_refuse_if_corrupt`); any writer refuses one after an unclean close, when SQLite replayed a
        WAL into it."""
        self.path = Path(path)
        self.clock = clock
        self.readonly = readonly
        self._depth = 0
        self._relaxed = False  # the connection's synchronous level is NORMAL (else FULL, as _open sets it)
        self.memo: dict[str, Any] = {}
        """Facts read or written inside the open transaction, kept to spare a query (the audit log's head):
        empty outside a transaction, emptied when it ends and when a savepoint rolls back, so what it holds
        is always what the state file holds for this connection (which holds the write lock meanwhile)."""
        self.write_failing: tuple[float, str] | None = None
        """``(since, error)`` while writes of the state file fail (a full disk, an I/O error): set by the first
        failure, cleared by the next commit that succeeds. What ``status`` and the metrics show: the daemon goes on
        (it was said only in the log, and ``status`` looked healthy)."""
        self.committed: dict[str, Any] = {}
        """What :attr:`memo` held at this connection's last commit (the audit head it wrote last): a hint
        for readers that may lag (another connection's later writes are not in it), never for writers."""
        self._after: list[Callable[[], None]] = []
        self._undo: list[Callable[[], None]] = []  # what the open transaction did outside the file (on_rollback)
        if readonly and not self.path.exists():
            raise StateError("no state file yet (nothing has run)", file=str(self.path))
        self.displaced = False
        """The file at :attr:`path` is not the one this connection writes any more (:meth:`check_in_place`): it
        is never closed by :meth:`close` (SQLite's close removes the ``-wal`` file by its name, which may be
        the WAL of the file now there)."""
        unclean = not readonly and _nonempty(Path(f"{self.path}-wal"))  # the last writer did not close it
        if unclean and self.path.exists() and self.path.stat().st_size == 0:
            # SQLite would take it for a new, empty state (its WAL replayed onto nothing): every run forgotten.
            raise StateError("the state file is empty but its -wal file is not: it was truncated",
                             file=str(self.path), hint="restore it from a backup (docs/operations.md, \"Back up the state file\"); "
                                                       "to start with empty state, move the file and its -wal away")
        self.conn, version = self._open()
        self._identity = _identity(self.path)
        self._wal_identity = _identity(Path(f"{self.path}-wal"))  # made by the open's first read, in WAL mode
        if version and not readonly and (unclean or check):
            self._refuse_if_corrupt(unclean=unclean)
        if version == 0 and not readonly:
            foreign = _table_names(self.conn)
            if foreign:
                raise StateError(
                    f"the file is an SQLite database but not an edgeorch state file (tables: {', '.join(foreign[:5])})",
                    file=str(self.path), hint="point [state] dir at another folder",
                )
        if version > SCHEMA_VERSION:
            raise StateError(
                f"the state file has schema version {version}, newer than this edgeorch ({SCHEMA_VERSION})",
                file=str(self.path), hint="upgrade edgeorch, or restore a backup made by this version",
            )
        if version < SCHEMA_VERSION:
            if readonly:
                raise StateError(f"the state file has an old schema version {version} (this edgeorch writes "
                                 f"{SCHEMA_VERSION})", file=str(self.path),
                                 hint="start the daemon once to migrate it; after an upgrade, restart it "
                                      "(systemctl restart edgeorch): the one running is the older edgeorch")
            self._migrate(version)

    def _open(self) -> tuple[sqlite3.Connection, int]:
        """Connect with the pragmas (the one place they are set); returns the connection and ``user_version``."""
        if not self.readonly:
            make_state_folder(self.path.parent)
            try:  # made here, not by SQLite (0644): its -wal and -shm take the same mode
                os.close(os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o640))
            except OSError:
                pass  # there already (checked below), or not makeable: SQLite says why
            for path in (self.path, Path(f"{self.path}-wal"), Path(f"{self.path}-shm")):
                _closed_to_others(path, "the state file")
        try:
            uri = f"file:{self.path}?mode=ro" if self.readonly else f"file:{self.path}"
            conn = sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False)
            conn.row_factory = sqlite3.Row
            conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            if not self.readonly:
                conn.execute("PRAGMA journal_mode = WAL")
                conn.execute("PRAGMA synchronous = FULL")
                conn.execute("PRAGMA foreign_keys = ON")
                # A savepoint's undo pages (a statement journal) stay in memory instead of spilling past 64 KiB
                # to a temp file: a claim group gives each file a savepoint that touches ~35 pages, which cost
                # ~85 writes (175 KB) per file into SQLite's temp folder (/var/tmp), and a full or read-only
                # temp folder failed a transaction the state folder had room for. Freed at each release.
                conn.execute("PRAGMA temp_store = MEMORY")
                # A big transaction (a burst's claim group) grows the WAL; without a limit the file kept that size
                # until the next start. Truncated to this at the next checkpoint that resets it.
                conn.execute(f"PRAGMA journal_size_limit = {WAL_SIZE_LIMIT}")
            version = conn.execute("PRAGMA user_version").fetchone()[0]
        except sqlite3.DatabaseError as exc:
            denied = self._access_problem()
            if denied is not None:  # not a damaged file: the advice to move it away would lose a good one
                raise StateError(f"cannot read the state file: {denied}", file=str(self.path),
                                 hint="ask through the daemon (a running one answers the users of its socket's "
                                      "group: control.group), or run this as the daemon's user") from None
            if is_full(exc):  # a good (or new) file on a full disk: the advice to move it away would lose it
                raise StateFullError(f"cannot open the state file: {exc}{self._room()}", file=str(self.path),
                                     hint=FULL_HINT) from None
            raise StateError(
                f"cannot open the state file: {exc}", file=str(self.path),
                expected="an edgeorch SQLite state file",
                hint="restore it from a backup, or move it away to start with empty state",
            ) from None
        return conn, version

    def _access_problem(self) -> str | None:
        """Why this user may not read the state file (its folder, or the file, or its -wal for a reader), else None:
        SQLite says only "unable to open database file" for a permission, as for a damaged file."""
        for path in (self.path.parent, self.path, Path(f"{self.path}-wal")):
            try:
                st = os.stat(path)
            except FileNotFoundError:
                continue
            except OSError as exc:
                return f"{path}: {exc.strerror}"
            need = os.R_OK | os.X_OK if path == self.path.parent else os.R_OK
            if not os.access(path, need):
                from ..trust import owner_name

                return (f"{path} is not open to you (mode {stat.S_IMODE(st.st_mode):04o}, owned by "
                        f"{owner_name(st.st_uid)})")
        return None

    def _migrate(self, version: int) -> None:
        try:
            for number in range(version, SCHEMA_VERSION):
                with self.transaction():
                    for statement in _statements(MIGRATIONS[number]):
                        self.conn.execute(statement)
                    self.conn.execute(f"PRAGMA user_version = {number + 1}")
        except sqlite3.DatabaseError as exc:
            raise StateError(f"cannot migrate the state file: {exc}", file=str(self.path)) from None
        if version:  # an upgrade: said once (a new file is made at the newest version, nothing to say)
            log.warning("state file %s migrated from schema version %d to %d (an upgrade of edgeorch; an older "
                        "edgeorch refuses it from now on)", self.path, version, SCHEMA_VERSION)

    @contextmanager
    def transaction(self, *, durable: bool = True) -> Iterator[sqlite3.Connection]:
        """One atomic unit: ``BEGIN IMMEDIATE``/``COMMIT``, or a SAVEPOINT when nested.

        ``durable=False`` commits without waiting for fsync (``synchronous=NORMAL``
        for this commit; a durable one sets ``FULL`` again): still atomic and crash-safe for the process, but the
        last such commits may be lost on power loss. Only for facts that are
        recorded durably elsewhere too (the shim's proc.json), to keep the
        per-task overhead low; the next durable commit syncs them as well.
        """
        if self.readonly:
            raise StateError("the state file is open read-only", file=str(self.path))
        if self._depth:
            name = f"sp{self._depth}"
            self.conn.execute(f"SAVEPOINT {name}")
            self._depth += 1
            mark, undo_mark = len(self._after), len(self._undo)
            try:
                yield self.conn
            except BaseException:
                self.memo.clear()
                del self._after[mark:]  # what the rolled-back writes would have announced
                self.conn.execute(f"ROLLBACK TO {name}")
                self.conn.execute(f"RELEASE {name}")
                self._run_undo(undo_mark)
                raise
            else:
                self.conn.execute(f"RELEASE {name}")
            finally:
                self._depth -= 1
            return
        if durable == self._relaxed:
            # Set only when this commit's level differs from the connection's last one: on an engine's hot path
            # relaxed and durable commits alternate, and each switch is a statement (no write happens outside
            # a transaction, so the level a commit gets is always its own transaction's).
            self.conn.execute("PRAGMA synchronous = FULL" if durable else "PRAGMA synchronous = NORMAL")
            self._relaxed = not durable
        try:
            self.conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            raise self._write_error(exc) from None
        self._depth = 1
        self.memo.clear()
        self._after.clear()
        self._undo.clear()
        try:
            yield self.conn
        except BaseException as exc:
            self._after.clear()
            if self.conn.in_transaction:
                self.conn.execute("ROLLBACK")
            self._run_undo(0)
            if isinstance(exc, sqlite3.OperationalError):  # disk full, I/O error inside the transition
                raise self._write_error(exc) from None
            raise
        else:
            try:
                self.conn.execute("COMMIT")
            except sqlite3.OperationalError as exc:  # disk full, I/O error: the transition did not happen
                self._after.clear()
                if self.conn.in_transaction:
                    self.conn.execute("ROLLBACK")
                self._run_undo(0)
                raise self._write_error(exc) from None
            self.committed.update(self.memo)
            self.write_failing = None
        finally:
            self._depth = 0
            self.memo.clear()
            self._undo.clear()
        self._run_after_commit()

    def _write_error(self, exc: BaseException) -> StateError:
        """A write that failed, as a :class:`StateError` (and :attr:`write_failing` set): a full disk is a
        :class:`StateFullError` that says how much is free where, and what to do (:data:`FULL_HINT`)."""
        text = str(exc)
        self.write_failing = (self.write_failing[0] if self.write_failing else self.clock(), text)
        if not is_full(exc):
            return StateError(f"cannot write the state file: {text}", file=str(self.path))
        return StateFullError(f"cannot write the state file: {text}{self._room()}", file=str(self.path),
                              hint=FULL_HINT)

    def _room(self) -> str:
        """`` (N KiB free in FOLDER)``: what a full disk's message says; empty when it cannot be read."""
        try:
            import shutil

            return f" ({shutil.disk_usage(self.path.parent).free // 1024} KiB free in {self.path.parent})"
        except OSError:
            return ""

    def after_commit(self, fn: Callable[[], None]) -> None:
        """Call ``fn()`` once the open transaction has committed; never if the transaction, or the savepoint
        it was registered in, rolls back. Outside a transaction it is called at once.

        For what follows a record and must not precede it: memory that mirrors the rows, events on the bus.
        A caller's transaction may hold many such records (a claim group starts hundreds of runs in one);
        each is announced only once it is durable, in the order registered. The callbacks run outside any
        transaction (one may open its own); when one raises, the rest still run and the first error is
        raised to the code that closed the transaction.
        """
        if self._depth == 0:
            fn()
        else:
            self._after.append(fn)

    def sync(self) -> None:
        """Make every commit so far durable, relaxed ones included: one ``fdatasync`` of the WAL.

        The WAL holds the commits in order and SQLite's recovery keeps a prefix of whole commits, so one sync
        covers every relaxed commit written before it; one that a checkpoint already copied into the main file
        was synced there by SQLite (it syncs that file after a checkpoint, even at ``NORMAL``), and a WAL that is
        gone holds nothing. Raises :class:`StateError` when the disk refuses (an I/O error).
        """
        wal = f"{self.path}-wal"
        try:
            fd = os.open(wal, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            return
        except OSError as exc:
            raise StateError(f"cannot sync the state file: {exc.strerror}", file=wal) from None
        try:
            os.fdatasync(fd)
        except OSError as exc:
            raise StateError(f"cannot sync the state file: {exc.strerror}", file=wal) from None
        finally:
            os.close(fd)

    def on_rollback(self, fn: Callable[[], None]) -> None:
        """Call ``fn()`` if the open transaction, or the savepoint it was registered in, rolls back; never once it
        has committed. Outside a transaction nothing is registered (there is nothing to roll back).

        For what a transaction made outside the state file that must not outlive its rows: the folder made for a
        run whose row rolled back (else the run that gets its id next would find it taken). Called right after
        the rollback, newest first; ``fn`` must not raise (an exception it raises is dropped, so that the
        transaction's own error is the one its caller sees).
        """
        if self._depth:
            self._undo.append(fn)

    def _run_undo(self, mark: int) -> None:
        todo, self._undo[mark:] = self._undo[mark:], []
        for fn in reversed(todo):
            try:
                fn()
            except Exception:  # noqa: BLE001 - see on_rollback: the rollback's cause is what is raised
                pass

    def _run_after_commit(self) -> None:
        todo, self._after = self._after, []
        first: BaseException | None = None
        for fn in todo:
            try:
                fn()
            except BaseException as exc:  # noqa: BLE001 - the others still run; the first is raised
                first = first or exc
        if first is not None:
            raise first

    @property
    def in_transaction(self) -> bool:
        """Whether a :meth:`transaction` is open (its writes, and :attr:`memo`, are this connection's)."""
        return self._depth > 0

    def close(self) -> None:
        if not self.displaced:
            self.conn.close()

    def _refuse_if_corrupt(self, *, unclean: bool) -> None:
        """Refuse a damaged state file (``PRAGMA quick_check``): a :class:`StateError` naming the first problem. At
        the daemon's start whatever the last close (``check``), at any writer's open after an unclean one.

        The daemon checks after a clean stop too: a file damaged while no writer had it open (disk trouble, a copy
        cut short, a bad sector) was accepted, and the daemon then stopped on the first request that read the bad
        page, minutes later, any reader's. An offline writer (`edgeorch run` without a daemon) does not pay it after
        a clean close: a one-task run would read the whole file first. Cost: it reads every page, so it is the time to read the file: ~0.26 s warm and
        3-4 s cold (~60 MB/s) for a file of 50,000 runs at 4.7 KB each (240 MB), ~0.1 s warm for the tester's 130 MB.
        Kept whole on purpose: a check of some tables (``quick_check(TABLE)``) misses a page of the others, which
        is the case this check is for; it skips what ``integrity_check`` adds (index contents against their
        tables, UNIQUE constraints), which costs about as much again warm.
        ``unclean``: the last writer did not close the file (kill -9, a crash, a power cut), so SQLite has just
        replayed its WAL into it; a WAL that was not this file's (a state file moved over the live one, its old
        ``-wal`` left beside it) corrupts it, which the hint then names as the likely cause.
        """
        found: str | None = None  # SQLite's own error, when the check could not even read the file
        try:
            verdict = self.conn.execute("PRAGMA quick_check(1)").fetchone()[0]
        except sqlite3.DatabaseError as exc:
            verdict, found = str(exc), str(exc)
        if verdict == "ok":
            return
        self.conn.close()
        if found is None:  # quick_check's own report: its first line names the page (On tree page 5 cell 2: ...)
            lines = [line for line in str(verdict).splitlines() if line.strip() and not line.startswith("***")]
            found = f"database disk image is malformed (PRAGMA quick_check: {(lines or [verdict])[0]})"
        cause = ("The last writer did not close it: was the file replaced while a daemon ran? " if unclean else
                 "It was closed cleanly, so it was damaged on the disk since (disk trouble, a copy cut short). ")
        raise StateError(f"the state file is damaged: {found}", file=str(self.path), hint=cause + DAMAGED_HINT)

    def rescue_wal(self) -> bool:
        """Copy every commit of the (removed) WAL this connection holds open into the state file, which is still
        in place: a checkpoint, synced (``synchronous`` is FULL for it). True when it copied everything."""
        try:
            if self._relaxed:
                self.conn.execute("PRAGMA synchronous = FULL")
                self._relaxed = False
            busy, _frames, _copied = self.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        except sqlite3.DatabaseError as exc:
            log.error("could not copy the removed -wal file's commits into the state file: %s", exc)
            return False
        return busy == 0

    def drop_own_wal(self) -> bool:
        """Remove the ``-wal`` file at the state file's path when it is this connection's (what SQLite's close does;
        the daemon does not close a displaced file): after the file was replaced or removed, this WAL belongs to
        no file there, and the next open would replay it into whatever file is there (a corrupt state). True when
        removed; a WAL that is not this connection's (moved there with its file) is left alone."""
        wal = Path(f"{self.path}-wal")
        if self._wal_identity is None or _identity(wal) != self._wal_identity:
            return False
        try:
            wal.unlink()
        except OSError:
            return False
        return True

    def check_in_place(self) -> str | None:
        """Why the state file at :attr:`path` is not the one this connection writes (removed, replaced by another
        file, truncated, its ``-wal`` file removed or replaced), or None. Two ``stat`` calls: the daemon asks every
        few seconds, and stops on an answer (its commits would go to a file nobody reads, or its ``-wal`` be
        replayed into another file at the next start)."""
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return REMOVED
        except OSError as exc:
            return f"cannot be read ({exc.strerror})"
        if (st.st_dev, st.st_ino) != self._identity:
            return REPLACED
        if st.st_size < 100:
            return f"was truncated ({st.st_size} bytes)"
        # Never opened here: closing any descriptor of the file drops every POSIX lock this process holds on it
        # (SQLite's among them), and another process's close then takes the daemon's WAL for its own and
        # deletes it. A file overwritten in place is found by the first query that reads it (is_corruption).
        wal = _identity(Path(f"{self.path}-wal"))
        if self._wal_identity is None:
            self._wal_identity = wal  # not there at the open (a read-only one): from the first check on
        elif wal is None:
            return WAL_REMOVED
        elif wal != self._wal_identity:
            return "had its -wal file replaced"
        return None

    def integrity_check(self) -> str:
        """``PRAGMA integrity_check``: ``'ok'`` or the first problem."""
        return self.conn.execute("PRAGMA integrity_check").fetchone()[0]

    def one(self, sql: str, args: Iterable[Any] = ()) -> sqlite3.Row | None:
        """The first row of a query, or None."""
        return self.conn.execute(sql, tuple(args)).fetchone()

    def all(self, sql: str, args: Iterable[Any] = ()) -> list[dict[str, Any]]:
        """Every row of a query, as dicts."""
        return [dict(r) for r in self.conn.execute(sql, tuple(args)).fetchall()]


def where(**equal: Any) -> tuple[str, list[Any]]:
    """``("WHERE a = ? AND b = ?", [va, vb])`` for the filters that are set (falsy ones are skipped).

    Column names come from the callers' keyword names, never from user input.
    """
    cols = [(k, v) for k, v in equal.items() if v]
    if not cols:
        return "", []
    return "WHERE " + " AND ".join(f"{k} = ?" for k, _ in cols), [v for _, v in cols]


def _table_names(conn: sqlite3.Connection) -> list[str]:
    """The user tables of a database (SQLite's own ``sqlite_*`` tables left out)."""
    rows = conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\'"
                        " ORDER BY name")
    return [r[0] for r in rows]


def _statements(script: str) -> list[str]:
    """Split a migration script into complete SQL statements.

    A statement ends at a ``;`` only where SQLite's own parser says the text so
    far is complete (:func:`sqlite3.complete_statement`), so a ``;`` inside a
    string literal, a comment or a ``CREATE TRIGGER ... BEGIN ...; END`` body
    does not cut it. Text after the last complete statement is an error: a
    migration is never applied half.
    """
    statements: list[str] = []
    buf = ""
    for piece in script.split(";"):
        buf += piece + ";"
        if sqlite3.complete_statement(buf):
            body = buf.strip()
            if not _only_comments(body[:-1]):
                statements.append(body)
            buf = ""
    rest = buf[:-1].strip()  # the ';' added after the last piece
    if rest and not _only_comments(rest):
        raise ValueError(f"migration ends with an incomplete statement: {rest[:80]!r}")
    return statements


def _only_comments(text: str) -> bool:
    lines = [ln.strip() for ln in text.splitlines()]
    return all(not ln or ln.startswith("--") or ln == ";" for ln in lines)
