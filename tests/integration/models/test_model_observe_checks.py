"""`edgeorch models observe` refuses what no rule could read: a value that is not a finite number (NaN and infinity
have no JSON form and compare false with every threshold) and a metric name the model does not declare (a typo
would be stored and silently read by nothing). Nothing is recorded; exit 2 with the field, the value and what was
expected, through the CLI without a daemon, through the ModelService and through a daemon's socket."""

from __future__ import annotations

import json
import socket

import pytest

from edgeorch.errors import UsageError
from edgeorch.model import RunState


def _observations(harness, metric: str) -> list[dict]:
    store = harness.store()
    try:
        return store.models.observations("house", 1, metric)
    finally:
        store.close()


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "NaN", "1e999"])
def test_a_value_that_is_not_a_finite_number_is_a_usage_error(workspace, harness, model_pipeline, value) -> None:
    model_pipeline(workspace)
    assert harness.run("trainer")[1] == RunState.SUCCEEDED
    r = workspace.invoke("models", "observe", "house", "champion", f"rmse={value}")
    assert r.returncode == 2, r.stdout + r.stderr
    assert (f"METRIC=VALUE: is not METRIC=NUMBER (found 'rmse={value}'); expected a finite number"
            in r.stderr), r.stderr
    assert "internal error" not in r.stderr and "Traceback" not in r.stderr
    assert _observations(harness, "rmse") == []


def test_a_metric_the_model_does_not_declare_is_refused_with_a_did_you_mean(workspace, harness,
                                                                           model_pipeline) -> None:
    model_pipeline(workspace)  # [models.house] metrics = ["rmse", "r2"]
    assert harness.run("trainer")[1] == RunState.SUCCEEDED
    r = workspace.invoke("models", "observe", "house", "champion", "rmse=31", "rsme=30")
    assert r.returncode == 2, r.stdout + r.stderr
    assert ("champion.rsme: is not a metric of model house (found 'rsme'); expected one of rmse, r2 "
            "(its [models.house] metrics)" in r.stderr), r.stderr
    assert "did you mean 'rmse'?" in r.stderr
    assert _observations(harness, "rmse") == [] and _observations(harness, "rsme") == []  # not even the good one
    r = workspace.invoke("models", "observe", "house", "champion", "rmse=31", "r2=0.7")
    assert r.returncode == 0 and "recorded 2 value(s) for house champion" in r.stdout, r.stdout + r.stderr
    assert [o["value"] for o in _observations(harness, "rmse")] == [31.0]


def test_the_service_refuses_non_finite_values_whoever_calls_it(workspace, harness, model_pipeline) -> None:
    model_pipeline(workspace)
    assert harness.run("trainer")[1] == RunState.SUCCEEDED
    for bad in (float("nan"), float("inf"), float("-inf"), 10 ** 400, "31", True, None):
        async def observe(service, bad=bad):
            service.observe("house", {"champion": {"rmse": bad}})

        with pytest.raises(UsageError, match=r"champion\.rmse: is not a finite number .*; expected a finite number"):
            harness.models(observe)
    assert _observations(harness, "rmse") == []


def test_through_the_daemon_both_are_refused_and_nothing_is_recorded(workspace, harness, model_pipeline,
                                                                    daemon) -> None:
    model_pipeline(workspace)
    assert harness.run("trainer")[1] == RunState.SUCCEEDED
    daemon.start()
    with pytest.raises(UsageError, match=r"(?s)champion\.rsme: is not a metric of model house .*did you mean 'rmse'"):
        daemon.call("models.observe", {"name": "house", "metrics": {"champion": {"rsme": 30}}})
    r = workspace.invoke("models", "observe", "house", "champion", "rsme=30")  # the CLI, through the daemon
    assert r.returncode == 2 and "did you mean 'rmse'?" in r.stderr, r.stdout + r.stderr
    r = workspace.invoke("models", "observe", "house", "champion", "rmse=inf")
    assert r.returncode == 2 and "expected a finite number" in r.stderr, r.stdout + r.stderr
    # A client that writes NaN or a number out of range anyway gets a clear refusal, not a stored NaN.
    for literal in ("NaN", "Infinity", "-Infinity", "1e999"):
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(30)
            s.connect(str(daemon.socket_path))
            s.sendall(('{"v": 1, "id": 7, "op": "models.observe", "args": {"name": "house", "metrics": '
                       '{"champion": {"rmse": %s}}}}\n' % literal).encode())
            reply = b""
            while not reply.endswith(b"\n"):
                chunk = s.recv(65536)
                if not chunk:
                    break
                reply += chunk
        doc = json.loads(reply.splitlines()[-1])
        assert doc["ok"] is False and doc["id"] == 7, doc
        assert "is not a number JSON allows" in json.dumps(doc) or "out of range" in json.dumps(doc), doc
    r = workspace.invoke("models", "observe", "house", "champion", "rmse=31")
    assert r.returncode == 0, r.stdout + r.stderr
    daemon.stop()
    assert [o["value"] for o in _observations(harness, "rmse")] == [31.0]
