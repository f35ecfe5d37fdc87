"""The fire a run processes: a scheduled run's fire time and date (in its schedule's timezone) in every task's
environment and as ``{fire_time}``/``{fire_date}``, any other run's creation time; part of the cache key of a task
that names one, so a catch-up's runs (one per fire) each do their own night's work."""

from __future__ import annotations

import asyncio
from datetime import datetime, timezone
from zoneinfo import ZoneInfo

from edgeorch.model import RunState
from edgeorch.pipelines import resolve_params, validate_path
from edgeorch.triggers.schedule_service import fire_env

NIGHTLY = """
[tasks.extract]
command = ["sh", "-c", "echo {fire_date} $EDGEORCH_FIRE_TIME > $EDGEORCH_OUTPUT_DIR/day.txt"]
outputs = ["day.txt"]
cache = true
[tasks.report]
command = ["sh", "-c", "echo report > $EDGEORCH_OUTPUT_DIR/r.txt"]
outputs = ["r.txt"]
cache = true
"""


def _out(store, run_id: int, task: str) -> str:
    (art,) = store.outputs.latest_artifacts(run_id, task)
    with open(art["path"]) as f:
        return f.read().strip()


def _state(store, run_id: int, task: str) -> str:
    return next(t["state"] for t in store.runs.tasks_of(run_id) if t["name"] == task)


def test_each_fire_is_its_own_input_and_a_task_that_names_none_keeps_its_cache(workspace, harness):
    workspace.pipeline("nightly", NIGHTLY)

    class Spec:  # what fire_env reads of a schedule: its timezone
        tz = ZoneInfo("America/Los_Angeles")

    nights = [datetime(2026, 3, d, 11, 0, tzinfo=timezone.utc) for d in (5, 6, 6)]  # 03:00 in Los Angeles
    runs: list[int] = []

    async def during(engine, run_id: int) -> None:
        pipeline = validate_path(workspace.pipelines).pipelines["nightly"]
        await asyncio.wait_for(engine.wait_run(run_id), 60)
        for night in nights:  # one after another, as a catch-up starts them
            rid = engine.submit(pipeline, resolve_params(pipeline, {}), trigger="schedule", env=fire_env(night, Spec))
            runs.append(rid)
            await asyncio.wait_for(engine.wait_run(rid), 60)

    manual, state = harness.run("nightly", during=during)
    assert state == RunState.SUCCEEDED
    store = harness.store()
    today = datetime.fromtimestamp(store.runs.get(manual)["created_at"]).astimezone().date().isoformat()
    assert _out(store, manual, "extract").split()[0] == today  # a manual run's fire: its creation, local
    assert _out(store, runs[0], "extract") == "2026-03-05 2026-03-05T03:00:00-08:00"
    assert _out(store, runs[1], "extract") == "2026-03-06 2026-03-06T03:00:00-08:00"
    assert [_state(store, r, "extract") for r in runs] == ["succeeded", "succeeded", "skipped"]  # same night: a hit
    assert [_state(store, r, "report") for r in runs] == ["skipped", "skipped", "skipped"]  # names no fire: cached


def test_fire_placeholders_are_known_to_validate(tmp_path):
    (tmp_path / "p.toml").write_text('[tasks.a]\ncommand = ["echo", "{fire_date}", "{fire_time}", "{fire_day}"]\n')
    report = validate_path(tmp_path)
    (err,) = report.errors
    assert "unknown placeholder {fire_day} (did you mean {fire_date}?)" in err.render()
