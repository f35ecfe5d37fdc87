"""What tasks consumed, and the lookups a lineage query makes: tables ``consumed``, ``manifest_files``.

Contract:

- :meth:`Lineage.record_consumed` writes in the caller's transaction (the
  engine records an attempt's inputs with the attempt itself, a cache hit's
  with the hit), or in one of its own. A folder's or glob's files go to
  ``manifest_files`` once per manifest hash (content-addressed: the same
  folder consumed by a thousand runs is stored once).
- Everything else reads, each lookup one indexed query (``consumed`` by
  task, path and sha256; ``artifacts`` by path and sha256; ``inputs`` by
  sha256, inbox and source path; ``manifest_files`` by sha256; ``tasks`` by
  ``cached_from``), so a lineage query costs the same with 100,000 runs in
  the file as with ten (``benchmarks/bench_lineage.py``).
- The runs that read a data version (``consumed`` rows ``dataset:NAME@V``)
  outlive their removal by ``edgeorch gc`` as ``dataset_readers_gone`` rows,
  written by :func:`note_readers_gone` in the removal's own transaction
  (:meth:`~edgeorch.store.retention.Retention.remove`): the one rule of which
  versions a run read is :data:`READS_OF_RUNS`, used both there and by
  :meth:`Lineage.dataset_reads_of_runs` (what a gc names before it removes).
- A member of a folder or glob is stored by its name relative to the
  folder (or the glob's leading folder); turning it into an absolute path is
  the caller's (:mod:`edgeorch.lineage`), which knows what a glob's base is.
"""

from __future__ import annotations

import json
from typing import Any, Iterable

from .db import Database

VERSION_SOURCES = ("artifact", "consumed", "input")
"""Where a recorded version of a path comes from (:meth:`Lineage.versions_of_path`)."""

READS_OF_RUNS = (
    "SELECT v.id AS version_id, d.name AS dataset, v.version AS version, c.run_id AS run_id, c.task AS task"
    " FROM consumed c"
    # A consumed data version's path is `dataset:NAME@V` (8 characters of prefix; a dataset name has no `@`):
    # both joins are then lookups by the unique (name) and (dataset_id, version) indexes.
    " JOIN datasets d ON d.name = substr(c.path, 9, instr(c.path, '@') - 9)"
    " JOIN dataset_versions v ON v.dataset_id = d.id AND v.version = CAST(substr(c.path, instr(c.path, '@') + 1)"
    " AS INTEGER)"
    " WHERE c.kind = 'dataset' AND c.run_id IN (SELECT value FROM json_each(?))"
    " GROUP BY v.id, c.run_id, c.task")
"""The data versions the runs of a JSON array of ids read (their attempts or cache hits recorded them as
consumed): ``version_id``, ``dataset``, ``version``, ``run_id``, ``task``, each once. A version pruned before its
record was kept (schema 26) has no row, and is left out."""


def note_readers_gone(db: Database, run_ids_json: str, removed_at: float, actor: str | None) -> int:
    """Record, in the caller's transaction and before it deletes their ``consumed`` rows, that the runs of
    ``run_ids_json`` (a JSON array), which read data versions, are removed (``dataset_readers_gone``); returns the
    rows written. Idempotent (a run's reads are noted once)."""
    return db.conn.execute(
        "INSERT OR IGNORE INTO dataset_readers_gone (version_id, run_id, task, removed_at, actor)"
        f" SELECT version_id, run_id, task, ?, ? FROM ({READS_OF_RUNS})", (removed_at, actor, run_ids_json)).rowcount


def write_manifest(db: Database, manifest: str, members: Iterable[tuple[str, str, int]]) -> None:
    """Store a folder's or glob's files ``(name, sha256, size)`` under its manifest hash, once (the caller holds
    the transaction). The one writer of ``manifest_files``: consumed folders and registered model folders."""
    members = list(members)
    if members and db.conn.execute("SELECT 1 FROM manifest_files WHERE manifest = ? LIMIT 1",
                                   (manifest,)).fetchone() is None:
        db.conn.executemany("INSERT OR IGNORE INTO manifest_files (manifest, name, sha256, size) VALUES (?, ?, ?, ?)",
                            [(manifest, n, s, z) for n, s, z in members])


