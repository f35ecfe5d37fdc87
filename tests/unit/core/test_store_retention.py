"""``store.retention`` on a real SQLite file: which runs are old, what holds them, their rows removed at once."""

from __future__ import annotations

import json
import sqlite3

import pytest

from edgeorch.model import AttemptState, RunState, TaskState
from edgeorch.retention import HoldQuery
from edgeorch.retention.holds import collect_holds
from edgeorch.store import NewAttempt, Store
from edgeorch.store.retention import KEPT_TABLES, RUN_TABLES
from testclock import SetClock


@pytest.fixture
def clock() -> SetClock:
    return SetClock(1000.0)


@pytest.fixture
def store(tmp_path, clock):
    s = Store(tmp_path / "state.db", clock=clock)
    yield s
    s.close()


def _run(store: Store, pipeline: str = "p", *, state: RunState = RunState.SUCCEEDED, reuse: int | None = None,
         lease: bool = False) -> tuple[int, int]:
    """A run of one task ``a`` with one attempt (its output recorded), or a cache hit on attempt ``reuse``;
    returns (run id, attempt id or the reused one)."""
    version = store.pipelines.record_version(pipeline, "h", f"/{pipeline}.toml", "")
    run_id = store.runs.create(pipeline=pipeline, version_id=version, params={}, trigger="t", actor=None,
                               run_dir_for=lambda r: f"/s/runs/{r}", tasks=[("a", "d")])
    if state == RunState.QUEUED:
        return run_id, 0
    store.runs.set_state(run_id, RunState.RUNNING)
    (task,) = store.runs.tasks_of(run_id)
    if reuse is not None:
        arts = store.outputs.artifacts_of_attempt(reuse)
        store.outputs.mark_cached(task["id"], run_id, "a", "i", reuse, arts)
        attempt = reuse
    else:
        attempt = store.attempts.start(NewAttempt(task["id"], run_id, "a", 1, "/l", "/d", "d", "i"),
                                       lease={"cpus": [0], "holder": f"{run_id}/a"} if lease else None)
        if state.finished:
            store.attempts.finish(attempt, state=AttemptState.EXITED, exit_code=0, signal=None, reason=None,
                                  task_change=(task["id"], TaskState.SUCCEEDED, None, None),
                                  artifacts=[{"name": "out", "path": f"/s/runs/{run_id}/outputs/a/out", "size": 1,
                                              "sha256": "0" * 64}])
    if state.finished:
        store.runs.set_state(run_id, state)
    return run_id, attempt


def _holds(store: Store, ids, keep_last: int = 0) -> dict[int, list[str]]:
    out: dict[int, list[str]] = {}
    for h in collect_holds(HoldQuery(store, frozenset(ids), store.clock(), keep_last)):
        out.setdefault(h.run_id, []).append(h.rule)
    return out


def _count(store: Store, table: str, run_id: int) -> int:
    return store.db.one(f"SELECT COUNT(*) FROM {table} WHERE run_id = ?", (run_id,))[0]


