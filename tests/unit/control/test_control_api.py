"""The public surface of edgeorch.control is what the daemon and CLI use."""

from __future__ import annotations

import re
from pathlib import Path

import edgeorch.control as control
from edgeorch.control import protocol as P

DOC = Path(__file__).resolve().parents[3] / "docs" / "protocol.md"


def test_exports() -> None:
    assert sorted(control.__all__) == sorted(
        [
            "PROTOCOL_VERSION",
            "AccessPolicy",
            "AsyncClient",
            "Client",
            "ControlServer",
            "DaemonNotRunning",
            "PermissionDenied",
            "Peer",
            "StateLock",
            "acquire_state_lock",
            "notify",
            "watchdog_interval",
            "watchdog_loop",
        ]
    )
    for name in control.__all__:
        assert getattr(control, name) is not None


def test_every_control_error_code_is_documented() -> None:
    documented = set(re.findall(r"^\| `([a-z_]+)`", DOC.read_text(), re.M))
    codes = {P.BAD_REQUEST, P.UNKNOWN_OP, P.PERMISSION_DENIED, P.TOO_LARGE, P.UNSUPPORTED_VERSION, P.INTERNAL, P.BUSY, P.TIMEOUT}
    assert codes <= documented, codes - documented
