"""A transaction that cannot begin leaves the connection as durable as before (real SQLite, two connections)."""

from __future__ import annotations

import sqlite3

import pytest

from edgeorch.errors import StateError
from edgeorch.store import Store


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
        # Every later commit must again wait for fsync (synchronous=FULL), not stay relaxed.
        assert store.db.conn.execute("PRAGMA synchronous").fetchone()[0] == 2
    finally:
        other.close()
        store.close()
