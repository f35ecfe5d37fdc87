"""Removing old runs: which runs are past a bound, what holds them, and their rows deleted.

Contract:

- Reads only, except :meth:`Retention.remove`, which is one durable
  transaction: every row of the given runs in :data:`RUN_TABLES` (children
  first), the ``runs`` rows, and one ``runs_removed`` event row. A crash
  leaves all of them or none. Only runs that are finished *at commit time*
  are removed, whatever the caller planned (a plan made a moment earlier may
  be stale: a ``retry`` queues a finished run again).
- It also notes, in the same transaction and before the ``consumed`` rows
  go, which data versions the removed runs read (``dataset_readers_gone``,
  :func:`edgeorch.store.lineage.note_readers_gone`): lineage then says those
  readers were removed, not "nothing recorded".
- Rows that outlive their run on purpose (:data:`KEPT_TABLES`): the
  ``inputs`` history (its ``run_id`` then names a removed run; duplicate
  detection by sha256 needs the record), ``dataset_versions``, ``model_versions``
  and ``model_observations`` (a model's history outlives the runs that made it),
  ``privacy_spends`` (removing a spend would refund privacy budget already spent),
  ``rule_firings`` (a rule's firings count towards its daily maximum and explain its history),
  ``dataset_readers_gone`` (written by the removal itself: its ``run_id`` names a removed run by design),
  ``pipeline_versions`` and the audit log (the ``runs_removed`` event row
  appends its own audit record).
- Run id lists are passed to SQLite as one JSON array (``json_each``), so a
  sweep of many runs never meets the bound-variable limit.
- What the files of a run are, and removing them, is not the store's:
  ``edgeorch/retention/folders.py``.
"""

from __future__ import annotations

import json
from typing import Any, Iterable

from ..model import RunState
from .datasets import LIVE
from .db import Database
from .events import write_event
from .lineage import note_readers_gone

RUN_TABLES: tuple[str, ...] = ("leases", "task_results", "checkpoints", "artifacts", "consumed", "attempts", "tasks",
                               "events")
"""Every table whose rows belong to one run (``run_id``), in deletion order (children before parents)."""
KEPT_TABLES: tuple[str, ...] = ("inputs", "dataset_versions", "model_versions", "model_observations",
                                "privacy_spends", "rule_firings", "dataset_readers_gone")
"""Tables with a ``run_id`` column whose rows stay when their run is removed (see the module docstring); a
live dataset version made from a run's outputs holds that run (``edgeorch/retention/holds.py``); a pruned one
holds nothing (its content is gone), and its row may then name a removed run (lineage says ``run_gone``)."""
FINISHED_STATES: tuple[str, ...] = tuple(s.value for s in RunState if s.finished)
"""The run states a run may be removed in (the model's one rule)."""

_IDS = "(SELECT value FROM json_each(?))"


def _ids(run_ids: Iterable[int]) -> str:
    return json.dumps(sorted({int(r) for r in run_ids}))


