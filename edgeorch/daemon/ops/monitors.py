"""``monitors.*`` and ``why``: the monitoring rules' states, silences, and what started a run."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable

from ...errors import UsageError
from ...monitor.views import monitors_doc, why_doc
from .base import OpSpec, actor_of, arg, time_arg

if TYPE_CHECKING:  # pragma: no cover
    from ...control import Peer
    from ...monitor.service import Monitors
    from ...store import Store


class MonitorOps:
    """Rules (``monitors``: the daemon's :class:`~edgeorch.monitor.service.Monitors`) and runs' causes (``store``)."""

    OPS = (
        OpSpec("monitors.list", "monitors_list", "read",
               "monitoring rules: state (ok, pending, firing, cooling, silenced), last value, last firing"),
        OpSpec("monitors.silence", "monitors_silence", "act",
               "silence a rule until a time (Unix seconds) with a reason; until null lifts the silence",
               args=("rule", "until", "reason")),
        OpSpec("why", "why", "read", "what started a run (schedule, drop, rule, person) and what its tasks waited for",
               args=("run",)),
    )

    def __init__(self, *, store: "Store", monitors: "Monitors",
                 waiting: Callable[[int], dict[str, str]] | None = None) -> None:
        self.store = store
        self.waiting = waiting  # run id -> task -> why it waits now (the engine's queue)
        self.monitors = monitors

    async def monitors_list(self, args: dict[str, Any], peer: "Peer") -> dict[str, Any]:
        m = self.monitors
        return monitors_doc(self.store, m.rules, m.problems, m.clock())

    async def monitors_silence(self, args: dict[str, Any], peer: "Peer") -> dict[str, Any]:
        rule = arg(args, "rule", str)
        until = time_arg(args, "until", required=False)
        reason = arg(args, "reason", str, required=False)
        if until is not None and until <= self.monitors.clock():
            raise UsageError("is not in the future", field="args.until", value=until,
                             expected="a time after now (Unix seconds)")
        if until is not None and not reason:
            raise UsageError("is required with a silence", field="args.reason", expected="why the rule is silenced")
        return {"rule": self.monitors.silence(rule, until, reason=reason, actor=actor_of(peer))}

    async def why(self, args: dict[str, Any], peer: "Peer") -> dict[str, Any]:
        run_id = arg(args, "run", int)
        return why_doc(self.store, run_id, self.waiting(run_id) if self.waiting is not None else None)
