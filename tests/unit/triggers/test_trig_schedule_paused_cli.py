"""`edgeorch pipelines` without a daemon: a paused pipeline shows no next fire ("paused").

Real state file (SQLite), real CLI subprocess.
"""

from __future__ import annotations

import json
import subprocess

from edgeorch.store import Store

HOURLY = """
schedule = "0 * * * *"
[tasks.a]
command = ["true"]
"""


def pipelines(ws, *extra: str) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([*ws.cli(), "pipelines", *extra], env=ws.cli_env(), capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stdout + proc.stderr
    return proc


def test_a_paused_pipeline_shows_paused_instead_of_a_next_fire(workspace):
    workspace.pipeline("hourly", HOURLY)
    workspace.pipeline("other", HOURLY)
    cfg = workspace.config()
    cfg.state_file.parent.mkdir(parents=True, exist_ok=True)
    st = Store(cfg.state_file)
    try:
        st.set_paused("hourly", True, reason="maintenance", actor="test")
    finally:
        st.close()
    items = {i["name"]: i for i in json.loads(pipelines(workspace, "--json").stdout)["pipelines"]}
    assert items["hourly"]["paused"] is True and items["hourly"]["next_fire"] is None
    assert items["other"]["paused"] is False and items["other"]["next_fire"] is not None
    rows = {line.split()[0]: line.split() for line in pipelines(workspace).stdout.splitlines()[1:] if line.strip()}
    assert rows["hourly"][2:4] == ["yes", "paused"], rows
    assert rows["other"][2] == "no" and rows["other"][3] != "paused", rows
