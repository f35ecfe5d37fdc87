"""A restored backup of the state file (tester's report, finding 2): the seals it lacks are said at the daemon's
start and by verify, `verify --key` says which seals verified, and an acknowledgement made with the verification
key turns verify green for what follows, while tampering (later records and seals, the acknowledgement itself, a
cut tail acknowledged without the key) still fails."""

from __future__ import annotations

import asyncio
import json
import logging
import shutil
import sqlite3
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

from edgeorch.audit import keyfile
from edgeorch.audit.chain import hash_of_row
from edgeorch.audit.keyfile import key_path
from edgeorch.audit.restore import Gap, ack_mac, gaps
from edgeorch.audit.sealer import Sealer, SealService
from edgeorch.audit.source import StoreSource, verify_source
from edgeorch.errors import ConflictError
from edgeorch.store import Store
from testclock import TickingClock as Clock


class Log:
    """A state file with its key file, reopened at will; ``key0`` is the verification key."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.db = root / "edgeorch.db"
        self.clock = Clock()
        self.store = Store(self.db, clock=self.clock)
        self.sealer = Sealer(self.store.audit, key_path(root), clock=self.clock)
        self.key0 = self.sealer.init("alice (uid 1000)")

    def add(self, n: int) -> None:
        for i in range(n):
            self.store.audit.record("scheduler", "test_action", f"thing:{i}", {"i": i})

    def sealed(self, n: int = 3) -> dict[str, Any]:
        self.add(n)
        seal = self.sealer.seal()
        assert seal is not None
        return seal

    def reopen(self) -> None:
        self.store.close()
        self.store = Store(self.db, clock=self.clock)
        self.sealer = Sealer(self.store.audit, key_path(self.root), clock=self.clock)

    def report(self, key: bool = False):
        store = Store(self.db, readonly=True)
        try:
            with store.audit.snapshot():
                return verify_source(StoreSource(store.audit, key_path(self.root)),
                                     key0=self.key0 if key else None)[0]
        finally:
            store.close()

    def acknowledge(self, gap: Gap, key0: bytes | None = None) -> dict[str, Any]:
        return self.sealer.acknowledge_restore("root (uid 0)", gap, ack_mac(key0 or self.key0, gap))


def attacker(db: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(db, isolation_level=None)
    conn.row_factory = sqlite3.Row
    for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'").fetchall():
        conn.execute(f"DROP TRIGGER {name}")
    return conn


@pytest.fixture
def restored(tmp_path: Path) -> Log:
    """Seals 0-1, a backup (sqlite3's online backup), seals 2-3, the backup restored over the state file: the key
    file (not in backups) is at epoch 4, the state file's last seal is 1, as in the tester's repro."""
    log = Log(tmp_path)
    log.sealed()
    log.add(2)  # unsealed in the backup: kept, then sealed by the next seal
    backup = tmp_path / "backup.db"
    with closing(sqlite3.connect(backup)) as dst:  # sqlite3's `.backup`, online
        log.store.db.conn.backup(dst)
    log.sealed()
    log.sealed()
    log.store.close()
    for suffix in ("-wal", "-shm"):
        Path(f"{log.db}{suffix}").unlink(missing_ok=True)
    shutil.copyfile(backup, log.db)
    log.reopen()
    assert keyfile.read(key_path(tmp_path)).epoch == 4 and log.store.audit.last_seal()["epoch"] == 1
    return log


def start(log: Log) -> None:
    """A daemon's seal service starting on the log (after its ``daemon_started`` record: it seals at once)."""
    log.store.audit.record(None, "daemon_started", "daemon", {})
    loop = asyncio.new_event_loop()
    try:
        service = SealService(log.sealer, every=1000, interval=3600)
        service.start(loop)
        service.close()
    finally:
        loop.close()


def warnings_at_start(log: Log, caplog: pytest.LogCaptureFixture) -> list[str]:
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="edgeorch"):
        start(log)
    return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]


def test_the_daemons_start_warns_naming_the_missing_epochs_and_what_to_do(restored, caplog):
    said = warnings_at_start(restored, caplog)
    assert len(said) == 1, said
    assert "lacks the seal(s) of epoch 2 to 3" in said[0] and "after seal 1" in said[0]
    assert "edgeorch audit acknowledge-restore --key -" in said[0] and "backup" in said[0]
    assert [s["epoch"] for s in restored.store.audit.seals()] == [0, 1, 4]  # the key cannot go back
    assert len(warnings_at_start(restored, caplog)) == 1  # said at every start until acknowledged


def test_verify_names_the_gap_with_a_hint_and_with_the_key_which_seals_verified(restored):
    for report in (restored.report(), restored.report(key=True)):  # before the daemon seals: the key file's epoch
        assert not report.ok and [g.epochs() for g in report.gaps] == ["2 to 3"]
        assert any("acknowledge-restore" in h for h in report.hints)
    restored.sealed()  # epoch 4 right after 1
    report = restored.report(key=True)
    assert not report.ok and report.problem_count == 1
    assert "the seal(s) of epoch 2 to 3 are missing (seal 4 follows seal 1)" in report.problems[0].message
    assert report.seals_verified == [0, 1, 4] and report.to_dict()["seals_verified"] == [0, 1, 4]
    assert restored.report().seals_verified is None


