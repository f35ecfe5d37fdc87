"""Values substituted into ``shell = true`` commands are data, never code (issue 9, item 17)."""

from __future__ import annotations

from pathlib import Path

import pytest

from edgeorch.model import RunState

HOSTILE = [
    "report;touch INJECTED;.csv",
    "$(touch INJECTED)",
    "`touch INJECTED`",
    "a | touch INJECTED",
    "it's \"quoted\" & touch INJECTED",
    "two  spaces\tand tab",
]


@pytest.mark.parametrize("value", HOSTILE)
def test_a_hostile_param_reaches_a_shell_command_literally_and_runs_nothing(workspace, harness, value):
    workspace.pipeline("sh", """
        [params]
        name = "x"
        [tasks.t]
        shell = true
        command = "printf '%s' {name} > {output_dir}/got.txt; printf '%s' {output_dir}/{name} > {output_dir}/path.txt"
        outputs = ["got.txt"]
    """)
    run_id, state = harness.run("sh", {"name": value})
    assert state == RunState.SUCCEEDED
    (art,) = harness.store().outputs.latest_artifacts(run_id, "t")
    out_dir = Path(art["path"]).parent
    assert Path(art["path"]).read_text() == value
    assert (out_dir / "path.txt").read_text() == f"{out_dir}/{value}"
    assert not list(workspace.root.rglob("INJECTED")), "an injected command ran"
