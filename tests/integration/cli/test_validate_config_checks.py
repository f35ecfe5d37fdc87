"""`edgeorch validate` says what a daemon's start would refuse of the config: a watched folder another user could
replace, an unknown socket group (errors), a reader or operator that names nobody (a warning).

Found by a docs tester: `validate` printed "ok watch .../examples/drop" for a checkout made under umask 002, and the
daemon then refused that watch (its parent writable by the group); `[control] group = "nosuch"` and a misspelt
reader were "1 valid, 0 error(s)". (A group-writable parent is refused when the group has users besides root
and the daemon's in it: nogroup here, nobody's; a user's private group is not, see test_watch_path_trust.py.)
"""

from __future__ import annotations

import json
import os

import pytest


def test_validate_refuses_what_the_daemon_would_and_warns_of_unknown_names(workspace):
    shared = workspace.root / "shared"
    drop = shared / "drop"
    drop.mkdir(parents=True)
    os.chmod(shared, 0o775)
    if os.geteuid() != 0:
        pytest.skip("needs root (to give a folder to a group with other users in it)")
    os.chown(shared, 0, 65534)  # nogroup: nobody's
    workspace.pipeline("ingest", '[params]\ninput = { type = "path", default = "" }\n[tasks.a]\ncommand = ["true"]\n')
    workspace.write_config(f'[[watch]]\nfolder = "{drop}"\npipeline = "ingest"\n[control]\ngroup = "nosuchgroup_q"\n'
                           'readers = ["nosuchuser_xyz"]\n')
    proc = workspace.invoke("validate")
    assert proc.returncode == 1, proc
    out = proc.stdout
    assert "ok     watch" not in out, out
    assert f"error  {workspace.config_path}: watch.folder" in out and "can be replaced by the group" in out, out
    assert f"error  {workspace.config_path}: control.group: no such group (found 'nosuchgroup_q')" in out, out
    assert (f"warning {workspace.config_path}: control.readers[0]: names no user or group of this machine; ignored "
            "(found 'nosuchuser_xyz')") in out, out
    doc = json.loads(workspace.invoke("validate", "--json").stdout)
    assert doc["watches"] == [] and {e["field"] for e in doc["errors"]} == {"watch.folder", "control.group"}, doc
    os.chmod(shared, 0o755)
    workspace.write_config(f'[[watch]]\nfolder = "{drop}"\npipeline = "ingest"\n')
    fixed = workspace.invoke("validate")
    assert fixed.returncode == 0 and f"ok     watch {drop} -> ingest" in fixed.stdout, fixed
