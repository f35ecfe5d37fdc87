"""Sealing and the key file: forward security, a crash between a seal and the key's evolution, a damaged key
file, init refused twice, records in the transaction of their change, pruning, and the chain's small rules."""

from __future__ import annotations

import asyncio
import logging
import os
import stat
from pathlib import Path

import pytest

from edgeorch.audit import keyfile
from edgeorch.audit.chain import actor_fields, encode_details, event_subject, iso_ts, parse_ts
from edgeorch.audit.keyfile import KeyState, key_path
from edgeorch.audit.keys import evolve, format_key, key_at, mac_ok, parse_key
from edgeorch.audit.sealer import Sealer, SealService
from edgeorch.audit.source import StoreSource, verify_source
from edgeorch.errors import ConflictError, StateError, UsageError
from edgeorch.store import Store
from testclock import TickingClock as Clock


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def store(tmp_path: Path, clock: Clock):
    s = Store(tmp_path / "edgeorch.db", clock=clock)
    yield s
    s.close()


@pytest.fixture
def sealer(store, tmp_path: Path, clock: Clock) -> Sealer:
    return Sealer(store.audit, key_path(tmp_path), clock=clock)


def report_of(store: Store, key0: bytes | None = None, key_file: Path | None = None):
    return verify_source(StoreSource(store.audit, key_file), key0=key0)[0]


def test_init_shows_key_0_once_and_leaves_only_key_1_on_disk(sealer, store, tmp_path):
    key0 = sealer.init("alice (uid 1000)", {"seal_every": 10})
    state = keyfile.read(key_path(tmp_path))
    assert state == KeyState(1, evolve(key0)) and key0.hex() not in key_path(tmp_path).read_text()
    assert stat.S_IMODE(os.stat(key_path(tmp_path)).st_mode) == 0o600
    (init,) = store.audit.records()
    assert (init["actor"], init["uid"], init["action"]) == ("alice", 1000, "audit_init")
    (seal,) = store.audit.seals()
    assert seal["epoch"] == 0 and seal["seq"] == 1
    assert mac_ok(key0, seal["mac"], epoch=0, seq=1, hash=seal["hash"], ts=seal["ts"])


def test_init_is_refused_once_the_log_has_a_seal(sealer):
    sealer.init(None)
    with pytest.raises(ConflictError, match="already initialized") as err:
        sealer.init(None)
    assert "keep using the verification key" in (err.value.hint or "")
    sealer.key_file.unlink()  # a backup restored without its key file: the hint says how to make it again
    with pytest.raises(ConflictError, match="already initialized") as err:
        sealer.init(None)
    assert "is missing" in (err.value.hint or "") and "audit init --key -" in (err.value.hint or "")


def test_an_interrupted_init_without_a_seal_can_be_run_again(sealer, tmp_path):
    keyfile.create(key_path(tmp_path), KeyState(0, bytes(32)))  # the key file of an init that crashed before sealing
    key0 = sealer.init(None)
    assert keyfile.read(key_path(tmp_path)) == KeyState(1, evolve(key0))


def test_a_seal_evolves_the_key_in_place_and_the_old_key_cannot_be_derived_back(sealer, store, tmp_path):
    key0 = sealer.init(None)
    path = key_path(tmp_path)
    inode = os.stat(path).st_ino
    store.audit.record("scheduler", "x", "y")
    sealed = sealer.seal()
    assert sealed is not None and sealed["epoch"] == 1 and sealed["seq"] == 2
    assert keyfile.read(path) == KeyState(2, key_at(key0, 2))
    assert os.stat(path).st_ino == inode  # overwritten, not replaced by a new file
    assert sealer.seal() is None  # nothing new: no empty seal


def test_a_crash_between_a_seal_and_the_keys_evolution_is_repaired_and_still_verifies(sealer, store, tmp_path):
    key0 = sealer.init(None)
    path = key_path(tmp_path)
    store.audit.record(None, "x", "y")
    before = path.read_bytes()
    sealer.seal()
    path.write_bytes(before)  # as if the process died after storing seal 1, before evolving the key
    assert report_of(store, key0, path).ok  # the key file at the last seal's epoch is that crash, not tampering
    store.audit.record(None, "x", "z")
    sealed = sealer.seal()
    assert sealed is not None and sealed["epoch"] == 2
    assert report_of(store, key0, path).ok


