"""systemd/edgeorch.service passes ``systemd-analyze verify``.

verify insists that ExecStart's binary exists; the unit names
/usr/local/bin/edgeorch, which is not installed where tests run. The test
therefore verifies a copy whose ExecStart points at the installed
``edgeorch`` if there is one, else at /bin/true; every other line is the
shipped unit's. verify exits 0 on unknown keys and bad values (it only
warns), so any warning about the unit fails the test too.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

UNIT = Path(__file__).resolve().parents[3] / "systemd" / "edgeorch.service"


def unit_settings() -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for line in UNIT.read_text().splitlines():
        if "=" in line and not line.lstrip().startswith(("#", "[")):
            key, _, value = line.partition("=")
            out.setdefault(key.strip(), []).append(value.strip())
    return out


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
def test_unit_verifies(tmp_path: Path) -> None:
    binary = shutil.which("edgeorch") or "/bin/true"
    text = UNIT.read_text().replace("ExecStart=/usr/local/bin/edgeorch", f"ExecStart={binary}", 1)
    copy = tmp_path / "edgeorch.service"
    copy.write_text(text)
    out = subprocess.run(["systemd-analyze", "verify", str(copy)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    complaints = [line for line in (out.stdout + out.stderr).splitlines() if "edgeorch.service" in line]
    assert not complaints, complaints


def test_unit_has_the_settings_the_daemon_relies_on() -> None:
    s = unit_settings()
    assert s["Type"] == ["notify"] and s["NotifyAccess"] == ["main"]
    assert s["KillMode"] == ["process"]  # running tasks survive a restart
    assert s["Restart"] == ["on-failure"]
    assert s["ExecStart"] == ["/usr/local/bin/edgeorch daemon --config %E/edgeorch/config.toml"]
    assert s["RuntimeDirectoryPreserve"] == ["yes"]
    assert "WatchdogSec" in s and "StateDirectory" in s
    # The group reaching the socket (every CLI user is in it) must not read the state folder: the state file, logs
    # and dropped files would bypass [control] readers (it was 0750).
    assert s["Group"] == ["edgeorch"] and s["StateDirectoryMode"] == ["0700"]
    for key in ("NoNewPrivileges", "ProtectHome", "PrivateTmp"):
        assert s[key] == ["yes"], key
    assert s["ProtectSystem"] == ["strict"]
    assert any("nvidia" in v for v in s["DeviceAllow"])
    # numba's JIT needs writable+executable memory.
    assert "MemoryDenyWriteExecute" not in s and "PrivateDevices" not in s
