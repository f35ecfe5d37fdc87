"""A run's recorded definition that an earlier edgeorch accepted and this one refuses (an upgrade with runs active).

Found by a tester upgrading with work in flight: a rule added since (here: an empty program name) made every start
of the new daemon stop at that run (exit 1), and every `run` and `cancel` without a daemon too; fixing the file
changed nothing (the run's definition is the recorded text), and the state file was already migrated, so the old
release refused it: only a backup got the machine back.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from edgeorch.engine.procinfo import is_same_process
from edgeorch.pipelines.parse import parse_pipeline


def test_a_run_whose_recorded_definition_breaks_a_newer_rule_is_resumed_as_recorded(workspace, daemon):
    workspace.pipeline("gated", """
        [tasks.wait]
        command = ["sh", "-c", "touch {pipeline_dir}/started; while [ ! -f {pipeline_dir}/go ]; do sleep 0.05; done"]
        [tasks.later]
        command = ["echo", "later"]
        needs = ["wait"]
    """)
    daemon.start()
    run_id = daemon.call("trigger", {"pipeline": "gated"})["run_id"]
    a = workspace.wait_running("wait")
    assert daemon.stop() == 0
    # What an earlier edgeorch recorded: a program named "" (refused since; it ran, and failed with exit 127).
    conn = sqlite3.connect(workspace.state / "edgeorch.db")
    with conn:
        changed = conn.execute("""UPDATE pipeline_versions SET source_text = replace(source_text, '["echo", "later"]',
                                  '["", "later"]') WHERE name = 'gated'""").rowcount
    conn.close()
    assert changed == 1
    daemon.start()  # it stopped here with exit 1, naming the pipeline's file (which is valid)
    assert is_same_process(a["pid"], a["pid_start_time"]), "the adopted task must be left running"
    (workspace.pipelines / "go").touch()
    assert daemon.wait_run(run_id) == "failed"  # as the earlier edgeorch ran it: `later` cannot execute ''
    show = daemon.call("runs.show", {"run_id": run_id})
    states = {t["name"]: (t["state"], t["reason"]) for t in show["tasks"]}
    assert states["wait"][0] == "succeeded" and states["later"][0] == "failed", states
    assert "cannot execute ''" in states["later"][1], states
    log = daemon.output()
    assert "recorded by an earlier edgeorch" in log and "tasks.later.command[0]: names no program" in log, log
    assert log.count("recorded by an earlier edgeorch") == 1  # once per definition
    # The file is valid: a retry under it runs `later` as the file says now.
    again = daemon.call("retry", {"run_id": run_id, "current": True})
    assert daemon.wait_run(again.get("run_id", run_id)) == "succeeded"
    assert daemon.stop() == 0


def test_a_stored_definition_is_built_despite_a_newer_rule_but_never_without_its_graph(tmp_path: Path) -> None:
    clash = """
        [tasks.prep-a]
        command = ["true"]
        [tasks.prep_a]
        command = ["true"]
        [tasks.final]
        command = ["true"]
        needs = ["prep-a", "prep_a"]
    """
    import textwrap
    import tomllib

    text = textwrap.dedent(clash)
    strict, problems = parse_pipeline(tomllib.loads(text), file=tmp_path / "dual.toml", text=text)
    assert strict is None and "EDGEORCH_UPSTREAM_PREP_A" in problems[0].one_line()
    stored, kept = parse_pipeline(tomllib.loads(text), file=tmp_path / "dual.toml", text=text, stored=True)
    assert stored is not None and stored.order[-1] == "final"
    assert [e.one_line() for e in kept] == [e.one_line() for e in problems]
    broken = text.replace('needs = ["prep-a", "prep_a"]', 'needs = ["prep-a", "nosuch"]')
    none, why = parse_pipeline(tomllib.loads(broken), file=tmp_path / "dual.toml", text=broken, stored=True)
    assert none is None and any("needs an unknown task" in e.one_line() for e in why)
