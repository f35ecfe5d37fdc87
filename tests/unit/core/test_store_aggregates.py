"""The state file is split by aggregate behind one connection and one transaction.

``Store`` has no data methods of its own: each aggregate's calls are reached
only through it (``store.runs.get``, ``store.inputs.record_claimed``...), and
writes of two aggregates inside one ``with store.transaction():`` commit or
roll back together.
"""

from __future__ import annotations

import inspect

import pytest

from edgeorch.model import RunState
from edgeorch.store import Store
from edgeorch.store.attempts import Attempts
from edgeorch.store.events import Events
from edgeorch.store.inputs import Inputs
from edgeorch.store.outputs import Outputs
from edgeorch.store.pipelines import Pipelines
from edgeorch.store.retention import Retention
from edgeorch.store.runs import Runs
from edgeorch.store.schedules import Schedules

AGGREGATES = {"runs": Runs, "attempts": Attempts, "outputs": Outputs, "pipelines": Pipelines,
              "events": Events, "schedules": Schedules, "inputs": Inputs, "retention": Retention}


@pytest.fixture
def store(tmp_path):
    s = Store(tmp_path / "state.db", clock=lambda: 1000.0)
    yield s
    s.close()


def _public_methods(cls: type) -> set[str]:
    return {n for n, v in inspect.getmembers(cls, inspect.isfunction) if not n.startswith("_")}


def test_store_has_no_data_methods_of_its_own():
    assert _public_methods(Store) == {"transaction", "after_commit", "on_rollback", "sync", "close",
                                      "integrity_check"}


def test_each_aggregate_is_an_attribute_of_the_store_sharing_one_connection(store):
    for name, cls in AGGREGATES.items():
        agg = getattr(store, name)
        assert type(agg) is cls
        assert agg._db is store.db  # one connection, one transaction depth


def test_aggregate_methods_are_reachable_only_through_their_aggregate(store):
    for name, cls in AGGREGATES.items():
        for method in _public_methods(cls):
            assert not callable(getattr(store, method, None)), f"Store.{method} duplicates store.{name}.{method}"
    # The old flat names are gone from the Store (`get_run` is now `runs.get`).
    for old in ("get_run", "create_run", "record_input_claimed", "finish_attempt", "add_event", "conn"):
        assert not hasattr(store, old)


def _run(store: Store) -> int:
    version = store.pipelines.record_version("p", "h", "/p.toml", "")
    return store.runs.create(pipeline="p", version_id=version, params={}, trigger="t", actor=None,
                             run_dir_for=lambda r: f"/runs/{r}", tasks=[("a", "h")])


def test_two_aggregates_writes_in_one_transaction_commit_together(store, tmp_path):
    run_id = _run(store)
    with store.transaction():
        store.schedules.set_last_fire("p", "2026-01-01T00:00:00Z")
        store.runs.set_state(run_id, RunState.RUNNING)
    other = Store(tmp_path / "state.db", readonly=True)
    try:
        assert other.schedules.last_fire("p") == "2026-01-01T00:00:00Z"
        assert other.runs.get(run_id)["state"] == "running"
    finally:
        other.close()


def test_two_aggregates_writes_in_one_transaction_roll_back_together(store):
    run_id = _run(store)
    with pytest.raises(RuntimeError, match="boom"):
        with store.transaction():
            store.schedules.set_last_fire("p", "2026-01-01T00:00:00Z")
            store.runs.set_state(run_id, RunState.RUNNING)
            store.events.add("x", "written, then rolled back")
            raise RuntimeError("boom")
    assert store.schedules.last_fire("p") is None
    assert store.runs.get(run_id)["state"] == "queued"
    assert [e["kind"] for e in store.events.recent(10)] == ["run_created"]



def test_an_input_state_change_the_transition_table_forbids_is_refused_and_records_nothing(tmp_path):
    from edgeorch.errors import ConflictError
    from edgeorch.model import InputState
    from edgeorch.store import Store

    store = Store(tmp_path / "s.db")
    iid = store.inputs.record_intent(pipeline="p", folder="/d", source="/d/a.csv", dev=1, ino=2, size=3,
                                     inbox_for=lambda i: f"/inbox/in-{i}/a.csv")
    with pytest.raises(ConflictError, match="cannot move from claiming to done"):
        store.inputs.record_state(iid, InputState.DONE)
    assert store.inputs.get(iid)["state"] == "claiming"
    store.inputs.record_claimed(iid, 3, "0" * 64)
    with pytest.raises(ConflictError, match="cannot move from claimed to requeued"):
        store.inputs.record_state(iid, "requeued")
    assert store.inputs.get(iid)["state"] == "claimed"


def test_a_quarantined_input_may_be_requeued_and_then_nothing_else(tmp_path):
    from edgeorch.errors import ConflictError
    from edgeorch.model import InputState
    from edgeorch.store import Store

    store = Store(tmp_path / "s.db")
    iid = store.inputs.record_intent(pipeline="p", folder="/d", source="/d/a.csv", dev=1, ino=2, size=3,
                                     inbox_for=lambda i: f"/inbox/in-{i}/a.csv")
    store.inputs.record_claimed(iid, 3, "0" * 64)
    store.inputs.record_state(iid, InputState.QUARANTINED)
    store.inputs.record_state(iid, InputState.REQUEUED)
    with pytest.raises(ConflictError):
        store.inputs.record_state(iid, InputState.STARTED)


def test_an_intent_takes_the_id_its_claim_folder_was_made_for_while_that_id_is_free(tmp_path):
    """A claim group's folders are made ahead for ids 1.. (off the loop): the intent takes that id with its
    inbox path in one insert; when the id was taken meanwhile, it gets a new id and its path is asked again."""
    from edgeorch.store import Store

    store = Store(tmp_path / "s.db")
    asked: list[int] = []

    def intent(source: str, input_id: int | None) -> int:
        return store.inputs.record_intent(pipeline="p", folder="/d", source=source, dev=1, ino=2, size=3,
                                          inbox_for=lambda i: asked.append(i) or f"/inbox/in-{i}/a.csv",
                                          input_id=input_id)

    assert store.inputs.next_id() == 1
    assert intent("/d/a.csv", 1) == 1 and asked == [1]
    assert intent("/d/b.csv", 1) == 2 and asked == [1, 1, 2]  # 1 taken: a new id, its own path
    assert [(r["id"], r["inbox_path"], r["source_path"]) for r in store.inputs.list()] == [
        (2, "/inbox/in-2/a.csv", "/d/b.csv"), (1, "/inbox/in-1/a.csv", "/d/a.csv")]
    assert store.inputs.next_id() == 3
    actions = [r[0] for r in store.db.conn.execute("SELECT action FROM audit_log ORDER BY seq")]
    assert actions.count("input_claiming") == 2
