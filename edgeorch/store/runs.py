"""Runs and their tasks: tables ``runs`` and ``tasks``.

Contract:

- Each call that writes is one durable transaction (or a SAVEPOINT inside the
  caller's ``with store.transaction():``): :meth:`Runs.create` inserts the run,
  its pending tasks, its ``run_created`` event row and whatever ``within(run_id)``
  writes (a schedule watermark, an input's ``started`` state) together;
  :meth:`Runs.set_task_states` applies a whole cascade at once; a crash leaves
  the old state or the new.
- A run's state change writes its ``run_<state>`` event row in the same
  transaction and sets ``started_at``/``finished_at`` as the state implies.
- Attempts, leases and files of a run are other aggregates'
  (``store.attempts``, ``store.outputs``).
- Task state changes (:meth:`Runs.set_task_states`, :meth:`Runs.reset_tasks`)
  append one audit record per call (``task_states``, ``tasks_reset``) in their transaction.
"""

from __future__ import annotations

import json
from typing import Any, Callable, Mapping

from ..errors import NotFoundError
from ..model import RunState, TaskState
from .audit import write_audit
from .db import Database, where
from .events import write_event


class Runs:
    """``store.runs``: see the module docstring."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def create(
        self,
        *,
        pipeline: str,
        version_id: int,
        params: dict[str, Any],
        trigger: str,
        actor: str | None,
        run_dir_for: Callable[[int], str],
        tasks: list[tuple[str, str]],
        within: Callable[[int], None] | None = None,
        env: dict[str, str] | None = None,
        no_cache: bool = False,
        pipeline_file: str | None = None,
    ) -> int:
        """Insert a queued run and its pending tasks ``[(name, definition_hash)]`` atomically.

        ``within(run_id)`` runs inside the same transaction (a trigger records the
        schedule watermark or the input's ``started`` state with the run, or neither).
        ``no_cache``: the run uses no recorded result (every task runs). ``pipeline_file``: the file it was started
        from (None: its version's, :meth:`~.pipelines.PipelineStore.file_of_run`).
        """
        now = self._db.clock()
        with self._db.transaction():
            cur = self._db.conn.execute(
                "INSERT INTO runs (pipeline, pipeline_version_id, state, params, trigger, actor, run_dir, created_at,"
                " env, no_cache, pipeline_file) VALUES (?, ?, ?, ?, ?, ?, '', ?, ?, ?, ?)",
                (pipeline, version_id, RunState.QUEUED, json.dumps(params, sort_keys=True), trigger, actor, now,
                 json.dumps(env, sort_keys=True) if env else None, int(no_cache), pipeline_file),
            )
            run_id = int(cur.lastrowid)  # type: ignore[arg-type]
            self._db.conn.execute("UPDATE runs SET run_dir = ? WHERE id = ?", (run_dir_for(run_id), run_id))
            self._db.conn.executemany(
                "INSERT INTO tasks (run_id, name, state, definition_hash) VALUES (?, ?, ?, ?)",
                [(run_id, name, TaskState.PENDING, dh) for name, dh in tasks],
            )
            write_event(self._db, run_id, None, "run_created", f"run {run_id} of {pipeline} queued by {trigger}", actor, now)
            if within is not None:
                within(run_id)
        return run_id

    def next_id(self) -> int:
        """The id the next run created will get (ids only grow: the newest run is never deleted)."""
        return int(self._db.conn.execute("SELECT COALESCE(MAX(id), 0) + 1 FROM runs").fetchone()[0])

    def get(self, run_id: int) -> dict[str, Any]:
        """Run ``run_id``'s row. :class:`NotFoundError` when there is none; for a run a gc or the retention sweep
        removed, it says so, when and by whom (its ``runs_removed`` event), not only "no such run"."""
        row = self._db.one("SELECT * FROM runs WHERE id = ?", (run_id,))
        if row is None:
            removed = self._removal_of(run_id)
            if removed is not None:
                raise NotFoundError(f"run {run_id} was removed by {removed[1] or 'gc'} at {removed[0]}", value=run_id,
                                    hint="[retention] runs and `edgeorch gc` remove finished runs with their "
                                         "folders; `edgeorch runs` lists those there are")
            raise NotFoundError("no such run", value=run_id, hint="`edgeorch runs` lists the runs")
        return _decoded(dict(row))

    def _removal_of(self, run_id: int) -> tuple[str, str | None] | None:
        """``(when (UTC), actor)`` of the ``runs_removed`` event that names ``run_id``, newest first; None when none
        does. Read only on the not-found path (it looks through the removals' JSON)."""
        if run_id >= self.next_id():
            return None  # never created: no need to look
        row = self._db.one("SELECT datetime(e.ts, 'unixepoch') AS at, e.actor"
                           " FROM events e, json_each(e.data, '$.runs') r"
                           " WHERE e.kind = 'runs_removed' AND r.value = ? ORDER BY e.id DESC LIMIT 1", (run_id,))
        return (f"{row[0]} UTC", row[1]) if row is not None else None

    def resumed_at(self, run_ids: list[int]) -> dict[int, float]:
        """Run id -> when it last started running again after a resume (``edgeorch retry``), for the runs
        of ``run_ids`` that were resumed (each start is a ``run_running`` event; the first is not a
        resume). One query through the events' run index."""
        if not run_ids:
            return {}
        # The kind written as a literal: only then can SQLite use the partial index events_run_starts.
        return {r[0]: r[1] for r in self._db.conn.execute(
            "SELECT run_id, MAX(ts) FROM events WHERE run_id IN (SELECT value FROM json_each(?))"
            " AND kind = 'run_running' GROUP BY run_id HAVING COUNT(*) > 1", (json.dumps(run_ids),))}

    def set_pipeline_version(self, run_id: int, version_id: int, *, actor: str | None = None) -> None:
        """Make ``version_id`` the run's definition (a retry under the pipeline file as it is now), in the caller's
        transaction, with an audit record naming both versions and who asked (``actor``)."""
        old = self._db.one("SELECT pipeline_version_id FROM runs WHERE id = ?", (run_id,))
        self._db.conn.execute("UPDATE runs SET pipeline_version_id = ? WHERE id = ?", (version_id, run_id))
        write_audit(self._db, actor, "run_definition", f"run:{run_id}",
                    {"from_version": old[0] if old else None, "to_version": version_id})

    def set_state(self, run_id: int, state: RunState, *, reason: str | None = None, actor: str | None = None,
                  at: float | None = None) -> None:
        """Move a run to ``state``; sets started_at/finished_at as the state implies. ``at``: when a finished run
        really ended, if earlier than now (its last task ended while no engine ran); never before it started."""
        now = self._db.clock()
        with self._db.transaction():
            if state == RunState.RUNNING:
                self._db.conn.execute(
                    "UPDATE runs SET state = ?, started_at = COALESCE(started_at, ?), finished_at = NULL, reason = NULL WHERE id = ?",
                    (state, now, run_id),
                )
            elif state.finished:
                ended = now if at is None or at > now else at
                self._db.conn.execute("UPDATE runs SET state = ?, finished_at = MAX(COALESCE(started_at, ?), ?),"
                                      " reason = ? WHERE id = ?", (state, ended, ended, reason, run_id))
            else:  # queued again (a resume): a cancel of its last start is over
                self._db.conn.execute("UPDATE runs SET state = ?, finished_at = NULL, reason = ?, cancel_reason = NULL"
                                      " WHERE id = ?", (state, reason, run_id))
            write_event(self._db, run_id, None, f"run_{state}", reason or f"run {run_id} {state}", actor, now)

    def request_cancel(self, run_id: int, reason: str) -> None:
        """Keep run ``run_id``'s cancel (``cancel_reason``) until it is queued again: an engine that activates
        the run (a restart while its attempts were still stopping) stops them and starts nothing more."""
        self._db.conn.execute("UPDATE runs SET cancel_reason = ? WHERE id = ?", (reason, run_id))

    def active(self) -> list[dict[str, Any]]:
        """Runs that are queued or running (the engine resumes them at start)."""
        return self._db.all("SELECT * FROM runs WHERE state IN ('queued', 'running') ORDER BY id")

    def counts(self) -> dict[str, int]:
        """Runs per state, states with no run left out (for ``status``).

        Reads ``run_counts``, which triggers keep in the transaction of every
        insert, state change and delete of a run (migration 18): a few rows,
        whatever the size of the history.
        """
        return {r[0]: r[1] for r in self._db.conn.execute("SELECT state, n FROM run_counts WHERE n > 0 ORDER BY state")}

    def by_input(self) -> dict[int, int]:
        """Input id -> run id of every run whose trigger is ``input:<id>`` (one indexed range scan)."""
        out: dict[int, int] = {}
        for r in self._db.conn.execute("SELECT id, trigger FROM runs WHERE trigger >= 'input:' AND trigger < 'input;'"):
            try:
                out[int(str(r[1]).split(":", 1)[1])] = int(r[0])
            except ValueError:
                continue
        return out

    def tasks_of(self, run_id: int) -> list[dict[str, Any]]:
        return self._db.all("SELECT * FROM tasks WHERE run_id = ? ORDER BY id", (run_id,))

    def set_task_states(self, changes: list[tuple[int, TaskState, str | None]], *,
                        names: Mapping[int, tuple[int, str]] | None = None) -> None:
        """Apply ``[(task_id, state, reason)]`` in one transaction (a failure cascades atomically).

        ``names``: task id -> ``(run_id, name)`` for every changed task, when the caller holds them
        (the engine does); else they are looked up for the audit record.
        """
        if not changes:
            return
        now = self._db.clock()
        with self._db.transaction():
            self._audit_tasks("task_states", [(t, {"state": str(s), "reason": r}) for t, s, r in changes], now, names)
            for task_id, state, reason in changes:
                if state.finished:
                    self._db.conn.execute(
                        "UPDATE tasks SET state = ?, reason = ?, finished_at = ?, next_attempt_at = NULL WHERE id = ?",
                        (state, reason, now, task_id),
                    )
                else:
                    self._db.conn.execute(
                        "UPDATE tasks SET state = ?, reason = ?, finished_at = NULL WHERE id = ?", (state, reason, task_id)
                    )

    def reset_tasks(self, task_ids: list[int]) -> None:
        """Back to ``pending`` for a resume; attempts and history are kept. Each task's retries count again
        from here (``retries_from``: its charged attempts so far; settlement subtracts them)."""
        with self._db.transaction():
            self._audit_tasks("tasks_reset", [(t, {"state": str(TaskState.PENDING)}) for t in task_ids], self._db.clock())
            self._db.conn.executemany(
                "UPDATE tasks SET state = 'pending', reason = NULL, finished_at = NULL, next_attempt_at = NULL,"
                " cached_from = NULL, retries_from = (SELECT COUNT(*) FROM attempts a WHERE a.run_id = tasks.run_id"
                " AND a.task = tasks.name AND a.charged = 1) WHERE id = ?",  # through attempts_by_run
                [(t,) for t in task_ids],
            )

    def _audit_tasks(self, action: str, changes: list[tuple[int, dict[str, Any]]], now: float,
                     known: Mapping[int, tuple[int, str]] | None = None) -> None:
        """One audit record per run for task changes given by task id (names from ``known`` when it holds
        them all, else looked up: one indexed query)."""
        if not changes:
            return
        ids = [t for t, _ in changes]
        names: Mapping[int, tuple[int, str]]
        if known is not None and all(t in known for t in ids):
            names = known
        else:
            names = {}
            for i in range(0, len(ids), 500):  # under SQLite's limit on bound variables, however large the cascade
                chunk = ids[i:i + 500]
                names.update((r[0], (r[1], r[2])) for r in self._db.conn.execute(
                    f"SELECT id, run_id, name FROM tasks WHERE id IN ({','.join('?' * len(chunk))})", chunk))
        per_run: dict[int | None, dict[str, dict[str, Any]]] = {}
        for task_id, change in changes:
            run_id, name = names.get(task_id, (None, f"task#{task_id}"))
            per_run.setdefault(run_id, {})[name] = {k: v for k, v in change.items() if v is not None}
        for run_id, tasks in per_run.items():
            write_audit(self._db, None, action, f"run:{run_id}" if run_id is not None else "tasks", {"tasks": tasks},
                        ts=now)

    # Last in the class: a method named ``list`` would stand for ``list`` in the annotations after it.
    def list(self, *, limit: int = 20, pipeline: str | None = None, state: str | None = None) -> list[dict[str, Any]]:
        """Most recent first, with per-state task counts (``tasks``: state -> count).

        Two queries whatever ``limit`` is: the page of runs, then the task
        counts of all its runs at once (by the ``(run_id, name)`` index).
        """
        clause, args = where(pipeline=pipeline, state=state)
        rows = self._db.all(f"SELECT * FROM runs {clause} ORDER BY id DESC LIMIT ?", [*args, limit])
        by_id: dict[int, dict[str, int]] = {}
        for r in rows:
            _decoded(r)  # as get() gives a run: `runs --json` had env as a JSON string (or null), `show` a table
            r["tasks"] = by_id[r["id"]] = {}
        if rows:
            for run_id, task_state, n in self._db.conn.execute(
                    "SELECT run_id, state, COUNT(*) FROM tasks WHERE run_id IN (SELECT value FROM json_each(?))"
                    " GROUP BY run_id, state", (json.dumps(list(by_id)),)):
                by_id[run_id][task_state] = n
            resumed = self.resumed_at(list(by_id))
            for r in rows:
                r["resumed_at"] = resumed.get(r["id"])
        return rows


def _decoded(row: dict[str, Any]) -> dict[str, Any]:
    """A ``runs`` row as every reader gets it: ``params`` and ``env`` decoded (``env`` ``{}`` when none)."""
    row["params"] = json.loads(row["params"])
    row["env"] = json.loads(row["env"]) if row.get("env") else {}
    if "no_cache" in row:
        row["no_cache"] = bool(row["no_cache"])
    return row
