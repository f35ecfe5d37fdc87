"""CAP_LEASE is the daemon's alone: the ambient set the shipped unit gives it is cleared at start, so nothing the
daemon starts (tasks, health checks, commands) gets it; its own effective set keeps it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

CHECK = """
import subprocess
from edgeorch.capabilities import can_lease_any_file, keep_from_children
def field(text, name):
    return next(l.split()[1] for l in text.splitlines() if l.startswith(name + ":"))
child = lambda: subprocess.run(["cat", "/proc/self/status"], capture_output=True, text=True).stdout
print(field(child(), "CapAmb"))
keep_from_children()
print(field(child(), "CapAmb"))
print(field(open("/proc/self/status").read(), "CapEff"))
print(can_lease_any_file())
"""


@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("setpriv") is None,
                    reason="raising an ambient capability needs root and setpriv (util-linux)")
def test_the_ambient_capability_is_kept_from_children_and_the_daemons_own_stays() -> None:
    out = subprocess.run(["setpriv", "--inh-caps", "+lease", "--ambient-caps", "+lease", sys.executable, "-c", CHECK],
                         capture_output=True, text=True, timeout=60, env={**os.environ})
    assert out.returncode == 0, out.stderr
    before, after, effective, can = out.stdout.split()
    assert int(before, 16) >> 28 & 1 == 1  # a child started before inherits it (what the unit's setting does)
    assert int(after, 16) == 0  # none after: no task or command gets it
    assert int(effective, 16) >> 28 & 1 == 1 and can == "True"  # the daemon keeps it


def test_a_drop_folder_others_may_write_is_said_when_the_daemon_cannot_ask_about_their_files(tmp_path, monkeypatch,
                                                                                            caplog) -> None:
    import logging
    from types import SimpleNamespace

    from edgeorch.daemon import app

    import os

    from edgeorch.trust import group_members

    shared, private, own_group = tmp_path / "shared", tmp_path / "private", tmp_path / "own-group"
    for folder, mode in ((shared, 0o777), (private, 0o755), (own_group, 0o775)):
        folder.mkdir()
        folder.chmod(mode)
    # Group-writable by a group of this user's alone (a user's private group, umask 002): no other user writes
    # there; the warning said so of it (a new user's find), pointing at a capability the user unit cannot grant.
    alone = (group_members(own_group.stat().st_gid) or {-1}) <= {os.geteuid(), 0}
    daemon = SimpleNamespace(triggers=SimpleNamespace(drops=SimpleNamespace(
        watches=[SimpleNamespace(folder=f) for f in (shared, private, own_group)])))
    caplog.set_level(logging.WARNING)
    monkeypatch.setattr(app, "can_lease_any_file", lambda: True)
    app.Daemon._warn_unleasable_drops(daemon)  # type: ignore[arg-type]
    assert caplog.text == ""
    monkeypatch.setattr(app, "can_lease_any_file", lambda: False)
    app.Daemon._warn_unleasable_drops(daemon)  # type: ignore[arg-type]
    assert f"drop folder {shared}: other users may write to it" in caplog.text and str(private) not in caplog.text
    assert "CAP_LEASE" in caplog.text
    assert (str(own_group) in caplog.text) == (not alone), caplog.text
    if os.geteuid() == 0:  # a group with another user in it: said
        caplog.clear()
        os.chown(own_group, 0, 65534)
        app.Daemon._warn_unleasable_drops(daemon)  # type: ignore[arg-type]
        assert f"drop folder {own_group}: other users may write to it" in caplog.text
