"""Attempts and their leases: tables ``attempts`` and ``leases``.

Contract:

- :meth:`Attempts.start` is one transaction: the attempt in ``starting``, its
  task ``running``, and its lease (with a ``lease_granted`` event row) when it
  has one; committed without fsync (see its docstring), because the outcome is
  committed durably by :meth:`Attempts.finish`, which syncs it too.
- :meth:`Attempts.set_running` records the processes, also without fsync (the
  shim's proc.json holds the same facts for recovery).
- :meth:`Attempts.finish` is one durable transaction: the outcome, the task's
  next state, the cascade to dependents (``store.runs.set_task_states``), the
  lease released, and the files recorded (artifacts, checkpoints, check results).
- Starting and finishing an attempt each append an audit record
  (``attempt_started``, ``attempt_ended``) in that transaction; recording the
  processes (:meth:`Attempts.set_running`) does not (no state a reader acts on changes).
"""

from __future__ import annotations

import json
from typing import Any

from ..errors import NotFoundError
from ..model import AttemptState, TaskState
from ..records import frozen
from .audit import write_audit
from .db import Database
from .events import write_event
from .runs import Runs


@frozen
class NewAttempt:
    """What the engine knows about an attempt before its process exists."""

    task_id: int
    run_id: int
    task: str
    number: int
    log_path: str
    attempt_dir: str
    definition_hash: str
    input_hash: str


