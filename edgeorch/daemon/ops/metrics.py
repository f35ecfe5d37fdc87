"""``metrics``: the daemon's Prometheus metrics, for scripts (the same snapshot HTTP and the textfile serve)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ...errors import UsageError
from .base import OpSpec, arg

if TYPE_CHECKING:  # pragma: no cover
    from ...control import Peer
    from ...observe.service import MetricsService

FORMATS = ("json", "text")


class MetricsOps:
    """``metrics``. ``metrics``: the daemon's :class:`~edgeorch.observe.service.MetricsService`."""

    OPS = (
        OpSpec("metrics", "metrics", "read",
               "Prometheus metrics of the daemon's state: families as JSON, or the text exposition format",
               args=("format",)),
    )

    def __init__(self, *, metrics: "MetricsService") -> None:
        self.service = metrics

    async def metrics(self, args: dict[str, Any], peer: "Peer") -> dict[str, Any]:
        """``args.format``: ``json`` (default: ``families``) or ``text`` (``text``: what ``/metrics`` serves).

        Both carry ``outputs``: where else the metrics go (HTTP address, textfile).
        """
        fmt = arg(args, "format", str, required=False, default="json")
        if fmt not in FORMATS:
            raise UsageError("is not a metrics format", field="args.format", value=fmt, expected="json or text")
        families = await self.service.snapshot("op")
        from ...observe.exposition import to_json, to_text

        out: dict[str, Any] = {"outputs": self.service.describe()}
        if fmt == "text":
            out["text"] = to_text(families).decode()
        else:
            out["families"] = to_json(families)
        return out
