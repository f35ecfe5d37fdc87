import sqlite3
from pathlib import Path
from edgeorch.errors import EdgeorchError
import pytest

def test_a_page_damaged_while_the_daemon_runs_is_said_damaged_not_changed(workspace, daemon):
    daemon.start()
    db = workspace.state / "edgeorch.db"
    conn = sqlite3.connect(db)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    page = conn.execute("PRAGMA page_size").fetchone()[0]
    root = conn.execute("SELECT rootpage FROM sqlite_master WHERE name = 'audit_log'").fetchone()[0]
    conn.close()
    with open(db, "r+b") as f:
        f.seek((root - 1) * page); f.write(b"\xff" * 200)
    with pytest.raises(EdgeorchError) as err:
        daemon.call("audit.verify")
    assert daemon.proc.wait(timeout=30) == 4
    out = daemon.output()
    print(str(err.value)); print(out[-1500:])
    assert "the state file is damaged: database disk image is malformed (found by a request while the daemon ran)" in out
    assert "put the daemon's state file back" not in out and "changed" not in str(err.value)
