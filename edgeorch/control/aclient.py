"""The low-level asyncio client of the control socket: the twin of :class:`edgeorch.control.Client`.

Same ops, same errors, same response decoding (the pure functions of
:mod:`edgeorch.control.protocol` and the connect-error mapping of
:mod:`edgeorch.control.client`); only the I/O differs. It is the transport
of :class:`edgeorch.AsyncClient`.

Every :meth:`AsyncClient.call` uses a connection of its own, closed when
the answer is in. That costs one ``connect`` (tens of microseconds on a
Unix socket) and buys two things a shared connection would need machinery
for: coroutines may call concurrently without a lock or an id dispatcher,
and no call ever reads the goodbye line a daemon left on an idle connection
it closed (the synchronous client checks for that before each reuse).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncGenerator
from pathlib import Path
from types import TracebackType
from typing import Any

from . import protocol as P
from .client import DEFAULT_TIMEOUT, MAX_RESPONSE_BYTES, connect_error, connection_lost, item_timeout
from .listening import socket_address

_REQUEST_ID = 1
"""Each connection carries one request, so one id serves."""


class AsyncClient:
    """Talks to the daemon at ``socket_path`` from asyncio code.

    ``timeout`` (seconds, None: wait forever) bounds connecting and the wait
    for the answer of :meth:`call`. Errors are those of the synchronous
    :class:`~edgeorch.control.Client`: ``DaemonNotRunning`` when nothing
    listens, the daemon's errors as their ``EdgeorchError`` classes,
    ``Timeout`` and ``BadResponse`` for a stuck or broken daemon. Safe to
    use from many coroutines of one event loop at once.
    """

    def __init__(self, socket_path: str | os.PathLike[str], timeout: float | None = DEFAULT_TIMEOUT) -> None:
        self.socket_path = Path(socket_path)
        self.timeout = timeout

    async def _open(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        try:
            async with asyncio.timeout(self.timeout):
                # limit: one response line may be this long before it is refused as too large
                with socket_address(self.socket_path) as address:
                    return await asyncio.open_unix_connection(address, limit=MAX_RESPONSE_BYTES + 1)
        except TimeoutError:
            raise P.Timeout(f"the daemon at {self.socket_path} does not accept connections (timed out)") from None
        except OSError as exc:
            raise connect_error(self.socket_path, exc) from None

    async def _send(self, writer: asyncio.StreamWriter, op: str, args: dict[str, Any] | None) -> None:
        writer.write(P.encode(P.request(op, args, _REQUEST_ID)))
        try:
            async with asyncio.timeout(self.timeout):
                await writer.drain()
        except TimeoutError:
            raise P.Timeout(f"the daemon at {self.socket_path} is not reading (timed out)") from None
        except OSError as exc:
            raise connection_lost(self.socket_path, exc) from None

    async def _receive(self, reader: asyncio.StreamReader, timeout: float | None) -> tuple[bool, Any]:
        try:
            async with asyncio.timeout(timeout):
                line = await reader.readline()
        except TimeoutError:
            raise P.Timeout(f"no answer from the daemon at {self.socket_path} (timed out)") from None
        except ValueError:  # the line outgrew the reader's limit
            raise P.BadResponse(f"response from the daemon at {self.socket_path} is too large") from None
        except OSError as exc:
            raise connection_lost(self.socket_path, exc) from None
        return P.answer_of(P.decode_response(line, self.socket_path), _REQUEST_ID)

    async def call(self, op: str, args: dict[str, Any] | None = None) -> Any:
        """Run a plain op and return its ``result`` (a dict for every built-in op)."""
        reader, writer = await self._open()
        try:
            await self._send(writer, op, args)
            _, result = await self._receive(reader, self.timeout)
            return result
        finally:
            await _close(writer)

    async def stream(self, op: str, args: dict[str, Any] | None = None, *, timeout: float | None = None,
                     deadline: float | None = None) -> AsyncGenerator[Any, None]:
        """Run a streaming op; yields each ``result`` until the stream ends.

        ``timeout`` bounds the wait for each item (None: forever) and
        ``deadline`` (a :func:`time.monotonic` value) the whole stream, as in
        :meth:`edgeorch.control.Client.stream`. Closing the generator
        (``await gen.aclose()``, or ``contextlib.aclosing``) closes the
        connection, which stops the stream in the daemon; a generator left
        unfinished is closed when asyncio finalises it.
        """
        reader, writer = await self._open()
        try:
            await self._send(writer, op, args)
            while True:
                ended, result = await self._receive(reader, item_timeout(timeout, deadline))
                if ended:
                    return
                yield result
        finally:
            await _close(writer)

    async def aclose(self) -> None:
        """Nothing to close (each call has its own connection); here so both clients close alike."""

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None) -> None:
        await self.aclose()


async def _close(writer: asyncio.StreamWriter) -> None:
    writer.close()
    try:
        await writer.wait_closed()
    except OSError:  # already broken (the daemon hung up): closed all the same
        pass