def test_a_damaged_key_file_stops_sealing_with_a_clear_error_and_the_chain_goes_on(sealer, store, tmp_path, caplog):
    sealer.init(None)
    path = key_path(tmp_path)
    path.write_bytes(path.read_bytes()[:40])  # torn
    with pytest.raises(StateError, match="damaged"):
        sealer.seal()
    store.audit.record(None, "x", "y")
    service = SealService(sealer, every=1)
    with caplog.at_level(logging.ERROR, logger="edgeorch.audit"):
        assert service.seal_now("test") is None
    assert "damaged" in caplog.text
    rep = report_of(store, key_file=path)  # the chain still verifies, but nothing vouches for the tail now
    assert not rep.ok and rep.key_epoch is None
    (problem,) = rep.problems
    assert "damaged" in problem.message and "sealing has stopped" in problem.message
    assert "hint" not in problem.message and problem.seq is None  # no record named that does not exist


def _sealed_log(sealer, store, records: int = 12):
    key0 = sealer.init(None)
    for i in range(records):
        store.audit.record(None, "x", f"r{i}")
        if i % 3 == 2:
            sealer.seal()
    return key0


def test_a_lost_key_file_is_put_back_from_the_verification_key_and_sealing_goes_on(sealer, store, tmp_path):
    key0 = _sealed_log(sealer, store)
    last = store.audit.last_seal()
    key_path(tmp_path).unlink()
    store.audit.record(None, "x", "while the key file was gone")
    with pytest.raises(UsageError, match="not the epoch after the last seal"):
        sealer.restore("root", KeyState(int(last["epoch"]), key_at(key0, int(last["epoch"]))))
    epoch = int(last["epoch"]) + 1
    res = sealer.restore("root", KeyState(epoch, key_at(key0, epoch)))
    assert res["was"] == "missing" and res["epoch"] == epoch and res["sealed"]["epoch"] == epoch
    assert [r["action"] for r in store.audit.records()][-1] == "audit_key_restored"
    assert report_of(store, key0, key_path(tmp_path)).ok  # every seal, the new ones too, verifies with key_0
    with pytest.raises(ConflictError, match="in place and whole"):
        sealer.restore("root", KeyState(epoch + 1, key_at(key0, epoch + 1)))


def test_the_seal_service_seals_after_every_n_records_and_at_close(sealer, store):
    sealer.init(None)
    service = SealService(sealer, every=3, interval=3600)
    for i in range(7):
        store.audit.record(None, "x", f"s{i}")
        service.on_event(object())
    assert [s["seq"] for s in store.audit.seals()] == [1, 4, 7]
    store.audit.record(None, "x", "last")
    service.close()
    assert store.audit.last_seal()["seq"] == 9


def test_the_seal_service_does_nothing_before_init(sealer, store, caplog):
    service = SealService(sealer, every=1)
    store.audit.record(None, "x", "y")
    with caplog.at_level(logging.INFO, logger="edgeorch.audit"):
        service.on_event(object())
        service.close()
    assert store.audit.seals() == [] and "edgeorch audit init" in caplog.text


def test_the_seal_service_seals_at_start_and_on_its_interval(sealer, store):
    sealer.init(None)
    store.audit.record(None, "x", "appended while no daemon ran")

    async def main() -> None:
        service = SealService(sealer, every=1000, interval=0.01)
        service.start(asyncio.get_running_loop())
        assert store.audit.last_seal()["seq"] == 2
        store.audit.record(None, "x", "later")
        while store.audit.last_seal()["seq"] != 3:  # the interval timer seals it
            await asyncio.sleep(0.01)
        service.close()

    asyncio.run(main())


