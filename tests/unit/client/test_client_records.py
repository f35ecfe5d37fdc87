"""The client's records: built from the daemon's documents, giving them back unchanged (pure, no daemon)."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest

from edgeorch.client import Artifact, CheckResult, Queued, Run, RunSummary
from edgeorch.client.records import shared_document
from edgeorch.errors import EdgeorchError, NotFoundError, UsageError
from edgeorch.model import AttemptState, RunState, TaskState


def _attempt(task: str, number: int, tmp: Path, **kw) -> dict:
    return {"id": number, "task_id": 1, "run_id": 4, "task": task, "number": number, "state": "exited", "pid": 100,
            "pid_start_time": 5, "pgid": 100, "shim_pid": 99, "shim_start_time": 5, "exit_code": 0, "signal": None,
            "started_at": 10.0, "finished_at": 12.5, "log_path": str(tmp / f"{task}.{number}" / "output.log"),
            "attempt_dir": str(tmp / f"{task}.{number}"), "definition_hash": "d", "input_hash": "i", "reason": None,
            "verdict": None, "charged": 1} | kw


def _doc(tmp: Path) -> dict:
    """A runs.show document of the shape rundoc.run_document gives (docs/protocol.md)."""
    return {
        "id": 4, "pipeline": "demo", "pipeline_version_id": 1, "state": "failed", "params": {"n": 2},
        "trigger": "python", "actor": "alice (uid 1000)", "run_dir": str(tmp), "created_at": 9.0,
        "started_at": 10.0, "finished_at": 20.0, "reason": "failed: check", "env": {},
        "pipeline_file": "/p/demo.toml", "content_hash": "abc",
        "tasks": [
            {"id": 1, "run_id": 4, "name": "make", "state": "succeeded", "attempts": 1, "definition_hash": "d",
             "input_hash": "i", "started_at": 10.0, "finished_at": 12.5, "next_attempt_at": None,
             "cached_from": None, "reason": None, "attempt_list": [_attempt("make", 1, tmp)],
             "artifacts": [{"id": 1, "run_id": 4, "task": "make", "attempt_id": 1, "name": "out.csv",
                            "path": str(tmp / "out.csv"), "size": 3, "sha256": "f" * 64, "created_at": 12.5}]},
            {"id": 2, "run_id": 4, "name": "check", "state": "failed", "attempts": 2, "definition_hash": "d",
             "input_hash": "i", "started_at": 13.0, "finished_at": 20.0, "next_attempt_at": None,
             "cached_from": None, "reason": "violation: drift",
             "attempt_list": [_attempt("check", 1, tmp, exit_code=None, signal=9, state="signalled"),
                              _attempt("check", 2, tmp, exit_code=3, verdict="violation")],
             "artifacts": []},
        ],
        "results": [{"id": 1, "run_id": 4, "task": "check", "attempt_id": 2, "kind": "drift", "column_name": "x",
                     "metric": "psi", "value": 0.4, "p_value": None, "threshold": 0.2, "verdict": "drift",
                     "details": {"bins": 10}}],
        "checkpoints": [{"id": 1, "run_id": 4, "task": "make", "attempt_id": 1, "name": "ckpt", "size": 1,
                         "sha256": "a" * 64, "recorded_at": 11.0}],
    }


def test_a_run_document_becomes_typed_records(tmp_path):
    run = Run.from_dict(_doc(tmp_path))
    assert (run.id, run.pipeline, run.state, run.duration) == (4, "demo", RunState.FAILED, 10.0)
    assert run.finished and not run.succeeded and run.pipeline_file == Path("/p/demo.toml")
    assert run.task_counts == {"failed": 1, "succeeded": 1}
    make, check = run.tasks
    assert make.succeeded and make.exit_code == 0 and make.attempts[0].duration == 2.5
    assert make.attempts[0].log_path == tmp_path / "make.1" / "output.log"
    assert check.state == TaskState.FAILED and check.attempt_count == 2 and check.exit_code == 3
    assert check.attempts[0].state == AttemptState.SIGNALLED and check.attempts[0].signal == 9
    assert run.artifacts == (Artifact(task="make", name="out.csv", path=tmp_path / "out.csv", size=3,
                                      sha256="f" * 64, attempt_id=1, created_at=12.5),)
    assert run.results == (CheckResult(task="check", kind="drift", column="x", metric="psi", value=0.4, p_value=None,
                                       threshold=0.2, verdict="drift", details={"bins": 10}),)
    assert run.checkpoints[0].name == "ckpt" and run.task("check") is check


def test_to_dict_gives_the_document_back_and_is_a_copy(tmp_path):
    doc = _doc(tmp_path)
    run = Run.from_dict(copy.deepcopy(doc))
    assert run.to_dict() == doc
    run.to_dict()["tasks"].clear()
    run.to_dict()["tasks"][0]["attempt_list"][0]["exit_code"] = 99  # nested too
    run.params["n"] = 99
    assert run.to_dict() == doc


def test_from_dict_keeps_a_copy_of_the_document_and_adopt_keeps_the_document_itself(tmp_path):
    """from_dict: the caller may change its document afterwards. adopt (a client's decoded answer, which
    nobody else holds): no copy of a run's ~15,000 objects; shared_document reads it without one either."""
    doc = _doc(tmp_path)
    mine = copy.deepcopy(doc)
    run = Run.from_dict(mine)
    mine["tasks"][0]["attempt_list"][0]["exit_code"] = 99
    mine["state"] = "cancelled"
    assert run.to_dict() == doc and shared_document(run) == doc
    adopted = Run.adopt(mine)
    assert shared_document(adopted) is mine and adopted.to_dict() == mine and adopted.to_dict() is not mine
    assert adopted.tasks[0].attempts[0].exit_code == 99
    item = {k: v for k, v in doc.items() if k != "tasks"} | {"tasks": {"failed": 1}}
    assert shared_document(RunSummary.adopt(item)) is item
    with pytest.raises(UsageError, match="is not a run document"):
        Run.adopt({"id": 1})


