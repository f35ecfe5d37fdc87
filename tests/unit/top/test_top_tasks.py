"""``edgeorch top``'s task rows and their counts (edgeorch/cli/top/model.py, screen.py's OpsSource).

The ops are answered by a fake client that keeps the daemon's contracts that matter here: ``runs.list`` is newest
first, filtered by ``state``, cut at ``limit``, with each run's task counts; ``resources`` lists only the leases
that hold something.
"""

from __future__ import annotations

import re
from typing import Any

from rich.console import Console

from edgeorch.cli.top.keys import ViewState, reconcile
from edgeorch.cli.top.model import Item, selectable, snapshot_of
from edgeorch.cli.top.render import screen
from edgeorch.cli.top.screen import OpsSource


def _run(run_id: int, pipeline: str, tasks: list[dict[str, Any]]) -> dict[str, Any]:
    """A run as ``runs.show`` gives it (the keys top reads)."""
    return {"id": run_id, "pipeline": pipeline, "state": "running", "trigger": "cli", "created_at": float(run_id),
            "tasks": tasks}


class FakeClient:
    """The ops ``top`` calls, over ``runs`` (``runs.show`` documents); records each call."""

    def __init__(self, runs: list[dict[str, Any]], resources: dict[str, Any], status: dict[str, Any]) -> None:
        self.runs = {r["id"]: r for r in runs}
        self.resources, self.status = resources, status
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def call(self, op: str, args: dict[str, Any] | None = None) -> dict[str, Any]:
        args = args or {}
        self.calls.append((op, args))
        if op == "status":
            return self.status
        if op == "resources":
            return self.resources
        if op == "runs.list":
            rows = [r for _, r in sorted(self.runs.items(), reverse=True)
                    if args.get("state") in (None, r["state"])][:args.get("limit", 20)]
            return {"runs": [dict(r, tasks=_counts(r)) for r in rows]}
        if op == "runs.show":
            return self.runs[args["run_id"]]
        if op == "inputs.list":
            return {"inputs": [], "counts": {}}
        if op == "monitors.list":
            return {"rules": []}
        raise AssertionError(op)


def _counts(run: dict[str, Any]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for t in run["tasks"]:
        counts[t["state"]] = counts.get(t["state"], 0) + 1
    return counts


def _backlog() -> FakeClient:
    """Two long runs (55, 56) running unleased tasks (no cores asked), then 25 newer quick runs waiting for a slot:
    the report's reproduction."""
    longs = [_run(i, "long", [{"name": "work", "state": "running",
                               "attempt_list": [{"number": 1, "started_at": 100.0 + i}]}]) for i in (55, 56)]
    quick = [_run(i, "quick", [{"name": "q", "state": "ready", "attempt_list": []}]) for i in range(57, 82)]
    resources = {"leases": [], "running_unleased": 2,
                 "queue": [{"task": f"{r['id']}/q", "pipeline": "quick", "reason": "waits for a run slot"}
                           for r in quick]}
    status = {"tasks": {"running": 2, "ready": 25}, "runs": {"active": 27}}
    return FakeClient(longs + quick, resources, status)


def test_running_tasks_are_shown_first_whatever_the_backlog():
    """Rows came from the 20 newest active runs: with 25 newer queued runs, the two running ones were missing,
    and `l`/`c` could not reach them."""
    client = _backlog()
    snap = OpsSource(client).snapshot(1000.0)
    assert [(t.run_id, t.state) for t in snap.tasks[:2]] == [(55, "running"), (56, "running")]
    assert [t.state for t in snap.tasks[2:]] == ["waiting"] * 25
    assert selectable(snap)[0] == Item(55, "long", "work")
    # Only the runs with a running task are read in detail, not every active run.
    assert sorted(a["run_id"] for op, a in client.calls if op == "runs.show") == [55, 56]


def test_a_long_run_past_the_newest_thousands_is_still_read_through_its_lease():
    """A leased attempt's run is read even when the active runs' list does not reach it."""
    client = _backlog()
    client.runs[55]["state"] = "old"  # not listed by runs.list state=running
    client.resources["leases"] = [{"run_id": 55, "task": "work", "cores": [0], "gpus": []}]
    snap = OpsSource(client).snapshot(1000.0)
    assert [(t.run_id, t.state, t.detail) for t in snap.tasks[:2]] == [
        (55, "running", "cores 0"), (56, "running", "shares the free cores")]


def test_a_task_that_started_between_two_ops_is_shown_once_running():
    client = _backlog()
    client.resources["queue"].insert(0, {"task": "56/work", "pipeline": "long", "reason": "waits for a run slot"})
    snap = OpsSource(client).snapshot(1000.0)
    assert [(t.run_id, t.task) for t in snap.tasks].count((56, "work")) == 1
    assert snap.running == 2 and snap.waiting == 25


def _render(snap, width: int = 160, height: int = 30) -> list[str]:
    state = ViewState()
    reconcile(state, selectable(snap))
    console = Console(width=width, height=height, record=True, color_system=None)
    console.print(screen(snap, state, height=height))
    return console.export_text().splitlines()


def test_the_header_counts_the_rows_it_shows_retrying_ones_included():
    """`Tasks: 0 running, 0 waiting` stood above a retry_wait row, and `status`' counts (another moment) above
    rows read later."""
    status = {"tasks": {"running": 2, "ready": 0, "retry_wait": 0}, "runs": {"active": 2}}
    active = [_run(87, "retrying", [{"name": "r", "state": "retry_wait", "next_attempt_at": 1024.0,
                                     "reason": "exited with code 1",
                                     "attempt_list": [{"number": 1, "started_at": 990.0}]}]),
              _run(88, "long", [{"name": "work", "state": "running",
                                 "attempt_list": [{"number": 1, "started_at": 900.0}]}])]
    snap = snapshot_of(status, {}, [], active, {}, now=1000.0)
    assert (snap.running, snap.waiting, snap.retrying) == (1, 0, 1)
    lines = _render(snap)
    assert re.search(r"  1 running, 0 waiting, 1 retrying, 2 active run\(s\)", lines[0]), lines[0]
    assert "Tasks: 1 running, 0 waiting, 1 retrying" in lines[1], lines[1]


def test_retrying_runs_past_the_cap_are_counted_as_not_listed():
    client = _backlog()
    for i in range(100, 125):
        client.runs[i] = _run(i, "flaky", [{"name": "f", "state": "retry_wait", "next_attempt_at": 2000.0,
                                            "attempt_list": [{"number": 1, "started_at": 990.0}]}])
    snap = OpsSource(client).snapshot(1000.0)
    assert (snap.retrying, snap.retrying_unread) == (20, 5)
    assert "20 retrying (+5 not listed)" in _render(snap)[1]
