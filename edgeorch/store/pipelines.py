"""Pipeline versions and pauses: tables ``pipeline_versions`` and ``pipeline_state``.

Contract:

- :meth:`Pipelines.record_version` stores each distinct pipeline text once
  (by ``(name, content_hash)``) and returns its id; a run references the
  version it was started from, so history shows what actually ran.
- :meth:`Pipelines.set_paused` is one durable transaction: the pause (or
  resume) and its ``pipeline_paused``/``pipeline_resumed`` event row.
- A new version is recorded with a ``pipeline_version`` audit record (its content hash).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from ..errors import NotFoundError
from .audit import write_audit
from .db import Database
from .events import write_event


_PAUSED = "pipelines.paused"
"""The key of :meth:`Pipelines.paused`'s rows in :attr:`Database.memo`."""


class Pipelines:
    """``store.pipelines``: see the module docstring."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def record_version(self, name: str, content_hash: str, source_file: str, source_text: str) -> int:
        """Id of the stored version with this content hash, inserting it when new. Remembered for the rest of the
        transaction (:attr:`Database.memo`: a claim group creates hundreds of runs of one version in one)."""
        key = f"pipelines.version:{name}:{content_hash}"
        if self._db.conn.in_transaction and key in self._db.memo:
            return int(self._db.memo[key])
        row = self._db.one("SELECT id FROM pipeline_versions WHERE name = ? AND content_hash = ?", (name, content_hash))
        if row:
            if self._db.conn.in_transaction:
                self._db.memo[key] = int(row[0])
            return int(row[0])
        with self._db.transaction():
            cur = self._db.conn.execute(
                "INSERT INTO pipeline_versions (name, content_hash, source_file, source_text, created_at) VALUES (?, ?, ?, ?, ?)",
                (name, content_hash, source_file, source_text, self._db.clock()),
            )
            version_id = int(cur.lastrowid)  # type: ignore[arg-type]
            write_audit(self._db, None, "pipeline_version", f"pipeline:{name}",
                        {"version_id": version_id, "content_hash": content_hash, "source_file": source_file})
            self._db.memo[key] = version_id  # forgotten with the memo if this savepoint or transaction rolls back
            return version_id

    def note_loaded(self, pipelines: Iterable[Any]) -> None:
        """The versions a daemon serves now, each as loaded valid from its file (``name``, ``content_hash``,
        ``source_file``, ``source_text``): recorded once per content, stamped ``loaded_at``, one transaction.

        What :meth:`latest_of_file` returns after a restart: the version in force when the file broke, not the
        last one a run happened to record (an edit never run, or a return to an earlier text, was forgotten).
        """
        items = list(pipelines)
        if not items:
            return
        now = self._db.clock()
        with self._db.transaction():
            for p in items:
                version_id = self.record_version(p.name, p.content_hash, str(p.source_file), p.source_text)
                self._db.conn.execute("UPDATE pipeline_versions SET loaded_at = ? WHERE id = ?", (now, version_id))

    def latest_of_file(self, source_file: str) -> dict[str, Any] | None:
        """The version last loaded from ``source_file`` (an absolute path), or None: what a daemon started while
        that file has errors keeps serving, as one that was running when the file broke does. Last loaded: by
        :meth:`note_loaded`'s stamp, else (a version only a run recorded) by when it was stored."""
        row = self._db.one("SELECT * FROM pipeline_versions WHERE source_file = ?"
                           " ORDER BY COALESCE(loaded_at, created_at) DESC, id DESC LIMIT 1", (source_file,))
        return dict(row) if row else None

    def holders(self) -> dict[str, tuple[str, str]]:
        """The file each pipeline name was last loaded from by a daemon (:meth:`note_loaded`), with that version's
        content hash: who keeps a name two files declare (:func:`~edgeorch.pipelines.load.settle_names`). Names
        never loaded are absent."""
        rows = self._db.all("SELECT name, source_file, content_hash FROM pipeline_versions WHERE loaded_at IS NOT"
                            " NULL ORDER BY loaded_at, id")
        return {r["name"]: (r["source_file"], r["content_hash"]) for r in rows}  # the last loaded wins

    def file_of_run(self, run: Mapping[str, Any]) -> str:
        """The pipeline file ``run`` (a ``runs`` row) was started from: its own record, or for a run recorded before
        schema 27 its version's (the first file that content was run from). What `show` names and `retry --current`
        reads again."""
        return run.get("pipeline_file") or self.version(run["pipeline_version_id"])["source_file"]

    def version(self, version_id: int) -> dict[str, Any]:
        row = self._db.one("SELECT * FROM pipeline_versions WHERE id = ?", (version_id,))
        if row is None:
            raise NotFoundError("no such pipeline version", value=version_id)
        return dict(row)

    def set_paused(self, name: str, paused: bool, *, reason: str | None, actor: str | None) -> None:
        """Pause or resume a pipeline (new runs refused / schedules skipped while paused). Paused again without a
        reason, it keeps the reason it was paused for (``pause`` twice, the second time without ``--reason``,
        erased "hold A" without a word)."""
        now = self._db.clock()
        with self._db.transaction():
            self._db.memo.pop(_PAUSED, None)
            self._db.conn.execute(
                "INSERT INTO pipeline_state (name, paused, reason, actor, changed_at) VALUES (?, ?, ?, ?, ?)"
                " ON CONFLICT(name) DO UPDATE SET paused = excluded.paused,"
                " reason = CASE WHEN excluded.reason IS NULL AND excluded.paused = 1 AND pipeline_state.paused = 1"
                " THEN pipeline_state.reason ELSE excluded.reason END,"
                " actor = excluded.actor, changed_at = excluded.changed_at",
                (name, int(paused), reason, actor, now),
            )
            write_event(self._db, None, None, "pipeline_paused" if paused else "pipeline_resumed",
                        f"{name} {'paused' if paused else 'resumed'}" + (f": {reason}" if reason else ""), actor, now,
                        {"pipeline": name})

    def paused(self) -> dict[str, dict[str, Any]]:
        """Name -> {reason, actor, changed_at} of every paused pipeline (a new dict each call). Read once per
        transaction (:attr:`Database.memo`; :meth:`set_paused` forgets it): a claim group asks for each file."""
        memo = self._db.memo if self._db.conn.in_transaction else None
        rows = memo.get(_PAUSED) if memo is not None else None
        if rows is None:
            rows = {r["name"]: r for r in self._db.all("SELECT * FROM pipeline_state WHERE paused = 1")}
            if memo is not None:
                memo[_PAUSED] = rows
        return {name: dict(row) for name, row in rows.items()}
