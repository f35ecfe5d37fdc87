"""The state file: migrations, bad files, transactions."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import pytest

from edgeorch.errors import NotFoundError, StateError
from edgeorch.model import RunState
from edgeorch.store import SCHEMA_VERSION, Store

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"


@pytest.fixture
def store(tmp_path):
    s = Store(tmp_path / "state.db", clock=lambda: 1000.0)
    yield s
    s.close()


def test_new_file_gets_the_latest_schema_in_wal_mode(store):
    assert store.db.conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert store.db.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert store.db.conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    assert store.integrity_check() == "ok"


def test_a_version_1_file_is_migrated_and_keeps_its_history(tmp_path):
    path = tmp_path / "old.db"
    shutil.copy(FIXTURES / "state_v1.db", path)
    store = Store(path)
    assert store.db.conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    run = store.runs.get(1)
    assert run["pipeline"] == "old" and run["actor"] == "alice" and run["state"] == "succeeded"
    assert store.attempts.of_run(1)[0]["pid"] == 42
    assert store.outputs.results_of(1) == []  # the table added by migration 2 exists
    assert store.integrity_check() == "ok"


def test_a_file_that_is_not_sqlite_is_a_clear_state_error(tmp_path):
    path = tmp_path / "state.db"
    path.write_bytes(b"this is not a database" * 100)
    with pytest.raises(StateError, match="cannot open the state file") as exc:
        Store(path)
    assert str(path) in str(exc.value)
    assert "backup" in exc.value.render()


def test_a_truncated_database_is_a_clear_state_error(tmp_path, store):
    store.events.add("x", "y")
    store.close()
    path = store.path
    data = path.read_bytes()
    path.write_bytes(data[:100])
    with pytest.raises(StateError):
        s = Store(path)
        s.runs.list()


def test_a_newer_schema_is_refused(tmp_path):
    path = tmp_path / "new.db"
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 5}")
    conn.close()
    with pytest.raises(StateError, match="newer than this edgeorch"):
        Store(path)


def test_readonly_open_of_a_missing_file_says_nothing_has_run(tmp_path):
    with pytest.raises(StateError, match="nothing has run"):
        Store(tmp_path / "none.db", readonly=True)


def test_unknown_run_is_not_found(store):
    with pytest.raises(NotFoundError, match="no such run"):
        store.runs.get(99)


def test_a_failed_transaction_leaves_nothing_behind(store):
    version = store.pipelines.record_version("p", "h", "/p.toml", "")
    with pytest.raises(RuntimeError):
        with store.transaction():
            store.db.conn.execute(
                "INSERT INTO runs (pipeline, pipeline_version_id, state, params, trigger, run_dir, created_at)"
                " VALUES ('p', ?, 'queued', '{}', 't', '', 0)", (version,))
            raise RuntimeError("boom")
    assert store.runs.list() == []


def test_nested_transactions_use_savepoints(store):
    version = store.pipelines.record_version("p", "h", "/p.toml", "")
    with store.transaction():
        run_id = store.runs.create(pipeline="p", version_id=version, params={}, trigger="t", actor=None,
                                   run_dir_for=lambda r: f"/runs/{r}", tasks=[("a", "h")])
        with pytest.raises(ValueError):
            with store.transaction():
                store.runs.set_state(run_id, RunState.RUNNING)
                raise ValueError
    assert store.runs.get(run_id)["state"] == "queued"
    assert store.runs.get(run_id)["run_dir"] == f"/runs/{run_id}"


def test_pipeline_versions_are_stored_once_per_content(store):
    a = store.pipelines.record_version("p", "h1", "/p.toml", "x")
    assert store.pipelines.record_version("p", "h1", "/p.toml", "x") == a
    assert store.pipelines.record_version("p", "h2", "/p.toml", "y") != a


def test_another_programs_sqlite_file_is_refused_untouched(tmp_path):
    path = tmp_path / "app.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE users (name TEXT)")
    conn.commit()
    conn.close()
    with pytest.raises(StateError, match="not an edgeorch state file"):
        Store(path)
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == 0
    assert [r[0] for r in conn.execute("SELECT name FROM sqlite_master")] == ["users"]
    conn.close()


def test_importing_the_store_does_not_import_pandas():
    import subprocess
    import sys

    code = "import sys; from edgeorch.store import Store; import tempfile, os; Store(os.path.join(tempfile.mkdtemp(), 's.db')); print('pandas' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_migration_7_repairs_artifact_rows_multiplied_by_cache_hits(tmp_path):
    from edgeorch.store.schema import MIGRATIONS

    path = tmp_path / "state.db"
    conn = sqlite3.connect(path)
    for script in MIGRATIONS[:6]:  # a version-6 file, as an earlier edgeorch left it
        conn.executescript(script)
    rows = [(2, "t", 1, "o", "/x/o", 1, "a", 5.0)] * 4 + [(1, "t", 1, "o", "/x/o", 1, "a", 1.0)]
    conn.executemany("INSERT INTO artifacts (run_id, task, attempt_id, name, path, size, sha256, created_at)"
                     " VALUES (?, ?, ?, ?, ?, ?, ?, ?)", rows)
    conn.execute("PRAGMA user_version = 6")
    conn.commit()
    conn.close()
    store = Store(path)
    assert [(a["run_id"], a["created_at"]) for a in store.outputs.artifacts_of(1) + store.outputs.artifacts_of(2)] == [(1, 1.0), (2, 5.0)]


def test_the_wal_a_big_transaction_grew_is_truncated_at_the_next_checkpoint_not_kept(tmp_path, monkeypatch):
    """A 10,000-file burst's claim group grew the WAL to tens of MB, and it stayed that size until the next start."""
    import os

    from edgeorch.store import db

    monkeypatch.setattr(db, "WAL_SIZE_LIMIT", 256 << 10)
    store = Store(tmp_path / "edgeorch.db")
    try:
        conn = store.db.conn
        assert conn.execute("PRAGMA journal_size_limit").fetchone()[0] == 256 << 10
        conn.execute("CREATE TABLE scratch (x BLOB)")
        conn.execute("CREATE TABLE small (x INTEGER)")
        with store.transaction():
            for _ in range(40):
                conn.execute("INSERT INTO scratch VALUES (?)", (os.urandom(100_000),))
        wal = tmp_path / "edgeorch.db-wal"
        assert wal.stat().st_size > 3_000_000
        conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
        with store.transaction():  # the next write after a complete checkpoint resets the WAL: truncated then
            conn.execute("INSERT INTO small VALUES (1)")
        assert wal.stat().st_size <= 256 << 10, wal.stat().st_size
    finally:
        store.close()
    monkeypatch.undo()
    again = Store(tmp_path / "edgeorch.db")
    try:
        assert again.db.conn.execute("PRAGMA journal_size_limit").fetchone()[0] == 64 << 20
    finally:
        again.close()


