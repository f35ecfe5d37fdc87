"""kill -9 of a claiming process (real SQLite, real renames) at every step: no file lost, none run twice."""

from __future__ import annotations

import hashlib
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from trig_claimer import Claimer, connect

CLAIMER = Path(__file__).with_name("trig_claimer.py")
N = 40


@pytest.fixture
def world(tmp_path: Path):
    drop, inbox, db = tmp_path / "drop", tmp_path / "state" / "inbox", tmp_path / "state.db"
    drop.mkdir()
    inbox.mkdir(parents=True)
    digests = {}
    for i in range(N):
        data = f"row,{i}\n".encode() * (i + 1)
        (drop / f"f{i:03d}.csv").write_bytes(data)
        digests[f"f{i:03d}.csv"] = hashlib.sha256(data).hexdigest()
    return drop, inbox, db, digests


def claimer(db: Path, drop: Path, inbox: Path, *kill: int) -> int:
    return subprocess.run([sys.executable, str(CLAIMER), str(db), str(drop), str(inbox), *map(str, kill)],
                          timeout=120, check=False).returncode


def check_exactly_once(db: Path, drop: Path, inbox: Path, digests: dict[str, str]) -> None:
    con = connect(db)
    assert list(drop.iterdir()) == []
    rows = con.execute("SELECT i.source, i.inbox_path, i.sha256, r.id FROM inputs i JOIN runs r ON r.input_id = i.id "
                       "WHERE i.state = 'started'").fetchall()
    by_name: dict[str, int] = {}
    for source, inbox_path, sha, _run in rows:
        name = Path(source).name
        by_name[name] = by_name.get(name, 0) + 1
        assert hashlib.sha256(Path(inbox_path).read_bytes()).hexdigest() == sha == digests[name]
    assert by_name == {name: 1 for name in digests}, "a file was lost or run twice"
    assert con.execute("SELECT count(*) FROM runs").fetchone()[0] == N


@pytest.mark.parametrize("step", [1, 2, 3, 4])
def test_kill_9_right_after_each_claim_step_then_restart(world, step):
    drop, inbox, db, digests = world
    assert claimer(db, drop, inbox, step, 7) == -signal.SIGKILL
    kinds = Claimer(db, drop, inbox).recover()
    expected = {1: "rename", 2: "finish", 3: "submit", 4: "link_run"}[step]
    assert kinds[0] == expected and kinds.count("ingest") == N - 7
    check_exactly_once(db, drop, inbox, digests)


def test_repeated_kills_at_different_points_then_a_clean_run(world):
    drop, inbox, db, digests = world
    # Each restart claims more before it dies; interrupted claims pile up until the recovery.
    for step, at in [(2, 3), (4, 5), (1, 2), (3, 9)]:
        assert claimer(db, drop, inbox, step, at) == -signal.SIGKILL
    kinds = Claimer(db, drop, inbox).recover()
    # The step-1 file was still in the drop folder, so the next (unrecovered) run claimed it afresh:
    # its old intent is forgotten, not redone.
    assert sorted(k for k in kinds if k != "ingest") == ["finish", "forget", "link_run", "submit"]
    assert claimer(db, drop, inbox) == 0
    check_exactly_once(db, drop, inbox, digests)
