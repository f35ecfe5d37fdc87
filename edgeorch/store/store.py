"""The state file: the only module that writes SQL.

Contract:

- One :class:`Store` per process that writes (the engine's event loop, the
  one-writer rule); readers (the CLI with no daemon) open their own.
- Every state transition is one call here and one transaction
  (``BEGIN IMMEDIATE`` ... ``COMMIT``); a crash leaves the old state or the new.
- WAL mode with ``synchronous=FULL``: a committed transition survives power
  loss, which is the usual failure on edge machines.
- Timestamps are Unix seconds (float) from the injected clock.
"""

from __future__ import annotations

import json
import sqlite3
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

from ..errors import NotFoundError, StateError
from ..model import AttemptState, RunState, TaskState
from .schema import MIGRATIONS, SCHEMA_VERSION

BUSY_TIMEOUT_MS = 10_000


@dataclass(frozen=True)
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


class Store:
    """Typed access to the state file. See the module docstring for the contract."""

    def __init__(self, path: Path, *, clock: Callable[[], float] = time.time, readonly: bool = False) -> None:
        self.path = Path(path)
        self.clock = clock
        self.readonly = readonly
        self._depth = 0
        if readonly and not self.path.exists():
            raise StateError("no state file yet (nothing has run)", file=str(self.path))
        try:
            if not readonly:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            uri = f"file:{self.path}?mode=ro" if readonly else f"file:{self.path}"
            conn = sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False)
            conn.row_factory = sqlite3.Row
            conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            if not readonly:
                conn.execute("PRAGMA journal_mode = WAL")
                conn.execute("PRAGMA synchronous = FULL")
                conn.execute("PRAGMA foreign_keys = ON")
            version = conn.execute("PRAGMA user_version").fetchone()[0]
        except sqlite3.DatabaseError as exc:
            raise StateError(
                f"cannot open the state file: {exc}", file=str(self.path),
                expected="an edgeorch SQLite state file",
                hint="restore it from a backup, or move it away to start with empty state",
            ) from None
        self.conn = conn
        if version == 0 and not readonly:
            foreign = _table_names(conn)
            if foreign:
                raise StateError(
                    f"the file is an SQLite database but not an edgeorch state file (tables: {', '.join(foreign[:5])})",
                    file=str(self.path), hint="point [state] dir at another folder",
                )
        if version > SCHEMA_VERSION:
            raise StateError(
                f"the state file has schema version {version}, newer than this edgeorch ({SCHEMA_VERSION})",
                file=str(self.path), hint="upgrade edgeorch, or restore a backup made by this version",
            )
        if version < SCHEMA_VERSION:
            if readonly:
                raise StateError(f"the state file has an old schema version {version}; start the daemon once to migrate it",
                                 file=str(self.path))
            self._migrate(version)

    # -- plumbing ---------------------------------------------------------------

    def _migrate(self, version: int) -> None:
        try:
            for number in range(version, SCHEMA_VERSION):
                with self.transaction():
                    for statement in _statements(MIGRATIONS[number]):
                        self.conn.execute(statement)
                    self.conn.execute(f"PRAGMA user_version = {number + 1}")
        except sqlite3.DatabaseError as exc:
            raise StateError(f"cannot migrate the state file: {exc}", file=str(self.path)) from None

    @contextmanager
    def transaction(self, *, durable: bool = True) -> Iterator[sqlite3.Connection]:
        """One atomic unit: ``BEGIN IMMEDIATE``/``COMMIT``, or a SAVEPOINT when nested.

        ``durable=False`` commits without waiting for fsync (``synchronous=NORMAL``
        for this one commit): still atomic and crash-safe for the process, but the
        last such commits may be lost on power loss. Only for facts that are
        recorded durably elsewhere too (the shim's proc.json), to keep the
        per-task overhead low; the next durable commit syncs them as well.
        """
        if self.readonly:
            raise StateError("the state file is open read-only", file=str(self.path))
        if self._depth:
            name = f"sp{self._depth}"
            self.conn.execute(f"SAVEPOINT {name}")
            self._depth += 1
            try:
                yield self.conn
            except BaseException:
                self.conn.execute(f"ROLLBACK TO {name}")
                self.conn.execute(f"RELEASE {name}")
                raise
            else:
                self.conn.execute(f"RELEASE {name}")
            finally:
                self._depth -= 1
            return
        if not durable:
            self.conn.execute("PRAGMA synchronous = NORMAL")
        try:
            self.conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            raise StateError(f"cannot write the state file: {exc}", file=str(self.path)) from None
        self._depth = 1
        try:
            yield self.conn
        except BaseException as exc:
            if self.conn.in_transaction:
                self.conn.execute("ROLLBACK")
            if isinstance(exc, sqlite3.OperationalError):  # disk full, I/O error inside the transition
                raise StateError(f"cannot write the state file: {exc}", file=str(self.path)) from None
            raise
        else:
            try:
                self.conn.execute("COMMIT")
            except sqlite3.OperationalError as exc:  # disk full, I/O error: the transition did not happen
                if self.conn.in_transaction:
                    self.conn.execute("ROLLBACK")
                raise StateError(f"cannot write the state file: {exc}", file=str(self.path)) from None
        finally:
            self._depth = 0
            if not durable:
                self.conn.execute("PRAGMA synchronous = FULL")

    def close(self) -> None:
        self.conn.close()

    def integrity_check(self) -> str:
        """``PRAGMA integrity_check``: ``'ok'`` or the first problem."""
        return self.conn.execute("PRAGMA integrity_check").fetchone()[0]

    def _one(self, sql: str, args: Iterable[Any] = ()) -> sqlite3.Row | None:
        return self.conn.execute(sql, tuple(args)).fetchone()

    def _all(self, sql: str, args: Iterable[Any] = ()) -> list[dict[str, Any]]:
        return [dict(r) for r in self.conn.execute(sql, tuple(args)).fetchall()]

    # -- pipelines ----------------------------------------------------------------

    def record_pipeline_version(self, name: str, content_hash: str, source_file: str, source_text: str) -> int:
        """Id of the stored version with this content hash, inserting it when new."""
        row = self._one("SELECT id FROM pipeline_versions WHERE name = ? AND content_hash = ?", (name, content_hash))
        if row:
            return int(row[0])
        with self.transaction():
            cur = self.conn.execute(
                "INSERT INTO pipeline_versions (name, content_hash, source_file, source_text, created_at) VALUES (?, ?, ?, ?, ?)",
                (name, content_hash, source_file, source_text, self.clock()),
            )
            return int(cur.lastrowid)  # type: ignore[arg-type]

    def pipeline_version(self, version_id: int) -> dict[str, Any]:
        row = self._one("SELECT * FROM pipeline_versions WHERE id = ?", (version_id,))
        if row is None:
            raise NotFoundError("no such pipeline version", value=version_id)
        return dict(row)

    # -- runs -----------------------------------------------------------------------

    def create_run(
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
    ) -> int:
        """Insert a queued run and its pending tasks ``[(name, definition_hash)]`` atomically.

        ``within(run_id)`` runs inside the same transaction (a trigger records the
        schedule watermark or the input's ``started`` state with the run, or neither).
        """
        now = self.clock()
        with self.transaction():
            cur = self.conn.execute(
                "INSERT INTO runs (pipeline, pipeline_version_id, state, params, trigger, actor, run_dir, created_at, env)"
                " VALUES (?, ?, ?, ?, ?, ?, '', ?, ?)",
                (pipeline, version_id, RunState.QUEUED, json.dumps(params, sort_keys=True), trigger, actor, now,
                 json.dumps(env, sort_keys=True) if env else None),
            )
            run_id = int(cur.lastrowid)  # type: ignore[arg-type]
            self.conn.execute("UPDATE runs SET run_dir = ? WHERE id = ?", (run_dir_for(run_id), run_id))
            self.conn.executemany(
                "INSERT INTO tasks (run_id, name, state, definition_hash) VALUES (?, ?, ?, ?)",
                [(run_id, name, TaskState.PENDING, dh) for name, dh in tasks],
            )
            self._event(run_id, None, "run_created", f"run {run_id} of {pipeline} queued by {trigger}", actor, now)
            if within is not None:
                within(run_id)
        return run_id

    def get_run(self, run_id: int) -> dict[str, Any]:
        row = self._one("SELECT * FROM runs WHERE id = ?", (run_id,))
        if row is None:
            raise NotFoundError("no such run", value=run_id, hint="`edgeorch runs` lists the runs")
        out = dict(row)
        out["params"] = json.loads(out["params"])
        out["env"] = json.loads(out["env"]) if out.get("env") else {}
        return out

    def list_runs(self, *, limit: int = 20, pipeline: str | None = None, state: str | None = None) -> list[dict[str, Any]]:
        """Most recent first, with per-state task counts."""
        clause, args = _where(pipeline=pipeline, state=state)
        rows = self._all(f"SELECT * FROM runs {clause} ORDER BY id DESC LIMIT ?", [*args, limit])
        for r in rows:
            r["params"] = json.loads(r["params"])
            counts = self._all("SELECT state, COUNT(*) AS n FROM tasks WHERE run_id = ? GROUP BY state", (r["id"],))
            r["tasks"] = {c["state"]: c["n"] for c in counts}
        return rows

    def set_run_state(self, run_id: int, state: RunState, *, reason: str | None = None, actor: str | None = None) -> None:
        """Move a run to ``state``; sets started_at/finished_at as the state implies."""
        now = self.clock()
        with self.transaction():
            if state == RunState.RUNNING:
                self.conn.execute(
                    "UPDATE runs SET state = ?, started_at = COALESCE(started_at, ?), finished_at = NULL, reason = NULL WHERE id = ?",
                    (state, now, run_id),
                )
            elif state.finished:
                self.conn.execute("UPDATE runs SET state = ?, finished_at = ?, reason = ? WHERE id = ?", (state, now, reason, run_id))
            else:
                self.conn.execute("UPDATE runs SET state = ?, finished_at = NULL, reason = ? WHERE id = ?", (state, reason, run_id))
            self._event(run_id, None, f"run_{state}", reason or f"run {run_id} {state}", actor, now)

    def active_runs(self) -> list[dict[str, Any]]:
        """Runs that are queued or running (the engine resumes them at start)."""
        return self._all("SELECT * FROM runs WHERE state IN ('queued', 'running') ORDER BY id")

    # -- tasks ----------------------------------------------------------------------

    def tasks_of(self, run_id: int) -> list[dict[str, Any]]:
        return self._all("SELECT * FROM tasks WHERE run_id = ? ORDER BY id", (run_id,))

    def set_task_states(self, changes: list[tuple[int, TaskState, str | None]], *, run_id: int | None = None) -> None:
        """Apply ``[(task_id, state, reason)]`` in one transaction (a failure cascades atomically)."""
        if not changes:
            return
        now = self.clock()
        with self.transaction():
            for task_id, state, reason in changes:
                if state.finished:
                    self.conn.execute(
                        "UPDATE tasks SET state = ?, reason = ?, finished_at = ?, next_attempt_at = NULL WHERE id = ?",
                        (state, reason, now, task_id),
                    )
                else:
                    self.conn.execute(
                        "UPDATE tasks SET state = ?, reason = ?, finished_at = NULL WHERE id = ?", (state, reason, task_id)
                    )

    def reset_tasks(self, task_ids: list[int]) -> None:
        """Back to ``pending`` for a resume; attempts and history are kept."""
        with self.transaction():
            self.conn.executemany(
                "UPDATE tasks SET state = 'pending', reason = NULL, finished_at = NULL, next_attempt_at = NULL, cached_from = NULL WHERE id = ?",
                [(t,) for t in task_ids],
            )

    def mark_cached(self, task_id: int, run_id: int, task: str, input_hash: str, source_attempt: int,
                    artifacts: list[dict[str, Any]]) -> None:
        """Record a cache hit: task ``skipped``, the earlier attempt's artifacts recorded for this run.

        The only place that records a cache hit's artifacts. Idempotent per
        (run, task, source attempt): a repeated hit in the same run (a resume)
        replaces its rows instead of adding more. ``artifacts`` must be the
        source attempt's own records (:meth:`artifacts_of_attempt`), never the
        copies other runs made of them.
        """
        now = self.clock()
        with self.transaction():
            self.conn.execute(
                "UPDATE tasks SET state = 'skipped', input_hash = ?, cached_from = ?, started_at = ?, finished_at = ?, reason = ? WHERE id = ?",
                (input_hash, source_attempt, now, now, f"cache hit: outputs of attempt {source_attempt}", task_id),
            )
            self.conn.execute("DELETE FROM artifacts WHERE run_id = ? AND task = ? AND attempt_id = ?",
                              (run_id, task, source_attempt))
            self.conn.executemany(
                "INSERT INTO artifacts (run_id, task, attempt_id, name, path, size, sha256, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [(run_id, task, source_attempt, a["name"], a["path"], a["size"], a["sha256"], now) for a in artifacts],
            )
            self._event(run_id, task, "task_cached", f"{task}: cache hit (attempt {source_attempt})", None, now)

    # -- attempts -------------------------------------------------------------------

    def start_attempt(self, new: NewAttempt, lease: dict[str, Any] | None = None, lease_note: str | None = None) -> int:
        """Insert an attempt in ``starting`` and mark its task ``running``; returns the attempt id.

        ``lease`` (a :meth:`edgeorch.resources.Lease.to_dict`) is recorded in
        the same transaction, so an attempt never exists without the hardware
        it was promised (and a restart rebuilds it with :meth:`lease_of`);
        with ``lease_note`` a ``lease_granted`` event says what was granted.

        Called before the process is spawned, so a crash after the spawn finds
        the attempt (and its folder) and can adopt or abandon it. Committed
        without fsync: it must survive the engine's crash (it does), and after
        a power loss no process of the attempt survives either; the attempt's
        outcome is committed durably by :meth:`finish_attempt`, which syncs
        this record along with it.
        """
        now = self.clock()
        with self.transaction(durable=False):
            cur = self.conn.execute(
                "INSERT INTO attempts (task_id, run_id, task, number, state, started_at, log_path, attempt_dir, definition_hash, input_hash)"
                " VALUES (?, ?, ?, ?, 'starting', ?, ?, ?, ?, ?)",
                (new.task_id, new.run_id, new.task, new.number, now, new.log_path, new.attempt_dir, new.definition_hash, new.input_hash),
            )
            self.conn.execute(
                "UPDATE tasks SET state = 'running', attempts = ?, input_hash = ?, started_at = COALESCE(started_at, ?), next_attempt_at = NULL, reason = NULL WHERE id = ?",
                (new.number, new.input_hash, now, new.task_id),
            )
            attempt_id = int(cur.lastrowid)  # type: ignore[arg-type]
            if lease is not None:
                self._insert_lease(attempt_id, new.run_id, new.task, lease, now)
                if lease_note:
                    self._event(new.run_id, new.task, "lease_granted", f"{new.task}: attempt {new.number}: {lease_note}",
                                None, now, {"attempt_id": attempt_id, **lease})
            return attempt_id

    def _insert_lease(self, attempt_id: int, run_id: int, task: str, lease: dict[str, Any], now: float) -> None:
        gpus = [{"uuid": u, "memory": lease.get("gpu_memory", 0), "exclusive": lease.get("gpu_exclusive", False)}
                for u in lease.get("gpus", [])]
        self.conn.execute(
            "INSERT INTO leases (attempt_id, run_id, task, cores, gpus, memory, pool, lease, granted_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (attempt_id, run_id, task, json.dumps(lease.get("cpus", [])), json.dumps(gpus), int(lease.get("memory", 0)),
             lease.get("pool"), json.dumps(lease, sort_keys=True), now),
        )

    def lease_of(self, attempt_id: int) -> dict[str, Any] | None:
        """The lease recorded for an attempt (released or not), parsed; None when it had none."""
        row = self._one("SELECT lease FROM leases WHERE attempt_id = ?", (attempt_id,))
        return None if row is None else json.loads(row[0])

    def successful_durations(self, limit: int = 5000) -> list[tuple[str, str, float]]:
        """``(pipeline, task, seconds)`` of the latest ``limit`` successful attempts, oldest first.

        Feeds the scheduler's predicted durations (an exponentially weighted
        average, so old history barely counts) at engine start. Bounded so a
        long history does not slow start-up: 300,000 attempts took 0.65 s.
        """
        rows = self.conn.execute(
            "SELECT * FROM (SELECT a.id, r.pipeline, a.task, a.finished_at - a.started_at FROM attempts a"
            " JOIN runs r ON r.id = a.run_id WHERE a.state = 'exited' AND a.exit_code = 0 AND a.finished_at IS NOT NULL"
            " ORDER BY a.id DESC LIMIT ?) ORDER BY id",
            (limit,),
        ).fetchall()
        return [(p, t, float(d)) for _, p, t, d in rows]

    def attempt_running(self, attempt_id: int, *, pid: int, pid_start_time: int, pgid: int, shim_pid: int, shim_start_time: int) -> None:
        """Record the processes of a started attempt (never trust a bare pid after a restart).

        Not fsynced: the shim's proc.json holds the same facts for recovery.
        """
        with self.transaction(durable=False):
            self.conn.execute(
                "UPDATE attempts SET state = 'running', pid = ?, pid_start_time = ?, pgid = ?, shim_pid = ?, shim_start_time = ? WHERE id = ?",
                (pid, pid_start_time, pgid, shim_pid, shim_start_time, attempt_id),
            )

    def finish_attempt(
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
    ) -> None:
        """One transaction: the attempt's outcome, its task's next state, dependents, files recorded.

        ``task_change`` is ``(task_id, state, reason, next_attempt_at)``. ``charged=False``
        records a failure of edgeorch's own machinery, which does not count
        against the task's retries (:meth:`uncharged_attempts`).
        """
        now = self.clock()
        row = self._one("SELECT run_id, task FROM attempts WHERE id = ?", (attempt_id,))
        if row is None:
            raise NotFoundError("no such attempt", value=attempt_id)
        run_id, task = row
        task_id, tstate, treason, next_at = task_change
        with self.transaction():
            self.conn.execute(
                "UPDATE attempts SET state = ?, exit_code = ?, signal = ?, reason = ?, finished_at = ?, verdict = ?,"
                " charged = ? WHERE id = ?",
                (state, exit_code, signal, reason, finished_at or now, verdict, int(charged), attempt_id),
            )
            self.conn.execute(
                "UPDATE tasks SET state = ?, reason = ?, next_attempt_at = ?, finished_at = ? WHERE id = ?",
                (tstate, treason, next_at, now if tstate.finished else None, task_id),
            )
            # Released with the outcome: the hardware is free exactly when the attempt is over.
            self.conn.execute("UPDATE leases SET released_at = ? WHERE attempt_id = ? AND released_at IS NULL",
                              (now, attempt_id))
            if cascade:
                self.set_task_states(list(cascade))
            if artifacts:
                self.conn.executemany(
                    "INSERT INTO artifacts (run_id, task, attempt_id, name, path, size, sha256, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    [(run_id, task, attempt_id, a["name"], a["path"], a["size"], a["sha256"], now) for a in artifacts],
                )
            if checkpoints:
                self.conn.executemany(
                    "INSERT INTO checkpoints (run_id, task, attempt_id, name, size, sha256, recorded_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    [(run_id, task, attempt_id, c["name"], c["size"], c["sha256"], now) for c in checkpoints],
                )
            if results:
                self.conn.executemany(
                    "INSERT INTO task_results (run_id, task, attempt_id, kind, column_name, metric, value, p_value, threshold, verdict, details)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    [(run_id, task, attempt_id, r.get("kind", ""), r.get("column"), r.get("metric"), _num(r.get("value")),
                      _num(r.get("p_value")), _num(r.get("threshold")), r.get("verdict"),
                      json.dumps(r.get("details")) if r.get("details") is not None else None) for r in results],
                )

    def attempts_of(self, run_id: int, task: str | None = None) -> list[dict[str, Any]]:
        if task is None:
            return self._all("SELECT * FROM attempts WHERE run_id = ? ORDER BY id", (run_id,))
        return self._all("SELECT * FROM attempts WHERE run_id = ? AND task = ? ORDER BY number", (run_id, task))

    def uncharged_attempts(self, run_id: int) -> dict[str, int]:
        """Task name -> how many of its attempts in this run were lost to edgeorch's machinery (not retries)."""
        return {r["task"]: r["n"] for r in self._all(
            "SELECT task, COUNT(*) AS n FROM attempts WHERE run_id = ? AND charged = 0 GROUP BY task", (run_id,))}

    def live_attempts(self) -> list[dict[str, Any]]:
        """Attempts in ``starting`` or ``running``: what recovery must adopt or settle."""
        return self._all("SELECT * FROM attempts WHERE state IN ('starting', 'running') ORDER BY id")

    def find_cache_hit(self, pipeline: str, task: str, definition_hash: str, input_hash: str) -> dict[str, Any] | None:
        """The newest successful attempt of ``pipeline``/``task`` with the same hashes, or None."""
        row = self._one(
            "SELECT a.* FROM attempts a JOIN runs r ON r.id = a.run_id"
            " WHERE r.pipeline = ? AND a.task = ? AND a.definition_hash = ? AND a.input_hash = ?"
            " AND a.state = 'exited' AND a.exit_code = 0 ORDER BY a.id DESC LIMIT 1",
            (pipeline, task, definition_hash, input_hash),
        )
        return dict(row) if row else None

    # -- files ----------------------------------------------------------------------

    def artifacts_of(self, run_id: int, task: str | None = None) -> list[dict[str, Any]]:
        if task is None:
            return self._all("SELECT * FROM artifacts WHERE run_id = ? ORDER BY id", (run_id,))
        return self._all("SELECT * FROM artifacts WHERE run_id = ? AND task = ? ORDER BY id", (run_id, task))

    def artifacts_of_attempt(self, attempt_id: int) -> list[dict[str, Any]]:
        """The files ``attempt_id`` itself produced: its own run's records, not the copies cache hits made."""
        return self._all("SELECT * FROM artifacts WHERE attempt_id = ?"
                         " AND run_id = (SELECT run_id FROM attempts WHERE id = ?) ORDER BY id", (attempt_id, attempt_id))

    def latest_artifacts(self, run_id: int, task: str) -> list[dict[str, Any]]:
        """The artifacts of the task's latest successful outcome in this run (an attempt or a cache hit)."""
        row = self._one("SELECT MAX(id) FROM artifacts WHERE run_id = ? AND task = ?", (run_id, task))
        if row is None or row[0] is None:
            return []
        last = self._one("SELECT attempt_id, created_at FROM artifacts WHERE id = ?", (row[0],))
        assert last is not None
        return self._all(
            "SELECT * FROM artifacts WHERE run_id = ? AND task = ? AND attempt_id = ? AND created_at = ? ORDER BY id",
            (run_id, task, last[0], last[1]),
        )

    def checkpoints_of(self, run_id: int, task: str | None = None) -> list[dict[str, Any]]:
        if task is None:
            return self._all("SELECT * FROM checkpoints WHERE run_id = ? ORDER BY id", (run_id,))
        return self._all("SELECT * FROM checkpoints WHERE run_id = ? AND task = ? ORDER BY id", (run_id, task))

    def results_of(self, run_id: int, task: str | None = None) -> list[dict[str, Any]]:
        """Rows of built-in check tasks; only those of each task's latest attempt."""
        sql = ("SELECT * FROM task_results WHERE run_id = ? AND attempt_id IN"
               " (SELECT MAX(attempt_id) FROM task_results WHERE run_id = ? GROUP BY task)")
        args: list[Any] = [run_id, run_id]
        if task is not None:
            sql += " AND task = ?"
            args.append(task)
        rows = self._all(sql + " ORDER BY id", args)
        for r in rows:
            r["details"] = json.loads(r["details"]) if r["details"] else None
        return rows

    # -- pipelines paused by an operator ------------------------------------------------

    def set_paused(self, name: str, paused: bool, *, reason: str | None, actor: str | None) -> None:
        """Pause or resume a pipeline (new runs refused / schedules skipped while paused)."""
        now = self.clock()
        with self.transaction():
            self.conn.execute(
                "INSERT INTO pipeline_state (name, paused, reason, actor, changed_at) VALUES (?, ?, ?, ?, ?)"
                " ON CONFLICT(name) DO UPDATE SET paused = excluded.paused, reason = excluded.reason,"
                " actor = excluded.actor, changed_at = excluded.changed_at",
                (name, int(paused), reason, actor, now),
            )
            self._event(None, None, "pipeline_paused" if paused else "pipeline_resumed",
                        f"{name} {'paused' if paused else 'resumed'}" + (f": {reason}" if reason else ""), actor, now,
                        {"pipeline": name})

    def paused_pipelines(self) -> dict[str, dict[str, Any]]:
        """Name -> {reason, actor, changed_at} of every paused pipeline."""
        return {r["name"]: r for r in self._all("SELECT * FROM pipeline_state WHERE paused = 1")}

    def counts(self) -> dict[str, int]:
        """Runs per state (for status and STATUS= lines); one indexed query."""
        return {r["state"]: r["n"] for r in self._all("SELECT state, COUNT(*) AS n FROM runs GROUP BY state")}

    def recent_events(self, limit: int = 50) -> list[dict[str, Any]]:
        return self._all("SELECT * FROM events ORDER BY id DESC LIMIT ?", (limit,))

    # -- events ---------------------------------------------------------------------

    def add_event(self, kind: str, message: str, *, run_id: int | None = None, task: str | None = None,
                  actor: str | None = None, data: dict[str, Any] | None = None, ts: float | None = None) -> None:
        """One row of ``events``; ``ts``: the published event's time (default: the store's clock)."""
        with self.transaction():
            self._event(run_id, task, kind, message, actor, self.clock() if ts is None else ts, data)

    def _event(self, run_id: int | None, task: str | None, kind: str, message: str, actor: str | None, ts: float,
               data: dict[str, Any] | None = None) -> None:
        self.conn.execute(
            "INSERT INTO events (ts, run_id, task, kind, message, actor, data) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (ts, run_id, task, kind, message, actor, json.dumps(data) if data else None),
        )

    def events_of(self, run_id: int) -> list[dict[str, Any]]:
        return self._all("SELECT * FROM events WHERE run_id = ? ORDER BY id", (run_id,))

    # -- triggers: schedules (docs/triggers.md) -----------------------------------------

    def schedule_last_fire(self, pipeline: str) -> str | None:
        """The stored watermark (ISO 8601 UTC) of ``pipeline``'s schedule; None when never stored."""
        row = self._one("SELECT last_fire FROM schedule_state WHERE pipeline = ?", (pipeline,))
        return str(row[0]) if row else None

    def set_schedule_last_fire(self, pipeline: str, last_fire: str) -> None:
        """Store the watermark; inside a caller's transaction (the run's) it becomes part of it."""
        with self.transaction():
            self.conn.execute(
                "INSERT INTO schedule_state (pipeline, last_fire) VALUES (?, ?)"
                " ON CONFLICT(pipeline) DO UPDATE SET last_fire = excluded.last_fire", (pipeline, last_fire))

    # -- triggers: inputs (drop folders, docs/triggers.md) ------------------------------

    def record_input_intent(self, *, pipeline: str, folder: str, source: str, dev: int | None, ino: int | None,
                            size: int | None, inbox_for: Callable[[int], str]) -> int:
        """Step 1 of a claim: the ``claiming`` row (committed before the rename); returns its id."""
        now = self.clock()
        with self.transaction():
            cur = self.conn.execute(
                "INSERT INTO inputs (pipeline, watch_folder, source_name, source_path, dev, ino, size, state,"
                " arrived_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, 'claiming', ?, ?)",
                (pipeline, folder, Path(source).name, source, dev, ino, size, now, now))
            iid = int(cur.lastrowid)  # type: ignore[arg-type]
            self.conn.execute("UPDATE inputs SET inbox_path = ? WHERE id = ?", (inbox_for(iid), iid))
        return iid

    def record_input_adopted(self, *, pipeline: str, folder: str, inbox_path: str, size: int, sha256: str) -> int:
        """An inbox file no record named (crash between its rename and... never in practice): claimed now."""
        now = self.clock()
        with self.transaction():
            cur = self.conn.execute(
                "INSERT INTO inputs (pipeline, watch_folder, source_name, source_path, inbox_path, size, sha256, state,"
                " arrived_at, claimed_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, 'claimed', ?, ?, ?)",
                (pipeline, folder, Path(inbox_path).name, inbox_path, inbox_path, size, sha256, now, now, now))
            return int(cur.lastrowid)  # type: ignore[arg-type]

    def record_input_claimed(self, input_id: int, size: int, sha256: str) -> None:
        now = self.clock()
        with self.transaction():
            self.conn.execute("UPDATE inputs SET state = 'claimed', size = ?, sha256 = ?, claimed_at = ?, updated_at = ?"
                              " WHERE id = ?", (size, sha256, now, now, input_id))

    def record_input_started(self, input_id: int, run_id: int) -> None:
        """Step 4: called inside the run's transaction (``create_run(within=...)``)."""
        with self.transaction():
            self.conn.execute("UPDATE inputs SET state = 'started', run_id = ?, updated_at = ? WHERE id = ?",
                              (run_id, self.clock(), input_id))

    def record_input_refused(self, *, pipeline: str, folder: str, source: str, reason: str) -> int:
        now = self.clock()
        with self.transaction():
            cur = self.conn.execute(
                "INSERT INTO inputs (pipeline, watch_folder, source_name, source_path, state, reason, arrived_at,"
                " updated_at) VALUES (?, ?, ?, ?, 'refused', ?, ?, ?)",
                (pipeline, folder, Path(source).name, source, reason, now, now))
            return int(cur.lastrowid)  # type: ignore[arg-type]

    def record_input_state(self, input_id: int, state: str, reason: str | None = None,
                           inbox_path: str | None = None) -> None:
        with self.transaction():
            self.conn.execute("UPDATE inputs SET state = ?, reason = COALESCE(?, reason),"
                              " inbox_path = COALESCE(?, inbox_path), updated_at = ? WHERE id = ?",
                              (state, reason, inbox_path, self.clock(), input_id))

    def inputs_to_reconcile(self) -> list[dict[str, Any]]:
        return self._all("SELECT * FROM inputs WHERE state IN ('claiming', 'claimed', 'started') ORDER BY id")

    def input_records(self) -> list[tuple[Any, ...]]:
        """Every input, in every state, as just the columns recovery's ``reconcile`` reads, by id.

        Tuples ``(id, pipeline, state, source_path, inbox_path, dev, ino, sha256, run_id)``: one
        narrow scan instead of whole rows as dicts (recovery reads every record at each start).
        """
        return self.conn.execute("SELECT id, pipeline, state, source_path, inbox_path, dev, ino, sha256, run_id"
                                 " FROM inputs ORDER BY id").fetchall()

    def inputs_past_keep(self, states: Iterable[str], settled_before: float, *,
                         limit: int = 500) -> list[dict[str, Any]]:
        """Inputs in one of ``states`` whose last state change is older than ``settled_before`` and
        whose file is still kept (``inbox_path`` set, ``removed_at`` NULL): the retention rule's
        candidates, oldest first, at most ``limit``. Columns: id, state, inbox_path, run_id, source_name."""
        marks = ",".join("?" * len(states := list(states)))
        return self._all(f"SELECT id, state, inbox_path, run_id, source_name FROM inputs WHERE state IN ({marks})"
                         " AND inbox_path IS NOT NULL AND removed_at IS NULL AND updated_at < ?"
                         " ORDER BY updated_at, id LIMIT ?", [*states, settled_before, limit])

    def record_input_removed(self, input_id: int) -> None:
        """The retention rule removed the input's file: ``removed_at`` (state and path stay, for lineage)."""
        with self.transaction():
            self.conn.execute("UPDATE inputs SET removed_at = ? WHERE id = ?", (self.clock(), input_id))

    def runs_by_input(self) -> dict[int, int]:
        """Input id -> run id of every run whose trigger is ``input:<id>`` (one indexed range scan)."""
        out: dict[int, int] = {}
        for r in self.conn.execute("SELECT id, trigger FROM runs WHERE trigger >= 'input:' AND trigger < 'input;'"):
            try:
                out[int(str(r[1]).split(":", 1)[1])] = int(r[0])
            except ValueError:
                continue
        return out

    def processed_sha(self, pipeline: str, sha256: str, *, exclude: int | None = None) -> int | None:
        """Id of an input of ``pipeline`` with this content that started or ran (not quarantined); else None."""
        row = self._one("SELECT id FROM inputs WHERE pipeline = ? AND sha256 = ? AND state IN ('started', 'done')"
                        " AND id != ? ORDER BY id LIMIT 1", (pipeline, sha256, exclude or -1))
        return int(row[0]) if row else None

    def input_of_run(self, run_id: int) -> dict[str, Any] | None:
        row = self._one("SELECT * FROM inputs WHERE run_id = ?", (run_id,))
        return dict(row) if row else None

    def inputs_of_run(self, run_id: int) -> list[dict[str, Any]]:
        """Every input a run was started for (one in per_file mode, the batch in batch mode)."""
        return self._all("SELECT * FROM inputs WHERE run_id = ? ORDER BY id", (run_id,))

    def get_input(self, input_id: int) -> dict[str, Any]:
        row = self._one("SELECT * FROM inputs WHERE id = ?", (input_id,))
        if row is None:
            raise NotFoundError("no such input", value=input_id)
        return dict(row)

    def list_inputs(self, *, pipeline: str | None = None, state: str | None = None,
                    limit: int = 100) -> list[dict[str, Any]]:
        clause, args = _where(pipeline=pipeline, state=state)
        return self._all(f"SELECT * FROM inputs {clause} ORDER BY id DESC LIMIT ?", [*args, limit])

    def input_counts(self) -> dict[str, int]:
        return {r["state"]: r["n"] for r in self._all("SELECT state, COUNT(*) AS n FROM inputs GROUP BY state")}


