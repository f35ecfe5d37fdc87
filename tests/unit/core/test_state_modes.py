"""The state is closed to other users whatever the umask (edgeorch/store/db.py): the state file (and its -wal and
-shm) 0640, its folder without read or write for others, an older state's modes tightened when it is opened for
writing. A user with no access on the control socket must not read every run's parameters and the audit log
through the file system instead."""

from __future__ import annotations

import os
import stat
import time
from pathlib import Path

import pytest

from edgeorch.store.db import Database


def _mode(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.fixture
def loose_umask():
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


def test_a_new_state_is_closed_to_others_under_a_umask_of_022(tmp_path: Path, loose_umask) -> None:
    state = tmp_path / "var"
    (state / "numba-cache").mkdir(parents=True)  # made first by a parent's mkdir: 0755
    db = Database(state / "edgeorch.db", clock=time.time)
    try:
        db.conn.execute("CREATE TABLE t (x)")  # the WAL and its index exist now
        for path in (state / "edgeorch.db", state / "edgeorch.db-wal", state / "edgeorch.db-shm"):
            assert _mode(path) == 0o640, path
        assert _mode(state) & 0o007 == 0o001  # listed and read by none; a group's socket stays reachable
    finally:
        db.conn.close()


def test_an_older_state_readable_by_everyone_is_tightened_when_opened(tmp_path: Path, loose_umask) -> None:
    state = tmp_path / "var"
    state.mkdir(mode=0o755)
    db = Database(state / "edgeorch.db", clock=time.time)
    db.conn.close()
    os.chmod(state, 0o755)
    os.chmod(state / "edgeorch.db", 0o644)
    db = Database(state / "edgeorch.db", clock=time.time)
    db.conn.close()
    assert _mode(state / "edgeorch.db") == 0o640
    assert _mode(state) == 0o751
    ro = Database(state / "edgeorch.db", clock=time.time, readonly=True)  # a reader changes nothing
    ro.conn.close()


def test_an_upgraded_state_folders_runs_and_data_versions_are_closed_to_others_at_a_start(workspace, daemon) -> None:
    """An older edgeorch made the state folder, its runs folder and each run's folder 0755: the start made them
    0751 (read taken, execute kept), so another user still read every task's log and output by path (run ids are
    numbers), and the data versions' folder stayed 0755 until the next `datasets add`."""
    workspace.pipeline("p", '[tasks.a]\ncommand = ["sh", "-c", "echo secret > {output_dir}/o.txt"]\noutputs = ["o.txt"]\n')
    daemon.start()
    assert daemon.wait_run(daemon.call("trigger", {"pipeline": "p"})["run_id"]) == "succeeded"
    assert daemon.stop() == 0
    state = workspace.state
    (state / "datasets" / "objects").mkdir(parents=True)
    for folder in (state, state / "runs", state / "runs" / "1", state / "datasets", state / "datasets" / "objects"):
        os.chmod(folder, 0o755)  # as an older edgeorch left them
    daemon.start()
    assert _mode(state) & 0o007 == 0o001  # the socket inside stays reachable for the readers it names
    assert _mode(state / "runs") & 0o007 == 0  # so no run folder is reached, whatever its own mode
    assert _mode(state / "datasets") & 0o007 == 0
    assert daemon.stop() == 0
