"""What the clients send and how they read answers (edgeorch/client/calls.py, protocol.decode_response/answer_of)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from edgeorch.client import Queued, Run
from edgeorch.client import calls
from edgeorch.control import protocol as P
from edgeorch.control.client import item_timeout
from edgeorch.errors import NotFoundError, PipelineError, UsageError


@pytest.mark.parametrize("value, sent", [
    (None, None), (True, True), (3, 3), (1.5, 1.5), ("s", "s"), (Path("/a/b"), "/a/b"),
    ((1, "x"), [1, "x"]), ({"k": Path("p")}, {"k": "p"}),
])
def test_plain_values_are_sent_as_json(value, sent):
    assert calls.plain(value, "params.x") == sent


@pytest.mark.parametrize("value, message", [
    (float("inf"), r"params.x: is not a finite number \(found inf\)"),
    (object(), r"params.x: cannot be sent to the daemon \(found 'object'\)"),
    ({1: "a"}, r"params.x: has a key that is not a string \(found 1\)"),
    ([1, {"d": {1, 2}}], r"params.x\[1\].d: cannot be sent to the daemon \(found 'set'\)"),
])
def test_values_json_cannot_carry_name_their_field(value, message):
    with pytest.raises(UsageError, match=message):
        calls.plain(value, "params.x")


def test_a_run_is_an_id_a_run_record_or_a_receipt(tmp_path):
    queued = Queued.from_dict({"run_id": 5, "pipeline": "p", "params": {}, "content_hash": None, "file": None})
    assert calls.run_id_of(5) == 5 and calls.run_id_of(queued) == 5
    for bad in (True, "5", 5.0, None):
        with pytest.raises(UsageError, match="run: is not a run"):
            calls.run_id_of(bad)


def test_submit_by_name_and_by_file(tmp_path, monkeypatch):
    call = calls.submit("nightly", {"epochs": 3}, "python")
    assert (call.op, call.args) == ("trigger", {"params": {"epochs": 3}, "trigger": "python", "pipeline": "nightly"})
    path = tmp_path / "adhoc.toml"
    path.write_text('[tasks.a]\ncommand = ["true"]\n')
    by_path = calls.submit(path, None, "cli")
    assert by_path.args == {"params": {}, "trigger": "cli", "source": path.read_text(), "file": str(path)}
    monkeypatch.chdir(tmp_path)
    assert calls.submit("adhoc.toml", None, "cli").args == by_path.args  # the CLI's rule: relative, made absolute
    with pytest.raises(PipelineError, match="cannot read file"):
        calls.submit(tmp_path / "missing.toml", None, "cli")


@pytest.mark.parametrize("pipeline, params, label, message", [
    ("", None, "x", "pipeline: is not a pipeline"),
    (3, None, "x", "pipeline: is not a pipeline"),
    ("p", ["a=1"], "x", "params: is not a mapping of param names to values"),
    ("p", None, "", "label: is not a label"),
])
def test_submit_refuses_what_it_cannot_send(pipeline, params, label, message):
    with pytest.raises(UsageError, match=message):
        calls.submit(pipeline, params, label)


def test_optional_args_are_left_out_and_streams_say_whether_they_wait_for_the_future():
    assert calls.runs(None, None, 20).args == {"limit": 20}
    assert calls.cancel(3, None).args == {"run_id": 3}
    assert calls.cancel(3, "why").args == {"run_id": 3, "reason": "why"}
    assert calls.logs(3, "t", None, False).args == {"run_id": 3, "task": "t", "follow": False}
    assert calls.logs(3, "t", None, False).bounded and not calls.logs(3, "t", 2, True).bounded
    assert calls.events(None).args == {} and not calls.events(3).bounded
    assert calls.retry(3).read({"run_id": 3, "tasks": ["a", "b"]}, None) == ["a", "b"]
    assert calls.events(3, ["task", "run", "task"]).args == {"run_id": 3, "kinds": ["run", "task"]}


def test_a_waiter_with_nothing_to_show_asks_only_for_the_runs_items():
    # Client.run / Client.wait without on_event: a run of many short tasks sends that waiter no item per task.
    assert calls.follow(None, None) == {"kinds": ["run"]}
    assert calls.follow(3, None) == {"run_id": 3, "kinds": ["run"]}
    assert calls.follow(3, print) == {"run_id": 3} and calls.follow(None, print) == {}


@pytest.mark.parametrize("item, step", [
    ({"kind": "run", "run_id": 3, "state": "succeeded"}, "finished"),
    ({"kind": "run", "run_id": 3, "state": "cancelled", "reason": "x"}, "finished"),
    ({"kind": "run", "run_id": 3, "state": "running"}, None),
    ({"kind": "run", "run_id": 4, "state": "failed"}, None),
    ({"kind": "run", "run_id": 3, "state": "exploded"}, None),
    ({"kind": "task", "run_id": 3, "state": "failed"}, None),
    ({"kind": "overflow", "message": "dropped"}, "recheck"),
    (["not", "a", "dict"], None),
])
def test_wait_steps(item, step):
    assert calls.wait_step(item, 3) == step


def test_deadlines():
    assert not calls.past(None) and calls.past(time.monotonic() - 1)
    assert not calls.past(time.monotonic() - 1, {"kind": "subscribed"})  # a finished run's end comes right after
    assert item_timeout(5, None) == 5 and item_timeout(None, None) is None
    assert 0 < item_timeout(None, time.monotonic() + 2) <= 2 and item_timeout(1, time.monotonic() + 50) == 1
    assert item_timeout(None, time.monotonic() - 10) == 0.001  # never 0 (non-blocking) when the time is up
    err = calls.WaitTimeout(3, 2.5, "running")
    assert str(err).startswith("run 3 did not finish within 2.5s (last seen running)") and err.exit_code == 75


def test_response_lines_are_decoded_once_for_both_clients():
    assert P.answer_of(P.decode_response(b'{"id":1,"ok":true,"result":{"a":1}}\n', "s"), 1) == (False, {"a": 1})
    assert P.answer_of(P.decode_response(b'{"id":1,"ok":true,"end":true}\n', "s"), 1) == (True, None)
    with pytest.raises(NotFoundError, match="no run 9"):
        P.answer_of({"id": 1, "ok": False, "error": {"code": "not_found", "message": "no run 9"}}, 1)
    with pytest.raises(P.BadResponse, match="answer for request 2, expected 1"):
        P.answer_of({"id": 2, "ok": True, "result": {}}, 1)
    for line, message in ((b"", "closed the connection without answering"), (b"nope\n", "not JSON"),
                          (b'{"id": 1}\n', "not a response")):
        with pytest.raises(P.BadResponse, match=message):
            P.decode_response(line, "/run/edgeorch/edgeorch.sock")


def test_get_run_reads_a_run_bound_to_the_client(tmp_path):
    doc = {"id": 1, "pipeline": "p", "state": "queued", "params": {}, "trigger": "python", "actor": None,
           "run_dir": str(tmp_path), "created_at": 1.0, "started_at": None, "finished_at": None, "reason": None,
           "tasks": [], "results": [], "checkpoints": []}
    client = object()
    run = calls.get_run(1).read(doc, client)
    assert isinstance(run, Run) and run._client is client and run.duration is None
