"""Fault injection fixtures: a tiny filesystem that fills up, and the daemon fixtures."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import importlib.util

_spec = importlib.util.spec_from_file_location(
    "edgeorch_daemon_fixtures", Path(__file__).resolve().parents[1] / "integration" / "daemon" / "conftest.py")
_fixtures = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_fixtures)
DaemonProcess, _kill_leftover_tasks = _fixtures.DaemonProcess, _fixtures._kill_leftover_tasks


@pytest.fixture
def small_disk(tmp_path):
    """A 3 MB tmpfs: writes past it fail with ENOSPC, like a full disk."""
    if os.getuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    mnt = tmp_path / "small"
    mnt.mkdir()
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(mnt)], capture_output=True, text=True)
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {proc.stderr.strip()}")
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], check=False)


@pytest.fixture
def daemon(workspace, tmp_path):
    d = DaemonProcess(workspace, tmp_path)
    yield d
    if d.proc is not None and d.proc.poll() is None:
        d.proc.kill()
        d.proc.wait()
    _kill_leftover_tasks(workspace.state / "edgeorch.db")
    d.notify.close()