def test_every_table_with_a_run_id_is_either_removed_with_its_run_or_kept_on_purpose(store):
    """A migration that adds a run's table must say what gc does with it (edgeorch/store/retention.py)."""
    tables = [r[0] for r in store.db.conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
    with_run_id = {t for t in tables if any(c[1] == "run_id" for c in store.db.conn.execute(f"PRAGMA table_info({t})"))}
    assert with_run_id == set(RUN_TABLES) | set(KEPT_TABLES)


def test_runs_are_old_by_their_end_or_when_never_finished_their_creation(store, clock):
    done, _ = _run(store)
    clock.now = 2000.0
    queued, _ = _run(store, state=RunState.QUEUED)
    clock.now = 3000.0
    late, _ = _run(store)
    assert [r["id"] for r in store.retention.older_than(2500.0)] == [queued, done]  # newest first
    assert [r["id"] for r in store.retention.older_than(2500.0, pipeline="other")] == []
    assert [r["id"] for r in store.retention.older_than(9999.0, before=late, limit=1)] == [queued]


def test_remove_deletes_every_row_of_the_runs_in_one_transaction_and_records_it(store, clock):
    old, _ = _run(store, lease=True)
    keep, _ = _run(store)
    assert all(_count(store, t, old) for t in ("tasks", "attempts", "artifacts", "events", "leases"))
    removed, counts = store.retention.remove([old], actor="alice (uid 1000)", message="gc", data={"older_than": 1.0})
    assert removed == [old]
    assert counts["runs"] == 1 and counts["tasks"] == 1 and counts["attempts"] == 1 and counts["leases"] == 1
    for table in RUN_TABLES:
        assert _count(store, table, old) == 0, table
    assert store.db.one("SELECT COUNT(*) FROM runs WHERE id = ?", (old,))[0] == 0
    assert _count(store, "tasks", keep) == 1 and store.runs.get(keep)["state"] == "succeeded"
    ev = store.db.one("SELECT * FROM events WHERE kind = 'runs_removed'")
    data = json.loads(ev["data"])
    assert ev["run_id"] is None and ev["actor"] == "alice (uid 1000)"
    assert data["runs"] == [old] and data["rows"] == counts and data["older_than"] == 1.0
    assert store.db.conn.execute("PRAGMA foreign_key_check").fetchall() == []
    assert store.integrity_check() == "ok"


def test_remove_leaves_out_a_run_that_is_not_finished_whatever_the_caller_planned(store):
    active, _ = _run(store, state=RunState.QUEUED)
    assert store.retention.remove([active], actor=None, message="gc") == ([], {})
    assert store.runs.get(active)["state"] == "queued"
    assert store.db.one("SELECT COUNT(*) FROM events WHERE kind = 'runs_removed'")[0] == 0


def test_count_rows_says_what_remove_would_delete(store):
    old, _ = _run(store)
    expected = store.retention.count_rows([old])
    _, counts = store.retention.remove([old], actor=None, message="gc")
    assert expected == counts


def test_a_removal_that_cannot_commit_removes_nothing(store):
    old, _ = _run(store)
    _run(store)
    store.db.conn.execute("CREATE TRIGGER refuse BEFORE DELETE ON runs BEGIN SELECT RAISE(ABORT, 'disk full'); END")
    with pytest.raises(sqlite3.IntegrityError):
        store.retention.remove([old], actor=None, message="gc")
    assert all(_count(store, t, old) for t in ("tasks", "attempts", "artifacts", "events"))


def test_holds_active_runs_live_attempts_cache_sources_latest_and_newest(store, clock):
    source, attempt = _run(store)
    user, _ = _run(store, reuse=attempt)
    running, _ = _run(store, state=RunState.RUNNING)
    lone, _ = _run(store, pipeline="q")
    newest, _ = _run(store, pipeline="q")
    holds = _holds(store, [source, user, running, lone, newest])
    assert holds == {source: ["cache"], running: ["active"], newest: ["newest"]}
    assert _holds(store, [lone], keep_last=2) == {lone: ["keep_last"]}
    assert _holds(store, [lone], keep_last=1) == {}


def test_a_finished_run_with_a_live_attempt_is_held(store):
    run_id, attempt = _run(store)
    _run(store)
    store.db.conn.execute("UPDATE attempts SET state = 'running' WHERE id = ?", (attempt,))
    assert _holds(store, [run_id]) == {run_id: ["active"]}


def test_an_unsettled_drop_folder_input_holds_its_run(store):
    run_id, _ = _run(store)
    _run(store)
    iid = store.inputs.record_intent(pipeline="p", folder="/d", source="/d/a.csv", dev=1, ino=2, size=3,
                                     inbox_for=lambda i: f"/s/inbox/in-{i}/a.csv")
    store.inputs.record_claimed(iid, 3, "0" * 64)
    store.inputs.record_started(iid, run_id)
    assert _holds(store, [run_id]) == {run_id: ["inputs"]}


def test_the_holds_of_a_dataset_version_and_of_lineage(store):
    source, attempt = _run(store)
    consumer, _ = _run(store)
    store.db.conn.execute(
        "INSERT INTO consumed (run_id, task, attempt_id, kind, path, sha256, size, source_run, source_task,"
        " source_attempt, recorded_at) VALUES (?, 'a', NULL, 'upstream', '/x', ?, 1, ?, 'a', ?, 1.0)",
        (consumer, "0" * 64, consumer, attempt))
    store.db.conn.execute("INSERT INTO datasets (name, created_at) VALUES ('houses', 1.0)")
    store.db.conn.execute(
        "INSERT INTO dataset_versions (dataset_id, version, created_at, source, run_id, files, size, new_chunks,"
        " new_bytes, manifest_sha256) VALUES (1, 3, 1.0, 'run', ?, 1, 1, 1, 1, ?)", (consumer, "0" * 64))
    _run(store)
    assert _holds(store, [source, consumer]) == {source: ["lineage"], consumer: ["datasets"]}


def test_a_gc_page_by_page_decides_a_run_before_the_source_of_its_cache_hit(store, clock, tmp_path, monkeypatch):
    """Newest first: the user of a cache hit goes in an earlier page, so its source is free in a later one."""
    import edgeorch.retention.gc as gc

    source, attempt = _run(store)
    user, _ = _run(store, reuse=attempt)
    clock.now = 1e6
    _run(store, pipeline="q")  # newer than the bound, holds the newest ids
    monkeypatch.setattr(gc, "PAGE_RUNS", 1)
    report = gc.collect(store, tmp_path / "runs", gc.GcRequest(older_than=1000.0, apply=True, actor="t"))
    assert [r["run_id"] for r in report["runs"]] == [source, user] and report["held"] == []
    assert report["rows"]["runs"] == 2
    assert [r["folder"] for r in report["runs"]] == ["left in place: not in the runs folder"] * 2


def test_a_dry_run_page_by_page_plans_what_apply_removes(store, clock, tmp_path, monkeypatch):
    """A dry run removes nothing, so a later page still saw the user of a cache hit (planned for removal by an
    earlier page) and reported its source kept; --apply then removed it. With more than PAGE_RUNS runs the dry run
    said "kept" for runs apply removed."""
    import edgeorch.retention.gc as gc

    source, attempt = _run(store)
    user, _ = _run(store, reuse=attempt)
    clock.now = 1e6
    _run(store, pipeline="q")
    monkeypatch.setattr(gc, "PAGE_RUNS", 1)
    dry = gc.collect(store, tmp_path / "runs", gc.GcRequest(older_than=1000.0))
    assert [r["run_id"] for r in dry["runs"]] == [source, user] and dry["held"] == []
    applied = gc.collect(store, tmp_path / "runs", gc.GcRequest(older_than=1000.0, apply=True, actor="t"))
    assert [r["run_id"] for r in applied["runs"]] == [r["run_id"] for r in dry["runs"]]
