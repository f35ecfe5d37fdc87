"""The audit log against tampering: a real state file, edited with the real ``sqlite3`` module as an attacker would
(triggers dropped first), verified with and without the offline key. Each tampering kind names its first bad seq."""

from __future__ import annotations

import hashlib
import json
import os
import time
import sqlite3
from pathlib import Path

import pytest

from edgeorch.audit.chain import GENESIS, hash_of_row, record_hash
from edgeorch.audit.keyfile import key_path
from edgeorch.audit.sealer import Sealer
from edgeorch.audit.source import StoreSource, verify_source
from edgeorch.audit.verify import verify
from edgeorch.audit import keyfile
from edgeorch.audit.keyfile import KeyState
from edgeorch.audit.keys import key_at
from edgeorch.store import Store
from testclock import TickingClock as Clock


@pytest.fixture
def log(tmp_path: Path):
    """20 records: the init record sealed alone (epoch 0), then seals at 10 (epoch 1) and 20 (epoch 2).

    Returns (state file, verification key, key file)."""
    clock = Clock()
    store = Store(tmp_path / "edgeorch.db", clock=clock)
    sealer = Sealer(store.audit, key_path(tmp_path), clock=clock)
    key0 = sealer.init("alice (uid 1000)", {"seal_every": 10})
    for i in range(9):
        store.audit.record("scheduler", "test_action", f"thing:{i}", {"i": i, "f": 0.1 * i})
    assert sealer.seal()["seq"] == 10
    for i in range(10):
        store.audit.record(None, "other_action", f"thing:{i}", {"i": i})
    assert sealer.seal()["seq"] == 20
    store.close()
    return tmp_path / "edgeorch.db", key0, key_path(tmp_path)


def check(db: Path, key0: bytes | None = None, key_file: Path | None = None):
    store = Store(db, readonly=True)
    try:
        with store.audit.snapshot():
            report, _ = verify_source(StoreSource(store.audit, key_file), key0=key0)
        return report
    finally:
        store.close()


