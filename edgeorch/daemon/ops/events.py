"""The ``events`` op: every state change published on the bus, streamed to each subscribed client."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any, AsyncIterator

from ...errors import UsageError
from ...events import Bus, Event, Overflow, PipelinePaused, RunFinished, Subscribed, TaskStarted
from ...model import STREAM_KINDS, RunState
from .base import OpSpec, arg

if TYPE_CHECKING:  # pragma: no cover
    from ...control import Peer
    from ...engine.engine import Engine
    from ...store import Store

EVENT_QUEUE = 10_000
"""Events kept for a slow reader before the oldest is dropped (and the reader told)."""


def _follows(run_id: int | None, event: Event) -> bool:
    """Whether a client following ``run_id`` (None: everything) gets ``event``.

    A run's follower gets that run's events and those of no run (a reload, a
    GPU drain, ...), but not pauses (they are about a pipeline, not the run).
    """
    return run_id is None or event.run in (None, run_id) and not isinstance(event, PipelinePaused)


def _kinds(args: dict[str, Any]) -> frozenset[str] | None:
    """The ``kinds`` argument: the item kinds a stream carries (None: all), each one of :data:`STREAM_KINDS`.

    An empty list carries none of the bus's items (the ``subscribed`` item and overflow notices only).
    """
    kinds = arg(args, "kinds", list, required=False)
    if kinds is None:
        return None
    for kind in kinds:
        if not isinstance(kind, str) or kind not in STREAM_KINDS:
            raise UsageError("is not an event kind", field="args.kinds", value=kind,
                             expected="one of " + ", ".join(sorted(STREAM_KINDS)))
    return frozenset(kinds)


def _enqueue(queue: asyncio.Queue[dict[str, Any]], item: dict[str, Any]) -> None:
    """Never blocks the publisher: a full queue loses its oldest item and gets an ``overflow`` notice instead."""
    if queue.full():
        try:
            queue.get_nowait()  # a slow reader loses the oldest event, and is told so
        except asyncio.QueueEmpty:
            pass
        queue.put_nowait(Overflow().to_wire())
    queue.put_nowait(item)


class EventOps:
    """``events``: subscribes each stream to ``bus``; ``store`` says whether a followed run is already over;
    ``engine`` whether it is live, and its clock stamps the stream's own items."""

    OPS = (OpSpec("events", "events", "read", "a stream of state changes", streaming=True,
                  args=("run_id", "kinds")),)

    def __init__(self, *, bus: Bus, store: "Store", engine: "Engine") -> None:
        self.bus = bus
        self.store = store
        self.engine = engine

    async def events(self, args: dict[str, Any], peer: "Peer") -> AsyncIterator[dict[str, Any]]:
        run_id = arg(args, "run_id", int, required=False)
        kinds = _kinds(args)
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(maxsize=EVENT_QUEUE)

        def deliver(event: Event) -> None:
            # Turned into its wire item at once: the client sees the event as it was when published.
            item = event.to_wire()
            if kinds is None or item["kind"] in kinds:
                _enqueue(queue, item)

        # An unknown run is refused before anything is streamed (a `subscribed` item, then an error, was two
        # answers to one question); read in the same loop step as the subscription below.
        run = self.store.runs.get(run_id) if run_id is not None else None
        unsubscribe = self.bus.subscribe(deliver, lambda event: _follows(run_id, event))
        # Read in the same loop step as the subscription: what started before it, the queue holds the rest.
        running = self._running_attempts(run_id) if kinds is None or "task" in kinds else []
        try:
            yield Subscribed(self.engine.clock(), run_id).to_wire()
            for item in running:
                yield item
            if run is not None and run_id is not None and (kinds is None or "run" in kinds):
                # The run may already be over: say so, so a follower never waits forever.
                if RunState(run["state"]).finished and run_id not in self.engine.runs:  # stamped when it ended
                    yield RunFinished(run["finished_at"] or self.engine.clock(), run_id, run["state"],
                                      run["reason"]).to_wire()
            while True:
                yield await queue.get()
        finally:
            unsubscribe()

    def _running_attempts(self, run_id: int | None) -> list[dict[str, Any]]:
        """A followed live run's attempts that started before the stream did, as their ``task`` running items.

        For a follower that attaches to a run under way (``edgeorch retry``,
        ``Client.wait``): what ended before it subscribed is in ``runs.show``;
        ``Client.run`` subscribes before it queues, so it misses nothing. Each
        item's ``ts`` is the attempt's recorded start; a follower may still
        see an attempt's item twice (published between the store's write and
        the bus), so clients key them by task and attempt number.
        """
        if run_id is None or run_id not in self.engine.runs:
            return []
        return [TaskStarted(a["started_at"], run_id, a["task"], a["number"], self.store.attempts.lease_of(a["id"])).to_wire()
                for a in self.store.attempts.live_of_run(run_id)]
