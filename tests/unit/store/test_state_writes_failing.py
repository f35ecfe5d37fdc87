"""A state file that cannot be written (a full disk) is said while it lasts: ``Database.write_failing``, which
``status`` and the ``edgeorch_state_write_failing`` gauge show. It was said only in the log: `status` exited 0
with nothing under attention and the metrics read ready and accepting while every run and fire waited.

The disk is made full the way SQLite meets one: ``PRAGMA max_page_count`` at the file's size (SQLITE_FULL).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from edgeorch.errors import StateError
from edgeorch.store.db import Database


def test_a_failing_write_is_held_with_its_start_and_cleared_by_the_next_commit(tmp_path: Path) -> None:
    clock = iter(range(1000, 2000)).__next__
    db = Database(tmp_path / "edgeorch.db", clock=lambda: float(clock()))
    try:
        with db.transaction():
            db.conn.execute("CREATE TABLE t (x TEXT)")
        assert db.write_failing is None
        pages = db.conn.execute("PRAGMA page_count").fetchone()[0]
        db.conn.execute(f"PRAGMA max_page_count = {pages}")
        for attempt in range(2):
            with pytest.raises(StateError) as err:
                with db.transaction():
                    db.conn.execute("INSERT INTO t SELECT hex(randomblob(2000)) FROM (SELECT 1 UNION SELECT 2)")
            assert "full" in err.value.message and "start it again once there is room" in (err.value.hint or "")
            since, text = db.write_failing or (None, None)
            assert "full" in str(text)
            if attempt == 0:
                first = since
        assert since == first, "since the first failure, not the latest"
        db.conn.execute("PRAGMA max_page_count = 1000000")
        with db.transaction():
            db.conn.execute("INSERT INTO t VALUES ('ok')")
        assert db.write_failing is None
    finally:
        db.close()
