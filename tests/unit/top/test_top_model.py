"""``edgeorch top``'s rows from the ops' documents (edgeorch/cli/top/model.py), and the screen they make."""

from __future__ import annotations

from rich.console import Console

from edgeorch.cli.top.keys import ViewState, reconcile
from edgeorch.cli.top.model import Item, RuleRow, describe_lease, selectable, snapshot_of
from edgeorch.cli.top.render import screen

GPU = "GPU-11111111-2222-3333-4444-555555555555"
STATUS = {"version": "0.1.0", "uptime_s": 65.0, "tasks": {"running": 1, "ready": 1}, "runs": {"active": 2},
          "parallelism": 1, "clients": 3, "paused": ["etl"], "pipeline_errors": []}
RESOURCES = {
    "cpus": {"cores": [{"id": 0, "held_by": "5/fit"}, {"id": 1, "held_by": None}]},
    "memory": {"available_now": 8 << 30, "leased": 0},
    "gpu_backend": "fake", "gpus": [{"uuid": GPU, "name": "A100", "memory_total": 10 << 30, "memory_used": 3 << 30,
                                     "utilization": 37, "temperature": 40, "drained": None}],
    "leases": [{"run_id": 5, "task": "fit", "cores": [0], "memory": 0, "gpus": [GPU], "gpu_exclusive": True,
                "gpu_memory": 0, "pool": None}],
    "queue": [{"task": "6/load", "pipeline": "etl", "reason": "waits for a run slot (engine.parallelism = 1)"}],
}
ACTIVE = [{"id": 5, "pipeline": "train", "tasks": [
    {"name": "prep", "state": "succeeded", "attempt_list": [{"number": 1, "started_at": 900.0}]},
    {"name": "fit", "state": "running", "attempt_list": [{"number": 2, "started_at": 970.0}]},
    {"name": "eval", "state": "pending", "attempt_list": []}]},
    {"id": 6, "pipeline": "etl", "tasks": [
        {"name": "load", "state": "ready", "attempt_list": []},
        {"name": "flaky", "state": "retry_wait", "next_attempt_at": 1030.0, "reason": "exited with code 1",
         "attempt_list": [{"number": 1, "started_at": 990.0}]}]}]
RECENT = [{"id": 6, "pipeline": "etl", "state": "running", "trigger": "input:3", "created_at": 990.0},
          {"id": 4, "pipeline": "train", "state": "failed", "trigger": "cli", "created_at": 800.0,
           "finished_at": 850.0, "reason": "failed: fit"}]
INPUTS = {"inputs": [{"id": 3, "pipeline": "etl", "source_name": "batch.csv", "state": "started", "run_id": 6,
                      "arrived_at": 989.0}], "counts": {"started": 1, "duplicate": 2}}

MONITORS = {"rules": [
    {"name": "all_good", "pipeline": "etl", "state": "ok", "condition": "failure_rate > 0.5", "last_value": 0.0,
     "last_evaluated_at": 990.0, "silence_reason": None, "last_firing": None},
    {"name": "stale_data", "pipeline": "etl", "state": "silenced", "condition": "freshness > 3600s",
     "last_value": 7200.0, "last_evaluated_at": 995.0, "silence_reason": "maintenance", "last_firing": None},
    {"name": "too_many_failures", "pipeline": "train", "state": "firing", "condition": "failure_rate > 0.5",
     "last_value": 0.6666666, "last_evaluated_at": 850.0, "silence_reason": None,
     "last_firing": {"outcome": "fire", "run_id": 7, "fired_at": 850.0}},
    {"name": "drifting", "pipeline": "train", "state": "pending", "condition": "drift.psi > 0.2",
     "last_value": None, "last_evaluated_at": None, "silence_reason": None, "last_firing": None}],
    "problems": [], "now": 1000.0}


def _snap():
    return snapshot_of(STATUS, RESOURCES, RECENT, ACTIVE, INPUTS, now=1000.0, monitors=MONITORS)


def test_running_retrying_and_waiting_tasks_each_say_what_they_hold_or_wait_for():
    rows = [(t.run_id, t.task, t.state, t.attempt, t.since, t.detail) for t in _snap().tasks]
    assert rows == [(5, "fit", "running", 2, 970.0, "cores 0; GPU-11111111 (whole)"),
                    (6, "flaky", "retry_wait", 1, 1030.0, "exited with code 1"),
                    (6, "load", "waiting", None, None, "waits for a run slot (engine.parallelism = 1)")]


def test_gpus_name_their_holders_and_cores_theirs():
    snap = _snap()
    assert snap.gpus[0].holders == ("5/fit",) and snap.gpus[0].utilization == 37
    assert [(c.core, c.holder) for c in snap.cores] == [(0, "5/fit"), (1, None)]
    assert snap.paused == frozenset({"etl"})


def test_the_cursor_stops_at_tasks_then_runs():
    assert selectable(_snap()) == [Item(5, "train", "fit"), Item(6, "etl", "flaky"), Item(6, "etl", "load"),
                                   Item(6, "etl"), Item(4, "train")]


