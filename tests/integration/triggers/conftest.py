"""Fixtures for the end-to-end trigger tests: the real daemon process of tests/integration/daemon."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

_spec = importlib.util.spec_from_file_location(
    "edgeorch_daemon_fixtures_triggers",
    Path(__file__).resolve().parents[1] / "daemon" / "conftest.py")
_fixtures = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_fixtures)
DaemonProcess, _kill_leftover_tasks = _fixtures.DaemonProcess, _fixtures._kill_leftover_tasks


@pytest.fixture
def daemon(workspace, tmp_path):
    d = DaemonProcess(workspace, tmp_path)
    yield d
    if d.proc is not None and d.proc.poll() is None:
        d.proc.kill()
        d.proc.wait()
    _kill_leftover_tasks(workspace.state / "edgeorch.db")
    d.notify.close()
