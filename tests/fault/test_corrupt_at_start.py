"""A state file damaged while no writer had it open (tester's report, finding 3).

``quick_check`` ran only after an unclean stop, so a file damaged after a clean stop was accepted at start; the
daemon then stopped on the first request that read the bad page, maybe much later, with a message that said the
file changed "while the daemon ran" and to "put the daemon's state file back". Now every writable open checks.
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import pytest

from edgeorch.errors import StateError
from edgeorch.store import Store


def _state_with_a_damaged_table(path: Path, table: str = "baselines") -> None:
    """A state file closed cleanly (no -wal left), then ``table``'s root page overwritten: a page no start reads."""
    Store(path).close()
    conn = sqlite3.connect(path)
    page = conn.execute("PRAGMA page_size").fetchone()[0]
    root = conn.execute("SELECT rootpage FROM sqlite_master WHERE name = ?", (table,)).fetchone()[0]
    conn.close()
    assert not Path(f"{path}-wal").exists()
    with open(path, "r+b") as f:
        f.seek((root - 1) * page)
        f.write(b"\xff" * 200)


def test_a_file_damaged_after_a_clean_stop_is_refused_by_a_checking_open(tmp_path: Path) -> None:
    """The daemon's open (``check``); an offline writer does not read the whole file after a clean close."""
    db = tmp_path / "edgeorch.db"
    _state_with_a_damaged_table(db)
    Store(db, clock=time.time).close()  # an offline writer's open: no whole-file read after a clean close
    with pytest.raises(StateError) as err:
        Store(db, clock=time.time, check=True)
    text = err.value.render()
    assert text.startswith(f"{db}: the state file is damaged: database disk image is malformed (PRAGMA quick_check: ")
    assert "closed cleanly, so it was damaged on the disk since" in text and "restore it from a backup" in text
    assert "replaced while a daemon ran" not in text


def test_the_daemon_refuses_a_damaged_state_file_at_start(workspace, daemon) -> None:
    _state_with_a_damaged_table(workspace.state / "edgeorch.db")
    daemon.start(wait_ready=False)
    assert daemon.proc.wait(timeout=60) == 4
    out = daemon.output()
    assert "the state file is damaged: database disk image is malformed (PRAGMA quick_check: " in out, out
    assert "Traceback" not in out and "while the daemon ran" not in out