@pytest.mark.parametrize("seal_first", [True, False], ids=["after-the-daemon-sealed", "before-any-new-seal"])
def test_an_acknowledged_restore_verifies_and_stays_reported(restored, caplog, seal_first):
    if seal_first:
        restored.sealed()
    (gap,) = restored.report(key=True).gaps
    res = restored.acknowledge(gap)
    assert res["sealed"] is not None
    restored.sealed()
    for key in (False, True):
        report = restored.report(key=key)
        assert report.ok, report.problems
        assert [(a["first_epoch"], a["last_epoch"], a["record"]) for a in report.acknowledged] == [(2, 3, res["record"])]
    (rec,) = restored.store.audit.records(action="audit_restored")
    assert (rec["actor"], rec["uid"], json.loads(rec["details"])["after_epoch"]) == ("root", 0, 1)
    assert warnings_at_start(restored, caplog) == []
    with pytest.raises(ConflictError, match="no unacknowledged gap"):
        restored.acknowledge(gap)


def acknowledged(log: Log) -> int:
    """Acknowledge the restore's gap, then seal more records after it; the acknowledgement's seq."""
    log.sealed()
    (gap,) = log.report(key=True).gaps
    seq = log.acknowledge(gap)["record"]
    log.sealed()
    log.sealed()
    log.store.close()
    assert log.report(key=True).ok
    return int(seq)


def test_after_an_acknowledgement_a_later_record_edited_or_seal_removed_still_fails(restored):
    seq = acknowledged(restored)
    conn = attacker(restored.db)
    conn.execute("UPDATE audit_log SET actor = 'mallory' WHERE seq = ?", (seq + 2,))
    for key in (False, True):
        assert restored.report(key=key).first_bad == seq + 2
    conn.execute("UPDATE audit_log SET actor = 'scheduler' WHERE seq = ?", (seq + 2,))
    assert restored.report(key=True).ok
    last = conn.execute("SELECT MAX(epoch) FROM audit_seals").fetchone()[0]
    conn.execute("DELETE FROM audit_seals WHERE epoch = ?", (last - 1,))  # a seal after the acknowledged gap
    for key in (False, True):
        report = restored.report(key=key)
        assert not report.ok and [g.epochs() for g in report.gaps] == [str(last - 1)]


def test_an_edited_or_removed_acknowledgement_fails(restored):
    seq = acknowledged(restored)
    conn = attacker(restored.db)
    row = dict(conn.execute("SELECT * FROM audit_log WHERE seq = ?", (seq,)).fetchone())
    details = json.loads(row["details"])
    conn.execute("UPDATE audit_log SET details = ? WHERE seq = ?",
                 (json.dumps({**details, "last_epoch": 9}, sort_keys=True, separators=(",", ":")), seq))
    for key in (False, True):  # edited; and the gap it no longer names is unacknowledged again
        report = restored.report(key=key)
        assert [g.epochs() for g in report.gaps] == ["2 to 3"]
        assert any(p.seq == seq and "it was edited" in p.message for p in report.problems), report.problems
    conn.execute("UPDATE audit_log SET details = ? WHERE seq = ?", (row["details"], seq))
    conn.execute("DELETE FROM audit_log WHERE seq = ?", (seq,))
    for key in (False, True):
        report = restored.report(key=key)
        assert not report.ok and report.gaps and report.first_bad is not None and report.first_bad <= seq


def test_a_cut_tail_acknowledged_without_the_verification_key_fails_verify_with_it(tmp_path):
    """An attacker who cut the tail with its seals holds only the key file's key: an acknowledgement it makes
    passes `verify` (structure only, as a made-up key file does) but not `verify --key`."""
    log = Log(tmp_path)
    log.sealed()
    last = log.sealed()
    log.sealed()
    log.sealed()
    log.store.close()
    conn = attacker(log.db)
    conn.execute("DELETE FROM audit_log WHERE seq > ?", (last["seq"],))
    conn.execute("DELETE FROM audit_seals WHERE epoch > ?", (last["epoch"],))
    conn.close()
    log.reopen()
    (gap,) = log.report().gaps
    held = keyfile.read(key_path(tmp_path))
    assert held is not None
    forged = log.sealer.acknowledge_restore(None, gap, ack_mac_with(held.key, gap))  # key_4 "evolved back" 0 times
    assert log.report().ok
    report = log.report(key=True)
    assert not report.ok and report.first_bad == forged["record"], report.problems
    assert any("does not verify with the verification key" in p.message for p in report.problems)
    assert [g.epochs() for g in report.gaps] == ["3 to 4"]


def ack_mac_with(key: bytes, gap: Gap) -> str:
    """An acknowledgement MAC keyed with ``key`` itself (what a holder of the current key can make)."""
    import hashlib
    import hmac

    from edgeorch.audit.restore import message

    return hmac.new(key, message(gap), hashlib.sha256).hexdigest()


def test_a_prune_carries_the_acknowledgement_so_the_gap_stays_acknowledged(restored):
    seq = acknowledged(restored)
    restored.reopen()
    pruned = restored.store.audit.prune(restored.clock.t + 1, actor="retention")
    assert pruned is not None and pruned["through_seq"] > seq and len(pruned["restores"]) == 1
    assert not restored.store.audit.records(action="audit_restored")
    (carrier,) = restored.store.audit.records(action="audit_pruned")
    restored.sealed()
    restored.store.close()
    report = restored.report(key=True)
    assert report.ok, report.problems
    assert [a["record"] for a in report.acknowledged] == [carrier["seq"]]


def test_gaps_of_seals_and_of_a_key_file_ahead():
    seals = [{"epoch": 0, "seq": 1, "hash": "a"}, {"epoch": 3, "seq": 9, "hash": "b"}]
    assert [(g.first_epoch, g.last_epoch, g.after_epoch, g.after_seq, g.start) for g in gaps(seals, 7)] == [
        (1, 2, 0, 1, 2), (4, 6, 3, 9, 10)]
    assert [g.first_epoch for g in gaps(seals, 4)] == [1]  # the key file one past the last seal: as it should be
    assert [g.first_epoch for g in gaps(seals, 3)] == [1]  # at the last seal's epoch: a crash before its evolution
    assert gaps([], 2)[0].after() == "before the first seal"
