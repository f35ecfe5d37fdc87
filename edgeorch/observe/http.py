"""``/metrics`` over HTTP: ``prometheus_client``'s own server, in its own thread, off the event loop.

The server thread parses requests and writes the exposition; for each scrape
it asks the daemon's loop for a snapshot (``snapshot``, a coroutine run with
:func:`asyncio.run_coroutine_threadsafe`) and waits at most ``timeout``
seconds. A loop that does not answer in time (stuck, or drowned in work)
gets a scrape that still succeeds with ``fallback()``'s families, read in
this thread (``edgeorch_event_loop_responsive 0`` and the process metrics),
so an alert can say so instead of Prometheus seeing only a failed scrape.

Between scrapes the thread sleeps in ``select`` (``socketserver`` wakes it
twice a second to check for shutdown: a few microseconds of CPU).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import time
from collections.abc import Callable, Coroutine, Iterable
from typing import Any

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import Metric

log = logging.getLogger("edgeorch.observe")

Snapshot = Callable[[float], Coroutine[Any, Any, list[Metric]]]
"""``snapshot(requested_at)``: the families, read on the loop (``requested_at``: the request's ``time.monotonic()``)."""


class _Bridge:
    """A ``prometheus_client`` collector whose ``collect`` runs in the server thread and reads on the loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop, snapshot: Snapshot, timeout: float,
                 fallback: Callable[[], Iterable[Metric]]) -> None:
        self.loop = loop
        self.snapshot = snapshot
        self.timeout = timeout
        self.fallback = fallback

    def collect(self) -> Iterable[Metric]:
        try:
            fut = asyncio.run_coroutine_threadsafe(self.snapshot(time.monotonic()), self.loop)
        except RuntimeError:  # the loop is closed: the daemon is on its way out
            return self._unresponsive()
        try:
            return fut.result(self.timeout)
        except concurrent.futures.TimeoutError:
            fut.cancel()
            log.warning("metrics: the event loop did not answer a scrape within %gs", self.timeout)
            return self._unresponsive()

    def _unresponsive(self) -> list[Metric]:
        return list(self.fallback())


class MetricsEndpoint:
    """The HTTP endpoint on ``host:port`` (port 0: any free port; :attr:`address` says which)."""

    def __init__(self, host: str, port: int, *, loop: asyncio.AbstractEventLoop, snapshot: Snapshot,
                 fallback: Callable[[], Iterable[Metric]], timeout: float = 5.0) -> None:
        self.host = host
        self.port = port
        self._bridge = _Bridge(loop, snapshot, timeout, fallback)
        self._server: Any = None
        self._thread: Any = None

    def start(self) -> None:
        """Listen and serve in a daemon thread; raises ``OSError`` when the address cannot be bound."""
        registry = CollectorRegistry(auto_describe=False)
        registry.register(self._bridge)  # type: ignore[arg-type]
        self._server, self._thread = start_http_server(self.port, addr=self.host, registry=registry)
        self._thread.name = "edgeorch-metrics-http"

    @property
    def address(self) -> tuple[str, int]:
        """The address served: the host as configured and the bound port."""
        return self.host, (self._server.server_port if self._server is not None else self.port)

    def close(self) -> None:
        """Stop serving and close the socket (blocks up to half a second: ``socketserver``'s poll interval)."""
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
        self._server = None
