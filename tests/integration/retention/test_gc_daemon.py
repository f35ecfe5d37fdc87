"""Retention through a real daemon: the ``gc`` / ``gc.apply`` ops (and ``edgeorch gc`` using them), the
``[retention]`` sweep, and what other ops show of a removed run."""

from __future__ import annotations

import json
import time

import pytest

from edgeorch.control import Client
from edgeorch.errors import EdgeorchError
from edgeorch.model import InputState
from edgeorch.store import Store


def _gc_cli(workspace, *argv: str) -> dict:
    proc = workspace.invoke("gc", *argv, "--json")  # in this process: output and exit codes are tested
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
    return json.loads(proc.stdout)


def _gc_events(daemon, action, *, want: int = 1) -> list[dict]:
    """Run ``action()`` while following the events stream; the ``gc`` items it brought."""
    got = []
    with Client(daemon.socket_path, timeout=60) as c:
        stream = c.stream("events", {}, timeout=60)
        assert next(stream)["kind"] == "subscribed"
        action()
        for ev in stream:
            if ev.get("kind") == "gc":
                got.append(ev)
                if len(got) == want:
                    return got
    raise AssertionError("the events stream ended")


def test_edgeorch_gc_goes_through_the_daemon_dry_run_first(old_runs, daemon, workspace):
    old = old_runs.make("plain", 2, days_ago=100)
    (kept,) = old_runs.make("plain", 1, days_ago=0)
    daemon.start()
    before = old_runs.snapshot()
    dry = _gc_cli(workspace, "--older-than", "30d")
    assert [r["run_id"] for r in dry["runs"]] == old and old_runs.snapshot() == before
    items = _gc_events(daemon, lambda: _gc_cli(workspace, "--older-than", "30d", "--apply"))
    assert items[0]["runs"] == old and "(uid " in items[0]["actor"]
    assert [r["id"] for r in daemon.call("runs.list", {"limit": 100})["runs"]] == [kept]
    with old_runs.db() as conn:
        (actor,) = conn.execute("SELECT actor FROM events WHERE kind = 'runs_removed'").fetchone()
    assert actor == items[0]["actor"]


def test_an_unknown_pipeline_is_an_error_through_the_daemon_too(old_runs, daemon, workspace):
    old_runs.make("plain", 1, days_ago=100)
    daemon.start()
    typo = workspace.invoke("gc", "--older-than", "30d", "--pipeline", "plian", "--apply")
    assert typo.returncode == 3 and "no pipeline named 'plian'" in typo.stderr, typo.stderr


def test_bad_op_arguments_are_usage_errors_naming_the_argument(old_runs, daemon):
    old_runs.make("plain", 1, days_ago=100)
    daemon.start()
    for args, field in (({"older_than": "soon"}, "args.older_than"), ({"older_than": 0}, "args.older_than"),
                        ({"older_than": "30d", "keep_last": -2}, "args.keep_last"),
                        ({"older_than": True}, "args.older_than"), ({}, "args.older_than")):
        with pytest.raises(EdgeorchError) as err:
            daemon.call("gc.apply", args)
        assert err.value.exit_code == 2 and field in err.value.render(), args
    assert len(daemon.call("runs.list", {"limit": 10})["runs"]) == 1


def test_the_retention_setting_sweeps_at_start(old_runs, daemon, workspace):
    old = old_runs.make("plain", 2, days_ago=100)
    (kept,) = old_runs.make("plain", 1, days_ago=0)
    workspace.write_config(extra='[retention]\nruns = "30d"\n')
    daemon.start()
    deadline = time.monotonic() + 30
    while [r["id"] for r in daemon.call("runs.list", {"limit": 100})["runs"]] != [kept]:
        assert time.monotonic() < deadline, "the sweep did not remove the old runs"
        time.sleep(0.05)
    with old_runs.db() as conn:
        (data, actor) = conn.execute("SELECT data, actor FROM events WHERE kind = 'runs_removed'").fetchone()
    assert json.loads(data)["runs"] == old and actor == "retention"


def test_a_reloaded_retention_setting_applies_at_once(old_runs, daemon, workspace):
    old = old_runs.make("plain", 1, days_ago=100)
    old_runs.make("plain", 1, days_ago=0)
    daemon.start()
    workspace.write_config(extra='[retention]\nruns = "30d"\n')
    items = _gc_events(daemon, lambda: daemon.call("reload"))
    assert items == [{"kind": "gc", "runs": old, "actor": "retention", "ts": items[0]["ts"]}]


def test_inputs_of_a_removed_run_are_still_listed(old_runs, daemon, workspace):
    (old,) = old_runs.make("plain", 1, days_ago=100)
    old_runs.make("plain", 1, days_ago=0)
    store = Store(workspace.config().state_file)
    try:  # a drop-folder input that started the old run and was settled long ago
        iid = store.inputs.record_intent(pipeline="plain", folder="/drop", source="/drop/a.csv", dev=1, ino=2,
                                         size=3, inbox_for=lambda i: f"/gone/in-{i}/a.csv")
        store.inputs.record_claimed(iid, 3, "0" * 64)
        store.inputs.record_started(iid, old)
        store.inputs.record_state(iid, InputState.DONE)
    finally:
        store.close()
    daemon.start()
    daemon.call("gc.apply", {"older_than": "30d"})
    (row,) = [i for i in daemon.call("inputs.list", {})["inputs"] if i["id"] == iid]
    assert row["run_id"] == old and row["run_state"] == "removed"


def test_the_retention_sweep_removes_old_settled_inputs_whose_run_and_file_are_gone(old_runs, daemon, workspace):
    """`[retention] inputs`: the one table that grew without bound in an unattended soak (a record per file)."""
    (old,) = old_runs.make("plain", 1, days_ago=100)
    (kept,) = old_runs.make("plain", 1, days_ago=0)
    store = Store(workspace.config().state_file)
    ids = []
    try:
        for run_id, name in ((old, "a.csv"), (kept, "b.csv")):
            iid = store.inputs.record_intent(pipeline="plain", folder="/drop", source=f"/drop/{name}", dev=1, ino=2,
                                             size=3, inbox_for=lambda i, n=name: f"/gone/in-{i}/{n}")
            store.inputs.record_claimed(iid, 3, "0" * 64)
            store.inputs.record_started(iid, run_id)
            store.inputs.record_state(iid, InputState.DONE)
            store.inputs.record_removed(iid)  # [inbox] keep removed its file
            ids.append(iid)
    finally:
        store.close()
    workspace.write_config(extra='[retention]\nruns = "30d"\ninputs = "1s"\n')
    daemon.start()
    deadline = time.monotonic() + 30
    while [i["id"] for i in daemon.call("inputs.list", {})["inputs"]] != [ids[1]]:  # b's run is kept
        assert time.monotonic() < deadline, daemon.output()
        time.sleep(0.05)
    assert "input retention: removed the records of 1 settled input(s)" in daemon.output()
