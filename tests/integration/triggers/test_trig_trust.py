"""Drop folders under hostile and long-running use (issue 9), through a real daemon process.

Each test is named after the guarantee it guards. Synchronisation: the daemon's
events stream and conditions on the state file, never sleeps.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
from pathlib import Path

import pytest

from test_daemon_triggers import INGEST, drop_by_rename, inputs, n_inputs, q, setup_watch, wait_until


def quarantine_files(workspace) -> list[str]:
    qdir = workspace.state / "quarantine"
    return sorted(os.listdir(qdir)) if qdir.is_dir() else []


@pytest.mark.parametrize("how", ["sigterm", "kill9"])
def test_a_restart_never_quarantines_inputs_already_processed(workspace, daemon, tmp_path, how):
    drop = setup_watch(workspace)
    daemon.start()
    stage = tmp_path / "stage"
    for i in range(3):
        drop_by_rename(stage, drop, f"ok{i}.csv", f"row {i}\n".encode())
    drop_by_rename(stage, drop, "bad.csv", b"BAD\n")
    wait_until(daemon, lambda: n_inputs(workspace, "done", "quarantined") >= 4, what="4 inputs settled")
    before = [tuple(r) for r in inputs(workspace)]
    assert quarantine_files(workspace) == ["bad.csv", "bad.csv.reason.json"]
    if how == "sigterm":
        assert daemon.stop() == 0
    else:
        daemon.kill9()
    daemon.start()
    assert daemon.stop() == 0
    after = [tuple(r) for r in inputs(workspace)]
    assert after == before, "a restart changed the input records"
    assert quarantine_files(workspace) == ["bad.csv", "bad.csv.reason.json"]
    for r in inputs(workspace, "done"):
        assert Path(r["inbox_path"]).is_file(), "a processed input left the inbox"
    assert "no input record" not in daemon.output()


def test_a_drop_file_with_a_255_byte_name_never_stops_the_daemon_from_starting(workspace, daemon, tmp_path):
    drop = setup_watch(workspace)
    daemon.start()
    names = ["x" * (251 - len(str(i))) + f"{i}.csv" for i in range(2)]  # 255 bytes each
    names.append("B" * 245 + ".csv")  # a failing input: quarantined under a derived name that fits
    for n in names[:2]:
        drop_by_rename(tmp_path / "stage", drop, n, n.encode()[-6:] + b"\n")
    drop_by_rename(tmp_path / "stage", drop, names[2], b"BAD\n")
    wait_until(daemon, lambda: n_inputs(workspace, "done", "quarantined") >= 3, what="long names settled")
    assert n_inputs(workspace, "quarantined") == 1
    qfiles = quarantine_files(workspace)
    assert len(qfiles) == 2 and all(len(f.encode()) <= 255 for f in qfiles)
    doc = json.loads((workspace.state / "quarantine" / next(f for f in qfiles if f.endswith(".reason.json"))).read_text())
    assert doc["source_name"] == names[2]
    # A long-named file sits in the inbox with no record (as after a lost record): recovery copes.
    stray = workspace.state / "inbox" / "in-999" / ("y" * 250 + ".csv")
    stray.parent.mkdir(parents=True)
    stray.write_text("stray\n")
    assert daemon.stop() == 0
    daemon.start()
    assert daemon.stop() == 0
    assert not stray.exists()
    assert len(quarantine_files(workspace)) == 4