def test_a_savepoints_undo_pages_stay_in_memory_not_in_a_temp_file(tmp_path):
    """A claim group gives each file a savepoint touching ~35 pages; past 64 KiB SQLite spilled its undo pages
    to a temp file in /var/tmp: ~85 writes (175 KB) per claimed file, and a full or read-only temp folder
    failed a transaction the state folder had room for."""
    import os

    def temp_files() -> list[str]:
        out = []
        for fd in os.listdir("/proc/self/fd"):
            try:
                target = os.readlink(f"/proc/self/fd/{fd}")
            except OSError:
                continue
            if "etilqs_" in target:  # SQLite's temp files (unlinked at once, open while used)
                out.append(target)
        return out

    store = Store(tmp_path / "edgeorch.db")
    try:
        conn = store.db.conn
        conn.execute("CREATE TABLE scratch (k TEXT PRIMARY KEY, v BLOB)")
        with store.transaction():
            for i in range(200):
                conn.execute("INSERT INTO scratch VALUES (?, ?)", (f"{i:05d}", os.urandom(1000)))
        before = temp_files()
        with store.transaction():
            for _ in range(3):
                with store.transaction():  # a savepoint: every row's page is touched again (~200 KB)
                    conn.execute("UPDATE scratch SET v = randomblob(1000)")
                    assert temp_files() == before
        assert conn.execute("PRAGMA temp_store").fetchone()[0] == 2  # MEMORY
    finally:
        store.close()


def test_a_listed_run_has_the_same_decoded_env_and_params_as_a_shown_one(store):
    """`runs --json` gave a drop-folder run's env as a JSON string (or null); `show --json` gave a table."""
    version = store.pipelines.record_version("p", "h", "/p.toml", "")
    with_env = store.runs.create(pipeline="p", version_id=version, params={"n": 1}, trigger="t", actor=None,
                                 run_dir_for=lambda r: f"/runs/{r}", tasks=[("a", "h")],
                                 env={"EDGEORCH_INPUT": "/in/x.csv"})
    plain = store.runs.create(pipeline="p", version_id=version, params={}, trigger="t", actor=None,
                              run_dir_for=lambda r: f"/runs/{r}", tasks=[("a", "h")])
    listed = {r["id"]: r for r in store.runs.list()}
    for run_id in (with_env, plain):
        shown = store.runs.get(run_id)
        assert (listed[run_id]["env"], listed[run_id]["params"]) == (shown["env"], shown["params"])
    assert listed[with_env]["env"] == {"EDGEORCH_INPUT": "/in/x.csv"} and listed[plain]["env"] == {}
