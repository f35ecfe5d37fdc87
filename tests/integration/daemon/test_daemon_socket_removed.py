"""A daemon whose control socket file is removed listens at its path again (PATHS_CHECK_S), so the CLI finds it;
before, it stayed unreachable while holding the state folder (`status` said no daemon runs, `daemon` that one
did)."""

from __future__ import annotations

import time

import pytest

from edgeorch.control import DaemonNotRunning


def test_a_removed_control_socket_is_bound_again(workspace, daemon):
    daemon.start()
    daemon.socket_path.unlink()
    with pytest.raises(DaemonNotRunning):
        daemon.call("ping")
    deadline = time.monotonic() + 30
    while True:  # polled: the daemon's next check (every 2 s) binds it again
        try:
            assert daemon.call("ping")["pong"] is True
            break
        except DaemonNotRunning:
            assert time.monotonic() < deadline, "the socket was not bound again"
            time.sleep(0.05)
    proc = workspace.invoke("status")
    assert proc.returncode == 0 and "edgeorch" in proc.stdout, proc.stdout + proc.stderr
    assert "was removed: listening there again" in daemon.log.read_text()
