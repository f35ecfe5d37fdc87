"""The ``events`` table: the history rows of runs, tasks and the daemon.

Contract:

- :meth:`Events.add` writes one row in its own transaction (a SAVEPOINT inside
  a caller's ``with store.transaction():``, so the row commits with the
  transition it describes), durably.
- :func:`write_event` is how the other aggregates add the row of a transition
  they record (``run_created``, ``run_<state>``, ``task_cached``,
  ``lease_granted``, ``pipeline_paused``...): inside *their* transaction, never
  one of its own.
- Rows are only appended (``store.retention.remove`` deletes those of the
  runs it removes); reads are newest first (:meth:`Events.recent`) or per
  run in order (:meth:`Events.of_run`).
- Every row is also an audit record (:func:`~edgeorch.store.audit.write_audit`),
  written in the same transaction: action = the row's kind, subject = its
  run/task or what its data names, actor = its actor (the engine when None).
"""

from __future__ import annotations

import json
from typing import Any

from ..audit.chain import event_subject
from .audit import write_audit
from .db import Database


def write_event(db: Database, run_id: int | None, task: str | None, kind: str, message: str, actor: str | None,
                ts: float, data: dict[str, Any] | None = None) -> None:
    """Insert one ``events`` row, and its audit record, on ``db``'s connection; the caller holds the transaction."""
    db.conn.execute(
        "INSERT INTO events (ts, run_id, task, kind, message, actor, data) VALUES (?, ?, ?, ?, ?, ?, ?)",
        (ts, run_id, task, kind, message, actor, json.dumps(data) if data else None),
    )
    write_audit(db, actor, kind, event_subject(run_id, task, data),
                {"message": message, "data": data} if data else {"message": message}, ts=ts)


class Events:
    """``store.events``: see the module docstring."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def add(self, kind: str, message: str, *, run_id: int | None = None, task: str | None = None,
            actor: str | None = None, data: dict[str, Any] | None = None, ts: float | None = None) -> None:
        """One row of ``events``; ``ts``: the published event's time (default: the store's clock)."""
        with self._db.transaction():
            write_event(self._db, run_id, task, kind, message, actor, self._db.clock() if ts is None else ts, data)

    def recent(self, limit: int = 50) -> list[dict[str, Any]]:
        return self._db.all("SELECT * FROM events ORDER BY id DESC LIMIT ?", (limit,))

    def of_run(self, run_id: int, kinds: tuple[str, ...] | None = None) -> list[dict[str, Any]]:
        """The run's events, oldest first; only those of ``kinds`` when given."""
        if kinds is None:
            return self._db.all("SELECT * FROM events WHERE run_id = ? ORDER BY id", (run_id,))
        return self._db.all(f"SELECT * FROM events WHERE run_id = ? AND kind IN ({', '.join('?' * len(kinds))})"
                            " ORDER BY id", (run_id, *kinds))

    def daemon_rows(self, kind: str, since: float) -> list[dict[str, Any]]:
        """Rows of ``kind`` tied to no run, written at or after ``since``, oldest first, ``data`` decoded.

        For state the daemon rebuilds from its own history at start (GPU drains
        since the machine booted). ``run_id IS NULL`` uses the run index.
        """
        rows = self._db.all("SELECT * FROM events WHERE run_id IS NULL AND kind = ? AND ts >= ? ORDER BY id",
                            (kind, since))
        for r in rows:
            r["data"] = json.loads(r["data"]) if r.get("data") else {}
        return rows
