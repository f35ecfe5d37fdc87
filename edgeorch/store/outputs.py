"""What tasks produced: tables ``artifacts``, ``checkpoints``, ``task_results``; cache hits.

Contract:

- An attempt's files are recorded with its outcome (``store.attempts.finish``);
  this aggregate reads them and records cache hits.
- :meth:`Outputs.mark_cached` is one durable transaction: the task ``skipped``,
  the source attempt's artifacts recorded for this run (idempotent per run,
  task and source attempt) and the ``task_cached`` event row.
- :meth:`Outputs.find_cache_hit` finds the newest successful attempt with the
  same definition and input hashes.
- :meth:`Outputs.follow_moved_files`: an attempt's files moved to another
  folder (set aside before a later attempt of its task) keep true records:
  every row that names them (artifacts, cache hits' copies, model versions,
  lineage) names where they are now, in the caller's transaction.
"""

from __future__ import annotations

import json
from typing import Any

from .db import Database
from .events import write_event


class Outputs:
    """``store.outputs``: see the module docstring."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def mark_cached(self, task_id: int, run_id: int, task: str, input_hash: str, source_attempt: int,
                    artifacts: list[dict[str, Any]]) -> str:
        """Record a cache hit: task ``skipped``, the earlier attempt's artifacts and check results (a built-in
        check task's ``task_results`` rows) recorded for this run.

        The only place that records a cache hit's artifacts. Idempotent per
        (run, task, source attempt): a repeated hit in the same run (a resume)
        replaces its rows instead of adding more. ``artifacts`` must be the
        source attempt's own records (:meth:`artifacts_of_attempt`), never the
        copies other runs made of them; each names the file where this run finds
        it (its hard link in this run's folder, ``engine.files.own_links``, else
        the source's path). Returns the task's reason, ``cache hit: outputs of run 92 (train #1)``: the source
        named as the tables name it (an attempt's internal id, said before, looked like a run id).
        """
        now = self._db.clock()
        # Named as the tables name it: run 59's extract, attempt #1 (an attempt's internal id matched nothing shown).
        src = self._db.one("SELECT run_id, task, number FROM attempts WHERE id = ?", (source_attempt,))
        reason = (f"cache hit: outputs of run {src['run_id']} ({src['task']} #{src['number']})" if src is not None
                  else f"cache hit: outputs of attempt {source_attempt}")
        with self._db.transaction():
            self._db.conn.execute(
                "UPDATE tasks SET state = 'skipped', input_hash = ?, cached_from = ?, started_at = ?, finished_at = ?, reason = ? WHERE id = ?",
                (input_hash, source_attempt, now, now, reason, task_id),
            )
            # The rows of a set-aside earlier hit (under the run's attempts folder: a retry's `<task>.cached`) are
            # history and stay: a second hit of the same source in this run deleted them too.
            row = self._db.one("SELECT run_dir FROM runs WHERE id = ?", (run_id,))
            prefix = f"{row['run_dir']}/attempts/" if row is not None and row["run_dir"] else "\0"
            self._db.conn.execute("DELETE FROM artifacts WHERE run_id = ? AND task = ? AND attempt_id = ?"
                                  " AND substr(path, 1, length(?)) != ?", (run_id, task, source_attempt, prefix, prefix))
            self._db.conn.executemany(
                "INSERT INTO artifacts (run_id, task, attempt_id, name, path, size, sha256, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [(run_id, task, source_attempt, a["name"], a["path"], a["size"], a["sha256"], now) for a in artifacts],
            )
            # Its check results too (a built-in check task's rows): the run shows and rules read what it reuses.
            self._db.conn.execute("DELETE FROM task_results WHERE run_id = ? AND task = ? AND attempt_id = ?",
                                  (run_id, task, source_attempt))
            self._db.conn.execute(
                "INSERT INTO task_results (run_id, task, attempt_id, kind, column_name, metric, value, p_value,"
                " threshold, verdict, details) SELECT ?, task, attempt_id, kind, column_name, metric, value, p_value,"
                " threshold, verdict, details FROM task_results WHERE attempt_id = ?"
                " AND run_id = (SELECT run_id FROM attempts WHERE id = ?) ORDER BY id",
                (run_id, source_attempt, source_attempt))
            write_event(self._db, run_id, task, "task_cached", f"{task}: {reason}", None, now)
        return reason

    def follow_moved_files(self, attempt_id: int, old: str, new: str) -> int:
        """Rename, in every record that names a file of attempt ``attempt_id`` under folder ``old`` (the folder
        itself or a path inside it), that part of its path to ``new``: its artifact rows (its own run's and the
        copies cache hits made in other runs, which keep its id), the model versions registered from it, and
        the lineage rows of the tasks that consumed them (``source_attempt``). Returns how many artifact rows
        changed. Call it in the transaction whose commit stands for the move (the caller renames the folder
        inside it, so that a crash leaves the records and the files together, moved or not)."""
        def moved(path: str) -> str | None:
            if path == old:
                return new
            return new + path[len(old):] if path.startswith(old + "/") else None

        changed = 0
        with self._db.transaction():
            for table, column in (("artifacts", "attempt_id"), ("model_versions", "attempt_id"),
                                  ("consumed", "source_attempt")):
                rows = self._db.conn.execute(f"SELECT id, path FROM {table} WHERE {column} = ?", (attempt_id,)).fetchall()
                updates = [(to, rid) for rid, path in rows if (to := moved(str(path))) is not None]
                self._db.conn.executemany(f"UPDATE {table} SET path = ? WHERE id = ?", updates)
                if table == "artifacts":
                    changed = len(updates)
        return changed

    def last_success_before(self, pipeline: str, task: str, attempt_id: int) -> dict[str, Any] | None:
        """The newest successful attempt of ``pipeline``/``task`` older than ``attempt_id`` (what a cache lookup
        at that attempt's start could have reused, were its hashes the same), or None."""
        row = self._db.one(
            "SELECT a.* FROM attempts a JOIN runs r ON r.id = a.run_id WHERE r.pipeline = ? AND a.task = ?"
            " AND a.id < ? AND a.state = 'exited' AND a.exit_code = 0 ORDER BY a.id DESC LIMIT 1",
            (pipeline, task, attempt_id))
        return dict(row) if row else None

    def find_cache_hit(self, pipeline: str, task: str, definition_hash: str, input_hash: str) -> dict[str, Any] | None:
        """The newest successful attempt of ``pipeline``/``task`` with the same hashes, or None. Never one whose
        declared inputs changed while it ran (``inputs_moved``): what it made may come from the other version."""
        row = self._db.one(
            "SELECT a.* FROM attempts a JOIN runs r ON r.id = a.run_id"
            " WHERE r.pipeline = ? AND a.task = ? AND a.definition_hash = ? AND a.input_hash = ?"
            " AND a.state = 'exited' AND a.exit_code = 0 AND a.inputs_moved IS NULL ORDER BY a.id DESC LIMIT 1",
            (pipeline, task, definition_hash, input_hash),
        )
        return dict(row) if row else None

    def same_key_not_reused(self, pipeline: str, task: str, definition_hash: str, input_hash: str,
                            before: int) -> dict[str, Any] | None:
        """The newest successful attempt older than attempt ``before`` with these hashes that is never a cache hit
        (its declared inputs moved while it ran, ``inputs_moved``), or None: what ``why`` names of a miss."""
        row = self._db.one(
            "SELECT a.* FROM attempts a JOIN runs r ON r.id = a.run_id"
            " WHERE r.pipeline = ? AND a.task = ? AND a.definition_hash = ? AND a.input_hash = ? AND a.id < ?"
            " AND a.state = 'exited' AND a.exit_code = 0 AND a.inputs_moved IS NOT NULL ORDER BY a.id DESC LIMIT 1",
            (pipeline, task, definition_hash, input_hash, before))
        return dict(row) if row else None

    def artifacts_of(self, run_id: int, task: str | None = None) -> list[dict[str, Any]]:
        if task is None:
            return self._db.all("SELECT * FROM artifacts WHERE run_id = ? ORDER BY id", (run_id,))
        return self._db.all("SELECT * FROM artifacts WHERE run_id = ? AND task = ? ORDER BY id", (run_id, task))

    def artifacts_of_attempt(self, attempt_id: int) -> list[dict[str, Any]]:
        """The files ``attempt_id`` itself produced: its own run's records, not the copies cache hits made."""
        return self._db.all("SELECT * FROM artifacts WHERE attempt_id = ?"
                         " AND run_id = (SELECT run_id FROM attempts WHERE id = ?) ORDER BY id", (attempt_id, attempt_id))

    def latest_artifacts(self, run_id: int, task: str) -> list[dict[str, Any]]:
        """The artifacts of the task's latest successful outcome in this run (an attempt or a cache hit)."""
        return latest_outcome(self.artifacts_of(run_id, task))

    def latest_artifacts_of_run(self, run_id: int) -> dict[str, list[dict[str, Any]]]:
        """:meth:`latest_artifacts` of every task of the run that has any, by task name, in one query (a run
        document of 10,000 tasks reads them once, not once per task)."""
        by_task: dict[str, list[dict[str, Any]]] = {}
        for row in self.artifacts_of(run_id):
            by_task.setdefault(row["task"], []).append(row)
        return {task: latest_outcome(rows) for task, rows in by_task.items()}

    def checkpoints_of(self, run_id: int, task: str | None = None) -> list[dict[str, Any]]:
        if task is None:
            return self._db.all("SELECT * FROM checkpoints WHERE run_id = ? ORDER BY id", (run_id,))
        return self._db.all("SELECT * FROM checkpoints WHERE run_id = ? AND task = ? ORDER BY id", (run_id, task))

    def latest_checks(self, *, run_id: int | None = None, task: str | None = None) -> list[dict[str, Any]]:
        """The latest checked attempt of each pipeline's check tasks, with its result rows.

        "Checked": an attempt of a built-in ``kind`` task that returned a verdict
        (``attempts.verdict``: ok, warn or violation). One dict per result row,
        ordered by pipeline, task and row: ``pipeline``, ``task``,
        ``attempt_id``, ``attempt_verdict``, ``finished_at``, and the row's
        ``kind``, ``column_name``, ``metric``, ``value``, ``threshold``,
        ``verdict``; an attempt with no rows gives one dict whose row fields
        are None.

        Without arguments: every pipeline's tasks, one scan of ``attempts``
        (300,000 attempts: about 0.1 s; the metrics read it once, off the
        loop). With ``run_id`` and ``task``: only that task's latest checked
        attempt in that run, through the ``(run_id, task)`` index.
        """
        if run_id is None:
            latest = ("SELECT MAX(a.id) FROM attempts a JOIN runs r ON r.id = a.run_id"
                      " WHERE a.verdict IS NOT NULL GROUP BY r.pipeline, a.task")
            args: list[Any] = []
        else:
            latest = "SELECT MAX(id) FROM attempts WHERE run_id = ? AND task = ? AND verdict IS NOT NULL"
            args = [run_id, task]
        return self._db.all(
            "SELECT r.pipeline, a.task, a.id AS attempt_id, a.verdict AS attempt_verdict, a.finished_at,"
            " tr.kind, tr.column_name, tr.metric, tr.value, tr.threshold, tr.verdict"
            " FROM attempts a JOIN runs r ON r.id = a.run_id"
            " LEFT JOIN task_results tr ON tr.run_id = a.run_id AND tr.task = a.task AND tr.attempt_id = a.id"
            f" WHERE a.id IN ({latest}) ORDER BY r.pipeline, a.task, tr.id", args)

    def results_of(self, run_id: int, task: str | None = None) -> list[dict[str, Any]]:
        """Rows of built-in check tasks; only those of each task's latest attempt."""
        sql = ("SELECT * FROM task_results WHERE run_id = ? AND attempt_id IN"
               " (SELECT MAX(attempt_id) FROM task_results WHERE run_id = ? GROUP BY task)")
        args: list[Any] = [run_id, run_id]
        if task is not None:
            sql += " AND task = ?"
            args.append(task)
        rows = self._db.all(sql + " ORDER BY id", args)
        for r in rows:
            r["details"] = json.loads(r["details"]) if r["details"] else None
        return rows


def latest_outcome(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Of one task's artifact rows in id order, those its latest outcome recorded: the rows of the newest row's
    attempt and time (an outcome records its files at once; a cache hit records the source attempt's anew)."""
    if not rows:
        return []
    last = rows[-1]
    return [r for r in rows if r["attempt_id"] == last["attempt_id"] and r["created_at"] == last["created_at"]]