def attacker(db: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(db, isolation_level=None)
    conn.row_factory = sqlite3.Row
    for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'").fetchall():
        conn.execute(f"DROP TRIGGER {name}")
    return conn


def rehash_from(conn: sqlite3.Connection, seq: int) -> None:
    """Recompute the chain from ``seq`` on, as an attacker who knows the algorithm would."""
    prev = conn.execute("SELECT hash FROM audit_log WHERE seq = ?", (seq - 1,)).fetchone()
    prev_hash = prev[0] if prev else GENESIS
    for row in conn.execute("SELECT * FROM audit_log WHERE seq >= ? ORDER BY seq", (seq,)).fetchall():
        r = dict(row)
        r["prev_hash"] = prev_hash
        h = hash_of_row(r)
        conn.execute("UPDATE audit_log SET prev_hash = ?, hash = ? WHERE seq = ?", (prev_hash, h, r["seq"]))
        prev_hash = h


def test_an_untouched_log_verifies_with_and_without_the_key(log):
    db, key0, key_file = log
    for key in (None, key0):
        report = check(db, key, key_file)
        assert report.ok, report.problems
        assert (report.records, report.head_seq, report.seals, report.sealed_through) == (20, 20, 3, 20)
    assert check(db, key0, key_file).key_checked


def test_an_edited_record_is_named(log):
    db, key0, _ = log
    attacker(db).execute("UPDATE audit_log SET actor = 'mallory' WHERE seq = 5")
    report = check(db)
    assert not report.ok and report.first_bad == 5
    assert "record 5 does not match its hash" in report.problems[0].message


def test_an_edited_record_with_its_hash_recomputed_is_named_by_the_broken_link(log):
    db, _, _ = log
    conn = attacker(db)
    conn.execute("UPDATE audit_log SET details = '{\"i\":99}' WHERE seq = 5")
    row = dict(conn.execute("SELECT * FROM audit_log WHERE seq = 5").fetchone())
    conn.execute("UPDATE audit_log SET hash = ? WHERE seq = 5", (hash_of_row(row),))
    assert check(db).first_bad == 5


def test_a_deleted_record_is_named(log):
    db, _, _ = log
    attacker(db).execute("DELETE FROM audit_log WHERE seq = 7")
    report = check(db)
    assert report.first_bad == 7 and "7 are missing" in report.problems[0].message


def test_a_deleted_first_record_is_named(log):
    db, _, _ = log
    attacker(db).execute("DELETE FROM audit_log WHERE seq <= 3")
    assert check(db).first_bad == 1


def test_an_inserted_record_is_named(log):
    db, _, _ = log
    conn = attacker(db)
    for (seq,) in conn.execute("SELECT seq FROM audit_log WHERE seq > 5 ORDER BY seq DESC").fetchall():
        conn.execute("UPDATE audit_log SET seq = seq + 1 WHERE seq = ?", (seq,))
    prev = conn.execute("SELECT hash FROM audit_log WHERE seq = 5").fetchone()[0]
    fake = dict(seq=6, ts="2023-11-14T22:13:25.000000Z", actor="alice", uid=1000, action="forged", subject="x",
                details="{}", prev_hash=prev)
    fake["hash"] = hash_of_row(fake)
    conn.execute("INSERT INTO audit_log VALUES (:seq, :ts, :actor, :uid, :action, :subject, :details, :prev_hash,"
                 " :hash)", fake)
    assert check(db).first_bad == 6


def test_reordered_records_are_named(log):
    db, _, _ = log
    conn = attacker(db)
    conn.execute("UPDATE audit_log SET seq = -1 WHERE seq = 12")
    conn.execute("UPDATE audit_log SET seq = 12 WHERE seq = 13")
    conn.execute("UPDATE audit_log SET seq = 13 WHERE seq = -1")
    assert check(db).first_bad == 12


def test_a_truncated_tail_is_named(log):
    db, _, _ = log
    attacker(db).execute("DELETE FROM audit_log WHERE seq > 16")
    report = check(db)
    assert report.first_bad == 17 and "truncated" in " ".join(p.message for p in report.problems)


def test_a_truncated_tail_with_its_seal_removed_is_named_by_the_key_files_epoch(log):
    db, _, key_file = log
    conn = attacker(db)
    conn.execute("DELETE FROM audit_log WHERE seq > 16")
    conn.execute("DELETE FROM audit_seals WHERE epoch = 2")
    assert check(db).ok  # the chain alone cannot tell: its unsealed tail is simply shorter
    report = check(db, key_file=key_file)
    assert report.first_bad == 11 and "key file is at epoch 3" in report.problems[0].message


def test_a_cut_tail_with_the_key_file_removed_is_named(log):
    """Records and seals cut after a seal, and the key file (which tells how far sealing went) deleted: verify
    said OK, with the verification key too, and only a warning on stderr."""
    db, key0, key_file = log
    conn = attacker(db)
    conn.execute("DELETE FROM audit_log WHERE seq > 10")
    conn.execute("DELETE FROM audit_seals WHERE epoch = 2")
    key_file.unlink()
    for key in (None, key0):
        report = check(db, key, key_file)
        assert not report.ok and report.first_bad is None  # no record is known bad: what followed seal 1 is unknown
        assert "missing: sealing has stopped" in report.problems[0].message


def test_a_cut_tail_with_a_forged_key_file_at_the_right_epoch_is_named_with_the_key(log):
    """A made-up key written into the key file at the epoch after the last seal left (its check recomputed) hid
    the cut from `verify --key`: the key file's key must be key_0 evolved to its epoch."""
    db, key0, key_file = log
    conn = attacker(db)
    conn.execute("DELETE FROM audit_log WHERE seq > 10")
    conn.execute("DELETE FROM audit_seals WHERE epoch = 2")
    keyfile.create(key_file, KeyState(2, os.urandom(32)))
    assert check(db, key_file=key_file).ok  # without the verification key a forged file cannot be told
    report = check(db, key0, key_file)
    assert not report.ok and "key file was replaced" in report.problems[0].message
    keyfile.create(key_file, KeyState(2, key_at(key0, 2)))  # the true key of that epoch: the cut stays hidden
    assert check(db, key0, key_file).ok  # (only a key file that had moved on tells: see the threat model)


def test_a_wrong_key_after_a_prune_is_said_once_naming_no_record(log, tmp_path):
    """With the audit_init record (and its key id) pruned, a wrong key gave one 'were rewritten' line per seal,
    the first bad seq a pruned record."""
    db, _, key_file = log
    store = Store(db)
    try:
        assert store.audit.prune(time.time() + 3600, actor="root") is not None
    finally:
        store.close()
    report = check(db, os.urandom(32), key_file)
    (problem,) = report.problems
    assert problem.seq is None and "not this log's verification key" in problem.message


def test_a_recomputed_chain_that_leaves_the_seals_is_named_without_the_key(log):
    db, _, _ = log
    conn = attacker(db)
    conn.execute("UPDATE audit_log SET subject = 'thing:elsewhere' WHERE seq = 14")
    rehash_from(conn, 14)
    report = check(db)
    assert report.first_bad == 11 and "seal 2 vouches for another record 20" in report.problems[0].message


def test_a_whole_table_replaced_with_a_recomputed_chain_and_seals_is_detected_only_with_the_key(log):
    db, key0, key_file = log
    conn = attacker(db)
    conn.execute("UPDATE audit_log SET actor = 'nobody', uid = NULL WHERE seq = 3")
    rehash_from(conn, 1)
    for seal in conn.execute("SELECT * FROM audit_seals").fetchall():
        h = conn.execute("SELECT hash FROM audit_log WHERE seq = ?", (seal["seq"],)).fetchone()[0]
        conn.execute("UPDATE audit_seals SET hash = ? WHERE epoch = ?", (h, seal["epoch"]))
    assert check(db, key_file=key_file).ok  # consistent without the offline key: that is what the key is for
    report = check(db, key0, key_file)
    # Record 1 (sealed alone by seal 0) is intact; seal 1 covers records 2-10, where record 3 was changed.
    assert not report.ok and report.first_bad == 2
    assert "seal 1 (records 2-10) does not verify with the verification key" in report.problems[0].message


def test_a_wrong_key_is_told_apart_from_tampering(log):
    db, key0, _ = log
    report = check(db, bytes(32))
    assert not report.ok
    assert any("not this log's verification key" in p.message for p in report.problems)


def test_the_sqlite3_command_line_tool_cannot_update_or_delete_records(log):
    import shutil
    import subprocess

    db, _, _ = log
    conn = sqlite3.connect(db)
    for sql in ("UPDATE audit_log SET actor = 'x' WHERE seq = 1", "DELETE FROM audit_log WHERE seq = 20",
                "DELETE FROM audit_seals", "UPDATE audit_seals SET mac = 'x'"):
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            conn.execute(sql)
    conn.close()
    if shutil.which("sqlite3"):
        out = subprocess.run(["sqlite3", str(db), "DELETE FROM audit_log WHERE seq = 3;"], capture_output=True,
                             text=True)
        assert out.returncode != 0 and "append-only" in out.stderr
    assert check(db).ok


def test_the_hash_is_the_documented_encoding():
    body = {"action": "a", "actor": "bö", "details": '{"x":1.5}', "prev": GENESIS, "seq": 1, "subject": "s",
            "ts": "2024-01-01T00:00:00.000000Z", "uid": None}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    assert record_hash(seq=1, ts=body["ts"], actor="bö", uid=None, action="a", subject="s", details='{"x":1.5}',
                       prev=GENESIS) == hashlib.sha256(text).hexdigest()


def test_an_empty_log_verifies_and_a_key_for_it_does_not():
    assert verify([], []).ok
    assert verify([], [], key0=bytes(32)).first_bad == 1


def test_one_gap_in_the_seals_is_said_once(tmp_path: Path):
    """A restored backup's seals 0-3 and 8-10 printed "epoch 4 to 7 are missing (seal 8 follows seal 3)", then
    "epoch 5 to 8 ... (seal 9 follows seal 4)" and more, seals that do not exist: each later seal was compared with
    its position, not with the seal before it."""
    clock = Clock()
    store = Store(tmp_path / "edgeorch.db", clock=clock)
    sealer = Sealer(store.audit, key_path(tmp_path), clock=clock)
    key0 = sealer.init("alice (uid 1000)", {"seal_every": 10})
    for epoch in range(1, 6):
        store.audit.record("scheduler", "test_action", f"thing:{epoch}", {"i": epoch})
        assert sealer.seal() is not None
    store.close()
    db = tmp_path / "edgeorch.db"
    attacker(db).execute("DELETE FROM audit_seals WHERE epoch IN (1, 2)")
    for key in (None, key0):
        report = check(db, key)
        missing = [p.message for p in report.problems if "are missing" in p.message]
        assert missing == ["the seal(s) of epoch 1 to 2 are missing (seal 3 follows seal 0)"], report.problems


def test_a_value_rewritten_as_bytes_is_named_as_an_edit_not_an_internal_error(log):
    """Found by a tester: `UPDATE audit_log SET details = X'FF00'` made `audit verify` and `audit list` internal
    errors (bytes are no JSON); the record is an edited one, and the listing shows what is there."""
    db, key0, _ = log
    attacker(db).execute("UPDATE audit_log SET details = X'FF00' WHERE seq = 12")
    report = check(db)
    assert not report.ok and report.first_bad == 12
    assert "record 12 does not match its hash: it was edited" in report.problems[0].message
    store = Store(db, readonly=True)
    try:
        [row] = store.audit.records(after=11, limit=1)
        assert row["details"] == "<not text: 2 byte(s) ff00>"
        json.dumps(row)
    finally:
        store.close()
