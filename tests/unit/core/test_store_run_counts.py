"""Runs per state (migration 18): ``run_counts`` is kept by triggers in the transaction of every change to
``runs``, so ``store.runs.counts()`` always equals a GROUP BY over the table, whoever wrote it."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from edgeorch.model import RunState
from edgeorch.store import Store
from edgeorch.store.retention import FINISHED_STATES


def _group_by(conn: sqlite3.Connection) -> dict[str, int]:
    return {s: n for s, n in conn.execute("SELECT state, COUNT(*) FROM runs GROUP BY state")}


def _run(store: Store, vid: int) -> int:
    return store.runs.create(pipeline="p", version_id=vid, params={}, trigger="test", actor=None,
                             run_dir_for=lambda i: f"/x/{i}", tasks=[("a", "h")])


@pytest.fixture
def store(tmp_path: Path):
    s = Store(tmp_path / "state.db")
    yield s
    s.close()


def test_counts_follow_inserts_state_changes_and_deletes(store: Store) -> None:
    vid = store.pipelines.record_version("p", "h", "/p.toml", "[tasks.a]\ncommand=['true']\n")
    assert store.runs.counts() == {}
    ids = [_run(store, vid) for _ in range(5)]
    assert store.runs.counts() == {"queued": 5}
    for r in ids[:4]:
        store.runs.set_state(r, RunState.RUNNING)
    store.runs.set_state(ids[0], RunState.SUCCEEDED)
    store.runs.set_state(ids[1], RunState.FAILED, reason="failed: a")
    store.runs.set_state(ids[1], RunState.FAILED, reason="again")  # no change of state: no change of count
    assert store.runs.counts() == {"queued": 1, "running": 2, "succeeded": 1, "failed": 1}
    store.retention.remove([ids[0]], actor="test", message="gc")
    assert store.runs.counts() == {"queued": 1, "running": 2, "failed": 1}  # a state with none left is left out
    assert store.runs.counts() == _group_by(store.db.conn)


def test_a_rolled_back_transaction_leaves_the_counts_as_they_were(store: Store) -> None:
    vid = store.pipelines.record_version("p", "h", "/p.toml", "[tasks.a]\ncommand=['true']\n")
    _run(store, vid)
    with pytest.raises(RuntimeError):
        with store.transaction():
            _run(store, vid)
            raise RuntimeError("boom")
    assert store.runs.counts() == {"queued": 1} == _group_by(store.db.conn)


def test_another_writer_is_counted_too(store: Store, tmp_path: Path) -> None:
    """sqlite3, a benchmark's bulk insert, an operator's UPDATE: the triggers are in the file, not in edgeorch."""
    vid = store.pipelines.record_version("p", "h", "/p.toml", "[tasks.a]\ncommand=['true']\n")
    conn = sqlite3.connect(tmp_path / "state.db")
    with conn:
        conn.executemany("INSERT INTO runs (pipeline, pipeline_version_id, state, params, trigger, run_dir, created_at)"
                         " VALUES ('p', ?, ?, '{}', 'bulk', '/x', 0)", [(vid, s) for s in FINISHED_STATES * 100])
        conn.execute("UPDATE runs SET state = 'queued' WHERE id % 3 = 0")
        conn.execute("DELETE FROM runs WHERE id % 7 = 0")
    conn.close()
    assert store.runs.counts() == _group_by(store.db.conn)
    assert sum(store.runs.counts().values()) == 300 - 300 // 7


def test_migration_18_counts_the_runs_an_older_file_already_has(tmp_path: Path, state_before) -> None:
    db = tmp_path / "old.db"
    conn = state_before(db, "CREATE TABLE run_counts")
    conn.execute("INSERT INTO pipeline_versions (id, name, content_hash, source_file, source_text, created_at)"
                 " VALUES (1, 'p', 'h', '/p', '', 0)")
    conn.executemany("INSERT INTO runs (pipeline, pipeline_version_id, state, params, trigger, run_dir, created_at)"
                     " VALUES ('p', 1, ?, '{}', 'x', '/x', 0)", [("succeeded",)] * 7 + [("failed",)] * 2)
    conn.commit()
    conn.close()
    store = Store(db)
    try:
        assert store.runs.counts() == {"failed": 2, "succeeded": 7}
    finally:
        store.close()


def test_counts_read_a_few_rows_not_the_history(store: Store) -> None:
    plan = " ".join(r[3] for r in store.db.conn.execute(
        "EXPLAIN QUERY PLAN SELECT state, n FROM run_counts WHERE n > 0 ORDER BY state"))
    assert "runs" not in plan.replace("run_counts", "")
