"""The daemon's control ops, one module per group (see docs/protocol.md for each op).

Each group is a class built with the collaborators its ops use and an
``OPS`` table (:class:`~edgeorch.daemon.ops.base.OpSpec` rows); :func:`register`
installs every row on the control server. Nothing here imports the daemon:
the wiring (:mod:`edgeorch.daemon.app`) builds the groups and passes them in.

- :mod:`.status`: ``status``, ``resources``;
- :mod:`.pipelines`: ``pipelines.list/show/validate/pause/resume``, ``reload``;
- :mod:`.runs`: ``trigger``, ``runs.list/show``, ``logs``, ``cancel``, ``retry``;
- :mod:`.events`: ``events``, each stream a subscriber of the bus (:mod:`edgeorch.events`);
- :mod:`.inputs`: ``inputs.list``, ``inputs.requeue``;
- :mod:`.datasets`: ``datasets.list/show/add/prune`` (data versions);
- :mod:`.models`: ``models.list/show/versions/diff/why/promote/rollback/unblock/observe`` (the model registry);
- :mod:`.monitors`: ``monitors.list``, ``monitors.silence``, ``why`` (monitoring rules, what started a run);
- :mod:`.baselines`: ``baselines.list/show/set`` (named data profiles a drift task compares with);
- :mod:`.privacy`: ``privacy.show``, ``privacy.spend`` (the privacy budget ledger);
- :mod:`.lineage`: ``lineage`` (upstream and downstream of a thing), ``lineage.export`` (OpenLineage events);
- :mod:`.gc`: ``gc`` (a dry run), ``gc.apply`` (old runs removed);
- :mod:`.audit`: ``audit.list/state/verify/init/seal/prune``, and the record of refused requests;
- :mod:`.metrics`: ``metrics`` (the Prometheus metrics, :mod:`edgeorch.observe`).

``ping``, ``version`` and ``ops`` are the control server's own.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Iterable

from .audit import AuditOps
from .baselines import BaselineOps
from .base import OpSpec
from .datasets import DatasetOps
from .events import EventOps
from .gc import GcOps
from .inputs import InputOps
from .lineage import LineageOps
from .metrics import MetricsOps
from .models import ModelOps
from .monitors import MonitorOps
from .pipelines import PipelineOps
from .privacy import PrivacyOps
from .runs import RunOps
from .status import StatusOps

if TYPE_CHECKING:  # pragma: no cover
    from ...control import ControlServer


def register(server: "ControlServer", groups: Iterable[Any], *, before: Callable[[], None] | None = None) -> None:
    """Serve every op of every group's ``OPS`` table on ``server`` (a name registered twice raises ValueError).

    Each op takes the arguments its row's ``args`` lists, no others (the server refuses the rest).
    ``before()`` runs ahead of each plain (not streaming) op's handler: the engine's
    :meth:`~edgeorch.engine.engine.Engine.sync_outcomes`, so that no answer reads an outcome that is not
    durable yet (a stream gets such an outcome's event once it is).
    """
    for group in groups:
        for spec in group.OPS:
            handler = getattr(group, spec.method)
            if before is not None and not spec.streaming:
                handler = _after(before, handler)
            server.register(spec.name, handler, access=spec.access, streaming=spec.streaming, help=spec.help,
                            args=spec.args)


def _after(before: Callable[[], None], handler: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
    async def handle(args: dict[str, Any], peer: Any) -> Any:
        before()
        return await handler(args, peer)

    return handle


__all__ = ["AuditOps", "BaselineOps", "DatasetOps", "EventOps", "GcOps", "InputOps", "LineageOps", "MetricsOps", "ModelOps", "MonitorOps", "OpSpec", "PipelineOps", "PrivacyOps",
           "RunOps", "StatusOps", "register"]