def test_a_record_commits_or_rolls_back_with_the_change_it_describes(store):
    with pytest.raises(RuntimeError):
        with store.transaction():
            store.pipelines.set_paused("p", True, reason="r", actor="bob (uid 7)")
            raise RuntimeError("the transition fails after its rows were written")
    assert store.audit.records() == [] and store.pipelines.paused() == {}
    store.pipelines.set_paused("p", True, reason="r", actor="bob (uid 7)")
    (rec,) = store.audit.records()
    assert (rec["seq"], rec["actor"], rec["uid"], rec["action"], rec["subject"]) == \
        (1, "bob", 7, "pipeline_paused", "pipeline:p")


def test_every_events_row_is_an_audit_record(store):
    store.events.add("gpu_drained", "GPU-1 drained", data={"uuid": "GPU-1"})
    store.events.add("cancel_requested", "run 3: cancelled", run_id=3, actor="carol (uid 5)")
    store.events.add("input_quarantined", "q", run_id=None, actor="watch", data={"input_id": 9})
    got = [(r["actor"], r["uid"], r["action"], r["subject"]) for r in store.audit.records()]
    assert got == [("engine", None, "gpu_drained", "gpu:GPU-1"), ("carol", 5, "cancel_requested", "run:3"),
                   ("watcher", None, "input_quarantined", "input:9")]


def test_prune_keeps_a_sealed_checkpoint_so_the_rest_verifies(sealer, store, tmp_path, clock):
    key0 = sealer.init(None)
    for i in range(5):
        store.audit.record(None, "old", f"s{i}")
    sealer.seal()  # through 6
    cut = clock.t + 0.5
    for i in range(3):
        store.audit.record(None, "new", f"s{i}")
    sealer.seal()  # through 9
    assert store.audit.prune(clock.t - 100, actor=None) is None  # no record is that old
    pruned = store.audit.prune(cut, actor="dave (uid 9)")
    assert pruned is not None and pruned["through_seq"] == 6 and pruned["records"] == 6
    assert store.audit.records()[0]["seq"] == 7 and store.audit.records()[-1]["action"] == "audit_pruned"
    rep = report_of(store, key0, key_path(tmp_path))
    assert rep.ok and rep.checkpoint == 6 and rep.first_seq == 7
    assert store.audit.prune(cut, actor=None) is None  # already pruned there


def test_prune_with_every_record_gone_still_links_the_next_record(sealer, store, tmp_path, clock):
    key0 = sealer.init(None)
    store.audit.prune(clock.t + 10, actor=None)  # record 1 (init) goes; audit_pruned (2) stays
    sealer.seal()
    assert report_of(store, key0, key_path(tmp_path)).ok


def test_actors_are_split_into_name_and_uid():
    assert actor_fields("alice (uid 1000)") == ("alice", 1000)
    assert actor_fields("uid 1234") == ("1234", 1234)
    assert actor_fields(None) == ("engine", None)
    assert actor_fields("watch") == ("watcher", None)
    assert actor_fields("rule:drift") == ("rule:drift", None)


def test_details_never_fail_to_encode():
    assert encode_details({"p": Path("/x"), "n": float("nan"), "s": {1}}) == '{"n":"nan","p":"/x","s":"{1}"}'
    assert encode_details(None) == "{}"


def test_subjects_and_times():
    assert event_subject(3, "train", None) == "run:3/train"
    assert event_subject(None, None, {"pipeline": "p"}) == "pipeline:p"
    assert event_subject(None, None, None) == "daemon"
    # A data version added by `edgeorch datasets add` was recorded about "daemon".
    assert event_subject(None, None, {"dataset": "sales", "version": 3}) == "dataset:sales"
    assert event_subject(None, None, {"model": "churn"}) == "model:churn"
    assert iso_ts(0.5) == "1970-01-01T00:00:00.500000Z" and parse_ts(iso_ts(1.25)) == 1.25
    assert iso_ts(1e9) == "2001-09-09T01:46:40.000000Z"  # whole seconds keep their six digits


