"""A state folder deeper than a Unix socket's address holds (108 bytes on Linux): the daemon could not start
(`AF_UNIX path too long`, an internal error), nor could an offline run probe the socket. The socket is bound,
probed and connected through a descriptor of its folder (`control/listening.socket_address`)."""

from __future__ import annotations

import os

from edgeorch.control.listening import SUN_PATH_MAX


def test_a_state_folder_too_deep_for_a_socket_address_still_serves_the_cli(workspace, daemon):
    workspace.state = workspace.root / ("d" * 60) / ("e" * 60) / "var"
    workspace.write_config()
    workspace.pipeline("p", '[tasks.a]\ncommand = ["true"]\n')
    assert len(os.fsencode(daemon.socket_path)) > SUN_PATH_MAX
    daemon.start()
    assert daemon.call("ping")["pong"] is True  # the client's connect
    run = workspace.invoke("run", "p")  # the CLI through the daemon, streaming its events
    assert run.returncode == 0 and "queued on the daemon" in run.stdout, run.stdout + run.stderr
    here = workspace.invoke("run", "p", "--here")  # the state lock's probe finds the daemon listening
    assert here.returncode == 4 and "in use" in here.stderr, here.stderr
    assert "leave out --here" in here.stderr and "running p" not in here.stdout  # said before anything else
    assert daemon.stop() == 0
    assert workspace.invoke("run", "p", "--here").returncode == 0  # nothing listens: the offline run goes on
