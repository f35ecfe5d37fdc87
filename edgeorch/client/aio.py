"""``edgeorch.AsyncClient``: the same client for asyncio code (a notebook's event loop, an async service).

    async with edgeorch.AsyncClient() as client:
        run = await client.run("house_prices", {"epochs": 3})
        async for text in client.logs(run, "train"):
            print(text, end="")

The methods are :class:`edgeorch.Client`'s, as coroutines and async
iterators, built from the same :mod:`edgeorch.client.calls` and returning the
same records; the transport is :class:`edgeorch.control.aclient.AsyncClient`
(a connection per request, so coroutines may share one client).
"""

from __future__ import annotations

import os
import time
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from contextlib import aclosing
from types import TracebackType
from typing import Any, TypeVar

from ..config import Config
from ..control import protocol as P
from ..control.aclient import AsyncClient as AsyncTransport
from ..control.client import DEFAULT_TIMEOUT
from ..model import RunState
from . import calls
from .locate import find_socket
from .records import Queued, Run, RunSummary

T = TypeVar("T")


class AsyncClient:
    """:class:`edgeorch.Client` for asyncio: the same arguments, methods, records and errors.

    Plain methods are coroutines (``await client.get_run(3)``); :meth:`logs`
    and :meth:`events` are async iterators (``async for``). A
    :class:`~edgeorch.client.Run` it returns refreshes and waits through it:
    ``await run.refresh()``, ``await run.wait()``. Finding the socket reads
    the config file (small, once) when the client is made.
    """

    def __init__(self, config: Config | str | os.PathLike[str] | None = None, socket: str | os.PathLike[str] | None = None,
                 timeout: float | None = DEFAULT_TIMEOUT) -> None:
        self._transport = AsyncTransport(find_socket(config, socket), timeout=timeout)

    @property
    def socket_path(self) -> os.PathLike[str]:
        return self._transport.socket_path

    @property
    def timeout(self) -> float | None:
        return self._transport.timeout

    async def _do(self, call: calls.Call[T]) -> T:
        return call.read(await self._transport.call(call.op, call.args), self)

    async def _stream(self, call: calls.Call[T], timeout: float | None = None) -> AsyncIterator[T]:
        per_item = self.timeout if call.bounded and timeout is None else timeout
        async with aclosing(self._transport.stream(call.op, call.args, timeout=per_item)) as items:
            async for item in items:
                yield call.read(item, self)

    # -- runs ---------------------------------------------------------------------------------

    async def submit(self, pipeline: str | os.PathLike[str], params: Mapping[str, Any] | None = None, *,
                     label: str = calls.DEFAULT_LABEL, no_cache: bool = False) -> Queued:
        """See :meth:`edgeorch.Client.submit`."""
        return await self._do(calls.submit(pipeline, params, label, no_cache))

    async def trigger(self, pipeline: str | os.PathLike[str], params: Mapping[str, Any] | None = None, *,
                      label: str = calls.DEFAULT_LABEL, no_cache: bool = False) -> Run:
        """See :meth:`edgeorch.Client.trigger`."""
        return await self.get_run((await self.submit(pipeline, params, label=label, no_cache=no_cache)).run_id)

    async def run(self, pipeline: str | os.PathLike[str], params: Mapping[str, Any] | None = None, *,
                  timeout: float | None = None, label: str = calls.DEFAULT_LABEL,
                  on_event: Callable[[dict[str, Any]], None] | None = None,
                  on_queued: Callable[[Queued], None] | None = None, no_cache: bool = False) -> Run:
        """See :meth:`edgeorch.Client.run` (the events stream is opened before the run is queued)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        async with aclosing(self._transport.stream("events", calls.follow(None, on_event), deadline=deadline)) as items:
            first = await anext(items, None)  # "subscribed": from here on nothing is missed
            queued = await self.submit(pipeline, params, label=label, no_cache=no_cache)
            if on_queued is not None:
                on_queued(queued)
            if on_event is not None and first is not None:
                on_event(first)
            return await self._follow(items, queued.run_id, timeout, deadline, on_event, unfiltered=True)

    async def wait(self, run: int | RunSummary | Queued, timeout: float | None = None, *,
                   on_event: Callable[[dict[str, Any]], None] | None = None) -> Run:
        """See :meth:`edgeorch.Client.wait`. Cancelling the awaiting task stops the wait (not the run)."""
        run_id = calls.run_id_of(run)
        deadline = None if timeout is None else time.monotonic() + timeout
        async with aclosing(self._transport.stream("events", calls.follow(run_id, on_event), deadline=deadline)) as items:
            return await self._follow(items, run_id, timeout, deadline, on_event)

    async def _follow(self, items: AsyncIterator[Any], run_id: int, timeout: float | None, deadline: float | None,
                      on_event: Callable[[dict[str, Any]], None] | None, *, unfiltered: bool = False) -> Run:
        """See :meth:`edgeorch.Client._follow`."""
        f = calls.Follower(run_id, timeout, deadline, on_event, unfiltered=unfiltered)
        try:
            async for item in items:
                step = f.take(item)
                if step == "finished":
                    break
                if step == "recheck" and (now := await self.get_run(run_id)).finished:
                    return now
            else:
                raise f.ended_early()
        except P.Timeout as exc:
            raise f.timed_out(exc) from None
        except P.ConnectionClosed as exc:
            raise f.lost(exc) from None
        return await self.get_run(run_id)

    async def get_run(self, run: int | RunSummary | Queued) -> Run:
        """See :meth:`edgeorch.Client.get_run`."""
        return await self._do(calls.get_run(run))

    async def runs(self, *, pipeline: str | None = None, state: RunState | str | None = None,
                   limit: int = 20) -> list[RunSummary]:
        """See :meth:`edgeorch.Client.runs`."""
        return await self._do(calls.runs(pipeline, state, limit))

    async def cancel(self, run: int | RunSummary | Queued, reason: str | None = None) -> dict[str, Any]:
        """See :meth:`edgeorch.Client.cancel`."""
        return await self._do(calls.cancel(run, reason))

    async def rerun(self, run: int | RunSummary | Queued, *, timeout: float | None = None,
                    on_event: Callable[[dict[str, Any]], None] | None = None,
                    on_resumed: Callable[[list[str]], None] | None = None, current: bool = False) -> Run:
        """See :meth:`edgeorch.Client.rerun` (the events stream is opened before the retry is asked for)."""
        run_id = calls.run_id_of(run)
        deadline = None if timeout is None else time.monotonic() + timeout
        async with aclosing(self._transport.stream("events", calls.follow(None, on_event), deadline=deadline)) as items:
            first = await anext(items, None)  # "subscribed": from here on nothing is missed
            tasks = await self.retry(run_id, current=current)
            if on_resumed is not None:
                on_resumed(tasks)
            if on_event is not None and first is not None:
                on_event(first)
            return await self._follow(items, run_id, timeout, deadline, on_event, unfiltered=True)

    async def retry(self, run: int | RunSummary | Queued, *, current: bool = False) -> list[str]:
        """See :meth:`edgeorch.Client.retry`."""
        return await self._do(calls.retry(run, current))

    def logs(self, run: int | RunSummary | Queued, task: str, attempt: int | None = None, *,
             follow: bool = False) -> AsyncIterator[str]:
        """See :meth:`edgeorch.Client.logs`; ``async for text in client.logs(...)``. Breaking out leaves the
        stream to be closed when asyncio collects it; ``contextlib.aclosing`` closes it at once."""
        return self._stream(calls.logs(run, task, attempt, follow))

    def events(self, run: int | RunSummary | Queued | None = None, *, kinds: Iterable[str] | None = None,
               timeout: float | None = None) -> AsyncIterator[dict[str, Any]]:
        """See :meth:`edgeorch.Client.events`; ``async for event in client.events(...)``."""
        return self._stream(calls.events(run, kinds), timeout=timeout)

    # -- the daemon -----------------------------------------------------------------------------

    async def status(self) -> dict[str, Any]:
        """See :meth:`edgeorch.Client.status`."""
        return await self._do(calls.status())

    async def pipelines(self) -> list[dict[str, Any]]:
        """See :meth:`edgeorch.Client.pipelines`."""
        return await self._do(calls.pipelines())

    async def aclose(self) -> None:
        """Close the client (it holds no connection between requests; here for ``async with``)."""
        await self._transport.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        return f"edgeorch.AsyncClient(socket={str(self.socket_path)!r})"
