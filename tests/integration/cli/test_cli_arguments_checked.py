"""Arguments refused as what they are, daemon or not: a pipeline FILE that is not there is not found (exit 3, as
``validate FILE`` and ``run NAME`` say it; ``run`` said exit 1), and a run id too large for the state file is a usage
error (exit 2; ``logs`` said "internal error (a bug, please report it): OverflowError", exit 70, and so did ``show``,
``cancel``, ``retry``, ``why`` without a daemon)."""

from __future__ import annotations

import json

import pytest

HUGE = "99999999999999999999"


@pytest.fixture(params=[False, True], ids=["no-daemon", "daemon"])
def one_run(request, workspace, daemon):
    """A workspace with one finished run (a state file to read), and a daemon for the "daemon" case."""
    workspace.pipeline("ok", '[tasks.a]\ncommand = ["true"]\n')
    assert workspace.invoke("run", "ok").returncode == 0
    if request.param:
        daemon.start()
    return workspace


@pytest.mark.parametrize("command,with_daemon", [
    (["run"], False), (["run", "--here"], False), (["run"], True), (["run", "--detach"], True), (["trigger"], True),
], ids=["run", "run-here", "run-daemon", "run-detach-daemon", "trigger-daemon"])
def test_a_pipeline_file_that_is_not_there_is_not_found(workspace, daemon, command, with_daemon):
    if with_daemon:
        daemon.start()
    missing = workspace.root / "nofile.toml"
    proc = workspace.invoke(*command, str(missing))
    assert proc.returncode == 3, proc.stderr
    assert proc.stderr.startswith(f"edgeorch: error: {missing}: no such file or folder"), proc.stderr
    err = json.loads(workspace.invoke(*command, str(missing), "--json").stderr.splitlines()[-1])["error"]
    assert (err["code"], err["file"], err["exit_code"]) == ("not_found", str(missing), 3)
    assert workspace.invoke("runs", "-q").stdout == ""  # nothing was queued or run


@pytest.mark.parametrize("args", [
    ["logs", HUGE, "a"], ["logs", "-f", HUGE, "a"], ["show", HUGE], ["cancel", HUGE], ["retry", HUGE], ["why", HUGE],
    ["logs", f"-{HUGE}", "a"], ["events", "--run", HUGE], ["baseline", "set", "x", "--from-run", HUGE, "--task", "a"],
    ["lineage", "export", "--openlineage", "-", "--run", HUGE],
], ids=lambda a: " ".join(a[:2]))
def test_a_run_id_out_of_range_is_a_usage_error(one_run, args):
    proc = one_run.invoke(*args)
    assert proc.returncode == 2, proc.stderr
    assert "internal error" not in proc.stderr and "OverflowError" not in proc.stderr, proc.stderr
    assert "is out of range" in proc.stderr and "expected an integer in -9223372036854775808..9223372036854775807" \
        in proc.stderr, proc.stderr
    err = json.loads(one_run.invoke(*args, "--json").stderr.splitlines()[-1])["error"]
    assert (err["code"], err["exit_code"]) == ("usage", 2), err


def test_a_run_id_at_the_edge_of_the_range_is_just_not_found(one_run):
    for args in (["logs", "9223372036854775807", "a"], ["show", "9223372036854775807"]):
        proc = one_run.invoke(*args)
        assert proc.returncode == 3 and "no such run" in proc.stderr, proc.stderr
    proc = one_run.invoke("show", "abc")  # argparse's own words for a value that is no integer, as before
    assert proc.returncode == 2 and "argument RUN_ID: invalid int value: 'abc'" in proc.stderr, proc.stderr
