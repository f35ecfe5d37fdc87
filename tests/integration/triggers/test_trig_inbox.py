"""The inbox through a real daemon: claim folders never shared (a restored backup), retention (issue 9).

Synchronisation: the daemon's events stream and conditions on the state file, never sleeps.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
from pathlib import Path

from test_daemon_triggers import drop_by_rename, inputs, n_inputs, q, setup_watch, wait_until


def _quarantined(workspace) -> list[str]:
    qdir = workspace.state / "quarantine"
    return sorted(os.listdir(qdir)) if qdir.is_dir() else []


def _sqlite_copy(src: Path, dst: Path) -> None:
    """Copy a state file with SQLite's online backup API (what docs/operations.md recommends)."""
    a, b = sqlite3.connect(src), sqlite3.connect(dst)
    try:
        a.backup(b)
    finally:
        a.close()
        b.close()


def test_a_claim_never_shares_a_claim_folder_that_already_exists(workspace, daemon, tmp_path):
    """``inbox/in-<id>`` holding a file of the same name (a lost future's) must not be taken for the claim's."""
    drop = setup_watch(workspace)
    daemon.start()
    old = workspace.state / "inbox" / "in-1" / "a.csv"
    old.parent.mkdir(parents=True)
    old.write_text("from the lost future\n")
    drop_by_rename(tmp_path / "stage", drop, "a.csv", b"new row\n")
    wait_until(daemon, lambda: n_inputs(workspace, "done", "quarantined", "refused") >= 1, what="the input settled")
    rec = inputs(workspace)[0]
    assert rec["state"] == "done", rec["reason"]
    assert rec["inbox_path"] == str(workspace.state / "inbox" / "in-1-1" / "a.csv")
    assert Path(rec["inbox_path"]).read_text() == "new row\n"
    assert old.read_text() == "from the lost future\n"
    assert daemon.stop() == 0


def test_after_a_restored_backup_every_new_file_is_claimed_and_processed_once(workspace, daemon, tmp_path):
    drop = setup_watch(workspace)
    db = workspace.state / "edgeorch.db"
    stage = tmp_path / "stage"
    daemon.start()
    for i in range(2):
        drop_by_rename(stage, drop, f"a{i}.csv", f"a {i}\n".encode())
    wait_until(daemon, lambda: n_inputs(workspace, "done") >= 2, what="the first files done")
    backup = tmp_path / "backup.db"
    _sqlite_copy(db, backup)
    for i in range(2):  # the lost future: claimed into in-3, in-4 and run, then forgotten by the restore
        drop_by_rename(stage, drop, f"b{i}.csv", f"b {i}\n".encode())
    wait_until(daemon, lambda: n_inputs(workspace, "done") >= 4, what="the lost future's files done")
    lost = [Path(r["inbox_path"]) for r in inputs(workspace)[2:]]
    assert daemon.stop() == 0

    _sqlite_copy(backup, db)
    daemon.start()
    for i in range(3):
        drop_by_rename(stage, drop, f"c{i}.csv", f"c {i}\n".encode())
    wait_until(daemon, lambda: n_inputs(workspace, "done", "quarantined", "refused", "vanished") >= 5,
               what="the new files settled")
    rows = inputs(workspace)
    assert [(r["source_name"], r["state"]) for r in rows] == [
        ("a0.csv", "done"), ("a1.csv", "done"), ("c0.csv", "done"), ("c1.csv", "done"), ("c2.csv", "done")]
    for r in rows:
        assert Path(r["inbox_path"]).is_file(), r["inbox_path"]
        runs = q(workspace, "SELECT state FROM runs WHERE trigger = ?", (f"input:{r['id']}",))
        assert [x["state"] for x in runs] == ["succeeded"], (r["source_name"], runs)
    assert len({Path(r["inbox_path"]).parent for r in rows}) == 5, "two inputs share a claim folder"
    # Only the lost future's files are set aside, by the documented rule, with a reason that says so.
    assert _quarantined(workspace) == ["b0.csv", "b0.csv.reason.json", "b1.csv", "b1.csv.reason.json"]
    doc = json.loads((workspace.state / "quarantine" / "b0.csv.reason.json").read_text())
    assert "no input record" in doc["reason"] and "restored from a backup" in doc["reason"]
    assert all(not p.exists() for p in lost)
    assert "collision" not in daemon.output() and "swapped in" not in daemon.output()
    # Said as a warning (it was "inputs recovered: adopt x2" at INFO): files were set aside, not run.
    assert ("WARNING edgeorch.triggers: 2 file(s) in the inbox that no input record names" in daemon.output()
            and "edgeorch inputs --quarantine" in daemon.output()), daemon.output()
    assert daemon.stop() == 0


def test_inbox_retention_removes_finished_inputs_files_through_the_daemon_and_retry_names_the_removed_input(
        workspace, daemon, tmp_path):
    drop = setup_watch(workspace, extra="")
    workspace.config_path.write_text(workspace.config_path.read_text() + '\n[inbox]\nkeep = "1s"\n')
    daemon.start()
    drop_by_rename(tmp_path / "stage", drop, "ok.csv", b"row\n")
    drop_by_rename(tmp_path / "stage", drop, "bad.csv", b"BAD row\n")

    def removed() -> bool:
        rows = inputs(workspace)
        return len(rows) == 2 and all(r["removed_at"] is not None for r in rows)

    wait_until(daemon, removed, what="both inputs' files removed by the retention rule")
    rows = {r["source_name"]: r for r in inputs(workspace)}
    assert rows["ok.csv"]["state"] == "done" and rows["bad.csv"]["state"] == "quarantined"
    assert not Path(rows["ok.csv"]["inbox_path"]).exists() and not Path(rows["ok.csv"]["inbox_path"]).parent.exists()
    assert _quarantined(workspace) == []
    for r in rows.values():
        assert r["removed_at"] >= r["updated_at"] + 1.0, "removed before the bound"
    out = subprocess.run([*workspace.cli(), "retry", str(rows["bad.csv"]["run_id"])], env=workspace.cli_env(),
                         capture_output=True, text=True, timeout=60, check=False)
    assert out.returncode != 0
    assert f"input {rows['bad.csv']['id']} (bad.csv)" in out.stderr and "[inbox] keep" in out.stderr, out.stderr
    assert "Traceback" not in out.stderr
    listed = workspace.invoke("inputs", "--state", "quarantined")  # found by a tester: read as still there
    assert "bad.csv" in listed.stdout and "its file was removed ([inbox] keep)" in listed.stdout, listed.stdout
    assert daemon.stop() == 0
