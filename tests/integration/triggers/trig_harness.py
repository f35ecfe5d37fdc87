"""A drop folder driven by the real watcher: ArrivalLoop + claim into an inbox, counted.

Stands in for the daemon's wiring (no store): each ready file is claimed
(rename into ``<inbox>/<claim_id>/``) and counted by its source name, so tests
can assert exactly-once.
"""

from __future__ import annotations

import asyncio
import itertools
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Self

from edgeorch.triggers.arrivals import ArrivalLoop
from edgeorch.triggers.watcher import WatchEvent
from edgeorch.triggers.drop import (
    ClaimedFile,
    ClaimError,
    Refuse,
    WatchSpec,
    claim,
)


class DropHarness:
    def __init__(self, loop: asyncio.AbstractEventLoop, folder: Path, inbox: Path, *, settle: float = 0.2,
                 patterns: tuple[str, ...] = ("*",), rescan_interval: float = 60.0, fsync: bool = False,
                 on_claimed: Callable[[ClaimedFile], None] | None = None) -> None:
        self.loop = loop
        self.folder = folder
        self.inbox = inbox
        self.spec = WatchSpec(folder=folder, pipeline="p", patterns=patterns, settle=settle)
        self.ids = itertools.count(1)
        self.claimed: Counter[str] = Counter()
        self.files: list[ClaimedFile] = []
        self.refused: list[Refuse] = []
        self.ready_calls: list[Path] = []
        self.fsync = fsync
        self.on_claimed = on_claimed
        self.changed = asyncio.Event()
        self.arrivals = ArrivalLoop(loop, [self.spec], self.on_ready, rescan_interval=rescan_interval)
        # Wake wait_for after every event the arrival loop handles, not only after claims: a predicate
        # may read state an event changes without a claim (overflows, missing folders).
        assert self.arrivals.watcher is not None
        deliver = self.arrivals.watcher.post

        def deliver_and_wake(event: WatchEvent) -> None:
            deliver(event)
            self.changed.set()

        self.arrivals.watcher.post = deliver_and_wake

    def on_ready(self, spec: WatchSpec, path: Path) -> None:
        self.ready_calls.append(path)
        try:
            result = claim(path, spec.folder, self.inbox, f"c{next(self.ids)}", max_size=spec.max_size,
                           fsync=self.fsync)
        except ClaimError:
            return
        if isinstance(result, Refuse):
            if result.code != "gone":
                self.refused.append(result)
        else:
            self.claimed[path.name] += 1
            self.files.append(result)
            if self.on_claimed:
                self.on_claimed(result)
        self.changed.set()

    async def wait_for(self, predicate: Callable[[], bool], timeout: float = 30.0) -> None:
        """Wait for events (not for a fixed time) until ``predicate`` holds."""
        async def loop() -> None:
            while not predicate():
                self.changed.clear()
                await self.changed.wait()

        await asyncio.wait_for(loop(), timeout)

    def __enter__(self) -> Self:
        self.arrivals.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.arrivals.stop()
