"""``store.outputs.follow_moved_files``: the records of a set-aside attempt's files name where they are now."""

from __future__ import annotations

from pathlib import Path

import pytest

from edgeorch.store import Store


def _rows(store: Store, table: str) -> list[tuple[int, str]]:
    return [(r[0], r[1]) for r in store.db.conn.execute(f"SELECT id, path FROM {table} ORDER BY id")]


def test_every_record_of_the_attempts_files_follows_them_and_nothing_else_moves(tmp_path: Path) -> None:
    store = Store(tmp_path / "state.db")
    old, new = "/s/runs/4/outputs/prep", "/s/runs/4/attempts/prep.1/outputs"
    c = store.db.conn
    with store.db.transaction():
        art = "INSERT INTO artifacts (run_id, task, attempt_id, name, path, size, sha256, created_at) VALUES (?,?,?,?,?,?,?,0)"
        c.execute(art, (4, "prep", 7, "a", f"{old}/a.csv", 1, "x"))          # its own record
        c.execute(art, (9, "prep", 7, "a", f"{old}/a.csv", 1, "x"))          # a cache hit's copy in run 9
        c.execute(art, (4, "prep", 7, "d", f"{old}/sub/d.csv", 1, "y"))      # a file in a folder of its outputs
        c.execute(art, (4, "prep2", 8, "a", f"{old}2/a.csv", 1, "z"))        # another task's folder shares the prefix
        c.execute(art, (4, "prep", 6, "a", f"{old}/a.csv", 1, "w"))          # an earlier attempt's record: not moved
        c.execute("INSERT INTO models (id, name, created_at) VALUES (1, 'm', 0)")
        mv = ("INSERT INTO model_versions (model_id, version, created_at, kind, path, sha256, size, metrics, attempt_id,"
              " gate_verdict) VALUES (1, ?, 0, 'file', ?, 'x', 1, '{}', ?, 'passed')")
        c.execute(mv, (1, old, 7))                                           # the whole folder as the model
        c.execute(mv, (2, f"{old}/a.csv", 6))                                # another attempt's version
        cons = ("INSERT INTO consumed (run_id, task, kind, path, sha256, size, source_attempt, recorded_at)"
                " VALUES (4, 'train', 'upstream', ?, 'x', 1, ?, 0)")
        c.execute(cons, (f"{old}/a.csv", 7))
        c.execute(cons, (f"{old}/a.csv", None))                              # a declared input at that path
    assert store.outputs.follow_moved_files(7, old, new) == 3
    assert _rows(store, "artifacts") == [(1, f"{new}/a.csv"), (2, f"{new}/a.csv"), (3, f"{new}/sub/d.csv"),
                                         (4, f"{old}2/a.csv"), (5, f"{old}/a.csv")]
    assert _rows(store, "model_versions") == [(1, new), (2, f"{old}/a.csv")]
    assert _rows(store, "consumed") == [(1, f"{new}/a.csv"), (2, f"{old}/a.csv")]
    store.close()


def test_a_move_rolled_back_leaves_every_record_as_it_was(tmp_path: Path) -> None:
    """The caller renames the folder inside the transaction: when that fails, the records stay with the files."""
    store = Store(tmp_path / "state.db")
    with store.db.transaction():
        store.db.conn.execute("INSERT INTO artifacts (run_id, task, attempt_id, name, path, size, sha256, created_at)"
                              " VALUES (1, 't', 3, 'a', '/r/outputs/t/a', 1, 'x', 0)")
    with pytest.raises(OSError), store.db.transaction():
        store.outputs.follow_moved_files(3, "/r/outputs/t", "/r/attempts/t.1/outputs")
        raise OSError("the rename failed")
    assert _rows(store, "artifacts") == [(1, "/r/outputs/t/a")]
    store.close()
