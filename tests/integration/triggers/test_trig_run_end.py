"""An ingested file's end is recorded with its run's end: one transaction, one durable commit.

In process, with the daemon's parts (a real engine, the front door, the drop folders watching a real folder
with inotify, a real state file); the SQL the state file's connection runs is traced, so each test reads
which statements committed together. Before, a run's end committed first and its input's ``done`` came in a
transaction of its own when the bus told the drop folders: two fsyncs per file, and a crash between them left
a finished run's input ``started`` until the next start's recovery.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from edgeorch.events import InputChanged, RunFinished
from trig_daemon_parts import daemon_parts


async def _until(cond: Any, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


def _transactions(statements: list[str]) -> list[list[str]]:
    """The traced statements grouped by the outermost transaction they ran in (``BEGIN`` ... ``COMMIT``)."""
    groups: list[list[str]] = []
    current: list[str] | None = None
    for sql in statements:
        head = sql.strip().upper()
        if head.startswith("BEGIN"):
            current = []
        elif head.startswith(("COMMIT", "ROLLBACK")) and not head.startswith("ROLLBACK TO"):
            if current is not None and head.startswith("COMMIT"):
                groups.append(current)
            current = None
        elif current is not None:
            current.append(sql)
    return groups


def _ingest(workspace, command: str, *, cancel: bool = False) -> tuple[list[list[str]], list[Any], list[str]]:
    """Drop one file for a pipeline whose task runs ``command``; wait until its input is settled. Returns the
    committed transactions, the bus's RunFinished and InputChanged events in order, and the input's state."""
    drop = workspace.watch_folder("ingest", settle="0.1s")
    workspace.pipeline("ingest", f"""
        [params]
        input = {{ type = "path", default = "" }}
        [tasks.only]
        command = ["sh", "-c", {command!r}]
        """)
    cfg = workspace.config()
    statements: list[str] = []
    seen: list[Any] = []

    async def main() -> str:
        store, engine, drops = await daemon_parts(cfg)
        engine.bus.subscribe(lambda e: drops.on_run_finished(e.run_id, e.state, e.reason), RunFinished)
        engine.bus.subscribe(seen.append, lambda e: isinstance(e, (RunFinished, InputChanged)))
        drops.recover_and_collect()
        drops.watch()
        store.db.conn.set_trace_callback(statements.append)
        try:
            (workspace.root / "a.csv").write_text("1\n")
            (workspace.root / "a.csv").rename(drop / "a.csv")

            def state() -> str | None:
                row = store.db.conn.execute("SELECT state FROM inputs").fetchone()
                return row[0] if row else None

            if cancel:
                await _until(lambda: bool(engine.runs) and bool(engine.live))
                engine.cancel(next(iter(engine.runs)), actor=None)
            await _until(lambda: state() in ("done", "quarantined"))
            return str(state())
        finally:
            store.db.conn.set_trace_callback(None)
            drops.stop()
            await engine.close()
            store.close()

    final = asyncio.run(main())
    return _transactions(statements), seen, [final]


def _with(transactions: list[list[str]], *needles: str) -> list[list[str]]:
    return [t for t in transactions if all(any(n in sql for sql in t) for n in needles)]


def test_a_succeeded_runs_input_is_done_in_the_transaction_of_the_runs_end(workspace):
    transactions, seen, final = _ingest(workspace, "true")
    assert final == ["done"]
    ends = _with(transactions, "UPDATE runs SET state = 'succeeded'")
    assert len(ends) == 1, "the run's end committed once"
    assert _with(ends, "UPDATE inputs SET state = 'done'"), "the input's done commits with the run's end"
    assert len(_with(transactions, "UPDATE inputs SET state = 'done'")) == 1, "and in no transaction of its own"
    done = [e for e in seen if isinstance(e, InputChanged) and e.state == "done"]
    assert len(done) == 1 and done[0].run_id is not None, "told once, naming its run"


def test_a_cancelled_runs_input_is_done_with_the_runs_end_and_says_why(workspace):
    transactions, seen, final = _ingest(workspace, "sleep 30", cancel=True)
    assert final == ["done"]
    assert _with(transactions, "UPDATE runs SET state = 'cancelled'", "UPDATE inputs SET state = 'done'")
    assert _with(transactions, "was cancelled")


def test_a_failed_runs_input_is_quarantined_after_the_runs_end(workspace):
    """A file's move is no part of a transaction: the failed run's end commits first, then its input is
    quarantined (moved, then recorded) as before."""
    transactions, seen, final = _ingest(workspace, "exit 3")
    assert final == ["quarantined"]
    ends = _with(transactions, "UPDATE runs SET state = 'failed'")
    assert len(ends) == 1 and not _with(ends, "UPDATE inputs SET state")
    assert [type(e).__name__ for e in seen if isinstance(e, RunFinished)] == ["RunFinished"]
