"""The store reads the metrics make at scrape time, on a real state file."""

from __future__ import annotations

import pytest

from edgeorch.model import AttemptState, TaskState
from edgeorch.store import Store
from edgeorch.store.attempts import NewAttempt


@pytest.fixture
def store(tmp_path):
    s = Store(tmp_path / "state.db", clock=lambda: 1000.0)
    yield s
    s.close()


def _run(store: Store, pipeline: str, task: str = "check") -> tuple[int, int]:
    version = store.pipelines.record_version(pipeline, f"h-{pipeline}", f"{pipeline}.toml", "")
    run_id = store.runs.create(pipeline=pipeline, version_id=version, params={}, trigger="manual", actor=None,
                               run_dir_for=lambda rid: f"/runs/{rid}", tasks=[(task, "d")])
    task_id = store.runs.tasks_of(run_id)[0]["id"]
    return run_id, task_id


def _attempt(store: Store, run_id: int, task_id: int, number: int, verdict: str | None, rows: list[dict]) -> int:
    aid = store.attempts.start(NewAttempt(task_id=task_id, run_id=run_id, task="check", number=number, log_path="l",
                                          attempt_dir="d", definition_hash="d", input_hash="i"))
    store.attempts.finish(aid, state=AttemptState.EXITED, exit_code=0, signal=None, reason=None,
                          task_change=(task_id, TaskState.SUCCEEDED, None, None), results=rows, verdict=verdict,
                          finished_at=1000.0 + number)
    return aid


def _row(column: str, value: float, verdict: str = "ok") -> dict:
    return {"kind": "drift", "column": column, "metric": "psi", "value": value, "threshold": 0.2, "verdict": verdict}


def test_only_inputs_in_flight_are_counted_by_pipeline_and_state(store):
    store.inputs.record_refused(pipeline="ingest", folder="/drop", source="x.exe", reason="not a file we take")
    store.inputs.record_intent(pipeline="ingest", folder="/drop", source="a.csv", dev=1, ino=2, size=3,
                               inbox_for=lambda iid: f"/inbox/{iid}")
    store.inputs.record_intent(pipeline="other", folder="/drop2", source="b.csv", dev=1, ino=3, size=3,
                               inbox_for=lambda iid: f"/inbox/{iid}")
    assert store.inputs.unfinished_by_pipeline() == [("ingest", "claiming", 1), ("other", "claiming", 1)]


def test_latest_checks_are_each_pipeline_tasks_newest_checked_attempt_with_its_rows(store):
    run1, t1 = _run(store, "checks")
    _attempt(store, run1, t1, 1, "ok", [_row("age", 0.01)])
    run2, t2 = _run(store, "checks")
    _attempt(store, run2, t2, 1, "violation", [_row("age", 0.4, "drift"), _row("income", 0.05)])
    run3, t3 = _run(store, "other")
    _attempt(store, run3, t3, 1, "ok", [])  # a verdict without rows
    run4, t4 = _run(store, "plain", task="check")
    _attempt(store, run4, t4, 1, None, [])  # not a check: no verdict
    rows = store.outputs.latest_checks()
    got = [(r["pipeline"], r["task"], r["attempt_verdict"], r["column_name"], r["value"]) for r in rows]
    assert got == [("checks", "check", "violation", "age", 0.4), ("checks", "check", "violation", "income", 0.05),
                   ("other", "check", "ok", None, None)]
    assert rows[0]["finished_at"] == 1001.0
    one = store.outputs.latest_checks(run_id=run1, task="check")  # an older run: its own latest attempt
    assert [(r["pipeline"], r["attempt_verdict"], r["value"]) for r in one] == [("checks", "ok", 0.01)]
    assert store.outputs.latest_checks(run_id=run4, task="check") == []  # no verdict: not a check
