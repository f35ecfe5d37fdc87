"""``gc`` (a dry run) and ``gc.apply``: removing old runs through the daemon (docs/protocol.md, docs/state.md "Retention")."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ...errors import UsageError
from ...retention.gc import GcRequest, parse_older_than, request_for
from .base import OpSpec, actor_of, arg

if TYPE_CHECKING:  # pragma: no cover
    from ...control import Peer
    from ...retention.service import RunRetention


class GcOps:
    """Old runs: ``retention`` runs each gc (one at a time, plan and commit on the loop, folders in a worker thread)
    and knows the daemon's ``[retention]`` (the defaults of ``older_than`` and ``keep_last``)."""

    OPS = (
        OpSpec("gc", "gc_plan", "read",
               "what gc.apply would remove: old runs, rows, folders, bytes; what is held and why (changes nothing)",
               args=("older_than", "pipeline", "keep_last")),
        OpSpec("gc.apply", "gc_apply", "act",
               "remove runs finished before a bound (rows in one transaction, then folders), except those held",
               args=("older_than", "pipeline", "keep_last")),
    )

    def __init__(self, *, retention: "RunRetention") -> None:
        self.retention = retention

    async def gc_plan(self, args: dict[str, Any], peer: "Peer") -> dict[str, Any]:
        return await self.retention.collect(self._request(args, peer, apply=False))

    async def gc_apply(self, args: dict[str, Any], peer: "Peer") -> dict[str, Any]:
        return await self.retention.collect(self._request(args, peer, apply=True))

    def _request(self, args: dict[str, Any], peer: "Peer", *, apply: bool) -> GcRequest:
        """``older_than`` (seconds, or a duration such as ``"90d"``), ``pipeline``, ``keep_last``; absent ones from
        the daemon's ``[retention]``."""
        raw = arg(args, "older_than", (int, float, str), required=False)
        pipeline = arg(args, "pipeline", str, required=False)
        if pipeline == "":
            raise UsageError("is empty", field="args.pipeline", expected="a pipeline name")
        return request_for(self.retention.config,
                           older_than=None if raw is None else parse_older_than(raw, field="args.older_than"),
                           pipeline=pipeline, keep_last=arg(args, "keep_last", int, required=False),
                           apply=apply, actor=actor_of(peer), config_file=None,
                           fields=("args.older_than", "args.keep_last"))
