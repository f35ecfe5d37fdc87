"""CLI habits (issue 19, point 8): global options before or after the command, -q/-v, --log-level,
and the full exit-code list in every command's --help. The commands run in-process (``Workspace.invoke``:
the same ``main``, environment and streams), the daemon as a real process."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from edgeorch.cli.exits import EXIT_CODES
from edgeorch.cli.globalopts import GLOBAL_OPTIONS, finish_args
from edgeorch.cli.main import build_parser
from edgeorch.cli.parsing import walk
from edgeorch.errors import UsageError

OK = '[tasks.a]\ncommand = ["sh", "-c", "echo hi"]\n'


def run(ws, *args, env=None):
    """``edgeorch ARGS`` in-process (``env``: the whole environment); never a traceback."""
    proc = ws.invoke(*args, environ=env)
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc


def run_process(ws, *args):
    """``edgeorch ARGS`` as a real subprocess; never a traceback."""
    proc = subprocess.run([*ws.cli(), *args], env=ws.cli_env(), capture_output=True, text=True, timeout=120)
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc


def no_config_env(ws):
    env = ws.cli_env()
    del env["EDGEORCH_CONFIG"]  # only --config names the config
    return env


@pytest.mark.parametrize("where", ["before", "after"])
def test_config_and_json_are_accepted_before_or_after_the_command(workspace, tmp_path, where):
    workspace.pipeline("p", OK)
    options = ["--config", str(workspace.config_path), "--json"]
    argv = [*options, "validate"] if where == "before" else ["validate", *options]
    proc = run(workspace, *argv, env=no_config_env(workspace))
    assert proc.returncode == 0, proc.stderr
    assert list(json.loads(proc.stdout)["pipelines"]) == ["p"]  # the workspace's config, not the embedded one


def test_every_command_accepts_every_global_option_on_both_sides():
    parser = build_parser()
    flags = [o.flags[0] for o in GLOBAL_OPTIONS]
    for path, sub in walk(parser):
        if not path:
            continue
        known = set(sub._option_string_actions)
        assert set(flags) <= known, (path, set(flags) - known)
        args = finish_args(parser.parse_args(["--json", "-q", "--log-level", "ERROR", "-c", "x.toml", *path,
                                              *_minimal_arguments(sub)]))
        assert (args.json, args.quiet, args.log_level, args.config) == (True, True, "error", "x.toml"), path
        args = finish_args(parser.parse_args([*path, *_minimal_arguments(sub), "--json", "-v", "-c", "y.toml"]))
        assert (args.json, args.verbose, args.config) == (True, 1, "y.toml"), path


def _minimal_arguments(p) -> list[str]:
    """What a command needs to parse: a value for each required positional and required option."""
    out = []
    for a in p._actions:
        value = str(next(iter(a.choices))) if a.choices else "1"  # a number >= 1 where one is asked (a version)
        if a.option_strings and a.required:
            out += [a.option_strings[0], value]
        elif not a.option_strings and a.nargs is None:
            out.append(value)
    return out


def test_a_value_given_before_the_command_is_not_reset_by_the_command():
    args = finish_args(build_parser().parse_args(["--json", "--config", "a.toml", "runs"]))
    assert args.json is True and args.config == "a.toml"
    args = finish_args(build_parser().parse_args(["--config", "a.toml", "runs", "--config", "b.toml"]))
    assert args.config == "b.toml"  # the later one wins, as everywhere


def test_verbose_counts_on_both_sides_of_the_command():
    assert finish_args(build_parser().parse_args(["-v", "runs", "-vv"])).verbose == 3
    assert finish_args(build_parser().parse_args(["runs"])).verbose == 0
    assert not [k for k in vars(finish_args(build_parser().parse_args(["-v", "runs", "-v"]))) if k.startswith("_")]


def test_quiet_and_verbose_together_are_a_usage_error(workspace):
    with pytest.raises(UsageError, match="-q/-v"):
        finish_args(build_parser().parse_args(["-q", "runs", "-v"]))
    proc = run(workspace, "-q", "runs", "-v")
    assert proc.returncode == 2 and "-q/-v: cannot be given together" in proc.stderr


def test_a_bad_log_level_is_a_usage_error_naming_the_choices(workspace):
    proc = run(workspace, "runs", "--log-level", "loud")
    assert proc.returncode == 2
    assert "--log-level" in proc.stderr and "debug" in proc.stderr and "'loud'" in proc.stderr


def test_every_commands_help_ends_with_every_exit_code():
    for path, p in walk(build_parser()):
        text = " ".join(p.format_help().split())
        assert "exit codes:" in text, path
        for code, meaning in EXIT_CODES:
            assert f"{code} {' '.join(meaning.split())}" in text, (path, code)


def test_help_shows_the_global_options_and_the_exit_codes_on_a_subcommand(workspace):
    out = run(workspace, "show", "--help").stdout
    assert "global options (before or after the command):" in out
    for flag in ("--config", "--json", "--quiet", "--verbose", "--log-level"):
        assert flag in out, flag
    assert "   69  no daemon running" in out and "  130  interrupted" in out


def test_help_stays_light(workspace):
    """``--help`` builds the parser only: no engine, no store, no numba, not even the completion or man code."""
    code = ("import sys, contextlib, io\n"
            "from edgeorch.cli import main\n"
            "with contextlib.suppress(SystemExit), contextlib.redirect_stdout(io.StringIO()):\n"
            "    main(['--help'])\n"
            "heavy = ['numpy', 'numba', 'sqlite3', 'edgeorch.engine.engine', 'edgeorch.store', 'edgeorch.daemon',\n"
            "         'edgeorch.cli.completion', 'edgeorch.cli.manpage', 'edgeorch.cli.cmdtree']\n"
            "print([m for m in heavy if m in sys.modules])\n")
    proc = subprocess.run([sys.executable, "-c", code], env=workspace.cli_env(), capture_output=True, text=True,
                          timeout=60)
    assert proc.stdout.strip() == "[]", proc.stdout + proc.stderr


def test_quiet_lists_print_only_ids_or_names(workspace):
    workspace.pipeline("p", OK)
    workspace.pipeline("q", OK)
    assert run(workspace, "pipelines", "-q").stdout.split() == ["p", "q"]
    first = run(workspace, "run", "p", "-q")
    assert first.returncode == 0
    assert "started" not in first.stdout and "running p" not in first.stdout  # no progress lines
    assert "SUCCEEDED" in first.stdout  # the run's summary is the result
    run(workspace, "run", "q")
    assert run(workspace, "-q", "runs").stdout.split() == ["2", "1"]
    assert run(workspace, "validate", "-q").stdout == ""  # nothing wrong: nothing to say


def test_verbose_says_whether_the_daemon_or_the_state_file_answered(workspace, daemon):
    quiet = run(workspace, "runs")
    assert "using the state file" not in quiet.stderr
    offline = run(workspace, "runs", "-v")
    assert offline.returncode == 0 and "no daemon answers at" in offline.stderr
    assert f"using the state file {workspace.state / 'edgeorch.db'}" in offline.stderr
    debug = run(workspace, "--log-level", "debug", "runs")
    assert f"config: {workspace.config_path}" in debug.stderr
    daemon.start()
    online = run(workspace, "-v", "runs")
    assert f"using the daemon at {daemon.socket_path}" in online.stderr


def test_quiet_trigger_prints_the_run_id_alone(workspace, daemon):
    workspace.pipeline("p", OK)
    daemon.start()
    first = run(workspace, "trigger", "p", "-q")
    assert first.returncode == 0 and first.stdout == "1\n" and first.stderr == ""
    assert run(workspace, "-q", "run", "p", "--detach").stdout == "2\n"
    assert daemon.wait_run(2) == "succeeded"


def test_run_detach_without_a_daemon_is_refused_not_run_here(workspace):
    """It ran the whole pipeline in this process: a script's `id=$(edgeorch run p -d -q)` waited for the run and
    got its summary table instead of an id."""
    workspace.pipeline("p", OK)
    proc = run(workspace, "run", "p", "--detach", "-q")
    assert proc.returncode == 69 and proc.stdout == "" and "no edgeorch daemon is running" in proc.stderr
    both = run(workspace, "run", "p", "--detach", "--here")
    assert both.returncode == 2 and "--detach and --here exclude each other" in both.stderr
    assert not (workspace.state / "runs").exists() or not any((workspace.state / "runs").iterdir())


def test_the_daemon_logs_at_the_configured_level_and_the_command_line_overrides_it(workspace, daemon):
    workspace.write_config('[daemon]\nlog_level = "warning"\n')
    daemon.start()
    daemon.call("status")
    assert daemon.stop() == 0
    assert "edgeorch daemon" not in daemon.output() and " INFO " not in daemon.output()  # warning: no banner, no info

    workspace.cli = lambda: [sys.executable, "-m", "edgeorch.cli", "--log-level", "debug"]  # before the command
    daemon.start()
    daemon.call("status")
    assert daemon.stop() == 0
    out = daemon.output()
    assert "(log level debug)" in out and " DEBUG edgeorch.control: op status" in out, out


def test_daemon_verbose_is_one_step_from_the_config(workspace, daemon):
    workspace.write_config('[daemon]\nlog_level = "info"\n')
    workspace.cli = lambda: [sys.executable, "-m", "edgeorch.cli", "daemon", "-v"]  # -v after the command
    daemon.start = _start_without_command(daemon)
    daemon.start()
    daemon.call("status")
    assert daemon.stop() == 0
    assert "(log level debug)" in daemon.output()


def _start_without_command(daemon):
    """DaemonProcess.start appends ``daemon``; here the command line already holds it (with options after it)."""
    def start():
        env = daemon.ws.cli_env()
        env["NOTIFY_SOCKET"] = str(daemon.notify.path)
        daemon.proc = subprocess.Popen(daemon.ws.cli(), env=env, stdout=open(daemon.log, "a"),
                                       stderr=subprocess.STDOUT, text=True)
        daemon.notify.wait_for("READY", "1")
        return daemon
    return start


def test_a_bad_daemon_log_level_stops_the_daemon_with_the_file_field_and_choices(workspace):
    workspace.write_config('[daemon]\nlog_level = "chatty"\n')
    proc = run_process(workspace, "daemon")
    assert proc.returncode == 2
    assert f"{workspace.config_path}: daemon.log_level: has an unknown value (found 'chatty')" in proc.stderr
    assert "expected one of debug, info, warning, error" in proc.stderr
    assert not Path(workspace.state / "edgeorch.sock").exists()


def test_quiet_kernel_commands_draw_no_progress_line(monkeypatch):
    from edgeorch.kernels import cli as kernels_cli

    class Terminal:
        def isatty(self) -> bool:
            return True

    monkeypatch.setattr(sys, "stderr", Terminal())
    assert kernels_cli._progress().enabled is True  # on a terminal, a progress line
    assert kernels_cli._progress(quiet=True).enabled is False
    args = finish_args(build_parser().parse_args(["profile", "data.csv", "-q"]))
    assert kernels_cli._quiet(args) is True


@pytest.mark.parametrize("columns, width", [("60", 60), ("200", 200), ("0", None), ("wide", None), (None, None)])
def test_help_is_wrapped_to_columns_as_shutil_reads_it(monkeypatch, columns, width):
    """The help's width comes from ``COLUMNS`` when it is a positive number, else the terminal's (none here: 80),
    as argparse's own lookup through shutil did; a line of help is never wider."""
    import shutil

    from edgeorch.cli.parsing import terminal_columns

    if columns is None:
        monkeypatch.delenv("COLUMNS", raising=False)
    else:
        monkeypatch.setenv("COLUMNS", columns)
    assert terminal_columns() == shutil.get_terminal_size().columns == (width or 80)
    text = build_parser("show").format_help()
    assert max(len(line) for line in text.splitlines()) <= (width or 80) - 2


@pytest.mark.parametrize("argv,prog", [
    (["events", "-f"], "edgeorch events"),
    (["--config", "x.toml", "runs", "--bogus"], "edgeorch runs"),
    (["models", "show", "-x", "m"], "edgeorch models show"),
])
def test_a_word_no_command_takes_is_refused_by_that_command(argv, prog, capsys):
    """`edgeorch events -f` printed the whole tree's usage line ("usage: edgeorch [-h] ...")."""
    from edgeorch.cli import main

    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"usage: {prog} ") and f"{prog}: error: unrecognized arguments: " in err, err
