"""Data versions: tables ``datasets``, ``dataset_versions``, ``dataset_files``, ``dataset_chunks``,
``dataset_holds`` (docs/datasets.md).

Contract:

- :meth:`Datasets.record_version` is one durable transaction (a SAVEPOINT
  inside the caller's, so a drop-folder input's version commits with its
  claim and a task's with its outcome): the dataset (created on first use),
  the next version number, one row per file with its chunk list, the chunk
  rows (inserted once; ``refs`` counts every position of every file of every
  version that uses the chunk) and the ``dataset_version`` event row. The
  objects must already be durable (the snapshot syncs them).
- :meth:`Datasets.prune` is one durable transaction: the versions a
  ``decide`` function picks (given every live version and the holds, read
  inside the transaction) lose their file rows (their content) and are marked
  pruned (``pruned_at``, ``pruned_by``): the version row stays, so where the
  version came from (source, path, input, run, manifest hash, size, who made
  it) stays queryable for lineage. Their chunks' ``refs`` drop, and the chunks
  no version uses any more are deleted and returned; the caller removes their
  objects afterwards (rows first, then files: a crash in between leaves
  garbage objects, never a live version without its objects).
- A **live** version is one not pruned (:data:`LIVE`): only live versions have
  content, so :meth:`Datasets.version`, :meth:`Datasets.versions`,
  :meth:`Datasets.list` and retention see only them; :meth:`Datasets.pruned`
  lists the others, and :meth:`Datasets.version` names a pruned one in its
  error. Versions pruned before schema 26 have no row at all.
- Version numbers of a dataset only grow (the latest version is never
  removed, and a pruned one keeps its row, so a number is never reused).
- Reads return plain dicts.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Protocol

from ..errors import NotFoundError
from ..textui import format_timestamp
from .db import Database
from .events import write_event


class FileLike(Protocol):
    path: str
    size: int
    mode: int
    sha256: str
    chunks: tuple[str, ...]


class ChunkLike(Protocol):
    sha256: str
    size: int
    stored_size: int
    codec: str
    written: bool


class SnapshotLike(Protocol):
    """What a version is recorded from (``edgeorch.datasets.snapshot.Snapshot``)."""

    files: list[Any]
    chunks: dict[str, Any]

    @property
    def size(self) -> int: ...

    @property
    def manifest_sha256(self) -> str: ...


Decide = Callable[[list[dict[str, Any]], Mapping[int, str]], Iterable[int]]
"""``decide(versions, held) -> version ids to remove``: versions of one dataset, oldest first
(``id``, ``version``, ``created_at``, ``dataset``); ``held``: version id -> why it is held."""

ACTIVE_RUN_STATES = ("queued", "running")

LIVE = "pruned_at IS NULL"
"""The one test of a version that still has its content (not pruned): a condition on ``dataset_versions``."""


class Datasets:
    """``store.datasets``: see the module docstring."""

    def __init__(self, db: Database) -> None:
        self._db = db

    # -- writes --------------------------------------------------------------------------------

    def record_version(self, name: str, snap: SnapshotLike, *, source: str, source_path: str | None = None,
                       run_id: int | None = None, task: str | None = None, input_id: int | None = None,
                       actor: str | None = None) -> dict[str, Any]:
        """Record ``snap`` as the next version of ``name`` (see the module docstring); returns the version row.

        ``source``: ``add`` (``edgeorch datasets add``), ``input`` (a drop-folder
        input, ``input_id``) or ``task`` (a task's output, ``run_id``/``task``).
        ``new_chunks``/``new_bytes``: the chunks this version stored first, and
        their bytes on disk (the deduplication's exact measure).
        """
        now = self._db.clock()
        conn = self._db.conn
        uses: Counter[str] = Counter()
        for f in snap.files:
            uses.update(f.chunks)
        with self._db.transaction():
            row = conn.execute("SELECT id FROM datasets WHERE name = ?", (name,)).fetchone()
            if row is None:
                dataset_id = int(conn.execute("INSERT INTO datasets (name, created_at) VALUES (?, ?)",
                                              (name, now)).lastrowid)  # type: ignore[arg-type]
            else:
                dataset_id = int(row[0])
            version = conn.execute("SELECT COALESCE(MAX(version), 0) + 1 FROM dataset_versions WHERE dataset_id = ?",
                                   (dataset_id,)).fetchone()[0]
            new_chunks = new_bytes = 0
            for sha, count in uses.items():
                c = snap.chunks[sha]
                cur = conn.execute("INSERT OR IGNORE INTO dataset_chunks (sha256, size, stored_size, codec, refs,"
                                   " created_at) VALUES (?, ?, ?, ?, ?, ?)",
                                   (sha, c.size, c.stored_size, c.codec, count, now))
                if cur.rowcount:
                    new_chunks += 1
                    new_bytes += c.stored_size
                    continue
                # Known chunk: one more use. When this snapshot had to write its object again (the row's
                # object was lost), the row follows what is on disk now.
                if c.written:
                    conn.execute("UPDATE dataset_chunks SET refs = refs + ?, stored_size = ?, codec = ?"
                                 " WHERE sha256 = ?", (count, c.stored_size, c.codec, sha))
                else:
                    conn.execute("UPDATE dataset_chunks SET refs = refs + ? WHERE sha256 = ?", (count, sha))
            cur = conn.execute(
                "INSERT INTO dataset_versions (dataset_id, version, created_at, source, source_path, run_id, task,"
                " input_id, actor, files, size, new_chunks, new_bytes, manifest_sha256)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (dataset_id, version, now, source, source_path, run_id, task, input_id, actor, len(snap.files),
                 snap.size, new_chunks, new_bytes, snap.manifest_sha256))
            version_id = int(cur.lastrowid)  # type: ignore[arg-type]
            conn.executemany(
                "INSERT INTO dataset_files (version_id, path, size, mode, sha256, chunks) VALUES (?, ?, ?, ?, ?, ?)",
                [(version_id, f.path, f.size, f.mode, f.sha256, json.dumps(list(f.chunks))) for f in snap.files])
            write_event(self._db, run_id, task, "dataset_version",
                        f"dataset {name}: version {version} ({len(snap.files)} file(s), {snap.size} bytes,"
                        f" {new_bytes} new bytes stored)", actor, now,
                        {"dataset": name, "version": version, "source": source, "files": len(snap.files),
                         "size": snap.size, "new_chunks": new_chunks, "new_bytes": new_bytes,
                         "input_id": input_id})
        return self.version(name, version)

    def prune(self, decide: Decide, *, name: str | None = None,
              extra_holds: Callable[[], Mapping[int, str]] | None = None, actor: str | None = None,
              dry_run: bool = False) -> dict[str, Any]:
        """Remove the versions ``decide`` picks, per dataset (``name``: only that one); see the module docstring.

        ``extra_holds()``: holds from outside the state file's own
        (``edgeorch/datasets/holders.py``), asked inside the transaction and
        merged with :meth:`held`. Returns ``{"removed": [version rows, as read before the prune],
        "held": {version id: reason}, "chunks": [(sha256, codec, stored_size)
        of the chunks deleted]}``. ``dry_run``: decide and report, change
        nothing.
        """
        conn = self._db.conn
        removed: list[dict[str, Any]] = []
        chunks: list[tuple[str, str, int]] = []
        with self._db.transaction():
            if name is not None:
                self._dataset_id(name)
            holds = {**self.held(), **(extra_holds() if extra_holds else {})}
            for ds in self._db.all("SELECT id, name FROM datasets" + (" WHERE name = ?" if name else "")
                                   + " ORDER BY name", (name,) if name else ()):
                versions = self._db.all("SELECT id, version, created_at, ? AS dataset FROM dataset_versions"
                                        f" WHERE dataset_id = ? AND {LIVE} ORDER BY version", (ds["name"], ds["id"]))
                picked = set(decide(versions, holds))
                if versions and versions[-1]["id"] in picked:  # pragma: no cover - a decide() bug
                    raise AssertionError(f"dataset {ds['name']}: the latest version may never be removed")
                if holds.keys() & picked:  # pragma: no cover - a decide() bug
                    raise AssertionError(f"dataset {ds['name']}: a held version was picked for removal")
                for v in versions:
                    if v["id"] in picked:
                        removed.append(self._version_row(v["id"]))
            if dry_run or not removed:  # nothing written: the transaction commits nothing
                return {"removed": removed, "held": holds, "chunks": []}
            drops: Counter[str] = Counter()
            ids = [r["id"] for r in removed]
            for vid in ids:
                for (chunk_list,) in conn.execute("SELECT chunks FROM dataset_files WHERE version_id = ?", (vid,)):
                    drops.update(json.loads(chunk_list))
            marks = ",".join("?" * len(ids))
            now = self._db.clock()
            conn.execute(f"DELETE FROM dataset_files WHERE version_id IN ({marks})", ids)
            # The content goes, the record stays: lineage of what read or was made from it still reaches its origin.
            conn.execute(f"UPDATE dataset_versions SET pruned_at = ?, pruned_by = ? WHERE id IN ({marks})",
                         [now, actor, *ids])
            conn.executemany("UPDATE dataset_chunks SET refs = refs - ? WHERE sha256 = ?",
                             [(n, sha) for sha, n in drops.items()])
            chunks = [(r[0], r[1], int(r[2])) for r in conn.execute(
                "DELETE FROM dataset_chunks WHERE refs <= 0 RETURNING sha256, codec, stored_size").fetchall()]
            write_event(self._db, None, None, "dataset_pruned",
                        f"{len(removed)} dataset version(s) removed: "
                        + ", ".join(f"{r['dataset']}@{r['version']}" for r in removed[:20])
                        + (" ..." if len(removed) > 20 else "")
                        + f"; {len(chunks)} chunk(s), {sum(c[2] for c in chunks)} bytes freed", actor, now,
                        {"versions": [f"{r['dataset']}@{r['version']}" for r in removed], "chunks": len(chunks),
                         "bytes": sum(c[2] for c in chunks)})
        return {"removed": removed, "held": holds, "chunks": chunks}

    def hold(self, name: str, version: int, holder: str, reason: str | None = None) -> None:
        """Keep ``name@version`` from retention while ``holder`` (e.g. ``model:fraud@prod``) refers to it.

        Idempotent per (version, holder); one transaction (a SAVEPOINT inside the
        caller's: a model alias and its hold commit together).
        """
        vid = self.version(name, version)["id"]
        with self._db.transaction():
            self._db.conn.execute("INSERT INTO dataset_holds (version_id, holder, reason, created_at) VALUES (?, ?, ?, ?)"
                                  " ON CONFLICT (version_id, holder) DO UPDATE SET reason = excluded.reason",
                                  (vid, holder, reason, self._db.clock()))

    def release(self, name: str, version: int, holder: str) -> bool:
        """Drop ``holder``'s hold on ``name@version``; False when it held nothing."""
        vid = self.version(name, version)["id"]
        with self._db.transaction():
            cur = self._db.conn.execute("DELETE FROM dataset_holds WHERE version_id = ? AND holder = ?", (vid, holder))
        return bool(cur.rowcount)

    # -- reads ---------------------------------------------------------------------------------

    def held(self) -> dict[int, str]:
        """Version id -> why it may not be removed: a hold row, or a run that is queued or running and
        was started for it (a drop-folder input's version), is producing it (a task's output) or reads it (a
        task's ``dataset:NAME@V`` input, once an attempt recorded it)."""
        out: dict[int, str] = {}
        active = ",".join("?" * len(ACTIVE_RUN_STATES))
        for vid, run_id, state in self._db.conn.execute(
                "SELECT v.id, r.id, r.state FROM dataset_versions v LEFT JOIN inputs i ON i.id = v.input_id"
                f" JOIN runs r ON r.id = COALESCE(v.run_id, i.run_id) WHERE r.state IN ({active})",
                ACTIVE_RUN_STATES):
            out[int(vid)] = f"run {run_id} is {state}"
        for vid, run_id, state in self._db.conn.execute(
                "SELECT DISTINCT v.id, r.id, r.state FROM runs r JOIN consumed c ON c.run_id = r.id"
                " JOIN datasets d JOIN dataset_versions v ON v.dataset_id = d.id"
                f" WHERE r.state IN ({active}) AND c.kind = 'dataset'"
                " AND c.path = 'dataset:' || d.name || '@' || v.version", ACTIVE_RUN_STATES):
            out.setdefault(int(vid), f"run {run_id} is {state} and reads it")
        for vid, holder, reason in self._db.conn.execute("SELECT version_id, holder, reason FROM dataset_holds"
                                                          " ORDER BY created_at"):
            out[int(vid)] = f"held by {holder}" + (f" ({reason})" if reason else "")
        return out

    def totals(self) -> dict[str, int]:
        """The object store as the state file knows it: chunks, their bytes, and bytes on disk."""
        row = self._db.one("SELECT COUNT(*), COALESCE(SUM(size), 0), COALESCE(SUM(stored_size), 0) FROM dataset_chunks")
        assert row is not None
        return {"chunks": int(row[0]), "chunk_bytes": int(row[1]), "stored_bytes": int(row[2])}

    def versions(self, name: str) -> list[dict[str, Any]]:
        """The live versions of ``name``, oldest first; NotFoundError when there is no such dataset."""
        dataset_id = self._dataset_id(name)
        return [self._version_row(r["id"]) for r in
                self._db.all(f"SELECT id FROM dataset_versions WHERE dataset_id = ? AND {LIVE} ORDER BY version",
                             (dataset_id,))]

    def pruned(self, name: str) -> list[dict[str, Any]]:
        """The pruned versions of ``name`` (their records: no files, no content), oldest first; NotFoundError when
        there is no such dataset."""
        dataset_id = self._dataset_id(name)
        return [self._version_row(r["id"]) for r in
                self._db.all(f"SELECT id FROM dataset_versions WHERE dataset_id = ? AND NOT ({LIVE})"
                             " ORDER BY version", (dataset_id,))]

    def version(self, name: str, version: int | None = None) -> dict[str, Any]:
        """One live version row (``None``: the latest); NotFoundError naming the dataset or version, and saying
        when and by whom a pruned one was pruned (its content is gone: nothing can read, restore or hold it)."""
        dataset_id = self._dataset_id(name)
        if version is None:
            row = self._db.one(f"SELECT id FROM dataset_versions WHERE dataset_id = ? AND {LIVE}"
                               " ORDER BY version DESC LIMIT 1", (dataset_id,))
        else:
            row = self._db.one(f"SELECT id FROM dataset_versions WHERE dataset_id = ? AND version = ? AND {LIVE}",
                               (dataset_id, version))
        if row is None:
            have = [r["version"] for r in self._db.all(
                f"SELECT version FROM dataset_versions WHERE dataset_id = ? AND {LIVE} ORDER BY version", (dataset_id,))]
            shown = ", ".join(f"{name}@{v}" for v in have[-10:]) or "(none)"
            if len(have) > 10:
                shown = f"{len(have)} versions, {name}@{have[0]} to {name}@{have[-1]}; the latest: {shown}"
            gone = self._why_gone(dataset_id, version, have)
            raise NotFoundError(f"dataset {name} has no version {version}" + gone,
                                value=f"{name}@{version}", expected="one of " + shown,
                                hint=f"`edgeorch datasets show {name}` lists its versions"
                                     + (f"; `edgeorch lineage dataset:{name}@{version}` shows where it came from"
                                        if gone else ""))
        return self._version_row(int(row[0]))

    def _why_gone(self, dataset_id: int, version: int | None, have: list[int]) -> str:
        """The end of the error for a version that is not live: pruned (when, by whom), or pruned before records
        were kept (one below the newest existed: numbers are never reused); empty when it never existed."""
        if version is None:
            return ""
        row = self._db.one(f"SELECT pruned_at, pruned_by FROM dataset_versions WHERE dataset_id = ? AND version = ?"
                           f" AND NOT ({LIVE})", (dataset_id, version))
        if row is not None:
            return f" any more: it was pruned on {format_timestamp(row[0])} by {row[1] or 'an unknown actor'}"
        return " any more: it was pruned" if have and version < have[-1] else ""

    def of_input(self, input_id: int) -> dict[str, Any] | None:
        """The version a drop-folder input became (pruned or not: it was made once, never again), or None."""
        row = self._db.one("SELECT id FROM dataset_versions WHERE input_id = ?", (input_id,))
        return self._version_row(int(row[0])) if row else None

    def files(self, version_id: int) -> list[dict[str, Any]]:
        """The files of a version (by path), each with its chunk list decoded."""
        rows = self._db.all("SELECT path, size, mode, sha256, chunks FROM dataset_files WHERE version_id = ?"
                            " ORDER BY path", (version_id,))
        for r in rows:
            r["chunks"] = json.loads(r["chunks"])
        return rows

    def chunks(self, shas: Sequence[str]) -> dict[str, dict[str, Any]]:
        """The rows of these chunks (sha256 -> size, stored_size, codec, refs); unknown ones are absent."""
        out: dict[str, dict[str, Any]] = {}
        for i in range(0, len(shas), 500):
            part = list(shas[i:i + 500])
            for r in self._db.all(f"SELECT * FROM dataset_chunks WHERE sha256 IN ({','.join('?' * len(part))})", part):
                out[r["sha256"]] = r
        return out

    def known_chunks(self, shas: Sequence[str]) -> set[str]:
        """Those of ``shas`` that have a row (the garbage sweep keeps their objects)."""
        known: set[str] = set()
        for i in range(0, len(shas), 500):
            part = list(shas[i:i + 500])
            known.update(r[0] for r in self._db.conn.execute(
                f"SELECT sha256 FROM dataset_chunks WHERE sha256 IN ({','.join('?' * len(part))})", part))
        return known

    def stored_bytes(self, name: str) -> int:
        """Bytes on disk of the distinct chunks the versions of ``name`` use (shared chunks counted once)."""
        dataset_id = self._dataset_id(name)
        row = self._db.one(
            "SELECT COALESCE(SUM(c.stored_size), 0) FROM dataset_chunks c WHERE c.sha256 IN"
            " (SELECT j.value FROM dataset_versions v JOIN dataset_files f ON f.version_id = v.id, json_each(f.chunks) j"
            " WHERE v.dataset_id = ?)", (dataset_id,))
        return int(row[0]) if row else 0

    def _dataset_id(self, name: str) -> int:
        row = self._db.one("SELECT id FROM datasets WHERE name = ?", (name,))
        if row is None:
            names = [r[0] for r in self._db.conn.execute("SELECT name FROM datasets ORDER BY name")]
            from ..tomlcheck import suggest

            close = suggest(name, names)
            raise NotFoundError(f"no dataset named {name!r}", value=name,
                                expected="one of " + (", ".join(names[:10]) or "(none yet)"),
                                hint=f"did you mean {close!r}?" if close else
                                "`edgeorch datasets list` shows them; `edgeorch datasets add NAME PATH` makes one")
        return int(row[0])

    def _version_row(self, version_id: int) -> dict[str, Any]:
        row = self._db.one("SELECT v.*, d.name AS dataset FROM dataset_versions v JOIN datasets d ON d.id = v.dataset_id"
                           " WHERE v.id = ?", (version_id,))
        assert row is not None
        return dict(row)

    # Last in the class: below it, `list` in an annotation would name this method.
    def list(self) -> list[dict[str, Any]]:
        """Every dataset with its live version count, latest version and its time and size, the bytes of all its
        live versions' content (what plain copies would take), and ``pruned``: how many of its versions were
        pruned (their records kept, without content)."""
        return self._db.all(
            "SELECT d.name, d.created_at, COUNT(v.id) AS versions, MAX(v.version) AS latest,"
            " MAX(v.created_at) AS updated_at, COALESCE(SUM(v.size), 0) AS logical_bytes,"
            f" (SELECT size FROM dataset_versions WHERE dataset_id = d.id AND {LIVE} ORDER BY version DESC LIMIT 1)"
            " AS latest_size,"
            f" (SELECT files FROM dataset_versions WHERE dataset_id = d.id AND {LIVE} ORDER BY version DESC LIMIT 1)"
            " AS latest_files,"
            f" (SELECT COUNT(*) FROM dataset_versions WHERE dataset_id = d.id AND NOT ({LIVE})) AS pruned"
            f" FROM datasets d LEFT JOIN dataset_versions v ON v.dataset_id = d.id AND v.{LIVE}"
            " GROUP BY d.id ORDER BY d.name")