def test_a_summary_has_counts_not_tasks(tmp_path):
    item = {k: v for k, v in _doc(tmp_path).items() if k not in ("tasks", "results", "checkpoints", "env",
                                                                  "pipeline_file", "content_hash")}
    item["tasks"] = {"succeeded": 1, "failed": 1}
    summary = RunSummary.from_dict(item)
    assert summary.task_counts == {"succeeded": 1, "failed": 1} and not hasattr(summary, "tasks")
    assert summary.to_dict() == item
    assert repr(summary) == "RunSummary(id=4, pipeline='demo', state='failed', duration=10, tasks={'succeeded': 1, 'failed': 1})"


def test_an_unknown_state_from_a_newer_daemon_stays_a_string(tmp_path):
    doc = _doc(tmp_path) | {"state": "paused_for_lunch"}
    run = Run.from_dict(doc)
    assert run.state == "paused_for_lunch" and not run.finished and not run.succeeded


def test_a_document_that_is_not_a_run_is_a_usage_error():
    with pytest.raises(UsageError, match="is not a run document"):
        Run.from_dict({"id": 1})
    with pytest.raises(UsageError, match="is not a run document"):
        RunSummary.from_dict({"pipeline": "x"})


def test_an_unknown_task_names_the_run_and_its_tasks(tmp_path):
    with pytest.raises(NotFoundError, match="run 4 has no task 'trian'; expected one of make, check"):
        Run.from_dict(_doc(tmp_path)).task("trian")


def test_a_run_not_read_from_a_daemon_cannot_refresh_or_wait(tmp_path):
    run = Run.from_dict(_doc(tmp_path))
    for action in (run.refresh, run.wait, lambda: run.logs("make")):
        with pytest.raises(UsageError, match="this run was not read from a daemon"):
            action()


def test_refresh_and_wait_ask_the_client_that_made_the_run(tmp_path):
    class Recorder:
        def __init__(self):
            self.calls = []

        def get_run(self, run_id):
            self.calls.append(("get_run", run_id))
            return "fresh"

        def wait(self, run_id, timeout=None):
            self.calls.append(("wait", run_id, timeout))
            return "done"

    client = Recorder()
    run = Run.from_dict(_doc(tmp_path), client)
    assert run.refresh() == "fresh" and run.wait(timeout=3) == "done"
    assert client.calls == [("get_run", 4), ("wait", 4, 3)]


def test_return_value_reads_result_json_of_the_latest_attempt(tmp_path):
    run = Run.from_dict(_doc(tmp_path))
    make, check = run.tasks
    assert make.return_value() is None  # no result.json: a command task, or a function that returned None
    (tmp_path / "check.2").mkdir()
    (tmp_path / "check.2" / "result.json").write_text('{"verdict": "violation"}')
    assert check.return_value() == {"verdict": "violation"}
    (tmp_path / "make.1").mkdir()
    (tmp_path / "make.1" / "result.json").write_text("{not json")
    with pytest.raises(EdgeorchError, match="the task's return value is not JSON") as err:
        make.return_value()
    assert err.value.file == str(tmp_path / "make.1" / "result.json")


def test_queued_is_the_trigger_answer():
    answer = {"run_id": 7, "pipeline": "demo", "params": {"n": 1}, "content_hash": "abc", "file": "/p/demo.toml"}
    queued = Queued.from_dict(answer)
    assert (queued.run_id, queued.file) == (7, Path("/p/demo.toml")) and queued.to_dict() == answer


def test_what_the_runs_model_outputs_did_is_typed_and_an_older_daemons_document_has_none(tmp_path):
    from edgeorch.client import ModelOutcome

    doc = _doc(tmp_path) | {"models": [
        {"state": "registered", "model": "house", "version": 2, "task": "train", "gate_verdict": "failed"},
        {"state": "unchanged", "model": "price", "version": 1, "task": "fit", "gate_verdict": None}]}
    run = Run.from_dict(doc)
    assert run.models == (
        ModelOutcome(state="registered", model="house", version=2, task="train", gate_verdict="failed"),
        ModelOutcome(state="unchanged", model="price", version=1, task="fit", gate_verdict=None))
    assert Run.from_dict(_doc(tmp_path)).models == ()  # no "models" key: a daemon older than the field


def test_a_cancelled_runs_reason_is_an_attribute(tmp_path):
    """The reason given to `cancel` was only in `to_dict()["cancel_reason"]`."""
    run = Run.from_dict(_doc(tmp_path) | {"state": "cancelled", "cancel_reason": "took too long"})
    assert run.cancel_reason == "took too long"
    assert Run.from_dict(_doc(tmp_path)).cancel_reason is None
