"""Helpers shared by the engine's unit tests (a real engine and SQLite, no daemon)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from edgeorch.errors import StateError


def disk_full(*_a: Any, **_k: Any) -> None:
    """Stands in for a store write that fails as a full disk makes it fail."""
    raise StateError("cannot write the state file: No space left on device")


async def until(cond: Any, timeout: float = 20.0) -> None:
    """Await ``cond()`` on the running loop, polling with a deadline (an engine test's condition)."""
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "condition not reached"
        await asyncio.sleep(0.02)