class Lineage:
    """``store.lineage``: see the module docstring."""

    def __init__(self, db: Database) -> None:
        self._db = db

    # -- writing --------------------------------------------------------------------

    def record_consumed(self, run_id: int, task: str, attempt_id: int | None, items: Iterable[dict[str, Any]]) -> None:
        """Record what ``task`` of ``run_id`` consumed: by attempt ``attempt_id``, or by a cache hit (None).

        Each item has ``kind``, ``path``, ``sha256``, ``size`` and optionally
        ``spec``, ``files``, ``members`` (``(name, sha256, size)`` of a folder
        or glob) and ``source_run``/``source_task``/``source_attempt`` (an
        upstream output). A cache hit replaces the rows of an earlier hit of
        the same task in the same run (a resume that hits again).
        """
        rows = list(items)
        now = self._db.clock()
        with self._db.transaction():
            conn = self._db.conn
            if attempt_id is None:
                conn.execute("DELETE FROM consumed WHERE run_id = ? AND task = ? AND attempt_id IS NULL", (run_id, task))
            conn.executemany(
                "INSERT INTO consumed (run_id, task, attempt_id, kind, spec, path, sha256, size, files, source_run,"
                " source_task, source_attempt, recorded_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [(run_id, task, attempt_id, r["kind"], r.get("spec"), r["path"], r["sha256"], r["size"], r.get("files"),
                  r.get("source_run"), r.get("source_task"), r.get("source_attempt"), now) for r in rows])
            for r in rows:
                write_manifest(self._db, r["sha256"], r.get("members") or ())

    # -- what a task consumed and produced -----------------------------------------------

    def consumed_by(self, run_id: int, task: str) -> list[dict[str, Any]]:
        """The rows of the task's latest recording (its latest attempt, or its cache hit), in recording order."""
        last = self._db.one("SELECT attempt_id FROM consumed WHERE run_id = ? AND task = ? ORDER BY id DESC LIMIT 1",
                            (run_id, task))
        if last is None:
            return []
        if last[0] is None:
            return self._db.all("SELECT * FROM consumed WHERE run_id = ? AND task = ? AND attempt_id IS NULL"
                                " ORDER BY id", (run_id, task))
        return self._db.all("SELECT * FROM consumed WHERE run_id = ? AND task = ? AND attempt_id = ? ORDER BY id",
                            (run_id, task, last[0]))

    def images_of_run(self, run_id: int) -> dict[int, dict[str, str]]:
        """Attempt id -> the container image it ran in (``reference``, ``digest``: the image's id, what ran), for
        the run's container attempts (a cache hit's record, with no attempt, is left out: its source has it)."""
        return {r["attempt_id"]: {"reference": r["path"], "digest": r["sha256"]}
                for r in self._db.all("SELECT attempt_id, path, sha256 FROM consumed WHERE run_id = ? AND kind = 'image'"
                                      " AND attempt_id IS NOT NULL ORDER BY id", (run_id,))}

    def consumed_by_attempt(self, attempt_id: int) -> list[dict[str, Any]]:
        """What one attempt recorded as consumed (its declared inputs and upstream outputs), in recording order."""
        return self._db.all("SELECT * FROM consumed WHERE attempt_id = ? ORDER BY id", (attempt_id,))

    def datasets_read_by_run(self, run_id: int) -> dict[str, int]:
        """Dataset name -> the version this run's attempts recorded as consumed (``dataset:NAME@V`` entries)."""
        out: dict[str, int] = {}
        for (path,) in self._db.conn.execute("SELECT path FROM consumed WHERE run_id = ? AND kind = 'dataset'"
                                             " ORDER BY id", (run_id,)):
            name, _, version = str(path).removeprefix("dataset:").rpartition("@")
            if name and version.isdigit():
                out.setdefault(name, int(version))
        return out

    def dataset_readers(self, name: str, version: int, limit: int = -1) -> list[dict[str, Any]]:
        """The tasks that read ``name@version`` as a declared input (``run_id``, ``task``), each once, oldest first."""
        return self._db.all("SELECT run_id, task FROM consumed WHERE path = ? AND kind = 'dataset'"
                            " GROUP BY run_id, task ORDER BY MIN(id) LIMIT ?", (f"dataset:{name}@{version}", limit))

    def dataset_readers_gone(self, version_id: int) -> list[dict[str, Any]]:
        """The runs that read data version ``version_id`` and were removed by ``edgeorch gc`` since (their
        ``consumed`` rows went with them): ``run_id``, ``task``, ``removed_at``, ``actor``, by run id."""
        return self._db.all("SELECT run_id, task, removed_at, actor FROM dataset_readers_gone WHERE version_id = ?"
                            " ORDER BY run_id, task", (version_id,))

    def dataset_reads_of_runs(self, run_ids: Iterable[int]) -> dict[int, list[str]]:
        """Run id -> the data versions (``NAME@V``) it read, sorted (:data:`READS_OF_RUNS`); runs that read none
        are absent."""
        out: dict[int, set[str]] = {}
        ids = json.dumps(sorted({int(r) for r in run_ids}))
        for row in self._db.all(READS_OF_RUNS, (ids,)):
            out.setdefault(int(row["run_id"]), set()).add(f"{row['dataset']}@{row['version']}")
        return {run_id: sorted(refs) for run_id, refs in out.items()}

    def members(self, manifest: str, limit: int = -1) -> list[dict[str, Any]]:
        """A folder's or glob's files (``name``, ``sha256``, ``size``), sorted by name."""
        return self._db.all("SELECT name, sha256, size FROM manifest_files WHERE manifest = ? ORDER BY name LIMIT ?",
                            (manifest, limit))

    def producers(self, path: str, sha256: str) -> list[dict[str, Any]]:
        """The attempts that wrote this file as an output (not the copies cache hits made): ``run_id``, ``task``,
        ``attempt_id``, ``name``."""
        return self._db.all(
            "SELECT DISTINCT f.run_id, f.task, f.attempt_id, f.name FROM artifacts f JOIN attempts a ON a.id = f.attempt_id"
            " WHERE f.path = ? AND f.sha256 = ? AND a.run_id = f.run_id ORDER BY f.run_id, f.task", (path, sha256))

    def cache_hits_of_file(self, path: str, sha256: str) -> list[dict[str, Any]]:
        """The cache hits whose records name this file (its link in their run's folder): ``run_id``, ``task``,
        ``attempt_id`` (the attempt whose result they reuse)."""
        return self._db.all(
            "SELECT DISTINCT f.run_id, f.task, f.attempt_id FROM artifacts f JOIN attempts a ON a.id = f.attempt_id"
            " WHERE f.path = ? AND f.sha256 = ? AND a.run_id != f.run_id ORDER BY f.run_id, f.task", (path, sha256))

    def cache_users(self, attempt_id: int, limit: int = -1) -> list[dict[str, Any]]:
        """The tasks (``run_id``, ``name``) that were cache hits of ``attempt_id`` (at most ``limit``; -1: all)."""
        return self._db.all("SELECT run_id, name FROM tasks WHERE cached_from = ? ORDER BY run_id, name LIMIT ?",
                            (attempt_id, limit))

    def run_ids(self, since: int = 0) -> list[int]:
        """Ids of the runs after ``since``, ascending (an export's order)."""
        return [r[0] for r in self._db.conn.execute("SELECT id FROM runs WHERE id > ? ORDER BY id", (since,))]

    def run(self, run_id: int) -> dict[str, Any] | None:
        """A run with its pipeline version's ``content_hash`` and ``source_file`` (params still JSON text)."""
        row = self._db.one("SELECT r.*, v.content_hash, v.source_file FROM runs r"
                           " JOIN pipeline_versions v ON v.id = r.pipeline_version_id WHERE r.id = ?", (run_id,))
        return dict(row) if row else None

    def task(self, run_id: int, name: str) -> dict[str, Any] | None:
        """A task with its latest attempt's ``attempt_id`` (None when it never ran)."""
        row = self._db.one("SELECT t.*, (SELECT MAX(a.id) FROM attempts a WHERE a.task_id = t.id) AS attempt_id"
                           " FROM tasks t WHERE t.run_id = ? AND t.name = ?", (run_id, name))
        return dict(row) if row else None

    def task_names(self, run_id: int) -> list[str]:
        return [r[0] for r in self._db.conn.execute("SELECT name FROM tasks WHERE run_id = ? ORDER BY id", (run_id,))]

    def attempt_task(self, attempt_id: int) -> tuple[int, str] | None:
        """``(run_id, task)`` of an attempt, or None when it is gone."""
        row = self._db.one("SELECT run_id, task FROM attempts WHERE id = ?", (attempt_id,))
        return (row[0], row[1]) if row else None

    def producers_of_content(self, sha256: str, limit: int = -1, *, before: float | None = None) -> list[dict[str, Any]]:
        """Outputs (by their producing attempts, not cache copies) with this content, whatever their path; with
        ``before``, only those recorded before that time (a file cannot come from what was made after it)."""
        return self._db.all(
            "SELECT DISTINCT f.run_id, f.task, f.attempt_id, f.path, f.size FROM artifacts f"
            " JOIN attempts a ON a.id = f.attempt_id WHERE f.sha256 = ? AND a.run_id = f.run_id"
            " AND (? IS NULL OR f.created_at < ?) ORDER BY f.run_id LIMIT ?",
            (sha256, before, before, limit))

    # -- who consumed a file ----------------------------------------------------------------

    def consumers(self, path: str, sha256: str, limit: int = -1) -> list[dict[str, Any]]:
        """Rows of ``consumed`` naming this file itself (a declared file or an upstream output), oldest first."""
        return self._db.all("SELECT * FROM consumed WHERE path = ? AND sha256 = ? ORDER BY id LIMIT ?",
                            (path, sha256, limit))

    def manifests_with(self, sha256: str, limit: int = -1) -> list[dict[str, Any]]:
        """Folder and glob rows of ``consumed`` whose manifest holds a file with this content, with the member's
        ``member`` name (the caller checks the member's absolute path)."""
        return self._db.all(
            "SELECT c.*, m.name AS member FROM manifest_files m JOIN consumed c ON c.sha256 = m.manifest"
            " WHERE m.sha256 = ? AND c.kind IN ('folder', 'glob') ORDER BY c.id LIMIT ?", (sha256, limit))

    def consumed_manifest(self, path: str, sha256: str, limit: int = -1) -> list[dict[str, Any]]:
        """Folder and glob rows with this path (a glob's pattern) and manifest hash."""
        return self._db.all("SELECT * FROM consumed WHERE path = ? AND sha256 = ? AND kind IN ('folder', 'glob')"
                            " ORDER BY id LIMIT ?", (path, sha256, limit))

    # -- drop-folder inputs ----------------------------------------------------------------

    def input(self, input_id: int) -> dict[str, Any] | None:
        row = self._db.one("SELECT * FROM inputs WHERE id = ?", (input_id,))
        return dict(row) if row else None

    def inputs_of_run(self, run_id: int) -> list[dict[str, Any]]:
        """The drop-folder inputs that started (or were retried with) ``run_id``."""
        return self._db.all("SELECT * FROM inputs WHERE run_id = ? ORDER BY id", (run_id,))

    def versions_made_by_run(self, run_id: int) -> list[dict[str, Any]]:
        """The data versions run ``run_id`` recorded (a task's declared ``dataset`` output: ``task`` set) or its
        drop-folder input became (``input_id`` set): ``name``, ``version``, ``task``, ``input_id``, sizes, hash."""
        return self._db.all(
            "SELECT d.name, v.version, v.task, v.input_id, v.files, v.size, v.manifest_sha256 FROM dataset_versions v"
            " JOIN datasets d ON d.id = v.dataset_id WHERE v.run_id = ? OR v.input_id IN"
            " (SELECT id FROM inputs WHERE run_id = ?) ORDER BY v.id", (run_id, run_id))

    def inputs_claimed_as(self, path: str, sha256: str) -> list[dict[str, Any]]:
        """Drop-folder inputs whose claimed file is this one (its inbox path and content)."""
        return self._db.all("SELECT * FROM inputs WHERE inbox_path = ? AND sha256 = ? ORDER BY id", (path, sha256))

    # -- dataset and model versions -----------------------------------------------------------

    def dataset_version(self, name: str, version: int | None) -> dict[str, Any] | None:
        """Version ``version`` of dataset ``name`` (None: its newest), with ``name``; None when there is none."""
        row = self._db.one(
            "SELECT v.*, d.name FROM dataset_versions v JOIN datasets d ON d.id = v.dataset_id WHERE d.name = ?"
            + (" AND v.version = ?" if version is not None else "") + " ORDER BY v.version DESC LIMIT 1",
            (name, version) if version is not None else (name,))
        return dict(row) if row else None

    def model_version(self, name: str, version: int | None) -> dict[str, Any] | None:
        """Version ``version`` of model ``name`` (None: its newest), with ``name``; None when there is none."""
        row = self._db.one(
            "SELECT v.*, m.name FROM model_versions v JOIN models m ON m.id = v.model_id WHERE m.name = ?"
            + (" AND v.version = ?" if version is not None else "") + " ORDER BY v.version DESC LIMIT 1",
            (name, version) if version is not None else (name,))
        return dict(row) if row else None

    def versions_made_by(self, run_id: int, task: str) -> list[dict[str, Any]]:
        """Dataset and model versions a task's outcome recorded (``what``: ``dataset`` or ``model``), oldest first."""
        return self._db.all(
            "SELECT 'dataset' AS what, d.name, v.* FROM dataset_versions v JOIN datasets d ON d.id = v.dataset_id"
            " WHERE v.run_id = ? AND v.task = ?", (run_id, task)) + self._db.all(
            "SELECT 'model' AS what, m.name, v.* FROM model_versions v JOIN models m ON m.id = v.model_id"
            " WHERE v.run_id = ? AND v.task = ?", (run_id, task))

    def dataset_versions_of_input(self, input_id: int) -> list[dict[str, Any]]:
        """Dataset versions a drop-folder input became."""
        return self._db.all("SELECT d.name, v.* FROM dataset_versions v JOIN datasets d ON d.id = v.dataset_id"
                            " WHERE v.input_id = ? ORDER BY v.id", (input_id,))

    # -- resolving a THING -----------------------------------------------------------------

    def versions_of_path(self, path: str) -> list[dict[str, Any]]:
        """Every recorded ``(sha256, at, source)`` of the file at ``path``, newest first.

        Sources: an output (``artifact``), something a task consumed
        (``consumed``: a declared file or an upstream output), a drop-folder
        input (``input``: its inbox path or the path it arrived at).
        """
        return self._db.all(
            "SELECT sha256, MAX(at) AS at, source FROM ("
            " SELECT sha256, created_at AS at, 'artifact' AS source FROM artifacts WHERE path = ?"
            " UNION ALL SELECT sha256, recorded_at, 'consumed' FROM consumed WHERE path = ? AND kind IN ('file', 'upstream')"
            " UNION ALL SELECT sha256, COALESCE(claimed_at, arrived_at), 'input' FROM inputs"
            "  WHERE (inbox_path = ? OR source_path = ?) AND sha256 IS NOT NULL)"
            " GROUP BY sha256 ORDER BY at DESC", (path, path, path, path))

    def paths_of_sha256(self, sha256: str) -> list[str]:
        """Every path recorded with this content (outputs, consumed files, inbox files; not folder members)."""
        rows = self._db.conn.execute(
            "SELECT path FROM artifacts WHERE sha256 = ?"
            " UNION SELECT path FROM consumed WHERE sha256 = ? AND kind IN ('file', 'upstream')"
            " UNION SELECT inbox_path FROM inputs WHERE sha256 = ? AND inbox_path IS NOT NULL ORDER BY 1",
            (sha256, sha256, sha256))
        return [r[0] for r in rows]

    def inputs_at(self, path: str) -> list[dict[str, Any]]:
        """Drop-folder inputs that arrived at ``path`` (the drop folder's file) or were claimed to it, newest first."""
        return self._db.all("SELECT * FROM inputs WHERE source_path = ? OR inbox_path = ? ORDER BY id DESC",
                            (path, path))
