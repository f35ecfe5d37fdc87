"""The CLI's shape (issue 10, points 5-6; issue 19, point 4): its entry points, and the daemon/no-daemon
choice made in one place (edgeorch/cli/backend.py), checked against a real socket and a real daemon."""

from __future__ import annotations

import edgeorch

import ast
import importlib
import socket
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from edgeorch.cli.backend import connect
from edgeorch.cli.main import run_command
from edgeorch.control import DaemonNotRunning

REPO = Path(__file__).resolve().parents[3]
CLI_DIR = REPO / "edgeorch" / "cli"


def _run(ws, *argv):
    proc = subprocess.run([*argv], env=ws.cli_env(), capture_output=True, text=True, timeout=120)
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc


def test_python_dash_m_edgeorch_is_the_edgeorch_command(workspace):
    workspace.pipeline("p", '[tasks.a]\ncommand = ["true"]\n')
    for argv in (["--version"], ["validate", "--json"], ["runs", "--json"], ["--help"]):
        via_package = _run(workspace, sys.executable, "-m", "edgeorch", *argv)
        via_cli = _run(workspace, sys.executable, "-m", "edgeorch.cli", *argv)
        assert via_package.returncode == via_cli.returncode == 0, (argv, via_package.stderr)
        assert via_package.stdout == via_cli.stdout, argv
    assert _run(workspace, sys.executable, "-m", "edgeorch", "status").returncode == 69  # exit codes pass through
    from edgeorch.store import SCHEMA_VERSION

    assert _run(workspace, sys.executable, "-m", "edgeorch", "--version").stdout == (
        f"edgeorch {edgeorch.__version__} (state file schema {SCHEMA_VERSION})\n")


def test_the_script_entry_in_pyproject_runs_main_and_skips_the_collections_at_exit(workspace):
    # The script entry is run_command: main() on sys.argv, then what is left frozen for the collector
    # (the interpreter's collections at exit cost a short command a tenth of its time). main() freezes nothing.
    target = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]["edgeorch"]
    module, _, attr = target.partition(":")
    func = getattr(importlib.import_module(module), attr)
    assert func is run_command and callable(func)
    argv = ["edgeorch", "--config", str(workspace.config_path), "validate", str(workspace.pipelines)]
    code = ("import gc, sys\n"
            f"sys.argv = {argv!r}\n"
            f"from {module} import {attr}\n"
            "before = gc.get_freeze_count()\n"
            f"code = {attr}()\n"
            "print(gc.get_freeze_count() > before, code)\n")  # 3.12 may start with some frozen already
    proc = _run(workspace, sys.executable, "-c", code)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[-1] == "True 0"


def _imported_names(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.ImportFrom):
            names |= {f"{node.module}.{a.name}" for a in node.names} | {a.name for a in node.names}
        elif isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
    return names


def test_only_the_backend_chooses_between_daemon_and_offline():
    """No command probes the socket or builds a client itself: the choice is made once, in backend.py."""
    probes = {"connect_if_running", "Client", "control.client.connect_if_running", "control.client.Client",
              "edgeorch.control.client", "socket_present"}
    offenders = {str(p.relative_to(REPO)): sorted(_imported_names(p) & probes)
                 for p in CLI_DIR.rglob("*.py") if p.name != "backend.py" and _imported_names(p) & probes}
    assert offenders == {}
    assert "connect_if_running" in _imported_names(CLI_DIR / "backend.py")


def test_backend_without_a_daemon_prefers_offline_and_refuses_daemon_only_commands(workspace):
    cfg = workspace.config()
    with connect(cfg) as backend:
        assert not backend.online
        with pytest.raises(DaemonNotRunning) as err:
            backend.client
        assert err.value.exit_code == 69
    with pytest.raises(DaemonNotRunning):
        connect(cfg, "daemon")


def test_backend_offline_never_touches_the_socket(workspace, tmp_path):
    """``run --here``: a listening socket at the configured path gets no connection at all."""
    sock_path = tmp_path / "s.sock"
    workspace.write_config(f'[control]\nsocket = "{sock_path}"\n')
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(sock_path))
    listener.listen(4)
    listener.setblocking(False)
    try:
        with connect(workspace.config(), "offline") as backend:
            assert not backend.online
        with pytest.raises(BlockingIOError):  # nothing is waiting to be accepted: no one connected
            listener.accept()
    finally:
        listener.close()


def test_backend_with_a_live_daemon_goes_to_it(workspace, daemon):
    daemon.start()
    cfg = workspace.config()
    for need in ("prefer", "daemon"):
        with connect(cfg, need) as backend:
            assert backend.online and backend.client.call("status")["pid"] == daemon.proc.pid
