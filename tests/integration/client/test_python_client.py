"""edgeorch.Client and edgeorch.AsyncClient against a real daemon process (issue 19, point 6)."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import subprocess
from pathlib import Path

import pytest

import edgeorch
from edgeorch.client import Queued, RunSummary
from edgeorch.errors import ConfigError, ConflictError, NotFoundError, UsageError
from edgeorch.model import AttemptState, RunState, TaskState

DEMO = """
[params]
word = "hello"
n = 2
[tasks.make]
command = ["sh", "-c", "echo made {word}; printf '%s' {word} > $EDGEORCH_OUTPUT_DIR/word.txt"]
outputs = ["word.txt"]
[tasks.double]
call = "steps_mod:double"
needs = ["make"]
"""

STEPS = "def double(n):\n    print('doubling', n)\n    return {'doubled': n * 2}\n"

GATED = """
[tasks.wait]
command = ["sh", "-c", "echo waiting; while [ ! -f {pipeline_dir}/go ]; do sleep 0.05; done; echo went"]
"""

FAILS = """
[tasks.bad]
command = ["sh", "-c", "echo about to fail; exit 3"]
[tasks.after]
command = ["true"]
needs = ["bad"]
"""


@pytest.fixture
def demo(workspace, daemon):
    """A daemon serving ``demo`` (a command with an output, then a call returning a value), ``gated`` and ``fails``."""
    (workspace.pipelines / "steps_mod.py").write_text(STEPS)
    workspace.pipeline("demo", DEMO)
    workspace.pipeline("gated", GATED)
    workspace.pipeline("fails", FAILS)
    daemon.start()
    return daemon


def _client(workspace, **kw) -> edgeorch.Client:
    return edgeorch.Client(config=workspace.config_path, **kw)


def test_trigger_wait_and_read_what_the_run_made(workspace, demo):
    with _client(workspace) as client:
        queued_run = client.trigger("demo", {"word": "yo", "n": 21})
        assert isinstance(queued_run, edgeorch.Run) and queued_run.pipeline == "demo"
        assert queued_run.params == {"word": "yo", "n": 21} and queued_run.trigger == "python"
        assert queued_run.actor.endswith(f"(uid {os.getuid()})")
        run = client.wait(queued_run, timeout=60)
    assert run.id == queued_run.id and run.state == RunState.SUCCEEDED and run.succeeded and run.finished
    assert run.created_at <= run.started_at <= run.finished_at and run.duration >= 0
    assert [t.name for t in run.tasks] == ["make", "double"]
    make, double = run.tasks
    assert make.state == TaskState.SUCCEEDED and make.succeeded and make.exit_code == 0
    (attempt,) = make.attempts
    assert attempt.number == 1 and attempt.state == AttemptState.EXITED and attempt.pid > 0
    assert attempt.log_path.read_text() == "made yo\n"
    # Artifacts: path and sha256 as the daemon recorded them, matching the file.
    (art,) = run.artifacts
    assert (art.task, art.name, art.size) == ("make", "word.txt", 2)
    assert art.path.read_bytes() == b"yo" and art.sha256 == hashlib.sha256(b"yo").hexdigest()
    # A call task's return value; logs through the daemon.
    assert double.return_value() == {"doubled": 42} and make.return_value() is None
    with _client(workspace) as client:
        assert "".join(client.logs(run, "double")) == "doubling 21\n"
        assert "".join(run.logs("make", attempt=1)) == "made yo\n"
        # The document behind the record is the daemon's, as `edgeorch show --json` prints it.
        assert run.to_dict() == client._transport.call("runs.show", {"run_id": run.id})
        shown = subprocess.run([*workspace.cli(), "show", str(run.id), "--json"], env=workspace.cli_env(),
                               capture_output=True, text=True, timeout=60, check=True)
        assert json.loads(shown.stdout) == run.to_dict()
        assert run.refresh() == run  # a finished run stays as it was
        listed = client.runs(pipeline="demo", state="succeeded", limit=5)
        assert [r.id for r in listed] == [run.id] and isinstance(listed[0], RunSummary)
        assert listed[0].task_counts == {"succeeded": 2} == run.task_counts
        assert listed[0].refresh().tasks == run.tasks
        assert client.runs(pipeline="gated") == []
        # Events: the stream starts with `subscribed`, and tells a follower a finished run is over.
        events = client.events(run)
        assert next(events)["kind"] == "subscribed"
        assert next(events) == {"kind": "run", "run_id": run.id, "state": "succeeded", "reason": None,
                                "ts": pytest.approx(run.finished_at, abs=60)}
        events.close()
        assert [p["name"] for p in client.pipelines()] == ["demo", "fails", "gated"]
        assert client.status()["pid"] == demo.proc.pid
    assert "Run(id=1, pipeline='demo', state='succeeded'" in repr(run)


def test_a_stream_carries_only_the_kinds_asked_for(workspace, demo):
    def until_the_end(stream):
        items = []
        for item in stream:
            items.append(item)
            if item["kind"] == "run" and item["state"] == "succeeded":
                return items

    with _client(workspace) as client:
        every, runs_only = client.events(), client.events(kinds=["run"])
        assert next(every)["kind"] == next(runs_only)["kind"] == "subscribed"
        asked: list[dict] = []
        stream = client._transport.stream
        client._transport.stream = lambda op, args, **kw: asked.append(args) or stream(op, args, **kw)
        run = client.run("demo", timeout=60)  # nothing to show: its own stream asks for the run's items only
        assert run.succeeded and asked == [{"kinds": ["run"]}]
        client._transport.stream = stream
        everything, runs = until_the_end(every), until_the_end(runs_only)
        assert {i["kind"] for i in everything} == {"run", "task"}
        assert runs == [i for i in everything if i["kind"] == "run"] and len(runs) == 3  # queued, running, succeeded
        # A finished run followed for its run items still gets its end at once.
        again = client.events(run, kinds=["run"])
        assert next(again)["kind"] == "subscribed" and next(again)["state"] == "succeeded"
        for s in (every, runs_only, again):
            s.close()
        with pytest.raises(UsageError, match="args.kinds: is not an event kind") as err:
            next(client.events(kinds=["run", "tasks"]))
        assert "'tasks'" in str(err.value) and "one of dataset, executor, fatal" in str(err.value)


def test_wait_follows_the_events_and_times_out_with_a_clear_error(workspace, demo):
    with _client(workspace) as client:
        run = client.trigger("gated")
        seen: list[dict] = []
        with pytest.raises(edgeorch.WaitTimeout) as err:
            client.wait(run, timeout=0.5, on_event=seen.append)
        assert err.value.run_id == run.id and isinstance(err.value, TimeoutError)
        assert str(err.value).startswith(f"run {run.id} did not finish within 0.5s")
        assert seen[0]["kind"] == "subscribed"
        assert client.get_run(run).state in (RunState.QUEUED, RunState.RUNNING)  # it goes on
        (workspace.pipelines / "go").touch()
        done = run.wait(timeout=60)
        assert done.succeeded and "went" in "".join(client.logs(done, "wait"))
        # Waiting for a run that is already over returns at once.
        assert client.wait(run.id, timeout=30).succeeded


def test_a_failed_run_is_returned_then_retried_and_cancel_is_refused_when_over(workspace, demo):
    with _client(workspace) as client:
        run = client.run("fails", timeout=60)
        assert run.state == RunState.FAILED and not run.succeeded and run.reason
        bad, after = run.tasks
        assert bad.exit_code == 3 and bad.state == TaskState.FAILED and "exited with code 3" in bad.reason
        assert after.state == TaskState.UPSTREAM_FAILED and after.exit_code is None
        assert "".join(client.logs(run, "bad")) == "about to fail\n"
        assert sorted(client.retry(run)) == ["after", "bad"]
        again = client.wait(run, timeout=60)
        assert again.id == run.id and again.state == RunState.FAILED and again.task("bad").attempt_count == 2
        with pytest.raises(ConflictError, match=rf"run {run.id} has already finished \(failed\)"):
            client.cancel(run)


def test_cancel_a_running_run(workspace, demo):
    with _client(workspace) as client:
        queued = client.submit("gated")
        assert isinstance(queued, Queued) and queued.pipeline == "gated"
        assert queued.to_dict()["run_id"] == queued.run_id
        logs = client.logs(queued, "wait", follow=True)
        first = ""
        while "waiting" not in first:  # the task runs
            first += next(logs)
        assert client.cancel(queued, reason="test says stop") == {"run_id": queued.run_id, "cancel_requested": True}
        logs.close()
        run = client.wait(queued, timeout=60)
    assert run.state == RunState.CANCELLED and run.tasks[0].state == TaskState.CANCELLED


def test_an_ad_hoc_pipeline_file_runs_by_its_content(workspace, demo, tmp_path):
    path = tmp_path / "elsewhere.toml"
    path.write_text('[params]\nword = "x"\n[tasks.only]\ncommand = ["sh", "-c", "echo {word}"]\n')
    with _client(workspace) as client:
        run = client.run(path, {"word": "adhoc"}, timeout=60, label="notebook")
        assert run.succeeded and run.pipeline == "elsewhere" and run.trigger == "notebook"
        assert run.pipeline_file == path and run.content_hash == hashlib.sha256(path.read_bytes()).hexdigest()
        assert "".join(run.logs("only")) == "adhoc\n"
        assert client.run(str(path), timeout=60).succeeded  # a string naming a .toml file is a file too


def test_bad_arguments_and_unknown_things_are_clear_errors(workspace, demo):
    with _client(workspace) as client:
        with pytest.raises(NotFoundError, match="no pipeline named 'demoo'"):
            client.trigger("demoo")
        with pytest.raises(UsageError, match="has no parameter 'wrod'") as err:
            client.trigger("demo", {"wrod": "x"})
        assert "did you mean 'word'" in str(err.value)
        with pytest.raises(UsageError, match="parameter n is not an integer"):
            client.trigger("demo", {"n": "many"})
        with pytest.raises(UsageError, match="params: is not a mapping"):
            client.trigger("demo", ["word=x"])  # type: ignore[arg-type]
        with pytest.raises(UsageError, match=r"params.when: cannot be sent to the daemon \(found 'object'\)"):
            client.trigger("demo", {"when": object()})
        with pytest.raises(UsageError, match="params.n: is not a finite number"):
            client.trigger("demo", {"n": float("nan")})
        with pytest.raises(UsageError, match="run: is not a run"):
            client.get_run("1")  # type: ignore[arg-type]
        with pytest.raises(NotFoundError, match="no such run"):
            client.get_run(999)
        with pytest.raises(NotFoundError, match="no such run"):
            client.wait(999, timeout=30)
        with pytest.raises(NotFoundError):
            list(client.logs(999, "make"))
        with pytest.raises(UsageError, match="args.limit: is out of range"):
            client.runs(limit=0)
        with pytest.raises(UsageError, match="args.state: is not a run state"):
            client.runs(state="done")
        run = client.run("demo", timeout=60)
        with pytest.raises(NotFoundError, match=r"no task 'nope' in run 1 \(pipeline demo\); expected one of make, double"):
            list(client.logs(run, "nope"))
        with pytest.raises(NotFoundError, match="has no attempt 7"):
            list(client.logs(run, "make", attempt=7))
        with pytest.raises(NotFoundError, match="has no task 'nope'; expected one of make, double"):
            run.task("nope")
        assert client.runs(limit=1)[0].id == run.id  # the refusals recorded nothing
        assert len(client.runs()) == 1


def test_no_daemon_or_no_config_is_a_clear_error(workspace, tmp_path):
    client = _client(workspace)
    sock = workspace.state / "edgeorch.sock"
    assert Path(client.socket_path) == sock
    with pytest.raises(edgeorch.DaemonNotRunning, match=f"no edgeorch daemon is running at {sock}") as err:
        client.status()
    assert err.value.exit_code == 69 and "edgeorch daemon" in err.value.hint
    with pytest.raises(edgeorch.DaemonNotRunning):
        client.wait(1, timeout=5)
    with pytest.raises(edgeorch.DaemonNotRunning):
        asyncio.run(edgeorch.AsyncClient(config=workspace.config_path).get_run(1))
    with pytest.raises(ConfigError, match="config file not found") as cfg_err:
        edgeorch.Client(config=tmp_path / "missing.toml")
    assert cfg_err.value.file == str(tmp_path / "missing.toml")


def test_the_daemon_is_found_as_the_cli_finds_it(workspace, tmp_path, monkeypatch):
    monkeypatch.setenv("EDGEORCH_CONFIG", str(workspace.config_path))
    monkeypatch.delenv("RUNTIME_DIRECTORY", raising=False)
    assert Path(edgeorch.Client().socket_path) == workspace.config().socket_path == workspace.state / "edgeorch.sock"
    monkeypatch.setenv("RUNTIME_DIRECTORY", str(tmp_path / "rt"))
    assert Path(edgeorch.AsyncClient().socket_path) == tmp_path / "rt" / "edgeorch.sock"
    workspace.write_config(f'[control]\nsocket = "{tmp_path / "set.sock"}"\n')
    assert Path(edgeorch.Client().socket_path) == tmp_path / "set.sock"  # the config's own socket wins
    assert Path(edgeorch.Client(socket=tmp_path / "x.sock").socket_path) == tmp_path / "x.sock"  # an explicit one more


def test_the_async_client_does_the_same(workspace, demo):
    async def main() -> None:
        async with edgeorch.AsyncClient(config=workspace.config_path) as client:
            runs = await asyncio.gather(*(client.run("demo", {"n": n}, timeout=60) for n in (1, 2, 3)))
            assert [r.task("double").return_value() for r in runs] == [{"doubled": 2}, {"doubled": 4}, {"doubled": 6}]
            assert all(r.succeeded for r in runs) and len({r.id for r in runs}) == 3
            assert "".join([t async for t in client.logs(runs[0], "make")]) == "made hello\n"
            assert (await runs[0].refresh()).to_dict() == runs[0].to_dict()
            assert [r.id for r in await client.runs(limit=3)] == sorted((r.id for r in runs), reverse=True)
            gated = await client.trigger("gated")
            with pytest.raises(edgeorch.WaitTimeout):
                await gated.wait(timeout=0.3)
            events = client.events(gated)
            assert (await anext(events))["kind"] == "subscribed"
            (workspace.pipelines / "go").touch()
            async for ev in events:  # the live stream shows the run end
                if ev.get("kind") == "run" and ev.get("state") == "succeeded":
                    break
            await events.aclose()
            assert (await client.wait(gated, timeout=60)).succeeded
            with pytest.raises(NotFoundError, match="no such run"):
                await client.get_run(999)
            with pytest.raises(UsageError, match="did you mean 'word'"):
                await client.trigger("demo", {"wrod": 1})
            with pytest.raises(ConflictError):
                await client.retry(runs[0])
            assert (await client.status())["pid"] == demo.proc.pid

    asyncio.run(main())


def test_events_subscribes_when_called_not_at_the_first_next(workspace, demo):
    """`ev = client.events(kinds=["run"])`, then a trigger, then the loop: the run's `queued` and `running` were
    missed (the stream was opened at the first next())."""
    with _client(workspace) as client:
        ev = client.events(kinds=["run"])
        run_id = client.trigger("demo", {"word": "yo", "n": 1}).id
        states = []
        for item in ev:
            if item.get("run_id") == run_id:
                states.append(item["state"])
                if item["state"] in ("succeeded", "failed"):
                    break
        ev.close()
        assert states[:2] == ["queued", "running"] and states[-1] == "succeeded", states
        unused = client.events()
        unused.close()  # ends its stream though never iterated
        assert client.status()["clients"] >= 1
