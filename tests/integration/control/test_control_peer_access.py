"""Peer credentials: a client running as another user (``nobody``) is refused.

The client is a real process started through ``setpriv`` (so the kernel
reports its uid), speaking the protocol with socat. The socket and its folder
are opened up for the test so that ``nobody`` can reach them at all: what is
tested is the daemon's policy, not file permissions.
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from control_helpers import ServerThread, req

from edgeorch.config import ControlConfig
from edgeorch.control.auth import AccessPolicy

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="switching to user nobody needs root"),
    pytest.mark.skipif(shutil.which("setpriv") is None, reason="setpriv (util-linux) is not installed"),
    pytest.mark.skipif(shutil.which("socat") is None, reason="socat is not installed"),
]

MakeServer = Callable[..., ServerThread]

NOBODY = pwd.getpwnam("nobody").pw_uid if os.geteuid() == 0 else -1


def open_up(st: ServerThread) -> None:
    for d in (st.path.parent, st.path.parent.parent):
        os.chmod(d, 0o755)
    os.chmod(st.path, 0o666)


def as_nobody(path: Path, *requests: dict[str, Any]) -> list[dict[str, Any]]:
    """Send ``requests`` from a process running as nobody; the parsed replies."""
    lines = "".join(json.dumps(r) + "\n" for r in requests).encode()
    out = subprocess.run(
        ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", "socat", "-t", "5", "-", f"UNIX-CONNECT:{path}"],
        input=lines,
        capture_output=True,
        timeout=15,
    )
    assert out.returncode == 0, out.stderr.decode()
    return sorted((json.loads(line) for line in out.stdout.splitlines()), key=lambda r: r["id"])


def test_stranger_is_refused_and_the_refusal_recorded(make_server: MakeServer) -> None:
    st = make_server(ControlConfig(idle_timeout=5.0), policy=AccessPolicy(daemon_uid=0))
    open_up(st)
    replies = as_nobody(st.path, req("ping", 1), req("act", 2))
    assert [r["error"]["code"] for r in replies] == ["permission_denied", "permission_denied"]
    assert "nobody" in replies[0]["error"]["message"]
    assert st.denied_event.wait(5)
    peer, op = st.denied[0]
    assert (peer.uid, peer.user) == (NOBODY, "nobody")
    assert {op for _, op in st.denied} == {"ping", "act"}


def test_reader_may_read_but_not_act(make_server: MakeServer) -> None:
    st = make_server(ControlConfig(idle_timeout=5.0), policy=AccessPolicy(readers=["nobody"], daemon_uid=0))
    open_up(st)
    ping, act, echo = as_nobody(st.path, req("ping", 1), req("act", 2), req("echo", 3))
    assert ping["ok"] is True
    assert act["error"]["code"] == "permission_denied"
    assert echo["result"]["actor"] == {"uid": NOBODY, "user": "nobody"}
    assert [op for _, op in st.denied] == ["act"]


def test_operator_group_may_act(make_server: MakeServer) -> None:
    # nobody's primary group in the user database is nogroup.
    st = make_server(ControlConfig(idle_timeout=5.0), policy=AccessPolicy(operators=["@nogroup"], daemon_uid=0))
    open_up(st)
    (act,) = as_nobody(st.path, req("act", 1))
    assert act["ok"] is True
