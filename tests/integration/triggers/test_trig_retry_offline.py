"""``edgeorch retry`` without a daemon brings a drop-folder run's quarantined input back, as the daemon does.

The restore is not the engine's: the daemon and the CLI each register it as a
``before_resume`` hook of their front door (:mod:`edgeorch.engine.requests`).
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from test_daemon_triggers import drop_by_rename, inputs, n_inputs, q, setup_watch, wait_until


def test_offline_retry_of_a_failed_drop_folder_run_gets_its_input_back_and_succeeds(workspace, daemon, tmp_path):
    drop = setup_watch(workspace)
    daemon.start()
    drop_by_rename(tmp_path / "stage", drop, "data.csv", b"BAD row\n")
    wait_until(daemon, lambda: n_inputs(workspace, "quarantined") >= 1, what="the input quarantined")
    assert daemon.stop() == 0
    rec = inputs(workspace, "quarantined")[0]
    claimed = json.loads(q(workspace, "SELECT env FROM runs WHERE id = ?", (rec["run_id"],))[0]["env"])["EDGEORCH_INPUT"]
    qfile = workspace.state / "quarantine" / "data.csv"
    qfile.write_bytes(b"fixed row\n")  # the user repairs the file in quarantine, then retries with no daemon running
    out = subprocess.run([*workspace.cli(), "retry", str(rec["run_id"])], env=workspace.cli_env(),
                         capture_output=True, text=True, timeout=60, check=False)
    assert out.returncode == 0, out.stdout + out.stderr
    assert q(workspace, "SELECT state FROM runs WHERE id = ?", (rec["run_id"],))[0]["state"] == "succeeded"
    row = inputs(workspace)[0]
    assert row["inbox_path"] == claimed
    assert Path(claimed).read_bytes() == b"fixed row\n"
    assert not qfile.exists() and not (workspace.state / "quarantine" / "data.csv.reason.json").exists()