def test_a_time_is_written_as_it_always_was():
    """Records written by earlier versions used strftime: a new record's time has the same text."""
    import random
    from datetime import datetime, timezone

    rng = random.Random(7)
    for t in [0.0, 1e9 + 0.9999996, 1700000000.0000005, *(rng.uniform(0, 4e9) for _ in range(2000))]:
        assert iso_ts(t) == datetime.fromtimestamp(t, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ"), t


def test_a_verification_key_round_trips_and_a_bad_one_is_named():
    key = bytes(range(32))
    assert parse_key(format_key(key)) == key and parse_key(format_key(key).upper().replace("-", " ")) == key
    with pytest.raises(UsageError, match="--key: is not a verification key"):
        parse_key("not-a-key")


def test_updates_and_deletes_are_refused_by_triggers(store):
    import sqlite3

    store.audit.record(None, "x", "y")
    store.db.conn.execute("INSERT INTO audit_checkpoints (seq, hash, epoch, ts) VALUES (0, 'h', 0, 't')")
    for sql in ("UPDATE audit_log SET actor = 'x'", "DELETE FROM audit_log", "UPDATE audit_checkpoints SET seq = 1",
                "DELETE FROM audit_checkpoints"):
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            store.db.conn.execute(sql)


def test_retention_prunes_old_sealed_records_and_says_once_when_none_was_ever_sealed(store, tmp_path, clock, caplog):
    """``[retention] audit``: the log grew with every run (~10 records each) though runs were removed; the sweep
    prunes records older than the bound, up to a seal, and what remains verifies. An unsealed log is said once."""
    from edgeorch.config import RetentionConfig
    from edgeorch.retention.service import RunRetention

    loop = asyncio.new_event_loop()
    try:
        service = RunRetention(store=store, runs_dir=tmp_path / "runs", config=RetentionConfig(audit=3600.0),
                               loop=loop, publish=lambda event: None)
        for i in range(4):
            store.audit.record(None, "old", f"s{i}")
        with caplog.at_level(logging.WARNING, logger="edgeorch"):
            assert service.prune_audit(3600.0) is None and service.prune_audit(3600.0) is None
        assert [r.message for r in caplog.records].count(
            next(r.message for r in caplog.records if "never sealed" in r.message)) == 1
        sealer = Sealer(store.audit, key_path(tmp_path), clock=clock)
        key0 = sealer.init(None)
        sealer.seal()
        clock.t += 7200
        store.audit.record(None, "new", "s")
        pruned = service.prune_audit(3600.0)
        assert pruned is not None and pruned["records"] >= 5
        assert report_of(store, key0, key_path(tmp_path)).ok
        assert store.audit.records()[-1]["action"] == "audit_pruned" and store.audit.records()[-1]["actor"] == "retention"
        # Idle from here: the prune's own record, sealed and old, is no reason for another prune (each wrote the
        # next record, a seal and a checkpoint: one of each a sweep, forever).
        outcomes, seals = [], []
        for _ in range(4):  # the daemon's rhythm: a seal when records arrived, a sweep past the bound
            sealer.seal()
            clock.t += 7200
            outcomes.append(service.prune_audit(3600.0))
            seals.append(len(store.audit.seals()))
        assert outcomes[-2:] == [None, None] and seals[-1] == seals[-2] == seals[-3], (outcomes, seals)
        assert store.audit.records()[-1]["action"] == "audit_pruned"
        assert report_of(store, key0, key_path(tmp_path)).ok
    finally:
        loop.close()


def test_a_sealed_log_whose_key_file_is_gone_says_how_to_make_it_again(sealer, store, caplog):
    """After a backup restored without `audit.key` (as the docs advise), the log said "the audit log is not sealed:
    `edgeorch audit init` starts its sealing key", a command then refused ("already initialized")."""
    import logging

    sealer.init(None)
    sealer.key_file.unlink()
    store.audit.record(None, "run_created", "run", {})
    with caplog.at_level(logging.INFO, logger="edgeorch"):
        assert SealService(sealer, every=1).seal_now("test") is None
    said = [r.getMessage() for r in caplog.records]
    assert any("is missing" in m and "audit init --key -" in m for m in said), said
    assert not any("is not sealed" in m for m in said)
