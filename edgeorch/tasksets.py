"""Sets of background asyncio tasks that remove themselves when done, and waiting for them all."""

from __future__ import annotations

import asyncio
from typing import Any


async def drain(tasks: set[asyncio.Task[Any]]) -> None:
    """Wait until every task of ``tasks`` has finished, those started meanwhile (by the ones waited for) included.

    ``tasks`` is a set whose tasks leave it by a done callback, which runs a loop step after the task finished.
    Only unfinished tasks are waited on: on Python >= 3.12 gathering finished tasks completes at once without
    yielding, so a loop of ``while tasks: await gather(*tasks)`` spun for good and the callbacks never ran (an
    in-process run hung until a timeout killed it). Exceptions stay with the tasks (their done callbacks log them).
    """
    while pending := [t for t in tasks if not t.done()]:
        await asyncio.wait(pending)