def _where(**equal: Any) -> tuple[str, list[Any]]:
    """``("WHERE a = ? AND b = ?", [va, vb])`` for the filters that are set (falsy ones are skipped).

    Column names come from the callers' keyword names, never from user input.
    """
    cols = [(k, v) for k, v in equal.items() if v]
    if not cols:
        return "", []
    return "WHERE " + " AND ".join(f"{k} = ?" for k, _ in cols), [v for _, v in cols]


def _num(v: Any) -> float | None:
    if v is None or isinstance(v, bool):
        return None
    try:
        return float(v)
    except (TypeError, ValueError):
        return None


def _table_names(conn: sqlite3.Connection) -> list[str]:
    """The user tables of a database (SQLite's own ``sqlite_*`` tables left out)."""
    rows = conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\'"
                        " ORDER BY name")
    return [r[0] for r in rows]


def _statements(script: str) -> list[str]:
    """Split a migration script into complete SQL statements.

    A statement ends at a ``;`` only where SQLite's own parser says the text so
    far is complete (:func:`sqlite3.complete_statement`), so a ``;`` inside a
    string literal, a comment or a ``CREATE TRIGGER ... BEGIN ...; END`` body
    does not cut it. Text after the last complete statement is an error: a
    migration is never applied half.
    """
    statements: list[str] = []
    buf = ""
    for piece in script.split(";"):
        buf += piece + ";"
        if sqlite3.complete_statement(buf):
            body = buf.strip()
            if not _only_comments(body[:-1]):
                statements.append(body)
            buf = ""
    rest = buf[:-1].strip()  # the ';' added after the last piece
    if rest and not _only_comments(rest):
        raise ValueError(f"migration ends with an incomplete statement: {rest[:80]!r}")
    return statements


def _only_comments(text: str) -> bool:
    lines = [ln.strip() for ln in text.splitlines()]
    return all(not ln or ln.startswith("--") or ln == ";" for ln in lines)
