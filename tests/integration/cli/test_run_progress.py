"""`edgeorch run` through a daemon follows a run it queued a moment before: no task's start is missed or said twice."""

from __future__ import annotations

import edgeorch
from edgeorch.cli.commands.runs import _ProgressPrinter


def test_a_follower_that_subscribes_late_is_told_each_running_task_once_with_its_duration(workspace, daemon, capsys):
    workspace.pipeline("two", """
        [tasks.slow]
        command = ["sh", "-c", "touch {pipeline_dir}/slow.started; while [ ! -f {pipeline_dir}/go ]; do sleep 0.02; done"]
        [tasks.after]
        command = ["true"]
        needs = ["slow"]
    """)
    daemon.start()
    run_id = daemon.call("trigger", {"pipeline": "two"})["run_id"]
    workspace.wait_file(workspace.pipelines / "slow.started")  # started before anyone follows the run
    printer = _ProgressPrinter(enabled=True)

    def on_event(ev: dict) -> None:
        printer(ev)
        if ev.get("kind") == "task" and ev.get("task") == "slow" and ev.get("state") == "running":
            printer(ev)  # the same attempt again (the catch-up and the bus can both carry it): said once
            (workspace.pipelines / "go").touch()

    run = edgeorch.Client(config=workspace.config_path, timeout=30).wait(run_id, timeout=60, on_event=on_event)
    assert run.state == "succeeded"
    lines = capsys.readouterr().out.splitlines()
    assert [ln.split(None, 1)[1] for ln in lines if "slow" in ln][:1] == ["slow                     started (attempt 1)"], lines
    assert sum("slow" in ln and "started" in ln for ln in lines) == 1, lines
    (done,) = [ln for ln in lines if "slow" in ln and "started" not in ln]
    assert " ok in " in done, lines  # the duration counts from the attempt's recorded start
    assert sum("after" in ln and "started (attempt 1)" in ln for ln in lines) == 1, lines
