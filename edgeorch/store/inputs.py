"""Drop-folder inputs: table ``inputs`` (docs/triggers.md).

Contract:

- Each ``record_*`` call is one durable transaction, or a SAVEPOINT inside the
  caller's: a claim is ``record_intent`` (the ``claiming`` row, committed
  before the rename), ``record_claimed``, then ``record_started`` inside the
  run's own transaction (``store.runs.create(within=...)``), so an input is
  ``started`` exactly when its run exists.
- Rows are never deleted: a settled input keeps its state and path for
  lineage; the retention rule only sets ``removed_at`` (:meth:`Inputs.record_removed`).
- Each ``record_*`` call appends an audit record (``input_<state>``, actor
  ``watcher``: the drop-folder machinery) in its transaction.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any, Callable, Iterable

from ..errors import ConflictError, NotFoundError, UsageError
from ..model import InputState
from .audit import write_audit
from .db import Database, where

ACTOR = "watcher"
"""Who input transitions are recorded as in the audit log: the drop-folder service makes every one."""


class Inputs:
    """``store.inputs``: see the module docstring."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def record_intent(self, *, pipeline: str, folder: str, source: str, dev: int | None, ino: int | None,
                      size: int | None, inbox_for: Callable[[int], str], input_id: int | None = None,
                      mtime_ns: int | None = None) -> int:
        """Step 1 of a claim: the ``claiming`` row (committed before the rename); returns its id.

        ``inbox_for(id)`` names the input's inbox path (its claim folder, made for that id). ``input_id``:
        the id to give the row, when it is free (a claim folder was made for it ahead, off the loop: one
        insert, no update); when it is taken, the row gets a new id and ``inbox_for`` is asked again.
        """
        now = self._db.clock()
        columns = ("INSERT INTO inputs (id, pipeline, watch_folder, source_name, source_path, dev, ino, size, mtime_ns,"
                   " state, arrived_at, updated_at, inbox_path) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 'claiming', ?, ?, ?)")
        values = (pipeline, folder, Path(source).name, source, dev, ino, size, mtime_ns, now, now)
        with self._db.transaction():
            iid: int | None = None
            if input_id is not None:
                try:
                    self._db.conn.execute(columns, (input_id, *values, inbox_for(input_id)))
                    iid = input_id
                except sqlite3.IntegrityError:  # the id was taken meanwhile (only this statement is undone)
                    pass
            if iid is None:
                cur = self._db.conn.execute(columns, (None, *values, None))
                iid = int(cur.lastrowid)  # type: ignore[arg-type]
                self._db.conn.execute("UPDATE inputs SET inbox_path = ? WHERE id = ?", (inbox_for(iid), iid))
            write_audit(self._db, ACTOR, "input_claiming", f"input:{iid}",
                        {"pipeline": pipeline, "folder": folder, "source": source, "size": size}, ts=now)
        return iid

    def next_id(self) -> int:
        """The id the next input recorded will get, unless another is recorded first (rows are never deleted)."""
        return int(self._db.conn.execute("SELECT COALESCE(MAX(id), 0) + 1 FROM inputs").fetchone()[0])

    def record_adopted(self, *, pipeline: str, folder: str, inbox_path: str, size: int, sha256: str) -> int:
        """An inbox file no record named (crash between its rename and... never in practice): claimed now."""
        now = self._db.clock()
        with self._db.transaction():
            cur = self._db.conn.execute(
                "INSERT INTO inputs (pipeline, watch_folder, source_name, source_path, inbox_path, size, sha256, state,"
                " arrived_at, claimed_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, 'claimed', ?, ?, ?)",
                (pipeline, folder, Path(inbox_path).name, inbox_path, inbox_path, size, sha256, now, now, now))
            iid = int(cur.lastrowid)  # type: ignore[arg-type]
            write_audit(self._db, ACTOR, "input_adopted", f"input:{iid}",
                        {"pipeline": pipeline, "inbox_path": inbox_path, "size": size, "sha256": sha256}, ts=now)
            return iid

    def record_claimed(self, input_id: int, size: int, sha256: str) -> None:
        now = self._db.clock()
        with self._db.transaction():
            self._check_transition(input_id, InputState.CLAIMED)
            self._db.conn.execute("UPDATE inputs SET state = 'claimed', size = ?, sha256 = ?, claimed_at = ?,"
                                  " updated_at = ? WHERE id = ?", (size, sha256, now, now, input_id))
            write_audit(self._db, ACTOR, "input_claimed", f"input:{input_id}", {"size": size, "sha256": sha256}, ts=now)

    def record_content(self, input_id: int, size: int, sha256: str, reason: str) -> None:
        """The input's file now holds other bytes (repaired in quarantine, then retried): its size and sha256
        follow, with a record of the change (the duplicate check and lineage read the content that ran)."""
        now = self._db.clock()
        with self._db.transaction():
            row = self._db.conn.execute("SELECT size, sha256 FROM inputs WHERE id = ?", (input_id,)).fetchone()
            if row is None:
                raise NotFoundError(f"no input {input_id}")
            self._db.conn.execute("UPDATE inputs SET size = ?, sha256 = ?, updated_at = ? WHERE id = ?",
                                  (size, sha256, now, input_id))
            write_audit(self._db, ACTOR, "input_content_changed", f"input:{input_id}",
                        {"size": size, "sha256": sha256, "was_size": row[0], "was_sha256": row[1], "reason": reason},
                        ts=now)

    def record_started(self, input_id: int, run_id: int) -> None:
        """Step 4: called inside the run's transaction (``store.runs.create(within=...)``)."""
        with self._db.transaction():
            self._check_transition(input_id, InputState.STARTED, same_ok=True)
            # The reason goes: it said why the input waited, or why an earlier run failed (a retry brings it back).
            self._db.conn.execute("UPDATE inputs SET state = 'started', run_id = ?, reason = NULL, updated_at = ?"
                                  " WHERE id = ?", (run_id, self._db.clock(), input_id))
            write_audit(self._db, ACTOR, "input_started", f"input:{input_id}", {"run_id": run_id})

    def record_refused(self, *, pipeline: str, folder: str, source: str, reason: str) -> int:
        now = self._db.clock()
        with self._db.transaction():
            cur = self._db.conn.execute(
                "INSERT INTO inputs (pipeline, watch_folder, source_name, source_path, state, reason, arrived_at,"
                " updated_at) VALUES (?, ?, ?, ?, 'refused', ?, ?, ?)",
                (pipeline, folder, Path(source).name, source, reason, now, now))
            iid = int(cur.lastrowid)  # type: ignore[arg-type]
            write_audit(self._db, ACTOR, "input_refused", f"input:{iid}",
                        {"pipeline": pipeline, "folder": folder, "source": source, "reason": reason}, ts=now)
            return iid

    def record_state(self, input_id: int, state: InputState | str, reason: str | None = None,
                     inbox_path: str | None = None) -> None:
        """Move an input to ``state`` (one transaction); refused unless :data:`~edgeorch.model.INPUT_TRANSITIONS` allows it."""
        new = InputState(state)
        with self._db.transaction():
            self._check_transition(input_id, new)
            self._db.conn.execute("UPDATE inputs SET state = ?, reason = COALESCE(?, reason),"
                                  " inbox_path = COALESCE(?, inbox_path), updated_at = ? WHERE id = ?",
                                  (new.value, reason, inbox_path, self._db.clock(), input_id))
            write_audit(self._db, ACTOR, f"input_{new.value}", f"input:{input_id}",
                        {k: v for k, v in (("reason", reason), ("inbox_path", inbox_path)) if v is not None})

    def _check_transition(self, input_id: int, new: InputState, *, same_ok: bool = False) -> None:
        """The one place an input's state change is checked against the transition table.

        Raises :class:`ConflictError` for a move the table does not allow (the
        caller's view of the input is stale, e.g. a requeue racing a retry);
        the transaction rolls back, nothing is recorded. ``same_ok``: staying in
        ``new`` is allowed (recovery re-recording a run id).
        """
        row = self._db.conn.execute("SELECT state FROM inputs WHERE id = ?", (input_id,)).fetchone()
        if row is None:
            raise NotFoundError(f"no input {input_id}")
        old = InputState(row[0])
        if (same_ok and old == new) or InputState.can_transition(old, new):
            return
        raise ConflictError(f"input {input_id} cannot move from {old.value} to {new.value}",
                            expected=", ".join(sorted(s.value for s in _allowed(old))) or "nothing (a final state)")

    def prune(self, before: float, *, actor: str) -> int:
        """``[retention] inputs``: remove the records of settled inputs last changed before ``before`` whose run is
        gone (removed by retention, or never made) and of which no file is left (never claimed into the inbox,
        sent back to the drop folder, or its kept file removed: ``removed_at``); one audit record says how many.
        An input still holding a file in the inbox or quarantine is kept (a start would find that file with no
        record); so is one whose run is kept. Returns how many were removed."""
        with self._db.transaction():
            cur = self._db.conn.execute(
                "DELETE FROM inputs WHERE updated_at < ? AND state IN ('done', 'duplicate', 'quarantined', 'refused',"
                " 'vanished', 'lost', 'requeued')"
                " AND (run_id IS NULL OR NOT EXISTS (SELECT 1 FROM runs WHERE runs.id = inputs.run_id))"
                " AND (inbox_path IS NULL OR removed_at IS NOT NULL OR state IN ('refused', 'vanished', 'lost',"
                " 'requeued'))", (before,))
            removed = cur.rowcount
            if removed:
                write_audit(self._db, actor, "inputs_pruned", "inputs", {"count": removed, "before": before})
            return removed

    def record_removed(self, input_id: int) -> None:
        """The retention rule removed the input's file: ``removed_at`` (state and path stay, for lineage)."""
        with self._db.transaction():
            self._db.conn.execute("UPDATE inputs SET removed_at = ? WHERE id = ?", (self._db.clock(), input_id))
            write_audit(self._db, ACTOR, "input_removed", f"input:{input_id}", {"rule": "[inbox] keep"})

    def to_reconcile(self) -> list[dict[str, Any]]:
        return self._db.all("SELECT * FROM inputs WHERE state IN ('claiming', 'claimed', 'waiting', 'started') ORDER BY id")

    def records(self) -> list[tuple[Any, ...]]:
        """Every input, in every state, as just the columns recovery's ``reconcile`` reads, by id.

        Tuples ``(id, pipeline, state, source_path, inbox_path, dev, ino, sha256, run_id)``: one
        narrow scan instead of whole rows as dicts (recovery reads every record at each start).
        """
        return self._db.conn.execute("SELECT id, pipeline, state, source_path, inbox_path, dev, ino, sha256, run_id"
                                 " FROM inputs ORDER BY id").fetchall()

    def past_keep(self, states: Iterable[str], settled_before: float, *,
                         limit: int = 500, after: tuple[float, int] | None = None) -> list[dict[str, Any]]:
        """Inputs in one of ``states`` whose last state change is older than ``settled_before`` and
        whose file is still kept (``inbox_path`` set, ``removed_at`` NULL): the retention rule's
        candidates, oldest first, at most ``limit``, from after ``after`` (the ``(updated_at, id)``
        of the last row of the previous batch). Columns: id, state, inbox_path, run_id, source_name,
        updated_at."""
        marks = ",".join("?" * len(states := list(states)))
        since, args = ("", []) if after is None else (" AND (updated_at, id) > (?, ?)", list(after))
        return self._db.all(f"SELECT id, state, inbox_path, run_id, source_name, updated_at FROM inputs"
                         f" WHERE state IN ({marks}) AND inbox_path IS NOT NULL AND removed_at IS NULL"
                         f" AND updated_at < ?{since} ORDER BY updated_at, id LIMIT ?",
                         [*states, settled_before, *args, limit])

    def processed_sha(self, pipeline: str, sha256: str, *, exclude: int | None = None) -> dict[str, Any] | None:
        """The first input of ``pipeline`` with this content that is running (``started``) or ran (``done``);
        not a quarantined one, nor one whose run was cancelled (nothing processed it: a copy dropped later was
        skipped as "already processed"). Its ``id``, ``state`` and ``run_id``; None if there is none."""
        row = self._db.one("SELECT i.id, i.state, i.run_id FROM inputs i LEFT JOIN runs r ON r.id = i.run_id"
                           " WHERE i.pipeline = ? AND i.sha256 = ? AND i.state IN ('started', 'done') AND i.id != ?"
                           " AND (r.state IS NULL OR r.state != 'cancelled') ORDER BY i.id LIMIT 1",
                           (pipeline, sha256, exclude or -1))
        return dict(row) if row else None

    def waiting(self, pipeline: str | None = None) -> list[dict[str, Any]]:
        """Inputs ``waiting`` for their paused pipeline (of ``pipeline``, or every one), oldest first."""
        clause, args = where(pipeline=pipeline)
        return self._db.all(f"SELECT * FROM inputs {clause}{' AND' if clause else ' WHERE'} state = 'waiting'"
                            " ORDER BY id", args)

    def of_run(self, run_id: int) -> dict[str, Any] | None:
        row = self._db.one("SELECT * FROM inputs WHERE run_id = ?", (run_id,))
        return dict(row) if row else None

    def all_of_run(self, run_id: int) -> list[dict[str, Any]]:
        """Every input a run was started for (one in per_file mode, the batch in batch mode)."""
        return self._db.all("SELECT * FROM inputs WHERE run_id = ? ORDER BY id", (run_id,))

    def get(self, input_id: int) -> dict[str, Any]:
        row = self._db.one("SELECT * FROM inputs WHERE id = ?", (input_id,))
        if row is None:
            raise NotFoundError("no such input", value=input_id)
        return dict(row)

    def counts(self) -> dict[str, int]:
        return {r["state"]: r["n"] for r in self._db.all("SELECT state, COUNT(*) AS n FROM inputs GROUP BY state")}

    def unfinished_by_pipeline(self) -> list[tuple[str, str, int]]:
        """``(pipeline, state, count)`` of the inputs not in a final state (claiming, claimed, waiting, started).

        Reads only those rows through the ``state`` index, so its cost follows
        the inputs in flight, not the history (the metrics read it at every scrape).
        """
        unfinished = [s.value for s in InputState if not s.finished]
        marks = ", ".join("?" * len(unfinished))
        return [(r[0], r[1], r[2]) for r in self._db.conn.execute(
            f"SELECT pipeline, state, COUNT(*) FROM inputs WHERE state IN ({marks})"
            " GROUP BY pipeline, state ORDER BY pipeline, state", unfinished)]

    # Last in the class: a method named ``list`` would stand for ``list`` in the annotations after it.
    def list(self, *, pipeline: str | None = None, state: str | None = None,
                    limit: int = 100) -> list[dict[str, Any]]:
        """The newest inputs first. An unknown ``state`` is a :class:`UsageError` (a typo must not read as
        "nothing matches")."""
        if state and state not in InputState.__members__.values():
            raise UsageError("is not an input state", field="state", value=state,
                             expected=", ".join(s.value for s in InputState))
        clause, args = where(pipeline=pipeline, state=state)
        return self._db.all(f"SELECT * FROM inputs {clause} ORDER BY id DESC LIMIT ?", [*args, limit])


def _allowed(old: InputState) -> frozenset[InputState]:
    from ..model import INPUT_TRANSITIONS

    return INPUT_TRANSITIONS[old]
