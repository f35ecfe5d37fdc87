"""A stand-in daemon for crash tests: claims every file of a drop folder, recording in SQLite.

Follows the claim protocol of docs/triggers.md with each step its own
transaction (the worst case): 1 intent -> 2 rename -> 3 claimed -> 4 run row
-> 5 started. ``recover()`` is the reference recovery: reconcile + apply.

Run as a script: ``python trig_claimer.py DB DROP INBOX [KILL_STEP KILL_AT]``
kills itself with SIGKILL right after step KILL_STEP of claim number KILL_AT.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))

from edgeorch.triggers.drop import (
    ClaimError,
    ClaimIntent,
    InputRecord,
    Refuse,
    claim_dest,
    file_ids,
    list_inbox,
    perform_claim,
    prepare_claim,
    reconcile,
    scan,
)

SCHEMA = """
CREATE TABLE IF NOT EXISTS inputs (id INTEGER PRIMARY KEY, pipeline TEXT, state TEXT, source TEXT,
  inbox_path TEXT, dev INTEGER, ino INTEGER, size INTEGER, sha256 TEXT, run_id TEXT, reason TEXT);
CREATE TABLE IF NOT EXISTS runs (id TEXT PRIMARY KEY, input_id INTEGER UNIQUE);
"""


def connect(db: Path) -> sqlite3.Connection:
    con = sqlite3.connect(db, isolation_level=None)
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("PRAGMA synchronous=FULL")
    con.executescript(SCHEMA)
    return con


class Claimer:
    def __init__(self, db: Path, drop: Path, inbox: Path, kill_step: int = 0, kill_at: int = 0) -> None:
        self.con = connect(db)
        self.drop, self.inbox = drop, inbox
        self.kill_step, self.kill_at = kill_step, kill_at
        self.count = 0

    def step(self, n: int) -> None:
        if n == self.kill_step and self.count == self.kill_at:
            os.kill(os.getpid(), signal.SIGKILL)

    def claim_one(self, path: Path) -> None:
        self.count += 1
        probe = prepare_claim(path, self.drop, self.inbox, "probe")
        if isinstance(probe, Refuse):
            return
        con = self.con
        con.execute("BEGIN IMMEDIATE")
        rid = con.execute("INSERT INTO inputs (pipeline, state, source, dev, ino) VALUES ('p', 'claiming', ?, ?, ?)",
                          (str(path), probe.dev, probe.ino)).lastrowid
        dest = claim_dest(self.inbox, f"in-{rid}", path.name)
        con.execute("UPDATE inputs SET inbox_path = ? WHERE id = ?", (str(dest), rid))
        con.execute("COMMIT")
        self.step(1)
        intent = ClaimIntent(f"in-{rid}", probe.source, dest, probe.size, probe.mtime_ns, probe.dev, probe.ino)
        try:
            claimed = perform_claim(intent)
        except ClaimError:
            con.execute("UPDATE inputs SET state = 'vanished' WHERE id = ?", (rid,))
            return
        self.step(2)
        self.record_claimed(rid, claimed.size, claimed.sha256)
        self.step(3)
        self.start_run(rid)

    def record_claimed(self, rid: int, size: int, sha: str) -> None:
        self.con.execute("UPDATE inputs SET state = 'claimed', size = ?, sha256 = ? WHERE id = ?", (size, sha, rid))

    def start_run(self, rid: int) -> None:
        self.con.execute("INSERT INTO runs (id, input_id) VALUES (?, ?)", (f"run-{rid}", rid))
        self.step(4)
        self.con.execute("UPDATE inputs SET state = 'started', run_id = ? WHERE id = ?", (f"run-{rid}", rid))

    def run(self) -> None:
        for path in scan(self.drop, ["*"]):
            self.claim_one(path)

    def recover(self) -> list[str]:
        """Reconcile store and disk, then apply each action (the daemon's start-up step)."""
        con = self.con
        rows = con.execute("SELECT id, pipeline, state, source, inbox_path, dev, ino, sha256, run_id FROM inputs "
                           "WHERE state IN ('claiming', 'claimed', 'started')").fetchall()
        records = [InputRecord(r[0], r[1], r[2], Path(r[3]), Path(r[4]) if r[4] else None, r[5], r[6], r[7], r[8])
                   for r in rows]
        runs = dict(con.execute("SELECT input_id, id FROM runs"))
        actions = reconcile(records, file_ids(scan(self.drop, ["*"])), list_inbox(self.inbox), runs)
        for a in actions:
            rec = a.record
            if a.kind in ("rename", "finish"):
                assert rec is not None and rec.inbox_path is not None and rec.dev is not None
                intent = ClaimIntent(rec.inbox_path.parent.name, rec.source, rec.inbox_path, 0, 0, rec.dev,
                                     rec.ino or 0)
                claimed = perform_claim(intent)
                self.record_claimed(rec.id, claimed.size, claimed.sha256)
                self.start_run(rec.id)
            elif a.kind == "submit":
                assert rec is not None
                self.start_run(rec.id)
            elif a.kind == "link_run":
                assert rec is not None
                con.execute("UPDATE inputs SET state = 'started', run_id = ? WHERE id = ?", (a.run_id, rec.id))
            elif a.kind in ("forget", "lost"):
                assert rec is not None
                con.execute("UPDATE inputs SET state = ?, reason = ? WHERE id = ?",
                            ("vanished" if a.kind == "forget" else "lost", a.reason, rec.id))
            elif a.kind == "ingest":
                assert a.path is not None
                self.claim_one(a.path)
            elif a.kind == "adopt":
                raise AssertionError(f"unexpected orphan in the inbox: {a.path}")
        return [a.kind for a in actions]


if __name__ == "__main__":
    db, drop, inbox = (Path(a) for a in sys.argv[1:4])
    kill_step, kill_at = (int(a) for a in sys.argv[4:6]) if len(sys.argv) > 4 else (0, 0)
    Claimer(db, drop, inbox, kill_step, kill_at).run()
