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
