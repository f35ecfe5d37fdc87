"""Errors with --json (issue 19, point 8): one {"error": {...}} line on stderr, every key always there,
the exit code inside; argparse's usage errors and a daemon's errors too; bugs exit 70 with the traceback
only under -v. The command runs in-process (``Workspace.invoke``: the same ``main``, environment and streams
as a process; tests/integration/cli/test_cli.py runs real ones); a bug is planted by patching."""

from __future__ import annotations

import json

import pytest

from edgeorch.cli import main as cli_main
from edgeorch.cli.failures import wants_json
from edgeorch.errors import ERROR_KEYS, error_document
from edgeorch.errors import ConfigError, NotFoundError


def run(ws, *args):
    proc = ws.invoke(*args)
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc


def json_error(proc) -> dict:
    """The error object: the last line of stderr, which must be one JSON document."""
    doc = json.loads(proc.stderr.strip().splitlines()[-1])
    assert list(doc) == ["error"] and list(doc["error"]) == list(ERROR_KEYS), doc
    assert doc["error"]["exit_code"] == proc.returncode
    return doc["error"]


def test_a_missing_run_is_a_not_found_error_object(workspace):
    workspace.pipeline("p", '[tasks.a]\ncommand = ["true"]\n')
    assert run(workspace, "run", "p").returncode == 0
    proc = run(workspace, "show", "99", "--json")
    assert proc.returncode == 3 and proc.stdout == ""
    err = json_error(proc)
    assert err["code"] == "not_found" and err["value"] == 99 and "99" in err["message"]


def test_text_errors_are_unchanged_without_json(workspace):
    proc = run(workspace, "show", "99")
    assert proc.returncode == 3 and proc.stderr.startswith("edgeorch: error: ") and "{" not in proc.stderr


@pytest.mark.parametrize("argv", [["--json", "runs", "--limit", "x"], ["runs", "--limit", "x", "--json"],
                                  ["runs", "--limit", "x", "--js"]])
def test_a_usage_error_argparse_finds_is_json_too(workspace, argv):
    proc = run(workspace, *argv)
    assert proc.returncode == 2 and "usage:" not in proc.stderr
    err = json_error(proc)
    assert err["code"] == "usage" and err["field"] == "--limit/-n" and "invalid int value: 'x'" in err["message"]
    assert err["hint"] == "`edgeorch runs --help` lists the arguments"


@pytest.mark.parametrize("limit", ["0", "-3", "10001"])
def test_runs_limit_out_of_range_is_refused_without_a_daemon_as_the_daemon_refuses_it(workspace, limit):
    workspace.pipeline("ok", '[tasks.a]\ncommand = ["true"]\n')
    assert run(workspace, "run", "ok").returncode == 0  # a run to list: --limit 0 once said "no runs yet"
    proc = run(workspace, "--json", "runs", "--limit", limit)
    assert proc.returncode == 2, proc.stdout
    err = json_error(proc)
    assert (err["field"], err["value"], err["expected"]) == ("--limit/-n", int(limit), "1..10000"), err


def test_a_usage_error_without_json_looks_as_argparse_always_printed_it(workspace):
    proc = run(workspace, "runs", "--state", "sleeping")
    assert proc.returncode == 2
    assert proc.stderr.startswith("usage: edgeorch runs ")
    assert "edgeorch runs: error: argument --state: invalid choice: 'sleeping'" in proc.stderr


def test_unknown_command_and_missing_arguments(workspace):
    err = json_error(run(workspace, "--json", "frobnicate"))
    assert err["code"] == "usage" and err["field"] == "COMMAND" and "frobnicate" in err["message"]
    err = json_error(run(workspace, "--json", "show"))
    assert "required: RUN_ID" in err["message"]
    err = json_error(run(workspace, "--json"))
    assert err["message"] == "no command given\n  hint: `edgeorch --help` lists the commands"


def test_a_config_error_names_file_field_value_and_expected(workspace):
    workspace.write_config('[daemon]\nlog_level = "chatty"\n')
    proc = run(workspace, "runs", "--json")
    assert proc.returncode == 2
    err = json_error(proc)
    assert err["code"] == "config_error" and err["file"] == str(workspace.config_path)
    assert err["field"] == "daemon.log_level" and err["value"] == "chatty"
    assert err["expected"] == "one of debug, info, warning, error"


def test_a_daemon_only_command_without_a_daemon(workspace):
    err = json_error(run(workspace, "status", "--json"))
    assert err["exit_code"] == 69 and err["code"] == "daemon_not_running"


def test_an_error_the_daemon_sends_keeps_its_fields(workspace, daemon):
    daemon.start()
    proc = run(workspace, "pipelines", "pause", "nope", "--json")
    assert proc.returncode == 3
    err = json_error(proc)
    assert err["code"] == "not_found" and err["value"] == "nope"


def test_commands_without_json_output_still_give_json_errors(workspace):
    proc = run(workspace, "logs", "5", "train", "--json")
    assert proc.returncode == 3 and json_error(proc)["code"] == "not_found"


def test_the_error_document_is_the_protocols_error_object_plus_the_exit_code():
    err = ConfigError("is too small", file="c.toml", field="engine.parallelism", value=0, expected="an int >= 1")
    doc = error_document(err)["error"]
    assert {k: v for k, v in doc.items() if v is not None and k != "exit_code"} == err.to_dict()
    assert doc["exit_code"] == 2
    assert set(err.to_dict()) | {"value", "exit_code"} <= set(ERROR_KEYS)


def test_wants_json_reads_the_flag_before_a_double_dash():
    assert wants_json(["runs", "--json"]) and wants_json(["--jso", "runs"])
    assert not wants_json(["logs", "--", "--json"]) and not wants_json(["runs", "-j"]) and not wants_json([])


# -- bugs: not an EdgeorchError ----------------------------------------------------------------

@pytest.fixture
def buggy_runs(monkeypatch, workspace):
    """``edgeorch runs`` planted with a bug (an exception that is not an EdgeorchError)."""
    monkeypatch.setenv("EDGEORCH_CONFIG", str(workspace.config_path))

    def broken(args):
        raise KeyError("boom")

    from edgeorch.cli.commands import runs

    monkeypatch.setattr(runs, "cmd_runs", broken)
    monkeypatch.setattr(runs, "register", _register_with(runs.register, broken))


def _register_with(register, func):
    def wrapped(add):
        def add_swapped(name, f, help_text, **kw):
            return add(name, func if name == "runs" else f, help_text, **kw)
        register(add_swapped)
    return wrapped


def test_a_bug_exits_70_with_one_line_and_no_traceback(buggy_runs, capsys):
    assert cli_main(["runs"]) == 70
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert "edgeorch: error: internal error (a bug, please report it): KeyError: 'boom'" in err
    assert "run the command again with -v to see the traceback" in err


def test_a_bug_shows_its_traceback_with_verbose(buggy_runs, capsys):
    assert cli_main(["runs", "-v"]) == 70
    err = capsys.readouterr().err
    assert "Traceback (most recent call last)" in err and "KeyError: 'boom'" in err


def test_a_bug_with_json_is_an_internal_error_object(buggy_runs, capsys):
    assert cli_main(["--json", "runs"]) == 70
    doc = json.loads(capsys.readouterr().err.strip().splitlines()[-1])["error"]
    assert doc["code"] == "internal" and doc["exit_code"] == 70 and "KeyError" in doc["message"]
