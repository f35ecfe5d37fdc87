"""Typed events and the bus (edgeorch/events.py).

Each event's ``to_wire()`` is the exact item the ``events`` stream has always
sent (same keys, same order: docs/protocol.md); the bus isolates a failing
subscriber, unsubscribes cleanly, and filters; ``record`` turns an event into
its one ``events`` row with the event's own ``ts``.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest

from edgeorch import events as ev
from edgeorch.store import Store

TS = 1795782739.25

WIRE: list[tuple[ev.Event | ev.Overflow, dict[str, Any]]] = [
    (ev.RunQueued(TS, 2, "demo"), {"kind": "run", "run_id": 2, "pipeline": "demo", "state": "queued", "ts": TS}),
    (ev.RunResumed(TS, 2, ("a", "b")), {"kind": "run", "run_id": 2, "state": "queued", "resumed": ["a", "b"], "ts": TS}),
    (ev.RunStarted(TS, 2, "demo"), {"kind": "run", "run_id": 2, "pipeline": "demo", "state": "running", "ts": TS}),
    (ev.RunFinished(TS, 2, "failed", "task a failed", "demo"),
     {"kind": "run", "run_id": 2, "pipeline": "demo", "state": "failed", "reason": "task a failed", "ts": TS}),
    (ev.RunFinished(TS, 2, "succeeded", None),  # the events op's "already over" item: no pipeline key
     {"kind": "run", "run_id": 2, "state": "succeeded", "reason": None, "ts": TS}),
    (ev.TaskStarted(TS, 2, "a", 1), {"kind": "task", "run_id": 2, "task": "a", "state": "running", "attempt": 1, "ts": TS}),
    (ev.TaskStarted(TS, 2, "a", 1, {"cpus": [0, 1]}, "cpus 0-1"),
     {"kind": "task", "run_id": 2, "task": "a", "state": "running", "attempt": 1, "lease": {"cpus": [0, 1]},
      "resources": "cpus 0-1", "ts": TS}),
    (ev.TaskCached(TS, 2, "a", 7, "cache hit: outputs of run 1 (a #1)"),
     {"kind": "task", "run_id": 2, "task": "a", "state": "skipped", "cached_from": 7,
      "reason": "cache hit: outputs of run 1 (a #1)", "ts": TS}),
    (ev.TaskFailed(TS, 2, "a", "no such GPU"),
     {"kind": "task", "run_id": 2, "task": "a", "state": "failed", "reason": "no such GPU", "ts": TS}),
    (ev.AttemptEnded(TS, 2, "a", "retry_wait", 1, None, 9, "killed by SIGKILL", False),
     {"kind": "task", "run_id": 2, "task": "a", "state": "retry_wait", "attempt": 1, "exit_code": None, "signal": 9,
      "reason": "killed by SIGKILL", "log_truncated": False, "ts": TS}),
    (ev.GpuBudgetAction(TS, 2, "a", 1, 11, "warn", "uses 9 GiB of 8 GiB"),
     {"kind": "task_warning", "run_id": 2, "task": "a", "attempt": 1, "reason": "uses 9 GiB of 8 GiB", "ts": TS}),
    (ev.GpuBudgetAction(TS, 2, "a", 1, 11, "stop", "uses 9 GiB of 8 GiB"),
     {"kind": "task_stopping", "run_id": 2, "task": "a", "attempt": 1, "reason": "uses 9 GiB of 8 GiB", "ts": TS}),
    (ev.GpuDrained(TS, "GPU-1", "Xid 79"), {"kind": "gpu", "uuid": "GPU-1", "state": "drained", "reason": "Xid 79", "ts": TS}),
    (ev.ExecutorHealth(TS, "zygote died: restarting"), {"kind": "executor", "message": "zygote died: restarting", "ts": TS}),
    (ev.EngineFatal(TS, "disk full"), {"kind": "fatal", "message": "disk full", "ts": TS}),
    (ev.PipelinePaused(TS, "demo", True), {"kind": "pipeline", "pipeline": "demo", "state": "paused", "ts": TS}),
    (ev.PipelinePaused(TS, "demo", False), {"kind": "pipeline", "pipeline": "demo", "state": "resumed", "ts": TS}),
    (ev.Reloaded(TS, "1 changed", False, "SIGHUP"), {"kind": "reload", "summary": "1 changed", "unchanged": False, "ts": TS}),
    (ev.RunsRemoved(TS, (1, 2), "alice (uid 1000)"), {"kind": "gc", "runs": [1, 2], "actor": "alice (uid 1000)", "ts": TS}),
    (ev.ScheduleFired(TS, "nightly", "2026-01-01T00:00:00Z", "start", 0, "due"),
     {"kind": "schedule", "ts": TS, "reason": "due", "pipeline": "nightly", "fire_time": "2026-01-01T00:00:00Z",
      "action": "start", "missed": 0}),
    (ev.InputChanged(TS, "done", input_id=3, run_id=2, pipeline="p"),
     {"kind": "input", "ts": TS, "input_id": 3, "state": "done", "run_id": 2, "pipeline": "p"}),
    (ev.InputChanged(TS, "refused", pipeline="p", file="/drop/x.csv", reason="empty"),
     {"kind": "input", "ts": TS, "state": "refused", "pipeline": "p", "file": "/drop/x.csv", "reason": "empty"}),
    (ev.InputChanged(TS, "watch_missing", file="/drop"), {"kind": "input", "ts": TS, "state": "watch_missing", "file": "/drop"}),
    (ev.InputQuarantined(TS, 3, None, "p", "/q/x.csv", "no run could be started", "x.csv"),
     {"kind": "input", "ts": TS, "input_id": 3, "state": "quarantined", "run_id": None, "pipeline": "p",
      "file": "/q/x.csv", "reason": "no run could be started"}),
    (ev.DatasetVersioned(TS, "daily", 3, "input", 2, 2048, 512, input_id=7),
     {"kind": "dataset", "state": "version", "dataset": "daily", "version": 3, "source": "input", "files": 2,
      "size": 2048, "new_bytes": 512, "ts": TS, "input_id": 7}),
    (ev.DatasetsPruned(TS, ("daily@1", "daily@2"), 4096, "alice (uid 1000)"),
     {"kind": "dataset", "state": "pruned", "versions": ["daily@1", "daily@2"], "bytes_freed": 4096,
      "actor": "alice (uid 1000)", "ts": TS}),
    (ev.ModelRegistered(TS, "house", 4, "failed", run_id=9, task="register", summary="blocked"),
     {"kind": "model", "state": "registered", "model": "house", "version": 4, "gate_verdict": "failed", "run_id": 9,
      "task": "register", "deployment_id": None, "summary": "blocked", "ts": TS}),
    (ev.ModelUnchanged(TS, "house", 1, run_id=9, task="register"),
     {"kind": "model", "state": "unchanged", "model": "house", "version": 1, "run_id": 9, "task": "register",
      "ts": TS}),
    (ev.ModelDeployment(TS, "house", 3, "champion", "rolled_back", 2, 4, "promote", "health failed", "edgeorch"),
     {"kind": "model", "state": "rolled_back", "model": "house", "deployment_id": 3, "alias": "champion",
      "from_version": 2, "to_version": 4, "action": "promote", "outcome": "health failed", "actor": "edgeorch",
      "ts": TS}),
    (ev.ModelObserved(TS, "house", {"champion": {"rmse": 52.0}}, run_id=7),
     {"kind": "model", "state": "observed", "model": "house", "values": {"champion": {"rmse": 52.0}}, "run_id": 7,
      "ts": TS}),
    (ev.RuleEvent(TS, "retrain_on_drift", "still_firing", "rule retrain_on_drift: still_firing: ...", "house_prices",
                  1.0, 7),
     {"kind": "rule", "rule": "retrain_on_drift", "action": "still_firing", "pipeline": "house_prices", "value": 1.0,
      "run_id": 7, "message": "rule retrain_on_drift: still_firing: ...", "ts": TS}),
    (ev.Subscribed(TS, None), {"kind": "subscribed", "run_id": None, "ts": TS}),
    (ev.Overflow(), {"kind": "overflow", "message": "events were dropped: the client reads too slowly"}),
]


@pytest.mark.parametrize("event, wire", WIRE, ids=lambda x: type(x).__name__ if not isinstance(x, dict) else "")
def test_each_event_sends_the_wire_item_the_stream_always_sent(event, wire):
    # Same bytes: keys, order and values (json.dumps keeps insertion order).
    assert json.dumps(event.to_wire()) == json.dumps(wire)


def test_every_event_class_has_a_wire_shape_test():
    classes = {c for c in vars(ev).values() if isinstance(c, type) and issubclass(c, ev.Event) and c is not ev.Event}
    assert classes <= {type(e) for e, _ in WIRE}


def test_every_kind_a_stream_can_be_asked_for_is_a_kind_the_bus_sends():
    # The events op's `kinds` argument and `edgeorch events --kind` accept exactly these.
    from edgeorch.model import STREAM_KINDS

    sent = {wire["kind"] for e, wire in WIRE if not isinstance(e, (ev.Subscribed, ev.Overflow))}
    assert sent == STREAM_KINDS


def test_events_are_frozen():
    with pytest.raises(AttributeError):
        ev.RunStarted(TS, 1, "p").run_id = 2  # type: ignore[misc]


def test_a_failing_subscriber_is_logged_and_isolated(caplog):
    bus = ev.Bus()
    got: list[ev.Event] = []

    def broken(event: ev.Event) -> None:
        raise RuntimeError("subscriber bug")

    bus.subscribe(broken)
    bus.subscribe(got.append)
    event = ev.ExecutorHealth(TS, "ok")
    with caplog.at_level(logging.ERROR, logger="edgeorch.events"):
        bus.publish(event)  # does not raise
    assert got == [event]
    assert "subscriber bug" in caplog.text and "ExecutorHealth" in caplog.text


def test_a_failing_filter_is_isolated_too(caplog):
    bus = ev.Bus()
    got: list[ev.Event] = []
    bus.subscribe(got.append, lambda e: 1 / 0)
    bus.subscribe(got.append)
    with caplog.at_level(logging.ERROR, logger="edgeorch.events"):
        bus.publish(ev.EngineFatal(TS, "x"))
    assert len(got) == 1 and "ZeroDivisionError" in caplog.text


def test_unsubscribe_stops_delivery_and_is_idempotent():
    bus = ev.Bus()
    got: list[ev.Event] = []
    unsubscribe = bus.subscribe(got.append)
    bus.publish(ev.EngineFatal(TS, "first"))
    unsubscribe()
    unsubscribe()
    bus.publish(ev.EngineFatal(TS, "second"))
    assert [e.message for e in got] == ["first"]  # type: ignore[attr-defined]
    assert len(bus) == 0


def test_a_subscriber_unsubscribed_during_a_delivery_gets_nothing_more():
    bus = ev.Bus()
    got: list[str] = []
    later: list = []
    bus.subscribe(lambda e: later[0]())  # unsubscribes the next one before its turn
    later.append(bus.subscribe(lambda e: got.append("late")))
    bus.subscribe(lambda e: got.append("third"))
    bus.publish(ev.EngineFatal(TS, "x"))
    assert got == ["third"]


def test_subscribers_filter_by_class_tuple_or_predicate():
    bus = ev.Bus()
    runs: list[ev.Event] = []
    either: list[ev.Event] = []
    run_two: list[ev.Event] = []
    bus.subscribe(runs.append, ev.RunFinished)
    bus.subscribe(either.append, (ev.RunStarted, ev.GpuDrained))
    bus.subscribe(run_two.append, lambda e: e.run == 2)
    published = [ev.RunStarted(TS, 2, "p"), ev.RunFinished(TS, 3, "succeeded", None, "p"), ev.GpuDrained(TS, "G", "x")]
    for e in published:
        bus.publish(e)
    assert runs == [published[1]]
    assert either == [published[0], published[2]]
    assert run_two == [published[0]]


def test_record_writes_the_events_row_once_with_the_events_ts(tmp_path):
    store = Store(tmp_path / "state.db")
    try:
        drained = ev.GpuDrained(1234.5, "GPU-1", "Xid 79")
        ev.record(store.events, drained)
        ev.record(store.events, ev.RunStarted(1300.0, 1, "p"))  # a transition's row is the store's: nothing here
        rows = [dict(r) for r in store.events.recent(10)]
        assert [(r["kind"], r["ts"], r["message"]) for r in rows] == [
            ("gpu_drained", 1234.5, "GPU-1 drained: Xid 79; it gets no new lease")]
        assert json.loads(rows[0]["data"]) == {"uuid": "GPU-1", "reason": "Xid 79"}
    finally:
        store.close()


def test_rows_of_recorded_events_keep_their_kinds_and_messages():
    # The rows tests and operators query (docs): kinds and messages are those written before events.py.
    assert ev.GpuBudgetAction(TS, 2, "a", 1, 11, "stop", "over").to_row() == ev.Row(
        "gpu_budget_stop", "a: attempt 1 over", run_id=2, task="a", data={"attempt_id": 11, "action": "stop"})
    assert ev.GpuBudgetAction(TS, 2, "a", 1, 11, "warn", "over").to_row().kind == "gpu_budget_warning"
    assert ev.ExecutorHealth(TS, "restarted").to_row() == ev.Row("executor_health", "restarted")
    assert ev.Reloaded(TS, "unchanged", True, "alice", ("e1",)).to_row() == ev.Row(
        "reload", "reload by alice: unchanged", actor="alice", data={"errors": ["e1"], "unchanged": True})
    assert ev.InputQuarantined(TS, 3, 2, "p", "/q/x", "failed", "x.csv").to_row() == ev.Row(
        "input_quarantined", "input 3 (x.csv) quarantined: failed", run_id=2, actor="watch",
        data={"input_id": 3, "file": "/q/x"})
