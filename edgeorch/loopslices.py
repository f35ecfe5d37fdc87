"""Many short blocking steps done on the event loop itself, in slices that let it serve others between them.

Why not a worker thread: a thread that makes thousands of short system calls (a ``mkdir``, a ``rename``, an
``fstat`` each) gives the GIL back at every call and must take it back afterwards. While the loop is busy (a
burst of drops is exactly when it is), each take waits up to the interpreter's switch interval (5 ms): a
30 microsecond ``mkdir`` costs milliseconds, and the hand-overs cost CPU of their own. Measured on a 2,000-call
loop of 500 ``mkdir`` calls in a thread: 57 us a call alone, 4.8 ms beside a computing thread
(``benchmarks/README.md``, issue 11, twenty-ninth part). The same steps on the loop cost what the calls cost; the
slices keep the loop answering (a control request, a task's end) within :data:`SLICE_S` of work per loop step.

A step that blocks long by itself (an ``fsync``, the hash of a large file) still belongs in a thread: one
hand-over for a long call costs nothing worth saving.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable
from typing import TypeVar

T = TypeVar("T")

SLICE_S = 0.002
"""Work done on the loop between two yields to it (seconds). A request needs several loop steps (read, answer,
write), each of which may wait one slice: with 5 ms slices `status` during a 4,000-file burst took a median 35 ms
against 17 ms before claims moved onto the loop; with 2 ms, 19 ms (the same as before)."""


async def sliced(items: Iterable[T], *, slice_s: float | None = None) -> AsyncIterator[T]:
    """Each of ``items`` in turn, for a loop body run on the calling event loop (``async for item in
    sliced(items)``); between two items it yields to the loop once ``slice_s`` seconds have passed since the last
    yield (a slice always holds at least one item's work); ``slice_s`` None: :data:`SLICE_S`, read at the call.

    Other coroutines run between slices: what the body relies on must hold across a yield, as it would across
    an ``await`` of a worker thread. The body may ``break``; an exception it raises ends the loop as usual.
    """
    loop = asyncio.get_running_loop()
    if slice_s is None:
        slice_s = SLICE_S
    deadline = loop.time() + slice_s
    for item in items:
        yield item
        if loop.time() >= deadline:
            await asyncio.sleep(0)
            deadline = loop.time() + slice_s
