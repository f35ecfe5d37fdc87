"""``baselines.*``: named, versioned data profiles a drift task compares with (docs/monitoring.md "Baselines").

``baselines.set`` profiles a file (or takes a saved profile, or the profile a run's task saved) in this group's
own worker thread, never on the loop nor on the loop's default executor (which claims dropped files), and
records the version on the loop (the one-writer rule). A path is read with the requester's rights: a file the
client could not read itself is refused (:func:`edgeorch.control.peerfiles.peer_may_read`, the rule
``datasets.add`` and ``pipelines.validate`` use).
"""

from __future__ import annotations

import asyncio
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ...errors import UsageError
from ...monitor import baselines
from .base import OpSpec, actor_of, arg

if TYPE_CHECKING:  # pragma: no cover
    from ...control import Peer
    from ...store import Store


class BaselineOps:
    """Baselines in ``store.baselines``."""

    OPS = (
        OpSpec("baselines.list", "baselines_list", "read", "every baseline: versions, latest, when it was set"),
        OpSpec("baselines.show", "baselines_show", "read",
               "a baseline's version (newest by default): source, columns' summary; and its versions",
               args=("name", "version")),
        OpSpec("baselines.set", "baselines_set", "act",
               "record the next version of a baseline from a data file, a saved profile, or a run's task's profile",
               args=("name", "path", "run", "task", "description")),
    )

    def __init__(self, *, store: "Store") -> None:
        self.store = store
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="edgeorch-baselines")

    async def baselines_list(self, args: dict[str, Any], peer: "Peer") -> dict[str, Any]:
        return {"baselines": self.store.baselines.listing()}

    async def baselines_show(self, args: dict[str, Any], peer: "Peer") -> dict[str, Any]:
        version = arg(args, "version", int, required=False)
        return baselines.show_doc(self.store, baselines.check_name(arg(args, "name", str), "args.name"), version)

    async def baselines_set(self, args: dict[str, Any], peer: "Peer") -> dict[str, Any]:
        name = baselines.check_name(arg(args, "name", str), "args.name")
        path = arg(args, "path", str, required=False)
        run = arg(args, "run", int, required=False)
        task = arg(args, "task", str, required=False)
        if (path is None) == (run is None) or (run is not None and task is None):
            raise UsageError("needs a file, or a run and its task", field="args",
                             expected='{"path": "/abs/file.csv"} or {"run": N, "task": "T"}')
        source: dict[str, Any] | None = None
        if run is not None:
            file = baselines.profile_path_of_run(self.store, run, task)  # the daemon's own run folder
            source = {"kind": "run", "run_id": run, "task": task, "path": str(file)}
        else:
            assert path is not None
            file = _readable_by(path, peer)
        loop = asyncio.get_running_loop()
        snap = await loop.run_in_executor(self._worker, lambda: baselines.snapshot_file(file, source=source))
        row = self.store.baselines.add(name, profile=snap.profile, sha256=snap.sha256, source=snap.source,
                                       columns=snap.columns, rows=snap.rows,
                                       description=arg(args, "description", str, required=False), actor=actor_of(peer))
        return {"baseline": row}


def _readable_by(path: str, peer: "Peer") -> Path:
    """The real path of ``path`` if ``peer`` could read it itself (root and the daemon's user are trusted)."""
    from ...control.peerfiles import PeerFileError, _groups_from_db, peer_may_read

    if not os.path.isabs(path):
        raise PeerFileError("must be an absolute path (the daemon does not share your working folder)",
                            field="args.path", value=path)
    real = os.path.realpath(path)
    try:
        st = os.stat(real)
    except OSError as exc:
        raise PeerFileError(f"cannot read: {exc.strerror}", file=path) from None
    if peer.uid not in (0, os.getuid()) and not peer_may_read(real, st, peer, _groups_from_db(peer)):
        raise PeerFileError("cannot read: Permission denied", file=path,
                            hint="the daemon reads a file for you only if you could read it yourself")
    return Path(real)
