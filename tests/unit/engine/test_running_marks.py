"""A started attempt's processes reach the state file: soon in a batch, with its outcome, or at the engine's close.

Real engine, real processes, real SQLite. ``RUNNING_MARK_DELAY_S`` is raised
where a test needs the mark to still be waiting.
"""

from __future__ import annotations

import asyncio
import os
import signal

from edgeorch.engine import engine as engine_module
from edgeorch.model import RunState
from edgeorch.pipelines import resolve_params
from edgeorch.store import Store
from engine_helpers import until
from test_commit_then_memory import running_engine

QUICK = """
[tasks.a]
command = ["true"]
"""

SLOW = """
[tasks.a]
command = ["sleep", "30"]
"""


def _attempt(store: Store) -> dict:
    """The one attempt's row (empty before it is recorded)."""
    rows = store.db.all("SELECT state, pid, pgid, pid_start_time, shim_pid FROM attempts")
    assert len(rows) <= 1, rows
    return rows[0] if rows else {}


def test_an_attempt_that_ends_before_its_mark_is_written_gets_it_with_its_outcome(workspace, monkeypatch):
    monkeypatch.setattr(engine_module, "RUNNING_MARK_DELAY_S", 60.0)

    async def main() -> None:
        async with running_engine(workspace, "quick", QUICK) as (engine, store, pipeline, _):
            run_id = engine.submit(pipeline, resolve_params(pipeline, {}))
            assert await asyncio.wait_for(engine.wait_run(run_id), 30) == RunState.SUCCEEDED
            row = _attempt(store)
            assert row["state"] == "exited" and row["pid"] and row["pgid"] == row["pid"] and row["shim_pid"]
            assert row["pid_start_time"] and not engine._running_marks

    asyncio.run(main())


def test_a_running_attempt_is_marked_soon_and_a_waiting_mark_is_written_at_close(workspace, monkeypatch):
    async def main() -> None:
        async with running_engine(workspace, "slow", SLOW) as (engine, store, pipeline, cfg):
            run_id = engine.submit(pipeline, resolve_params(pipeline, {}))
            await until(lambda: _attempt(store).get("state") == "running")  # within RUNNING_MARK_DELAY_S
            assert _attempt(store)["pid"]
            engine.cancel(run_id, reason="done")
            assert await asyncio.wait_for(engine.wait_run(run_id), 30) == RunState.CANCELLED

        monkeypatch.setattr(engine_module, "RUNNING_MARK_DELAY_S", 60.0)
        async with running_engine(workspace, "slow2", SLOW) as (engine, store, pipeline, cfg):
            run_id = engine.submit(pipeline, resolve_params(pipeline, {}))
            await until(lambda: bool(engine._running_marks))  # started; its mark waits
            attempt_id = next(iter(engine._running_marks))
            await engine.close()  # the task goes on (live restore); its mark is written for the next reader
            reader = Store(cfg.state_file, readonly=True)
            row = reader.db.one("SELECT state, pid FROM attempts WHERE id = ?", (attempt_id,))
            assert row is not None and row["state"] == "running" and row["pid"]
            reader.close()
            os.killpg(row["pid"], signal.SIGKILL)

    asyncio.run(main())