class Retention:
    """``store.retention``: see the module docstring."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def older_than(self, cutoff: float, *, pipeline: str | None = None, before: int | None = None,
                   limit: int | None = None) -> list[dict[str, Any]]:
        """Runs whose age passed ``cutoff``, newest id first: finished before it, or (never finished) created before it.

        Whatever their state: an old run still queued or running is a candidate that the
        ``active`` hold keeps, so a report can say why it stays. ``before`` and ``limit`` page
        through them (ids below ``before``, at most ``limit``). Newest first, so that a gc
        done page by page decides a run before the older runs its cache hits point into.
        """
        sql = ("SELECT id, pipeline, state, created_at, finished_at, run_dir FROM runs"
               " WHERE COALESCE(finished_at, created_at) < ?")
        args: list[Any] = [cutoff]
        if before is not None:
            sql += " AND id < ?"
            args.append(before)
        if pipeline is not None:
            sql += " AND pipeline = ?"
            args.append(pipeline)
        sql += " ORDER BY id DESC"
        if limit is not None:
            sql += " LIMIT ?"
            args.append(limit)
        return self._db.all(sql, args)

    def active(self, run_ids: Iterable[int]) -> list[dict[str, Any]]:
        """Of ``run_ids``, those not finished or with an attempt or a lease still live: ``run_id``, ``state``, ``live``."""
        ids = _ids(run_ids)
        return self._db.all(
            f"SELECT r.id AS run_id, r.state,"
            f" (SELECT COUNT(*) FROM attempts a WHERE a.run_id = r.id AND a.state IN ('starting', 'running'))"
            f" + (SELECT COUNT(*) FROM leases l WHERE l.run_id = r.id AND l.released_at IS NULL) AS live"
            f" FROM runs r WHERE r.id IN {_IDS}", (ids,))

    def latest(self, count: int, run_ids: Iterable[int]) -> list[dict[str, Any]]:
        """Of ``run_ids``, those among the ``count`` newest runs (by id) of their pipeline: ``run_id``, ``pipeline``, ``rank``."""
        if count <= 0:
            return []
        return self._db.all(
            f"SELECT id AS run_id, pipeline, rank FROM"
            f" (SELECT id, pipeline, ROW_NUMBER() OVER (PARTITION BY pipeline ORDER BY id DESC) AS rank FROM runs"
            f"  WHERE pipeline IN (SELECT pipeline FROM runs WHERE id IN {_IDS}))"
            f" WHERE rank <= ? AND id IN {_IDS}", (_ids(run_ids), count, _ids(run_ids)))

    def reused_by(self, run_ids: Iterable[int]) -> list[dict[str, Any]]:
        """Which other runs reuse files or attempts of ``run_ids`` (cache hits): ``run_id``, ``user``, ``task``.

        Two records point into another run: a cached task's ``cached_from`` (the source
        attempt) and artifact rows whose ``attempt_id`` is another run's attempt (the files
        live in that run's folder; rows of a task rerun later by a retry stay as history
        and still name them).
        """
        ids = _ids(run_ids)
        return self._db.all(
            f"SELECT DISTINCT a.run_id AS run_id, t.run_id AS user, t.name AS task"
            f" FROM attempts a JOIN tasks t ON t.cached_from = a.id"
            f" WHERE a.run_id IN {_IDS} AND t.run_id != a.run_id"
            f" UNION"
            f" SELECT DISTINCT a.run_id, f.run_id, f.task FROM attempts a JOIN artifacts f ON f.attempt_id = a.id"
            f" WHERE a.run_id IN {_IDS} AND f.run_id != a.run_id"
            f" ORDER BY 1, 2, 3", (ids, ids))

    def consumed_from(self, run_ids: Iterable[int]) -> list[dict[str, Any]]:
        """Which other runs recorded consuming outputs of ``run_ids`` (lineage, ``consumed``): ``run_id``, ``user``, ``task``.

        A consumed row names its producer by ``source_attempt`` (for a cache hit's outputs, an
        attempt of the run that made them) and ``source_run``.
        """
        ids = _ids(run_ids)
        return self._db.all(
            f"SELECT DISTINCT a.run_id AS run_id, c.run_id AS user, c.task AS task"
            f" FROM consumed c JOIN attempts a ON a.id = c.source_attempt"
            f" WHERE a.run_id IN {_IDS} AND c.run_id != a.run_id"
            f" UNION"
            f" SELECT DISTINCT c.source_run, c.run_id, c.task FROM consumed c"
            f" WHERE c.source_run IN {_IDS} AND c.run_id != c.source_run"
            f" ORDER BY 1, 2, 3", (ids, ids))

    def dataset_versions_of(self, run_ids: Iterable[int]) -> list[dict[str, Any]]:
        """Live (not pruned) dataset versions made from ``run_ids``' outputs: ``run_id``, ``dataset``, ``version``."""
        return self._db.all(
            f"SELECT v.run_id AS run_id, d.name AS dataset, v.version AS version FROM dataset_versions v"
            f" JOIN datasets d ON d.id = v.dataset_id WHERE v.run_id IN {_IDS} AND v.{LIVE}"
            f" ORDER BY v.run_id, d.name, v.version",
            (_ids(run_ids),))

    def unsettled_inputs(self, run_ids: Iterable[int], finished_states: Iterable[str]) -> list[dict[str, Any]]:
        """Drop-folder inputs of ``run_ids`` whose state is not one of ``finished_states``: ``run_id``, ``id``, ``state``."""
        return self._db.all(
            f"SELECT run_id, id, state FROM inputs WHERE run_id IN {_IDS}"
            f" AND state NOT IN (SELECT value FROM json_each(?)) ORDER BY run_id, id",
            (_ids(run_ids), json.dumps(sorted(finished_states))))

    def newest(self) -> list[int]:
        """The runs holding the highest run id and the highest attempt id (one or two runs; none when empty).

        SQLite gives a new row the highest id + 1: removing these would hand their ids
        to the next run or attempt.
        """
        out = {r[0] for r in self._db.conn.execute(
            "SELECT MAX(id) FROM runs UNION SELECT run_id FROM attempts WHERE id = (SELECT MAX(id) FROM attempts)")}
        return sorted(r for r in out if r is not None)

    def run_dirs(self) -> list[str]:
        """Every run's recorded folder (``runs.run_dir``): what a folder with no row is told apart by."""
        return [r[0] for r in self._db.conn.execute("SELECT run_dir FROM runs")]

    def count_rows(self, run_ids: Iterable[int]) -> dict[str, int]:
        """How many rows :meth:`remove` would delete, per table (``runs`` included)."""
        ids = _ids(run_ids)
        out = {t: self._db.one(f"SELECT COUNT(*) FROM {t} WHERE run_id IN {_IDS}", (ids,))[0]  # type: ignore[index]
               for t in RUN_TABLES}
        out["runs"] = self._db.one(f"SELECT COUNT(*) FROM runs WHERE id IN {_IDS}", (ids,))[0]  # type: ignore[index]
        return out

    def finished(self, run_ids: Iterable[int]) -> list[int]:
        """Of ``run_ids``, those finished now (:data:`FINISHED_STATES`), ascending: the one test of what may go,
        made again by :meth:`remove` at commit time and by gc before it removes folders ahead of the rows."""
        return [r[0] for r in self._db.conn.execute(
            f"SELECT id FROM runs WHERE id IN {_IDS} AND state IN (SELECT value FROM json_each(?)) ORDER BY id",
            (_ids(run_ids), json.dumps(FINISHED_STATES)))]

    def remove(self, run_ids: Iterable[int], *, actor: str | None, message: str,
               data: dict[str, Any] | None = None) -> tuple[list[int], dict[str, int]]:
        """Delete every row of the runs of ``run_ids`` still finished, with a ``runs_removed`` event; one transaction.

        Returns the ids removed (a run queued again meanwhile is left out) and the rows
        deleted per table. The event row (``run_id`` NULL, ``actor``) carries ``data``
        plus ``runs`` (the ids) and ``rows`` (the counts); nothing is written when no run
        qualifies.
        """
        now = self._db.clock()
        with self._db.transaction():
            removed = self.finished(run_ids)
            if not removed:
                return [], {}
            ids = _ids(removed)
            note_readers_gone(self._db, ids, now, actor)  # before their consumed rows go
            counts: dict[str, int] = {}
            for table in RUN_TABLES:
                counts[table] = self._db.conn.execute(f"DELETE FROM {table} WHERE run_id IN {_IDS}", (ids,)).rowcount
            counts["runs"] = self._db.conn.execute(f"DELETE FROM runs WHERE id IN {_IDS}", (ids,)).rowcount
            write_event(self._db, None, None, "runs_removed", message, actor, now,
                        {**(data or {}), "runs": removed, "rows": counts})
        return removed, counts
