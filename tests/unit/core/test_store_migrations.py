"""Migration scripts are split where SQLite says a statement ends, not at every ';'."""

from __future__ import annotations

import sqlite3

import pytest

from edgeorch.store.db import _statements, _table_names
from edgeorch.store.schema import MIGRATIONS


def test_a_trigger_body_with_semicolons_stays_one_statement():
    script = """
        CREATE TABLE a (x INTEGER);  -- a comment; with a semicolon
        CREATE TABLE log (x INTEGER, note TEXT DEFAULT 'a;b');
        CREATE TRIGGER a_log AFTER INSERT ON a BEGIN
            INSERT INTO log (x) VALUES (new.x);
            INSERT INTO log (x) VALUES (new.x * 2);
        END;
    """
    stmts = _statements(script)
    assert len(stmts) == 3
    conn = sqlite3.connect(":memory:")
    for s in stmts:
        conn.execute(s)
    conn.execute("INSERT INTO a VALUES (2)")
    assert conn.execute("SELECT x, note FROM log ORDER BY x").fetchall() == [(2, "a;b"), (4, "a;b")]


def test_an_incomplete_last_statement_is_refused_not_applied_half():
    with pytest.raises(ValueError, match="incomplete statement"):
        _statements("CREATE TABLE a (x INTEGER); CREATE TRIGGER t AFTER INSERT ON a BEGIN SELECT 1;")


def test_trailing_comments_are_not_a_statement():
    assert _statements("CREATE TABLE a (x);\n-- the end\n") == ["CREATE TABLE a (x);"]


def test_every_shipped_migration_splits_into_statements_sqlite_accepts():
    conn = sqlite3.connect(":memory:")
    for script in MIGRATIONS:
        for s in _statements(script):
            assert sqlite3.complete_statement(s)
            conn.execute(s)


def test_table_names_leave_out_sqlites_own_tables():
    conn = sqlite3.connect(":memory:")
    conn.execute("CREATE TABLE b (x INTEGER PRIMARY KEY AUTOINCREMENT)")
    conn.execute("CREATE TABLE a (x)")
    conn.execute("INSERT INTO b DEFAULT VALUES")  # creates sqlite_sequence
    assert _table_names(conn) == ["a", "b"]


def test_the_lineage_migration_creates_its_tables_and_lookup_indexes(tmp_path):
    # Found by content, not by position: other migrations may be appended around it.
    (script,) = [m for m in MIGRATIONS if "CREATE TABLE consumed" in m]
    from edgeorch.store import Store

    store = Store(tmp_path / "state.db")
    names = {r[0] for r in store.db.conn.execute("SELECT name FROM sqlite_master WHERE type IN ('table', 'index')")}
    assert {"consumed", "manifest_files", "consumed_by_task", "consumed_by_sha256", "consumed_by_path",
            "artifacts_by_sha256", "artifacts_by_path", "inputs_by_sha256", "inputs_by_inbox_path",
            "tasks_by_cached_from"} <= names
    # A lookup by content uses its index, not a scan of every run's rows.
    plan = " ".join(r[3] for r in store.db.conn.execute(
        "EXPLAIN QUERY PLAN SELECT * FROM consumed WHERE path = ? AND sha256 = ?", ("/x", "y")))
    assert "USING INDEX" in plan
    store.close()
