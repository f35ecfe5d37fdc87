"""The state file checked in place while a daemon runs (removed, replaced, truncated, its -wal gone), and refused
at open when the last writer left it corrupt."""

from __future__ import annotations

import os
import shutil
import sqlite3
import time
from pathlib import Path

import pytest

from edgeorch.errors import StateError
from edgeorch.store.db import REMOVED, REPLACED, WAL_REMOVED, Database, is_corruption


def _db(tmp_path: Path) -> Database:
    db = Database(tmp_path / "edgeorch.db", clock=time.time)
    with db.transaction():
        db.conn.execute("CREATE TABLE IF NOT EXISTS t (x)")
        db.conn.execute("INSERT INTO t VALUES (1)")
    assert db.check_in_place() is None  # the first check takes the WAL's identity
    return db


def test_a_state_file_in_place_is_fine_and_each_way_of_losing_it_is_named(tmp_path: Path) -> None:
    db = _db(tmp_path)
    path = tmp_path / "edgeorch.db"
    assert db.check_in_place() is None

    os.rename(path, tmp_path / "aside.db")
    assert db.check_in_place() == REMOVED
    shutil.copy(tmp_path / "aside.db", path)  # a copy at the path: another file
    assert db.check_in_place() == REPLACED
    os.replace(tmp_path / "aside.db", path)  # the same file back
    assert db.check_in_place() is None

    with open(path, "r+b") as f:
        f.truncate(0)
    assert db.check_in_place() == "was truncated (0 bytes)"
    db.displaced = True
    db.close()  # a displaced file is never closed (SQLite's close would remove the -wal at its path)
    assert tuple(db.conn.execute("SELECT 1").fetchone()) == (1,)


def test_a_removed_wal_is_noticed_and_its_commits_copied_into_the_file(tmp_path: Path) -> None:
    db = _db(tmp_path)
    with db.transaction():
        db.conn.execute("INSERT INTO t VALUES (2)")
    wal = tmp_path / "edgeorch.db-wal"
    assert wal.stat().st_size > 0
    wal.unlink()
    assert db.check_in_place() == WAL_REMOVED
    assert db.rescue_wal()
    db.displaced = True
    # Read by another connection: the file alone holds both rows now.
    other = sqlite3.connect(tmp_path / "edgeorch.db")
    assert other.execute("SELECT x FROM t ORDER BY x").fetchall() == [(1,), (2,)]
    other.close()


def test_a_replaced_wal_is_named_and_only_the_connections_own_wal_is_dropped(tmp_path: Path) -> None:
    db = _db(tmp_path)
    wal = tmp_path / "edgeorch.db-wal"
    os.rename(wal, tmp_path / "old-wal")
    wal.write_bytes(b"someone else's")
    assert db.check_in_place() == "had its -wal file replaced"
    assert not db.drop_own_wal() and wal.read_bytes() == b"someone else's"  # not this connection's: kept
    wal.unlink()
    os.rename(tmp_path / "old-wal", wal)
    assert db.drop_own_wal() and not wal.exists()


def test_an_empty_file_beside_a_nonempty_wal_is_refused_not_taken_for_a_new_state(tmp_path: Path) -> None:
    db = _db(tmp_path)
    with db.transaction():
        db.conn.execute("INSERT INTO t VALUES (2)")
    shutil.copy(tmp_path / "edgeorch.db-wal", tmp_path / "saved-wal")  # as a crash leaves it
    (tmp_path / "edgeorch.db").write_bytes(b"")
    db.displaced = True
    crashed = tmp_path / "crashed"
    crashed.mkdir()
    (crashed / "edgeorch.db").write_bytes(b"")
    shutil.copy(tmp_path / "saved-wal", crashed / "edgeorch.db-wal")
    with pytest.raises(StateError, match="the state file is empty but its -wal file is not: it was truncated"):
        Database(crashed / "edgeorch.db", clock=time.time)
    assert (crashed / "edgeorch.db-wal").stat().st_size > 0  # left for whoever restores it


def test_a_file_left_corrupt_by_a_writer_that_did_not_close_it_is_refused_at_open(tmp_path: Path) -> None:
    """A state file moved over the live one while a daemon ran, then a crash: its old -wal is replayed into the
    new file at the next open. ``quick_check`` after an unclean close refuses the result."""
    live = tmp_path / "live"
    live.mkdir()
    db = Database(live / "edgeorch.db", clock=time.time)
    with db.transaction():
        db.conn.execute("CREATE TABLE big (x)")
        db.conn.executemany("INSERT INTO big VALUES (?)", [(os.urandom(300),) for _ in range(2000)])
    db.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # most pages in the file, as a daemon's checkpoints leave them
    with db.transaction():  # the newest changes (interior pages among them) only in the WAL
        db.conn.execute("UPDATE big SET x = ? WHERE rowid % 7 = 0", (os.urandom(200),))
    other = tmp_path / "other"
    other.mkdir()
    small = Database(other / "edgeorch.db", clock=time.time)  # an older state: its pages hold other things
    with small.transaction():
        small.conn.execute("CREATE TABLE pad (y)")
        small.conn.executemany("INSERT INTO pad VALUES (?)", [(os.urandom(100),) for _ in range(5000)])
    small.close()
    crashed = tmp_path / "crashed"
    crashed.mkdir()
    shutil.copy(other / "edgeorch.db", crashed / "edgeorch.db")  # the file moved over the live one
    shutil.copy(live / "edgeorch.db-wal", crashed / "edgeorch.db-wal")  # the live one's WAL, left by the crash
    db.displaced = True
    with pytest.raises(StateError) as err:
        Database(crashed / "edgeorch.db", clock=time.time)
    assert err.value.render().startswith(f"{crashed / 'edgeorch.db'}: the state file is damaged: database disk image is malformed "
                                            "(PRAGMA quick_check: On tree page ")
    assert "restore it from a backup" in err.value.render()


def test_a_clean_close_pays_no_check_and_corruption_is_told_from_other_errors(tmp_path: Path) -> None:
    db = _db(tmp_path)
    db.close()
    assert not (tmp_path / "edgeorch.db-wal").exists()  # nothing to recover: no quick_check at the next open
    Database(tmp_path / "edgeorch.db", clock=time.time).close()
    assert is_corruption(sqlite3.DatabaseError("database disk image is malformed"))
    assert is_corruption(sqlite3.DatabaseError("file is not a database"))
    assert not is_corruption(sqlite3.OperationalError("database is locked"))
    assert not is_corruption(ValueError("malformed"))


def test_the_check_never_drops_the_connections_locks_so_no_other_process_takes_its_wal(tmp_path: Path) -> None:
    """Closing any descriptor of the state file drops every POSIX lock the process holds on it: a check that read
    the file's header let a reader in another process take the daemon's WAL for its own and delete it at close
    (the daemon then stopped on "lost its -wal file", in a dozen tests)."""
    import subprocess
    import sys

    db = _db(tmp_path)
    for _ in range(3):
        assert db.check_in_place() is None
    reader = ("import sqlite3, sys; c = sqlite3.connect(sys.argv[1]); c.execute('SELECT count(*) FROM t').fetchone();"
              " c.close()")
    subprocess.run([sys.executable, "-c", reader, str(tmp_path / "edgeorch.db")], check=True)
    assert (tmp_path / "edgeorch.db-wal").exists()
    assert db.check_in_place() is None
