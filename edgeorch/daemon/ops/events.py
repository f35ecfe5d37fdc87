"""The ``events`` op and the fan-out behind it: every state change, streamed to each subscribed client."""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any, AsyncIterator

from ...model import RunState
from .base import OpSpec, arg

if TYPE_CHECKING:  # pragma: no cover
    from ...control import Peer
    from ...engine.engine import Engine
    from ...store import Store

EVENT_QUEUE = 10_000
"""Events kept for a slow reader before the oldest is dropped (and the reader told)."""


class EventHub:
    """Fans each published event out to every subscriber's bounded queue.

    ``publish`` is an engine listener and is also called by the daemon (reload),
    the pipelines ops (pause/resume) and the trigger service (schedule, input).
    It never blocks: a full queue loses its oldest event and gets an
    ``overflow`` notice instead.
    """

    def __init__(self) -> None:
        self.subscribers: set[asyncio.Queue[dict[str, Any]]] = set()

    def publish(self, event: dict[str, Any]) -> None:
        for q in list(self.subscribers):
            if q.full():
                try:
                    q.get_nowait()  # a slow reader loses the oldest event, and is told so
                except asyncio.QueueEmpty:
                    pass
                q.put_nowait({"kind": "overflow", "message": "events were dropped: the client reads too slowly"})
            q.put_nowait(event)


class EventOps:
    """``events``: ``hub`` streams; ``store`` says whether a followed run is already over; ``engine`` whether it is live."""

    OPS = (OpSpec("events", "events", "read", "a stream of state changes", streaming=True),)

    def __init__(self, *, hub: EventHub, store: "Store", engine: "Engine") -> None:
        self.hub = hub
        self.store = store
        self.engine = engine

    async def events(self, args: dict[str, Any], peer: "Peer") -> AsyncIterator[dict[str, Any]]:
        run_id = arg(args, "run_id", int, required=False)
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(maxsize=EVENT_QUEUE)
        self.hub.subscribers.add(queue)
        try:
            yield {"kind": "subscribed", "run_id": run_id, "ts": time.time()}
            if run_id is not None:
                # The run may already be over: say so, so a follower never waits forever.
                run = self.store.get_run(run_id)
                if RunState(run["state"]).finished and run_id not in self.engine.runs:
                    yield {"kind": "run", "run_id": run_id, "state": run["state"], "reason": run["reason"], "ts": time.time()}
            while True:
                event = await queue.get()
                if run_id is None or event.get("run_id") in (None, run_id) and event.get("kind") != "pipeline":
                    yield event
        finally:
            self.hub.subscribers.discard(queue)
