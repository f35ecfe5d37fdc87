"""`edgeorch gc --apply` on a state disk that is full (tester's report, finding 1).

A full disk stops the daemon (exit 4), and the remedy its message named, `edgeorch gc --apply`, failed the same way:
gc deleted the rows (a WAL write) before it removed any folder, and SQLite cannot write on a full disk. The only
way out was `rm -rf state/runs/...` by hand. Now the planned runs' folders go first when the rows cannot be written
for lack of space, then the rows. A real tmpfs, filled by a task until the daemon stopped on it.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

DAY = 86400.0


def _age_runs(db: Path, days: float) -> None:
    """Every run finished ``days`` earlier than it did (the runs a gc of ``--older-than`` less than that removes)."""
    conn = sqlite3.connect(db)
    try:
        conn.execute("UPDATE runs SET created_at = created_at - ?, finished_at = finished_at - ?",
                     (days * DAY, days * DAY))
        conn.commit()
    finally:
        conn.close()  # the last connection: its WAL is checkpointed and removed, so gc's commit needs new blocks


def test_gc_apply_after_the_daemon_stopped_on_a_full_disk_frees_it_folders_first(workspace, daemon, small_disk):
    """The report's sequence: old runs, a daemon whose task fills the disk, the daemon stops (exit 4), then the
    gc its message names, with nothing else freed."""
    workspace.state = small_disk / "var"
    workspace.write_config()
    workspace.pipeline("big", """
        [tasks.a]
        command = ["sh", "-c", "head -c 300000 /dev/urandom > $EDGEORCH_OUTPUT_DIR/a.bin"]
        outputs = ["a.bin"]
        """)
    workspace.pipeline("fill", """
        [tasks.fill]
        command = ["sh", "-c", "cat /dev/zero > $EDGEORCH_OUTPUT_DIR/big; exit 0"]
        """)
    for _ in range(4):
        assert workspace.invoke("run", "big", "-q").returncode == 0
    db = workspace.state / "edgeorch.db"
    _age_runs(db, 100)
    folders = {int(p.name): p for p in (workspace.state / "runs").iterdir()}
    daemon.start()
    filler = daemon.call("trigger", {"pipeline": "fill"})["run_id"]
    assert daemon.proc.wait(timeout=60) == 4  # fail-stop: the end of the task cannot be recorded
    assert "cannot write the state file" in daemon.output()
    assert "goes on by itself" not in daemon.output() and "start it again once there is room" in daemon.output()

    proc = workspace.invoke("gc", "--older-than", "30d", "--apply", "--json")

    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert [r["run_id"] for r in report["runs"]] == [1, 2, 3, 4]  # the filler's run is active, and the newest
    assert all(r["folder"] == "removed (before its rows: the disk was full)" and r["bytes"] > 300000
               for r in report["runs"]), report["runs"]
    assert not any(folders[r].exists() for r in (1, 2, 3, 4))
    assert (workspace.state / "runs" / str(filler) / "outputs" / "fill" / "big").is_file()
    conn = sqlite3.connect(db)
    try:
        assert [r[0] for r in conn.execute("SELECT id FROM runs")] == [filler]
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    finally:
        conn.close()
