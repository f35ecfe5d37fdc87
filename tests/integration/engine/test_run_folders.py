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


def test_a_run_whose_creation_rolled_back_leaves_no_folder_and_its_id_gets_the_plain_one(workspace, harness):
    """Found living with the daemon: a retried creation's run was named ``<id>-2`` after the first try's
    folder, made before its rows rolled back (a full disk, a claim group's error)."""
    import asyncio

    from edgeorch.engine.engine import Engine
    from edgeorch.pipelines import validate_path
    from edgeorch.store import Store

    workspace.pipeline("p", PIPE)
    cfg = workspace.config()
    pipeline = validate_path(cfg.pipelines_dir).pipelines["p"]

    def refuse(run_id: int) -> None:
        raise RuntimeError(f"no room for run {run_id}")

    async def main() -> int:
        store = Store(cfg.state_file)
        engine = Engine(cfg, store)
        await engine.start()
        try:
            try:
                engine.submit(pipeline, {}, within=refuse)
            except RuntimeError as exc:
                assert "no room for run 1" in str(exc)
            else:
                raise AssertionError("the creation should have rolled back")
            assert not (cfg.runs_dir / "1").exists()  # the folder went with the rows
            run_id = engine.submit(pipeline, {})
            assert await engine.wait_run(run_id) == RunState.SUCCEEDED
            return run_id
        finally:
            await engine.close()
            store.close()

    run_id = asyncio.run(main())
    assert run_id == 1 and Path(harness.store().runs.get(1)["run_dir"]) == cfg.runs_dir / "1"
    assert sorted(p.name for p in cfg.runs_dir.iterdir()) == ["1"]
