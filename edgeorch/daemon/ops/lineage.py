"""``lineage``, ``lineage.export``: what a run, task or file was made from and what was made from it; OpenLineage."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any, AsyncIterator

from ...errors import UsageError
from ...lineage import DEFAULT_DEPTH, DEFAULT_MAX_NODES, DEFAULT_NAMESPACE, DIRECTIONS, query, run_events
from .base import OpSpec, arg

if TYPE_CHECKING:  # pragma: no cover
    from ...control import Peer
    from ...store import Store


class LineageOps:
    """Lineage queries over ``store`` (reads only: ``store.lineage``, ``store.outputs``, ``store.runs``)."""

    OPS = (
        OpSpec("lineage", "lineage", "read",
               "upstream and downstream of a run, task, file path, sha256 or drop-folder input",
               args=("thing", "cwd", "sha256", "directions", "depth", "max_nodes")),
        OpSpec("lineage.export", "lineage_export", "read", "OpenLineage run events of the recorded runs",
               streaming=True, args=("namespace", "run_id", "since")),
    )

    def __init__(self, *, store: "Store") -> None:
        self.store = store

    async def lineage(self, args: dict[str, Any], peer: "Peer") -> dict[str, Any]:
        """``thing`` (a relative path is relative to ``cwd``, the client's folder); ``sha256`` picks a file's
        version; ``directions`` (default both), ``depth``, ``max_nodes``."""
        thing = arg(args, "thing", str)
        directions = arg(args, "directions", list, required=False, default=list(DIRECTIONS))
        if not directions or any(d not in DIRECTIONS for d in directions):
            raise UsageError("is not a list of directions", field="args.directions", value=directions,
                             expected=f"a non-empty array of {', '.join(DIRECTIONS)}")
        max_nodes = arg(args, "max_nodes", int, required=False, default=DEFAULT_MAX_NODES)
        if not 1 <= max_nodes <= 100_000:
            raise UsageError("is out of range", field="args.max_nodes", value=max_nodes, expected="1..100000")
        return query(self.store, thing, cwd=arg(args, "cwd", str, required=False),
                     sha256=arg(args, "sha256", str, required=False), directions=directions,
                     depth=arg(args, "depth", int, required=False, default=DEFAULT_DEPTH), max_nodes=max_nodes)

    async def lineage_export(self, args: dict[str, Any], peer: "Peer") -> AsyncIterator[dict[str, Any]]:
        """One item per event (``{"event": ...}``), run by run; ``since`` (runs after it) or ``run_id``; ``namespace``."""
        namespace = arg(args, "namespace", str, required=False, default=DEFAULT_NAMESPACE)
        run_id = arg(args, "run_id", int, required=False)
        since = arg(args, "since", int, required=False, default=0)
        ids = [run_id] if run_id is not None else self.store.lineage.run_ids(since)
        for rid in ids:
            for event in run_events(self.store, rid, namespace=namespace):
                yield {"event": event}
            await asyncio.sleep(0)  # one run at a time: the loop serves others between runs
