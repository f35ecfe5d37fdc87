"""`edgeorch audit` without a daemon: init, list with filters, verify (exit codes), export, seal, prune; bad input.

The command runs in-process (``Workspace.invoke``); the audit tests through a real daemon and real CLI
processes are in tests/integration/audit/.
"""

from __future__ import annotations

import json
import os
import pwd
import subprocess

import pytest

PIPE = """\
name = "small"
[tasks.a]
command = ["true"]
[tasks.b]
command = ["true"]
needs = ["a"]
"""


def run(workspace, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return workspace.invoke(*args, stdin=stdin)


@pytest.fixture
def ran(workspace):
    """A state file with the audit log initialized (offline) and one run of ``small`` (offline); returns the key."""
    workspace.pipeline("small", PIPE)
    out = run(workspace, "audit", "init", "--json")
    assert out.returncode == 0, out.stderr
    assert run(workspace, "run", "small").returncode == 0
    return json.loads(out.stdout)["key"]


def test_list_filters_by_actor_action_and_time(workspace, ran):
    me = pwd.getpwuid(os.getuid()).pw_name
    rows = json.loads(run(workspace, "audit", "--json").stdout)
    assert [r["seq"] for r in rows] == sorted(r["seq"] for r in rows) and rows[0]["action"] == "audit_init"
    mine = json.loads(run(workspace, "audit", "--actor", me, "--json").stdout)
    assert {r["action"] for r in mine} == {"audit_init", "run_created"}
    assert json.loads(run(workspace, "audit", "--actor", str(os.getuid()), "--json").stdout) == mine
    runs = json.loads(run(workspace, "audit", "--action", "run_*", "--json").stdout)
    assert [r["action"] for r in runs] == ["run_created", "run_running", "run_succeeded"]
    assert runs[0]["details"]["message"].startswith("run 1 of small")  # details parsed for scripts
    assert json.loads(run(workspace, "audit", "--since", "2999-01-01", "--json").stdout) == []
    assert len(json.loads(run(workspace, "audit", "--since", "1h", "--json").stdout)) == len(rows)
    assert len(json.loads(run(workspace, "audit", "-n", "2", "--json").stdout)) == 2
    table = run(workspace, "audit").stdout
    assert "ACTION" in table and "run_succeeded" in table


def test_verify_and_seal_offline(workspace, ran):
    out = run(workspace, "audit", "verify")
    assert out.returncode == 0 and "audit log OK" in out.stdout and "give --key" in out.stdout
    assert run(workspace, "audit", "seal").stdout.startswith("sealed through record")
    assert run(workspace, "audit", "seal").stdout.strip() == "nothing new to seal"
    out = run(workspace, "audit", "verify", "--key", "-", stdin=ran + "\n")
    assert out.returncode == 0 and "every seal checked" in out.stdout
    wrong = "00" * 32
    out = run(workspace, "audit", "verify", "--key", wrong, "--json")
    assert out.returncode == 1 and json.loads(out.stdout)["ok"] is False


def test_export_to_stdout_is_json_lines(workspace, ran):
    lines = [json.loads(x) for x in run(workspace, "audit", "export").stdout.splitlines()]
    assert lines[0]["type"] == "header" and lines[0]["format"] == "edgeorch-audit/1"
    assert {x["type"] for x in lines[1:]} == {"seal", "record"}


def test_prune_offline_keeps_the_log_verifiable(workspace, ran):
    assert run(workspace, "audit", "seal").returncode == 0
    out = run(workspace, "audit", "prune", "--before", "0s", "--json")
    assert out.returncode == 0, out.stderr
    pruned = json.loads(out.stdout)["pruned"]
    assert pruned is not None and pruned["records"] >= 1
    out = run(workspace, "audit", "verify", "--key", "-", "--json", stdin=ran)
    report = json.loads(out.stdout)
    assert out.returncode == 0 and report["checkpoint"] == pruned["through_seq"]


def test_prune_of_a_log_never_sealed_says_how_to_make_it_prunable(workspace):
    """A default install never seals: `prune` then removes nothing, and said only "no sealed record"."""
    workspace.pipeline("small", PIPE)
    assert run(workspace, "run", "small").returncode == 0
    out = run(workspace, "audit", "prune", "--before", "0s")
    assert out.returncode == 0
    assert "nothing to prune" in out.stdout and "`edgeorch audit init` first" in out.stdout


def test_init_twice_is_a_conflict(workspace, ran):
    out = run(workspace, "audit", "init")
    assert out.returncode == 5 and "already initialized" in out.stderr


@pytest.mark.parametrize("args, field", [
    (["verify", "--since", "1h"], "--since"),
    (["list", "--key", "x"], "--key"),
    (["prune"], "--before"),
    (["prune", "--before", "yesterday-ish"], "--before"),
    (["verify", "--key", "abc"], "--key"),
    (["list", "--limit", "0"], "--limit"),
])
def test_bad_input_is_a_usage_error_naming_the_option(workspace, args, field):
    out = run(workspace, "audit", *args)
    assert out.returncode == 2, out
    assert field in out.stderr and "Traceback" not in out.stderr


def test_an_empty_state_is_an_empty_log(workspace):
    out = run(workspace, "audit", "verify", "--json")
    assert out.returncode == 0 and json.loads(out.stdout)["records"] == 0
    assert json.loads(run(workspace, "audit", "--json").stdout) == []