class Attempts:
    """``store.attempts``: see the module docstring."""

    def __init__(self, db: Database, runs: Runs) -> None:
        self._db = db
        self._runs = runs  # a finished attempt's cascade goes through the runs aggregate

    def start(self, new: NewAttempt, lease: dict[str, Any] | None = None, lease_note: str | None = None) -> int:
        """Insert an attempt in ``starting`` and mark its task ``running``; returns the attempt id.

        ``lease`` (a :meth:`edgeorch.resources.Lease.to_dict`) is recorded in
        the same transaction, so an attempt never exists without the hardware
        it was promised (and a restart rebuilds it with :meth:`lease_of`);
        with ``lease_note`` a ``lease_granted`` event says what was granted.

        Called before the process is spawned, so a crash after the spawn finds
        the attempt (and its folder) and can adopt or abandon it. Committed
        without fsync: it must survive the engine's crash (it does), and after
        a power loss no process of the attempt survives either; the attempt's
        outcome is committed durably by :meth:`finish`, which syncs
        this record along with it.
        """
        now = self._db.clock()
        with self._db.transaction(durable=False):
            cur = self._db.conn.execute(
                "INSERT INTO attempts (task_id, run_id, task, number, state, started_at, log_path, attempt_dir, definition_hash, input_hash)"
                " VALUES (?, ?, ?, ?, 'starting', ?, ?, ?, ?, ?)",
                (new.task_id, new.run_id, new.task, new.number, now, new.log_path, new.attempt_dir, new.definition_hash, new.input_hash),
            )
            self._db.conn.execute(
                "UPDATE tasks SET state = 'running', attempts = ?, input_hash = ?, started_at = COALESCE(started_at, ?), next_attempt_at = NULL, reason = NULL WHERE id = ?",
                (new.number, new.input_hash, now, new.task_id),
            )
            attempt_id = int(cur.lastrowid)  # type: ignore[arg-type]
            write_audit(self._db, None, "attempt_started", f"run:{new.run_id}/{new.task}",
                        {"attempt": new.number, "attempt_id": attempt_id, "input_hash": new.input_hash}, ts=now)
            if lease is not None:
                self._insert_lease(attempt_id, new.run_id, new.task, lease, now)
                if lease_note:
                    write_event(self._db, new.run_id, new.task, "lease_granted",
                                f"{new.task}: attempt {new.number}: {lease_note}", None, now,
                                {"attempt_id": attempt_id, **lease})
            return attempt_id

    def _insert_lease(self, attempt_id: int, run_id: int, task: str, lease: dict[str, Any], now: float) -> None:
        gpus = [{"uuid": u, "memory": lease.get("gpu_memory", 0), "exclusive": lease.get("gpu_exclusive", False)}
                for u in lease.get("gpus", [])]
        self._db.conn.execute(
            "INSERT INTO leases (attempt_id, run_id, task, cores, gpus, memory, pool, lease, granted_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (attempt_id, run_id, task, json.dumps(lease.get("cpus", [])), json.dumps(gpus), int(lease.get("memory", 0)),
             lease.get("pool"), json.dumps(lease, sort_keys=True), now),
        )

    def set_running(self, attempt_id: int, *, pid: int, pid_start_time: int, pgid: int, shim_pid: int, shim_start_time: int) -> None:
        """Record the processes of a started attempt (never trust a bare pid after a restart).

        Not fsynced: the shim's proc.json holds the same facts for recovery.
        """
        with self._db.transaction(durable=False):
            self._db.conn.execute(
                "UPDATE attempts SET state = 'running', pid = ?, pid_start_time = ?, pgid = ?, shim_pid = ?, shim_start_time = ? WHERE id = ?",
                (pid, pid_start_time, pgid, shim_pid, shim_start_time, attempt_id),
            )

    def finish(
        self,
        attempt_id: int,
        *,
        state: AttemptState,
        exit_code: int | None,
        signal: int | None,
        reason: str | None,
        task_change: tuple[int, TaskState, str | None, float | None],
        cascade: list[tuple[int, TaskState, str | None]] = (),  # type: ignore[assignment]
        artifacts: list[dict[str, Any]] = (),  # type: ignore[assignment]
        checkpoints: list[dict[str, Any]] = (),  # type: ignore[assignment]
        results: list[dict[str, Any]] = (),  # type: ignore[assignment]
        verdict: str | None = None,
        finished_at: float | None = None,
        charged: bool = True,
        leased: bool = True,
        inputs_moved: str | None = None,
    ) -> None:
        """One transaction: the attempt's outcome, its task's next state, dependents, files recorded.

        ``task_change`` is ``(task_id, state, reason, next_attempt_at)``. ``charged=False``
        records a failure of edgeorch's own machinery, which does not count
        against the task's retries (:meth:`uncharged`). ``leased=False``: :meth:`start` recorded no lease
        row for it (it held nothing), so there is none to release. ``inputs_moved``: a declared input that changed
        while it ran (its path): the attempt is never a cache hit (:meth:`~.outputs.Outputs.find_cache_hit`).
        """
        now = self._db.clock()
        task_id, tstate, treason, next_at = task_change
        with self._db.transaction():
            row = self._db.conn.execute(
                "UPDATE attempts SET state = ?, exit_code = ?, signal = ?, reason = ?, finished_at = ?, verdict = ?,"
                " charged = ?, inputs_moved = ? WHERE id = ? RETURNING run_id, task",
                (state, exit_code, signal, reason, finished_at or now, verdict, int(charged), inputs_moved, attempt_id),
            ).fetchone()
            if row is None:
                raise NotFoundError("no such attempt", value=attempt_id)
            run_id, task = row
            self._db.conn.execute(
                "UPDATE tasks SET state = ?, reason = ?, next_attempt_at = ?, finished_at = ? WHERE id = ?",
                (tstate, treason, next_at, now if tstate.finished else None, task_id),
            )
            if leased:  # released with the outcome: the hardware is free exactly when the attempt is over
                self._db.conn.execute("UPDATE leases SET released_at = ? WHERE attempt_id = ? AND released_at IS NULL",
                                      (now, attempt_id))
            write_audit(self._db, None, "attempt_ended", f"run:{run_id}/{task}",
                        {"attempt_id": attempt_id, "state": str(state), "exit_code": exit_code, "signal": signal,
                         "reason": reason, "task_state": str(tstate), "artifacts": len(artifacts),
                         "charged": charged}, ts=now)
            if cascade:
                self._runs.set_task_states(list(cascade))
            if artifacts:
                self._db.conn.executemany(
                    "INSERT INTO artifacts (run_id, task, attempt_id, name, path, size, sha256, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    [(run_id, task, attempt_id, a["name"], a["path"], a["size"], a["sha256"], now) for a in artifacts],
                )
            if checkpoints:
                self._db.conn.executemany(
                    "INSERT INTO checkpoints (run_id, task, attempt_id, name, size, sha256, recorded_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    [(run_id, task, attempt_id, c["name"], c["size"], c["sha256"], now) for c in checkpoints],
                )
            if results:
                self._db.conn.executemany(
                    "INSERT INTO task_results (run_id, task, attempt_id, kind, column_name, metric, value, p_value, threshold, verdict, details)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    [(run_id, task, attempt_id, r.get("kind", ""), r.get("column"), r.get("metric"), _num(r.get("value")),
                      _num(r.get("p_value")), _num(r.get("threshold")), r.get("verdict"), _details_text(r))
                     for r in results],
                )

    def exists(self, attempt_id: int) -> bool:
        """Whether attempt ``attempt_id`` is still recorded (its run may have been removed by ``edgeorch gc``)."""
        return self._db.one("SELECT 1 FROM attempts WHERE id = ?", (attempt_id,)) is not None

    def of_run(self, run_id: int, task: str | None = None) -> list[dict[str, Any]]:
        if task is None:
            return self._db.all("SELECT * FROM attempts WHERE run_id = ? ORDER BY id", (run_id,))
        return self._db.all("SELECT * FROM attempts WHERE run_id = ? AND task = ? ORDER BY number", (run_id, task))

    def uncharged(self, run_id: int) -> dict[str, int]:
        """Task name -> how many of its attempts in this run were lost to edgeorch's machinery (not retries)."""
        return {r["task"]: r["n"] for r in self._db.all(
            "SELECT task, COUNT(*) AS n FROM attempts WHERE run_id = ? AND charged = 0 GROUP BY task", (run_id,))}

    def live(self) -> list[dict[str, Any]]:
        """Attempts in ``starting`` or ``running``: what recovery must adopt or settle."""
        return self._db.all("SELECT * FROM attempts WHERE state IN ('starting', 'running') ORDER BY id")

    def live_of_run(self, run_id: int) -> list[dict[str, Any]]:
        """The run's attempts in ``starting`` or ``running`` (read through the live index: a run's finished
        attempts, thousands in a big run, are not read)."""
        # ``+run_id``: not through attempts_by_run, which would visit every attempt of the run; the partial
        # index attempts_live holds only the live ones (a few, whatever the history).
        return self._db.all("SELECT * FROM attempts WHERE state IN ('starting', 'running') AND +run_id = ? ORDER BY id",
                            (run_id,))

    def lease_of(self, attempt_id: int) -> dict[str, Any] | None:
        """The lease recorded for an attempt (released or not), parsed; None when it had none."""
        row = self._db.one("SELECT lease FROM leases WHERE attempt_id = ?", (attempt_id,))
        return None if row is None else json.loads(row[0])

    def successful_durations(self, limit: int = 5000) -> list[tuple[str, str, float]]:
        """``(pipeline, task, seconds)`` of the latest ``limit`` successful attempts, oldest first.

        Feeds the scheduler's predicted durations (an exponentially weighted
        average, so old history barely counts) at engine start. Bounded so a
        long history does not slow start-up: 300,000 attempts took 0.65 s.
        """
        rows = self._db.conn.execute(
            "SELECT * FROM (SELECT a.id, r.pipeline, a.task, a.finished_at - a.started_at FROM attempts a"
            " JOIN runs r ON r.id = a.run_id WHERE a.state = 'exited' AND a.exit_code = 0 AND a.finished_at IS NOT NULL"
            " ORDER BY a.id DESC LIMIT ?) ORDER BY id",
            (limit,),
        ).fetchall()
        return [(p, t, float(d)) for _, p, t, d in rows]



def _details_text(row: dict[str, Any]) -> str | None:
    """A result row's ``details`` as stored: JSON, with its ``value`` and ``threshold`` added when they are not
    numbers (a type check's ``"float"``, a range's ``[0, 100]``): the numeric columns hold NULL for those, and
    ``show`` prints them from here. None when there is nothing to keep."""
    details = dict(row.get("details") or {})
    for key in ("value", "threshold"):
        if row.get(key) is not None and _num(row[key]) is None and key not in details:
            details[key] = row[key]
    return json.dumps(details) if details or row.get("details") is not None else None


def _num(v: Any) -> float | None:
    if v is None or isinstance(v, bool):
        return None
    try:
        return float(v)
    except (TypeError, ValueError):
        return None
