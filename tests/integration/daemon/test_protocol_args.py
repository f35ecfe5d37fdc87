"""Unknown keys in a request's ``args`` are refused (tester's report, finding 2).

A misspelled ``param`` queued a run with the default params, a ``sate`` filter listed every run, and
``status`` answered ``{"zzz": 1}``: each key an op does not declare (its ``OpSpec.args``) is now a ``usage``
error naming it, before the handler runs.
"""

from __future__ import annotations

import pytest

from edgeorch.errors import UsageError

QUICK = """
[params]
msg = { type = "str", default = "default" }
[tasks.q]
command = ["sh", "-c", "echo $0", "{msg}"]
"""


def test_a_misspelled_argument_is_refused_naming_it_and_nothing_is_queued(workspace, daemon):
    workspace.pipeline("quick", QUICK)
    daemon.start()
    with daemon.client() as c:
        with pytest.raises(UsageError) as caught:
            c.call("trigger", {"pipeline": "quick", "param": {"msg": "hello"}})
        body = caught.value.detail  # type: ignore[attr-defined]
        assert body["field"] == "args.param" and body["code"] == "usage"
        assert caught.value.render().startswith("args.param: unknown argument; expected one of ")
        assert "params" in body["expected"] and "did you mean 'params'?" in body["hint"]
        assert c.call("runs.list", {})["runs"] == []  # refused before the handler: no run queued

        with pytest.raises(UsageError, match=r"(?s)args\.sate: unknown argument.*did you mean 'state'"):
            c.call("runs.list", {"sate": "failed", "limit": 3})
        with pytest.raises(UsageError, match=r"args\.zzz: unknown argument; expected no arguments"):
            c.call("status", {"zzz": 1})
        with pytest.raises(UsageError, match=r"(?s)args\.folow: unknown argument.*did you mean 'follow'"):
            list(c.stream("logs", {"run_id": 1, "task": "q", "folow": True}))  # a stream: refused before it starts
        assert c.call("ping")["pong"] is True  # the connection stays


def test_what_the_shipped_clients_send_is_still_accepted_and_ops_lists_the_arguments(workspace, daemon):
    workspace.pipeline("quick", QUICK)
    daemon.start()
    with daemon.client() as c:
        run_id = c.call("trigger", {"pipeline": "quick", "params": {"msg": "hi"}, "trigger": "cli"})["run_id"]
        assert daemon.wait_run(run_id) == "succeeded"
        assert c.call("runs.list", {"state": "succeeded", "limit": 3, "pipeline": "quick"})["runs"][0]["id"] == run_id
        # `edgeorch pipelines resume` sends the `reason` it sends with pause (cli/commands/pipelines.py).
        c.call("pipelines.pause", {"name": "quick", "reason": "r"})
        assert c.call("pipelines.resume", {"name": "quick", "reason": None})["paused"] is False
        ops = {o["op"]: o for o in c.call("ops")["ops"]}
        assert ops["trigger"]["args"] == ["file", "no_cache", "params", "pipeline", "source", "trigger"]
        assert ops["status"]["args"] == [] and ops["ping"]["args"] == []
