"""Each commit has its own transaction's durability, whatever came before it (real SQLite, two connections)."""

from __future__ import annotations

import sqlite3

import pytest

from edgeorch.errors import StateError
from edgeorch.store import Store

FULL, NORMAL = 2, 1


def _level_inside(store: Store, *, durable: bool) -> int:
    with store.db.transaction(durable=durable) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS t (x)")
        conn.execute("INSERT INTO t VALUES (1)")
        return conn.execute("PRAGMA synchronous").fetchone()[0]


def test_a_relaxed_transaction_that_cannot_begin_leaves_commits_durable(tmp_path):
    store = Store(tmp_path / "state.db", clock=lambda: 1000.0)
    other = sqlite3.connect(tmp_path / "state.db", isolation_level=None)
    try:
        store.db.conn.execute("PRAGMA busy_timeout = 50")  # do not wait the daemon's 10 s for the lock
        other.execute("BEGIN IMMEDIATE")  # another writer holds the write lock
        with pytest.raises(StateError):
            with store.db.transaction(durable=False):
                pass
        other.execute("ROLLBACK")
        # Every later durable commit must again wait for fsync (synchronous=FULL), not stay relaxed.
        assert _level_inside(store, durable=True) == FULL
    finally:
        other.close()
        store.close()


def test_each_commit_gets_its_own_level_in_any_order(tmp_path):
    """The level is switched only when it changes (an engine alternates relaxed and durable commits)."""
    store = Store(tmp_path / "state.db", clock=lambda: 1000.0)
    try:
        order = [True, False, False, True, True, False, True]
        assert [_level_inside(store, durable=d) for d in order] == [FULL if d else NORMAL for d in order]
        with store.db.transaction(durable=False):  # a nested transaction commits with its outer one's level
            with store.db.transaction():
                assert store.db.conn.execute("PRAGMA synchronous").fetchone()[0] == NORMAL
        with pytest.raises(RuntimeError):  # a relaxed transaction that rolls back: the next durable one is FULL
            with store.db.transaction(durable=False):
                raise RuntimeError("boom")
        assert _level_inside(store, durable=True) == FULL
    finally:
        store.close()
