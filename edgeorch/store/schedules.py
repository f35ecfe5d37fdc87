"""Schedule watermarks: table ``schedule_state`` (docs/triggers.md).

Contract:

- One row per scheduled pipeline: ``last_fire``, the ISO 8601 UTC time of the
  last fire that was handled (started, skipped or coalesced).
- :meth:`Schedules.set_last_fire` is its own durable transaction, or part of a
  caller's: inside the run's ``create`` (``within=``) the watermark moves with
  the run, or neither is recorded.
- :meth:`Schedules.forget` removes the row (the schedule went away while a
  daemon ran): back, it is a new schedule, after a restart too.
"""

from __future__ import annotations

from .db import Database


class Schedules:
    """``store.schedules``: see the module docstring."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def last_fire(self, pipeline: str) -> str | None:
        """The stored watermark (ISO 8601 UTC) of ``pipeline``'s schedule; None when never stored."""
        row = self._db.one("SELECT last_fire FROM schedule_state WHERE pipeline = ?", (pipeline,))
        return str(row[0]) if row else None

    def set_last_fire(self, pipeline: str, last_fire: str) -> None:
        """Store the watermark; inside a caller's transaction (the run's) it becomes part of it."""
        with self._db.transaction():
            self._db.conn.execute(
                "INSERT INTO schedule_state (pipeline, last_fire) VALUES (?, ?)"
                " ON CONFLICT(pipeline) DO UPDATE SET last_fire = excluded.last_fire", (pipeline, last_fire))

    def forget(self, pipeline: str) -> None:
        """Remove the watermark (one durable transaction): the schedule went away while a daemon ran, so when it
        comes back it counts its fires from then, as a new schedule does, whether or not a daemon restarted."""
        with self._db.transaction():
            self._db.conn.execute("DELETE FROM schedule_state WHERE pipeline = ?", (pipeline,))
