"""`[control]` mistakes named where the operator looks: the config file, the field, the value.

Found by a docs tester: `group = "nosuchgroup"` stopped the start only when the socket was bound (`control.group: no
such group`, no file named: `"file": null` in JSON), and a misspelt user in `readers` was a bare log line naming
neither the file nor the field.
"""

from __future__ import annotations

import subprocess


def test_an_unknown_socket_group_stops_the_start_naming_the_file_and_field(workspace):
    workspace.write_config('[control]\ngroup = "nosuchgroup_q"\n')
    proc = subprocess.run([*workspace.cli(), "daemon"], env=workspace.cli_env(), capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 2, proc
    assert f"{workspace.config_path}: control.group: no such group (found 'nosuchgroup_q')" in proc.stderr, proc.stderr
    assert not (workspace.state / "edgeorch.db").exists()  # refused before the state folder is touched


def test_a_misspelt_reader_is_logged_with_the_file_and_field(workspace, daemon):
    workspace.write_config('[control]\nreaders = ["root", "nosuchuser_xyz", "@nosuchgroup_q"]\n')
    daemon.start()
    assert daemon.stop() == 0
    log = daemon.output()
    assert (f"{workspace.config_path}: control.readers[1]: names no user or group of this machine; ignored "
            "(found 'nosuchuser_xyz')") in log, log
    assert "control.readers[2]" in log and "'@nosuchgroup_q'" in log


def test_a_reload_that_starts_a_refused_watch_says_so(workspace, daemon):
    """A watch refused at start (its folder's parent writable by the group) and watched after the parent was fixed
    and the daemon reloaded: the reload answered "unchanged"."""
    import os

    shared = workspace.root / "shared"
    shared.mkdir()
    drop = shared / "drop"
    drop.mkdir()
    os.chmod(shared, 0o775)  # another user of the group could replace the drop folder
    if os.geteuid() == 0:
        os.chown(shared, 0, 65534)  # nogroup, nobody's: a group with another user in it
    else:
        import pytest

        pytest.skip("needs root (to give a folder to a group with another user in it)")
    workspace.pipeline("ingest", '[params]\ninput = { type = "path", default = "" }\n[tasks.a]\ncommand = ["true"]\n')
    workspace.write_config(f'[[watch]]\nfolder = "{drop}"\npipeline = "ingest"\nsettle = "0.2s"\n')
    daemon.start()
    assert any("not watched" in w for w in daemon.call("reload")["warnings"])
    os.chmod(shared, 0o755)
    answer = daemon.call("reload")
    assert not any("not watched" in w for w in answer["warnings"]), answer
    assert f"[[watch]]: 1 started ({drop})" in answer["summary"], answer
    assert daemon.stop() == 0


def test_pipelines_says_when_a_jittered_fire_starts(workspace, daemon):
    """NEXT FIRE showed the fire's time alone: with `jitter`, a time already passed while its run had not started."""
    import json
    from datetime import datetime

    workspace.pipeline("jit", 'every = "1h"\njitter = "59m"\n[tasks.a]\ncommand = ["true"]\n')
    for online in (False, True):
        if online:
            daemon.start()
        doc = json.loads(workspace.invoke("pipelines", "--json").stdout)
        (item,) = doc["pipelines"]
        fire, start = datetime.fromisoformat(item["next_fire"]), datetime.fromisoformat(item["next_start"])
        assert 0 <= (start - fire).total_seconds() < 59 * 60, item
        table = workspace.invoke("pipelines").stdout
        if start != fire:
            assert ", its jitter)" in table and "(starts " in table, table
    assert daemon.stop() == 0
