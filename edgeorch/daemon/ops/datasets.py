"""``datasets.*``: data versions (docs/datasets.md): list, show, add (streaming progress), prune.

Adds are chunked and hashed in this group's own worker thread (never the
loop's default executor, which claims dropped files), one add at a time; the
version is recorded on the loop (the one-writer rule). A prune's rows are one
transaction on the loop; its garbage sweep lists the objects in the worker and
removes them on the loop in small batches, so no commit can slip between a
batch's check and its unlinks (edgeorch/datasets/objects.py, "Pins").

A path to add is read with the requester's rights: every file the daemon opens
for an untrusted client must be readable by that client itself
(:func:`edgeorch.control.peerfiles.peer_may_read`, the rule ``pipelines.validate`` uses).
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from ...datasets import service
from ...datasets.names import check_name, parse_ref
from ...datasets.retention import Rule
from ...errors import UsageError
from ...events import DatasetsPruned, DatasetVersioned, Event
from .base import OpSpec, actor_of, arg

if TYPE_CHECKING:  # pragma: no cover
    from ...control import Peer
    from ...datasets.objects import ObjectStore
    from ...store import Store

PROGRESS_EVERY_S = 0.5
"""How often a running add reports its progress (also what keeps the client's per-item timeout away)."""


class DatasetOps:
    """Data versions: ``store`` holds the versions, ``objects`` the chunks; ``publish`` announces each
    change on the bus, stamped by ``clock``."""

    OPS = (
        OpSpec("datasets.list", "datasets_list", "read", "every dataset: versions, latest, sizes; the store's totals"),
        OpSpec("datasets.show", "datasets_show", "read",
               "a dataset's versions, or one version (ref NAME@VERSION) with its files when files = true",
               args=("ref", "files")),
        OpSpec("datasets.add", "datasets_add", "act", "snapshot a file or folder as a new version (progress items,"
               " then the version)", streaming=True, args=("name", "path", "compress")),
        OpSpec("datasets.prune", "datasets_prune", "act",
               "apply a retention rule (keep, max_age); held and latest versions stay; unused chunks removed",
               args=("name", "keep", "max_age", "dry_run")),
    )

    def __init__(self, *, store: Store, objects: ObjectStore, publish: Callable[[Event], None],
                 clock: Callable[[], float]) -> None:
        self.store = store
        self.objects = objects
        self.publish = publish
        self.clock = clock
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="edgeorch-datasets")

    async def datasets_list(self, args: dict[str, Any], peer: Peer) -> dict[str, Any]:
        return service.listing(self.store)

    async def datasets_show(self, args: dict[str, Any], peer: Peer) -> dict[str, Any]:
        ref = arg(args, "ref", str)
        name, version = parse_ref(ref, field="args.ref")
        if "@" not in ref:
            return service.overview(self.store, name)
        return service.show(self.store, name, version, with_files=arg(args, "files", bool, required=False,
                                                                         default=False))

    async def datasets_add(self, args: dict[str, Any], peer: Peer) -> AsyncIterator[dict[str, Any]]:
        name = check_name(arg(args, "name", str), field="args.name")
        path = arg(args, "path", str)
        if not os.path.isabs(path):
            raise UsageError("must be an absolute path (the daemon does not share your working folder)",
                             field="args.path", value=path)
        compress = arg(args, "compress", bool, required=False, default=False)
        progress: dict[str, int] = {"done": 0, "total": 0}
        cancel = threading.Event()

        def report(done: int, total: int) -> None:
            progress["done"], progress["total"] = done, total

        fut = self._worker.submit(service.take_snapshot, path, self.objects, compress=compress, progress=report,
                                  cancel=cancel, may_read=_may_read_for(peer))
        consumed = False
        waiting = asyncio.wrap_future(fut)
        try:
            while not waiting.done():
                await asyncio.wait([waiting], timeout=PROGRESS_EVERY_S)
                if not waiting.done():
                    yield {"progress": dict(progress)}
            consumed = True
            snap = waiting.result()
            try:
                doc = service.record(self.store, name, snap, source="add", source_path=path, actor=actor_of(peer))
            finally:
                snap.release()
            self.publish(DatasetVersioned(self.clock(), doc["dataset"], doc["version"], "add", doc["files"],
                                          doc["size"], doc["new_bytes"]))
            yield {"version": doc}
        finally:
            cancel.set()  # the client went away (or the add is over): a snapshot still running stops
            if not consumed:
                fut.add_done_callback(_release_when_done)
                # Its end (SnapshotCancelled, most often) is nobody's now: taken here, not logged as "Future
                # exception was never retrieved" with a traceback when the wrapper is collected.
                waiting.add_done_callback(lambda f: f.cancelled() or f.exception())

    async def datasets_prune(self, args: dict[str, Any], peer: Peer) -> dict[str, Any]:
        name = arg(args, "name", str, required=False)
        if name is not None:
            check_name(name, field="args.name")
        rule = Rule.parse(arg(args, "keep", int, required=False), arg(args, "max_age", (str, int, float),
                                                                        required=False))
        dry_run = arg(args, "dry_run", bool, required=False, default=False)
        rows = service.prune_rows(self.store, rule, name=name, actor=actor_of(peer), dry_run=dry_run)
        if dry_run:
            return service.summary(rows, 0, 0, 0) | {"dry_run": True, "rule": rule.describe()}
        if rows["removed"]:
            self.publish(DatasetsPruned(self.clock(), tuple(v["ref"] for v in rows["removed"]),
                                        sum(c[2] for c in rows["chunks"]), actor_of(peer)))
        loop = asyncio.get_running_loop()
        candidates = await loop.run_in_executor(self._worker, service.list_garbage, self.objects)
        removed = freed = 0
        for batch in service.batches(candidates):
            r, f = service.remove_garbage(self.store, self.objects, batch)  # on the loop: see the module docstring
            removed, freed = removed + r, freed + f
            await asyncio.sleep(0)
        temp = await loop.run_in_executor(self._worker, service.remove_stale_temp, self.objects)
        return service.summary(rows, removed, freed, temp) | {"dry_run": False, "rule": rule.describe()}


def _release_when_done(fut: Any) -> None:
    """A snapshot nobody will record (its client went away): drop its pins once it is done."""
    if not fut.cancelled() and fut.exception() is None:
        fut.result().release()


def _may_read_for(peer: Peer) -> Callable[[int, os.stat_result], bool] | None:
    """The per-file check of an add for ``peer``: None for root and the daemon's own user (trusted)."""
    if peer.uid in (0, os.getuid()):
        return None
    from ...control.auth import _groups_from_db
    from ...control.peerfiles import peer_may_read

    gids = _groups_from_db(peer)

    def may_read(fd: int, st: os.stat_result) -> bool:
        return peer_may_read(os.readlink(f"/proc/self/fd/{fd}"), st, peer, gids)

    return may_read
