"""A listing with nothing in it says so, and how to make something, instead of printing a bare header line;
``--json`` and ``-q`` are unchanged (an empty list, no lines)."""

from __future__ import annotations

import json

import pytest


@pytest.mark.parametrize(("args", "said"), [
    (("runs",), "no runs yet (`edgeorch run PIPELINE` starts one)"),
    (("runs", "--state", "failed"), "no runs match"),  # a pipeline nothing knows is not found (test_cli.py)
    (("datasets",), "no datasets yet (`edgeorch datasets add NAME PATH` records one)"),
    (("models",), "no models yet (a task with a `model` key registers one: docs/models.md)"),
    (("baseline", "list"), "no baselines yet (`edgeorch baseline set NAME FILE` records one)"),
    (("audit",), "no audit records yet"),
    (("audit", "--actor", "alice"), "no audit records match"),
])
def test_an_empty_listing_says_so(workspace, args, said) -> None:
    out = workspace.invoke(*args)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == said


def test_an_empty_listing_for_scripts_is_empty(workspace) -> None:
    assert json.loads(workspace.invoke("runs", "--json").stdout) == []
    assert workspace.invoke("runs", "-q").stdout == ""
    assert json.loads(workspace.invoke("models", "--json").stdout) == {"models": []}


def test_runs_says_when_more_match_than_it_shows(workspace) -> None:
    """A tester's find: `runs` showed 20 rows with nothing saying 52 matched."""
    workspace.pipeline("p", '[tasks.a]\ncommand = ["true"]\n')
    for _ in range(3):
        assert workspace.invoke("run", "p").returncode == 0
    shown = workspace.invoke("runs", "-n", "2")
    assert shown.returncode == 0 and len(shown.stdout.strip().splitlines()) == 3  # a header, two runs
    assert "note: the newest 2 shown; more match (--limit N shows more)" in shown.stderr, shown.stderr
    whole = workspace.invoke("runs", "-n", "3")
    assert len(whole.stdout.strip().splitlines()) == 4 and "more match" not in whole.stderr
    assert len(json.loads(workspace.invoke("runs", "-n", "2", "--json").stdout)) == 2  # scripts: as asked
    quiet = workspace.invoke("runs", "-n", "2", "-q")
    assert quiet.stdout.split() == ["3", "2"] and quiet.stderr == ""


def test_show_of_a_run_whose_tasks_were_all_cache_hits_says_so_instead_of_an_empty_table(workspace) -> None:
    workspace.pipeline("c", '[tasks.a]\ncommand = ["sh", "-c", "echo 1 > $EDGEORCH_OUTPUT_DIR/o"]\n'
                            'outputs = ["o"]\ncache = true\n')
    assert workspace.invoke("run", "c").returncode == 0
    assert workspace.invoke("run", "c").returncode == 0
    out = workspace.invoke("show", "2").stdout
    assert "attempts:\n  none: every task was a cache hit" in out, out
    assert "TASK  #  STATE" not in out, out


def test_no_daemon_names_the_config_whose_socket_was_asked(workspace) -> None:
    """A new user's find: with a per-user daemon running, `edgeorch status` inside the checkout read its
    ./config.toml and said "no edgeorch daemon is running at ~/edgeorch/var/edgeorch.sock", not which config
    it had read, and its hint named `systemctl start edgeorch` only."""
    out = workspace.invoke("status")
    assert out.returncode == 69
    assert f"; the socket of {workspace.config_path}" in out.stderr, out.stderr
    assert "systemctl --user start edgeorch" in out.stderr and "--config" in out.stderr, out.stderr
    err = json.loads(workspace.invoke("--json", "status").stderr)["error"]
    assert err["code"] == "daemon_not_running" and str(workspace.config_path) in err["message"]
