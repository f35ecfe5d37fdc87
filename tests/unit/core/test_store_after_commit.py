"""What follows a commit: ``after_commit`` callbacks and the audit head kept within a transaction (real SQLite)."""

from __future__ import annotations

import pytest

from edgeorch.audit.chain import GENESIS, hash_of_row
from edgeorch.store import Store


@pytest.fixture()
def store(tmp_path):
    s = Store(tmp_path / "state.db", clock=lambda: 1000.0)
    yield s
    s.close()


def test_callbacks_run_after_the_outer_commit_in_order(store):
    seen: list[str] = []
    with store.transaction():
        store.after_commit(lambda: seen.append("a"))
        with store.transaction():
            store.after_commit(lambda: seen.append("b"))
        assert seen == []  # a savepoint's release is not a commit
        store.after_commit(lambda: seen.append("c"))
        assert seen == []
    assert seen == ["a", "b", "c"]


def test_outside_a_transaction_a_callback_runs_at_once(store):
    seen: list[int] = []
    store.after_commit(lambda: seen.append(1))
    assert seen == [1]


def test_a_rolled_back_transaction_runs_none_of_its_callbacks(store):
    seen: list[str] = []
    with pytest.raises(RuntimeError):
        with store.transaction():
            store.after_commit(lambda: seen.append("a"))
            raise RuntimeError("boom")
    with store.transaction():
        pass
    assert seen == []


def test_a_rolled_back_savepoint_drops_only_its_own_callbacks(store):
    seen: list[str] = []
    with store.transaction():
        store.after_commit(lambda: seen.append("outer"))
        with pytest.raises(RuntimeError):
            with store.transaction():
                store.after_commit(lambda: seen.append("inner"))
                with store.transaction():
                    store.after_commit(lambda: seen.append("innermost"))
                raise RuntimeError("this file only")
        store.after_commit(lambda: seen.append("later"))
    assert seen == ["outer", "later"]


def test_rollback_callbacks_run_only_for_what_rolled_back_newest_first(store):
    undone: list[str] = []
    with store.transaction():  # committed: none runs, not even at a later rollback
        store.on_rollback(lambda: undone.append("committed"))
    with pytest.raises(RuntimeError):
        with store.transaction():
            store.on_rollback(lambda: undone.append("outer"))
            with store.transaction():  # a savepoint that was released belongs to the transaction
                store.on_rollback(lambda: undone.append("released"))
            raise RuntimeError("boom")
    assert undone == ["released", "outer"]
    undone.clear()
    with store.transaction():
        store.on_rollback(lambda: undone.append("kept"))
        with pytest.raises(RuntimeError):
            with store.transaction():
                store.on_rollback(lambda: undone.append("savepoint"))
                raise RuntimeError("this file only")
        assert undone == ["savepoint"]
    assert undone == ["savepoint"]  # the outer one committed
    store.on_rollback(lambda: undone.append("outside"))  # no transaction: nothing to undo, nothing kept
    with pytest.raises(RuntimeError, match="the cause"):
        with store.transaction():
            store.on_rollback(lambda: 1 / 0)  # dropped: the caller sees why the transaction failed
            store.on_rollback(lambda: undone.append("still"))
            raise RuntimeError("the cause")
    assert undone == ["savepoint", "still"]


def test_a_failing_callback_does_not_stop_the_others_and_is_raised(store):
    seen: list[str] = []

    def bad() -> None:
        raise ValueError("subscriber bug")

    with pytest.raises(ValueError, match="subscriber bug"):
        with store.transaction():
            store.after_commit(bad)
            store.after_commit(lambda: seen.append("next"))
    assert seen == ["next"]
    assert store.db.conn.in_transaction is False  # committed; nothing left open


def test_a_callback_may_open_its_own_transaction(store):
    with store.transaction():
        store.after_commit(lambda: store.audit.record(None, "later", "test"))
        store.audit.record(None, "first", "test")
    assert [r["action"] for r in store.audit.records()] == ["first", "later"]


def _chain_ok(store: Store) -> list[int]:
    rows = store.audit.records(limit=10_000)
    prev = GENESIS
    for r in rows:
        assert r["prev_hash"] == prev, f"record {r['seq']} does not link to the one before"
        assert hash_of_row(r) == r["hash"]
        prev = r["hash"]
    return [r["seq"] for r in rows]


def test_the_audit_chain_links_across_rolled_back_savepoints(store):
    """The head kept within a transaction is forgotten when a savepoint rolls back: the next record links
    to the last one that stays, never to a rolled-back one."""
    with store.transaction():
        store.audit.record(None, "a", "test")
        with pytest.raises(RuntimeError):
            with store.transaction():
                store.audit.record(None, "rolled_back", "test")
                raise RuntimeError("this file only")
        store.audit.record(None, "b", "test")
    with pytest.raises(RuntimeError):
        with store.transaction():
            store.audit.record(None, "whole_rollback", "test")
            raise RuntimeError("the group fails")
    store.audit.record(None, "c", "test")
    assert _chain_ok(store) == [1, 2, 3]
    assert [r["action"] for r in store.audit.records()] == ["a", "b", "c"]
    assert store.db.memo == {}  # nothing kept between transactions


def test_written_head_is_the_head_this_connection_committed(store, tmp_path):
    assert store.audit.written_head() is None  # an empty log, nothing written yet: read
    store.audit.record(None, "a", "test")
    assert store.audit.written_head() == store.audit.head()
    with pytest.raises(RuntimeError):
        with store.transaction():
            store.audit.record(None, "rolled_back", "test")
            raise RuntimeError("boom")
    assert store.audit.written_head() == store.audit.head()  # a rolled-back record is not kept
    other = Store(tmp_path / "state.db", clock=lambda: 1000.0)
    try:
        other.audit.record(None, "b", "test")  # another writer: a hint may lag, never a record's prev
        assert store.audit.written_head()[0] == 1 and store.audit.head()[0] == 2
        store.audit.record(None, "c", "test")  # links to the real head
    finally:
        other.close()
    assert _chain_ok(store) == [1, 2, 3]
