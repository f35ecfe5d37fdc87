"""Data versions over one state dir: the steps the CLI, the daemon's ops, drop folders and the engine share.

Each step is either I/O on the object store (run it in a worker thread where an
event loop is involved: :func:`take_snapshot`, :func:`list_garbage`) or a state
file write (on the one writing thread: :func:`record`, :func:`prune_rows`,
:func:`remove_garbage`). :func:`add` and :func:`prune` chain them for a caller
that owns its thread (the CLI without a daemon, under the state-dir lock).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .holders import extra_holds
from .names import format_ref
from .objects import DATASETS_DIR, ObjectStore, batched, object_store  # noqa: F401 - re-exported: one import
from .restore import Manifest
from .retention import Rule, plan

if TYPE_CHECKING:  # pragma: no cover
    from ..store import Store
    from .snapshot import Progress, Snapshot

SWEEP_BATCH = 256
"""Objects checked and removed per step of the garbage sweep (the daemon's loop yields between steps)."""


def take_snapshot(*args: Any, **kwargs: Any) -> Snapshot:
    """:func:`edgeorch.datasets.snapshot.take_snapshot`, imported on first use: it compiles (or loads) the
    numba chunker, which a daemon that never versions data should not pay for at start."""
    from .snapshot import take_snapshot as take

    return take(*args, **kwargs)


def record(store: Store, name: str, snap: Snapshot, **origin: Any) -> dict[str, Any]:
    """Record ``snap`` as the next version of ``name`` (``origin``: source, source_path, run_id, task,
    input_id, actor; see ``store.datasets.record_version``). The caller releases the snapshot's pins
    after its transaction commits. ``left_out`` in the document: the folders the snapshot did not read
    (edgeorch's own state below the source; absent when none)."""
    doc = version_doc(store.datasets.record_version(name, snap, **origin))
    if snap.left_out:
        doc["left_out"] = list(snap.left_out)
    return doc


def add(store: Store, objects: ObjectStore, name: str, path: Path, *, compress: bool = False,
        actor: str | None = None, progress: Progress | None = None) -> dict[str, Any]:
    """Snapshot ``path`` and record it as the next version of ``name`` (one thread: the offline CLI)."""
    snap = take_snapshot(path, objects, compress=compress, progress=progress)
    try:
        return record(store, name, snap, source="add", source_path=str(path), actor=actor)
    finally:
        snap.release()


def prune_rows(store: Store, rule: Rule, *, name: str | None = None, actor: str | None = None,
               dry_run: bool = False) -> dict[str, Any]:
    """The retention rule's row changes (one transaction): versions removed, chunks no longer used.

    Returns ``{"removed": [version docs], "kept": [{"ref", "version", "reason"}], "chunks": [(sha, codec,
    size)]}``. Each removed version's doc has ``read_by``: the runs still in the state file that read it (they
    are finished: a queued or running reader holds it), whose lineage then shows it pruned and whose retry
    that reads it fails; a dry run names them before anything goes.
    """
    now = store.clock()
    kept: list[dict[str, Any]] = []

    def decide(versions: list[dict[str, Any]], held: Any) -> tuple[int, ...]:
        p = plan(versions, rule, now=now, held=held)
        by_id = {v["id"]: v for v in versions}
        kept.extend({"ref": format_ref(by_id[vid]["dataset"], by_id[vid]["version"]), "version": by_id[vid]["version"],
                     "reason": why} for vid, why in p.keep)
        return p.remove

    res = store.datasets.prune(decide, name=name, extra_holds=lambda: extra_holds(store), actor=actor,
                               dry_run=dry_run)
    removed = [version_doc(v) | {"read_by": _reader_runs(store, v)} for v in res["removed"]]
    return {"removed": removed, "kept": kept, "chunks": res["chunks"]}


def _reader_runs(store: Store, version: dict[str, Any]) -> list[int]:
    """The ids of the runs that read ``version`` (``store.lineage.dataset_readers``), each once, ascending."""
    return sorted({int(r["run_id"]) for r in store.lineage.dataset_readers(version["dataset"], version["version"])})


def list_garbage(objects: ObjectStore) -> list[tuple[str, Path, int]]:
    """Every object on disk (the candidates of the sweep; worker-thread I/O)."""
    return list(objects.list_objects())


def remove_garbage(store: Store, objects: ObjectStore, batch: list[tuple[str, Path, int]]) -> tuple[int, int]:
    """Remove the objects of ``batch`` that no chunk row names and no snapshot pins (on the writing thread)."""
    return objects.remove_unreferenced(batch, store.datasets.known_chunks)


def remove_stale_temp(objects: ObjectStore) -> int:
    """Remove temporary files of dead writers (worker-thread I/O); returns how many."""
    n = 0
    for path in objects.stale_temp_files():
        try:
            os.unlink(path)
            n += 1
        except OSError:
            pass
    return n


def batches(candidates: list[tuple[str, Path, int]]) -> Iterator[list[tuple[str, Path, int]]]:
    return batched(candidates, SWEEP_BATCH)


def prune(store: Store, objects: ObjectStore, rule: Rule, *, name: str | None = None, actor: str | None = None,
          dry_run: bool = False) -> dict[str, Any]:
    """Apply ``rule`` (rows first, in one transaction), then remove every unreferenced object (one thread)."""
    res = prune_rows(store, rule, name=name, actor=actor, dry_run=dry_run)
    if dry_run:
        return summary(res, 0, 0, 0)
    removed = freed = 0
    for batch in batches(list_garbage(objects)):
        r, f = remove_garbage(store, objects, batch)
        removed, freed = removed + r, freed + f
    return summary(res, removed, freed, remove_stale_temp(objects))


def summary(rows: dict[str, Any], objects_removed: int, bytes_freed: int, temp_removed: int) -> dict[str, Any]:
    """What a prune did, as the CLI and the ``datasets.prune`` op report it."""
    return {"removed": rows["removed"], "kept": rows["kept"], "chunks_removed": len(rows["chunks"]),
            "objects_removed": objects_removed, "bytes_freed": bytes_freed, "temp_files_removed": temp_removed}


def version_doc(row: dict[str, Any]) -> dict[str, Any]:
    """A version row as the CLI and the ops show it (``ref``: ``name@version``)."""
    doc = {"ref": format_ref(row["dataset"], row["version"]), "dataset": row["dataset"]}
    for key in ("version", "created_at", "source", "source_path", "run_id", "task", "input_id", "actor", "files",
                "size", "new_chunks", "new_bytes", "manifest_sha256"):
        doc[key] = row.get(key)
    if row.get("pruned_at") is not None:  # a pruned version's record: its content is gone
        doc.update(pruned_at=row["pruned_at"], pruned_by=row.get("pruned_by"))
    return doc


def show(store: Store, name: str, version: int | None, *, with_files: bool) -> dict[str, Any]:
    """One version's document (``version`` None: the latest); ``with_files``: its files with their chunk
    lists, and each chunk's codec and size (what a restore reads)."""
    row = store.datasets.version(name, version)
    doc = version_doc(row)
    if with_files:
        files = store.datasets.files(row["id"])
        shas = sorted({sha for f in files for sha in f["chunks"]})
        rows = store.datasets.chunks(shas)
        doc["entries"] = files
        doc["chunks"] = {sha: {"codec": r["codec"], "size": r["size"], "stored_size": r["stored_size"]}
                         for sha, r in rows.items()}
    return doc


def overview(store: Store, name: str) -> dict[str, Any]:
    """A dataset: its live versions (oldest first) with their holds, the bytes it takes on disk, and ``pruned``:
    the records of its pruned versions (no content; ``pruned_at``, ``pruned_by``), oldest first."""
    versions = store.datasets.versions(name)
    held = {**store.datasets.held(), **extra_holds(store)}  # what a prune would respect
    docs = [version_doc(v) | {"held": held.get(v["id"])} for v in versions]
    return {"dataset": name, "versions": docs, "logical_bytes": sum(v["size"] for v in versions),
            "stored_bytes": store.datasets.stored_bytes(name),
            "pruned": [version_doc(v) for v in store.datasets.pruned(name)]}


def listing(store: Store) -> dict[str, Any]:
    """Every dataset, and the object store's totals."""
    return {"datasets": store.datasets.list(), "totals": store.datasets.totals()}


def manifest_of(doc: dict[str, Any]) -> Manifest:
    """The :class:`Manifest` of a :func:`show` document made ``with_files``."""
    return Manifest(doc["ref"], doc["entries"], doc["chunks"])