def test_a_lease_is_described_in_a_few_words():
    assert describe_lease({"cores": [2, 3], "memory": 1 << 30, "gpus": ["GPU-aa-bb"], "gpu_exclusive": False,
                           "gpu_memory": 2 << 30, "pool": "db"}) == "cores 2,3; memory 1.0G; GPU-aa (2.0G); pool db"
    assert describe_lease({"cores": [], "gpus": []}) == "shares the free cores"


def test_an_older_daemon_without_some_sections_still_gives_a_snapshot():
    snap = snapshot_of({}, {}, [], [], {}, now=1.0)
    assert snap.tasks == () and snap.gpus == () and snap.inputs == () and snap.rules == ()


def test_rules_that_need_attention_are_listed_firing_first_and_ok_ones_left_out():
    assert _snap().rules == (
        RuleRow("too_many_failures", "train", "firing", "failure_rate > 0.5", 0.6666666, 850.0, "fire -> run 7"),
        RuleRow("drifting", "train", "pending", "drift.psi > 0.2", None, None, ""),
        RuleRow("stale_data", "etl", "silenced", "freshness > 3600s", 7200.0, 995.0, "maintenance"))


def test_the_rules_panel_says_every_rule_is_ok_when_none_needs_attention():
    snap = snapshot_of(STATUS, RESOURCES, RECENT, ACTIVE, INPUTS, now=1000.0,
                       monitors={"rules": MONITORS["rules"][:1]})
    console = Console(width=160, height=30, record=True, color_system=None)
    console.print(screen(snap, ViewState(), height=30))
    text = console.export_text()
    assert "every rule ok" in text and "all_good" not in text


def test_the_hardware_panel_has_a_row_per_holder_not_per_core():
    snap = snapshot_of(STATUS, {**RESOURCES, "cpus": {"cores": [{"id": i, "held_by": "5/fit" if i in (2, 3) else None}
                                                                   for i in range(64)]}},
                       RECENT, ACTIVE, INPUTS, now=1000.0, monitors=MONITORS)
    console = Console(width=160, height=40, record=True, color_system=None)
    console.print(screen(snap, ViewState(), height=40))
    text = console.export_text()
    assert "cores 0-1,4-63" in text and "cores 2-3" in text and "core 5 " not in text


def test_the_screen_shows_every_panel():
    snap = _snap()
    state = ViewState()
    reconcile(state, selectable(snap))
    console = Console(width=160, height=30, record=True, color_system=None)
    console.print(screen(snap, state, height=30))
    text = console.export_text()
    for expected in ("1 running", "Tasks", "fit", "30s", "in 30s",
                     "waits for a run slot", "Cores and GPUs", "37% 3.0G/10.0G", "5/fit", "Recent runs",
                     "etl (paused)", "failed: fit", "Drop folders", "batch.csv", "2 duplicate, 1 started",
                     "l logs", "Rules: 1 firing", "too_many_failures", "0.6667", "fire -> run 7", "7200",
                     "maintenance"):
        assert expected in text, expected


def test_a_hostile_file_name_or_reason_is_shown_escaped_never_written_raw_to_the_terminal():
    """A dropped file's name (an escape sequence that erases lines, a newline) reached the live view raw."""
    name, reason = "\x1b[2J\x1b[Hclean.csv", "failed: fit\nforged line"
    inputs = {"inputs": [dict(INPUTS["inputs"][0], source_name=name)], "counts": {"refused": 1}}
    recent = [dict(RECENT[1], reason=reason)]
    snap = snapshot_of(STATUS, RESOURCES, recent, ACTIVE, inputs, now=1000.0, monitors=MONITORS)
    state = ViewState()
    reconcile(state, selectable(snap))
    console = Console(width=160, height=30, record=True, color_system=None)
    console.print(screen(snap, state, height=30))
    text = console.export_text()
    assert "\x1b" not in text and "\\x1b[2J\\x1b[Hclean.csv" in text
    assert "failed: fit\\nforged line" in text


def test_a_resumed_runs_took_counts_from_its_resume_as_runs_says():
    """`top` counted TOOK from the run's creation (2.2s) where `edgeorch runs` said "2.0s (resumed)"."""
    recent = [{"id": 3, "pipeline": "train", "state": "succeeded", "trigger": "cli", "created_at": 100.0,
               "started_at": 100.5, "resumed_at": 900.0, "finished_at": 902.0},
              {"id": 2, "pipeline": "train", "state": "queued", "trigger": "cli", "created_at": 990.0}]
    snap = snapshot_of(STATUS, RESOURCES, recent, ACTIVE, INPUTS, now=1000.0)
    console = Console(width=160, height=30, record=True, color_system=None)
    console.print(screen(snap, ViewState(), height=30))
    line = next(ln for ln in console.export_text().splitlines() if "│ 3    train" in ln)
    assert "2.0s (resumed)" in line, line
