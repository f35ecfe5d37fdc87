"""``edgeorch top``'s layout at a given terminal size (edgeorch/cli/top/render.py): what identifies a run and why a
task waits are never cut for the right-hand panels, and the lists use the height there is."""

from __future__ import annotations

import re

from rich.console import Console

from edgeorch.cli.top.keys import ViewState, reconcile
from edgeorch.cli.top.model import selectable, snapshot_of
from edgeorch.cli.top.screen import OpsSource

from test_top_model import ACTIVE, INPUTS, MONITORS, RESOURCES, STATUS
from test_top_tasks import _backlog

RECENT = [{"id": 10000 - i, "pipeline": "quick", "state": "succeeded", "trigger": "cli", "created_at": 900.0,
           "started_at": 900.0, "finished_at": 903.2} for i in range(80)]
WAITING = {**RESOURCES, "queue": [{"task": "6/load", "pipeline": "etl",
                                   "reason": "waits for a run slot (engine.parallelism = 1)"}]}


def _lines(snap, width: int, height: int) -> list[str]:
    from edgeorch.cli.top.render import screen

    state = ViewState()
    reconcile(state, selectable(snap))
    console = Console(width=width, height=height, record=True, color_system=None)
    console.print(screen(snap, state, height=height))
    return console.export_text().splitlines()


def test_at_80x24_run_ids_and_the_reason_a_task_waits_are_not_cut():
    """At 80×24 the right-hand panels took the width: `R…` for RUN, `wa…` for why a task waits."""
    snap = snapshot_of(STATUS, WAITING, RECENT[:20], ACTIVE, INPUTS, now=1000.0, monitors=MONITORS)
    lines = _lines(snap, 80, 24)
    text = "\n".join(lines)
    assert re.search(r"│ RUN +PIPELINE +TASK +STATE +TRY +TIME +HOLDS / WAITS FOR", text), text
    assert re.search(r"│ RUN +PIPELINE +STATE +TRIGGER +TOOK +REASON", text), text
    assert "waits for a run slot" in text and "cores 0; GPU-11111111" in text, text
    assert "│ 10000  quick" in text and "3.2s" in text, text
    assert "hidden (small terminal): " in text and "rules (1 firing)" in text, text
    assert re.search(r"\d\d:\d\d:\d\d", lines[0]), lines[0]  # the header keeps its clock


def test_with_nothing_running_the_tasks_header_keeps_every_column():
    """With 0 runs the Tasks header lost RUN (`│   PIPEL…  TASK   ST…   T… │`)."""
    snap = snapshot_of(STATUS, {**RESOURCES, "queue": []}, [], [], INPUTS, now=1000.0, monitors=MONITORS)
    for width in (80, 160):
        text = "\n".join(_lines(snap, width, 24))
        assert re.search(r"│ RUN +PIPELINE +TASK +STATE +TRY +TIME +HOLDS / WAITS FOR", text), text
        assert "nothing running or waiting" in text


def test_a_tall_terminal_lists_as_many_runs_as_fit():
    """At 250×60 recent runs showed 12 rows and drop folders 8, with 20 empty lines below."""
    client = _backlog()
    for r in RECENT:
        client.runs[r["id"]] = {**r, "tasks": []}
    snap = OpsSource(client).snapshot(1000.0, rows=60)
    limits = [a.get("limit") for op, a in client.calls if op in ("runs.list", "inputs.list") and "state" not in a]
    assert all(limit >= 60 for limit in limits), limits
    text = "\n".join(_lines(snap, 250, 60))
    shown = len(re.findall(r"│ \d{4,5} +quick +succeeded", text))
    assert shown >= 20, text  # what the 27 task rows above leave
    # Side by side at this width: the cores/GPUs panel is beside the tasks, nothing hidden.
    assert "Cores and GPUs" in text and "hidden (small terminal)" not in text


def test_the_log_of_a_task_that_ended_silent_says_so_not_that_output_may_come():
    """A new user's find: the log view of an ended task that printed nothing said "(no output yet)"."""
    from edgeorch.cli.top.render import screen

    snap = snapshot_of(STATUS, RESOURCES, RECENT[:5], ACTIVE, INPUTS, now=1000.0, monitors=MONITORS)
    state = ViewState()
    reconcile(state, selectable(snap))
    state.logs = (1, "t")
    for ended, said in ((False, "(no output yet)"), (True, "(it printed nothing)")):
        console = Console(width=80, height=24, record=True, color_system=None)
        console.print(screen(snap, state, height=24, log_lines=(), log_title="log of run 1 t", log_ended=ended))
        assert said in console.export_text()
