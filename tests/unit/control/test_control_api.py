"""The public surface of edgeorch.control is what the daemon and CLI use."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

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
            "watchdog_interval",
            "watchdog_loop",
        ]
    )
    for name in control.__all__:
        assert getattr(control, name) is not None


def test_a_lazy_export_named_like_its_module_is_refused() -> None:
    """`notify` left the exports: once `edgeorch.control.notify` (the module) is imported, the package
    attribute of that name is the module, so a lazily exported function of that name would read as it."""
    from edgeorch.lazyexports import lazy_exports

    with pytest.raises(ValueError, match="notify would be shadowed"):
        lazy_exports("edgeorch.control", {"notify": "notify"})


def test_every_control_error_code_is_documented() -> None:
    documented = set(re.findall(r"^\| `([a-z_]+)`", DOC.read_text(), re.M))
    codes = {P.BAD_REQUEST, P.UNKNOWN_OP, P.PERMISSION_DENIED, P.TOO_LARGE, P.UNSUPPORTED_VERSION, P.INTERNAL, P.BUSY, P.TIMEOUT}
    assert codes <= documented, codes - documented
