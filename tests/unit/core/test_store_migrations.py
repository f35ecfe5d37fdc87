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


def test_an_upgrade_says_which_schema_it_migrated_from_and_a_new_file_says_nothing(tmp_path, caplog):
    """An upgrade left no trace in the log, and both checkouts called themselves 0.1.0: which code ran, and when
    the file was migrated, could not be told. `--version` and `status` name the schema too."""
    import logging

    from edgeorch.store import SCHEMA_VERSION, Store

    caplog.set_level(logging.WARNING, logger="edgeorch.store.db")
    Store(tmp_path / "new.db").close()
    assert "migrated" not in caplog.text  # made at the newest version
    conn = sqlite3.connect(tmp_path / "old.db")
    for number in range(SCHEMA_VERSION - 1):
        for statement in _statements(MIGRATIONS[number]):
            conn.execute(statement)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION - 1}")
    conn.commit()
    conn.close()
    Store(tmp_path / "old.db").close()
    assert f"migrated from schema version {SCHEMA_VERSION - 1} to {SCHEMA_VERSION}" in caplog.text


def test_migration_21_keeps_the_cancel_of_a_run_an_older_edgeorch_was_stopping(tmp_path, state_before):
    """A run cancelled under an older edgeorch (its attempts still stopping when it was upgraded) had no
    `cancel_reason` after migration 21: the new daemon ended it `failed` (and `retry` of failed runs reran it)."""
    from edgeorch.store import Store

    db = tmp_path / "old.db"
    conn = state_before(db, "ADD COLUMN cancel_reason")
    conn.execute("INSERT INTO pipeline_versions (id, name, content_hash, source_file, source_text, created_at)"
                 " VALUES (1, 'p', 'h', '/p', '', 0)")
    conn.executemany("INSERT INTO runs (id, pipeline, pipeline_version_id, state, params, trigger, run_dir, created_at)"
                     " VALUES (?, 'p', 1, ?, '{}', 'x', '/x', 0)", [(1, "running"), (2, "running"), (13, "cancelled")])
    conn.executemany("INSERT INTO events (ts, kind, run_id, message) VALUES (0, 'cancel_requested', ?, ?)",
                     [(1, "run 1: cancelled by alice (uid 1001): wrong lr"), (13, "run 13: cancelled")])
    conn.commit()
    conn.close()
    store = Store(db)
    try:
        reasons = {r["id"]: r["cancel_reason"] for r in store.db.all("SELECT id, cancel_reason FROM runs")}
        assert reasons == {1: "cancelled by alice (uid 1001): wrong lr", 2: None, 13: None}  # active ones only
    finally:
        store.close()
