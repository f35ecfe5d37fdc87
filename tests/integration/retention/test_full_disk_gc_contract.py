"""gc on a full disk (tester's report, finding 1): when the rows' transaction cannot be written for lack of space,
the folders of exactly the runs the plan removes, still finished at that moment, go first; then the rows.

A commit that fails for lack of space is a stand-in here (``store.retention.remove`` raising
:class:`StateFullError`), so that the contract is checked without a full file system: the real one is in
tests/fault/test_full_disk_gc.py.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from edgeorch.retention.gc import GcRequest, finish, prepare
from edgeorch.store import Store
from edgeorch.store.db import Database, StateFullError

DAY = 86400.0


def _full_then(store: Store, *, failures: int, requeue: int | None = None) -> list[int]:
    """Make ``store.retention.remove`` fail for lack of space ``failures`` times, then work; ``requeue``: a run
    queued again (a ``retry``) right before the first failure. Returns the list of calls' run ids."""
    real, calls = store.retention.remove, []

    def remove(run_ids, **kw):
        calls.append(sorted(run_ids))
        if requeue is not None and len(calls) == 1:
            store.db.conn.execute("UPDATE runs SET state = 'queued', finished_at = NULL WHERE id = ?", (requeue,))
        if len(calls) <= failures:
            raise StateFullError("cannot write the state file: database or disk is full", file=str(store.path))
        return real(run_ids, **kw)

    store.retention.remove = remove  # type: ignore[method-assign]
    return calls


def test_a_full_disk_removes_the_planned_folders_first_then_the_rows(old_runs, workspace):
    old = old_runs.make("plain", 3, days_ago=100)
    old_runs.make("plain", 1, days_ago=0)
    dirs = {r: Path(old_runs.row(r)["run_dir"]) for r in old}
    cfg = workspace.config()
    store = Store(cfg.state_file)
    try:
        calls = _full_then(store, failures=1, requeue=old[0])
        prepared = prepare(store, cfg.runs_dir, GcRequest(older_than=30 * DAY, apply=True, actor="t"))
        report = finish(prepared)
    finally:
        store.close()
    assert len(calls) == 2
    assert [r["run_id"] for r in report["runs"]] == old[1:]  # run 1 was queued again: neither folder nor rows
    assert all(r["folder"] == "removed (before its rows: the disk was full)" and r["bytes"] > 0
               for r in report["runs"]), report["runs"]
    assert report["bytes"] == sum(r["bytes"] for r in report["runs"])
    assert dirs[old[0]].is_dir() and not any(dirs[r].exists() for r in old[1:])
    assert old[0] in old_runs.run_ids() and not set(old[1:]) & set(old_runs.run_ids())


def test_a_disk_still_full_after_the_folders_says_so_and_the_next_gc_removes_the_rows(old_runs, workspace, gc):
    old = old_runs.make("cached", 2, days_ago=100)  # the second is a cache hit on the first: both go together
    (recent,) = old_runs.make("plain", 1, days_ago=0)
    dirs = {r: Path(old_runs.row(r)["run_dir"]) for r in [*old, recent]}
    cfg = workspace.config()
    store = Store(cfg.state_file)
    try:
        _full_then(store, failures=2)
        with pytest.raises(StateFullError) as err:
            prepare(store, cfg.runs_dir, GcRequest(older_than=30 * DAY, apply=True, actor="t"))
    finally:
        store.close()
    assert "the folders of 2 old run(s) were removed first" in err.value.message
    assert "the next `edgeorch gc --apply` removes these runs' rows" in (err.value.hint or "")
    assert not any(dirs[r].exists() for r in old) and dirs[recent].is_dir()
    assert old_runs.run_ids() == [*old, recent]  # rows naming missing folders: what a crash between leaves too
    again = gc("--older-than", "30d", "--apply", "--json")
    assert again.returncode == 0, again.stderr
    report = json.loads(again.stdout)
    assert [r["run_id"] for r in report["runs"]] == old and report["errors"] == []
    assert all(r["bytes"] == 0 for r in report["runs"]) and old_runs.run_ids() == [recent]


def test_a_full_disk_says_the_daemon_stopped_and_what_frees_it(tmp_path: Path) -> None:
    """The hint said "a running daemon goes on by itself once it can write again" as the daemon exited 4."""
    db = Database(tmp_path / "edgeorch.db", clock=lambda: 1.0)
    try:
        with db.transaction():
            db.conn.execute("CREATE TABLE t (x TEXT)")
        db.conn.execute(f"PRAGMA max_page_count = {db.conn.execute('PRAGMA page_count').fetchone()[0]}")
        with pytest.raises(StateFullError) as err:
            with db.transaction():
                db.conn.execute("INSERT INTO t SELECT hex(randomblob(3000)) FROM (SELECT 1 UNION SELECT 2)")
    finally:
        db.close()
    hint = err.value.hint or ""
    assert "goes on by itself" not in hint
    assert "`edgeorch gc --apply`" in hint and "on a full disk it removes their folders first" in hint
    assert "stops on a write it cannot make (exit 4): start it again once there is room" in hint
