"""A restored backup of the state file never makes a new run collide with an old run's folder (issue 9, item 16)."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

from edgeorch.model import RunState

PIPE = """
[tasks.a]
command = ["sh", "-c", "echo $EDGEORCH_RUN_ID > $EDGEORCH_OUTPUT_DIR/id.txt"]
outputs = ["id.txt"]
"""


def _backup(db: Path, to: Path) -> None:
    src, dst = sqlite3.connect(db), sqlite3.connect(to)
    with dst:
        src.backup(dst)
    src.close()
    dst.close()


def _restore(backup: Path, db: Path) -> None:
    """As docs/operations.md says: daemon stopped, the file replaced (its WAL files removed)."""
    for extra in (Path(f"{db}-wal"), Path(f"{db}-shm")):
        extra.unlink(missing_ok=True)
    shutil.copy(backup, db)


def test_runs_after_restoring_a_backup_get_fresh_folders_and_succeed(workspace, harness, tmp_path):
    workspace.pipeline("p", PIPE)
    db = workspace.config().state_file
    first, state = harness.run("p")
    assert state == RunState.SUCCEEDED
    _backup(db, tmp_path / "backup.db")
    later, state = harness.run("p")
    assert state == RunState.SUCCEEDED
    old_dir = Path(harness.store().runs.get(later)["run_dir"])
    _restore(tmp_path / "backup.db", db)
    again, state = harness.run("p")
    assert again == later  # the id went back with the restored file...
    assert state == RunState.SUCCEEDED  # ...but the run did not trip over the old run's records
    new_dir = Path(harness.store().runs.get(again)["run_dir"])
    assert new_dir != old_dir and new_dir.name == f"{again}-2"
    assert (old_dir / "outputs" / "a" / "id.txt").exists()  # the old run's files are left alone
    (art,) = harness.store().outputs.latest_artifacts(again, "a")
    assert Path(art["path"]).is_relative_to(new_dir)
