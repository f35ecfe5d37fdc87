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

Every local user can reach a port on 127.0.0.1: at most :data:`MAX_OPEN`
connections are served at once (a thread each; one more is closed at once),
and one that has not sent its request within :data:`REQUEST_TIMEOUT_S` is
closed. Held-open requests of one user made the daemon grow to 2,791 threads
and 2,805 open files before.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import time
from collections.abc import Callable, Coroutine, Iterable
from typing import Any

import socket
import socketserver
import threading
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer

from prometheus_client import CollectorRegistry, make_wsgi_app
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


MAX_OPEN = 8
"""Connections the endpoint serves at once (Prometheus scrapes one at a time); one more is closed unanswered."""

REQUEST_TIMEOUT_S = 10.0
"""A connection silent this long (its request not sent, its answer not read) is closed."""


class _QuietHandler(WSGIRequestHandler):
    """No access log on stderr (the journal); the socket's timeout bounds a client that sends or reads nothing."""

    timeout = REQUEST_TIMEOUT_S

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        pass


class _BoundedServer(socketserver.ThreadingMixIn, WSGIServer):
    """A thread per connection, at most :attr:`max_open` at once (see the module docstring)."""

    daemon_threads = True
    max_open = MAX_OPEN
    request_queue_size = 64  # a burst waits in the kernel's queue to be served or refused, not dropped (5 by default)

    def server_activate(self) -> None:
        self._slots = threading.BoundedSemaphore(self.max_open)
        self.refused = 0
        super().server_activate()

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self._slots.acquire(blocking=False):
            self.refused += 1
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._slots.release()
            raise

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that timed out or went away: nothing to say (socketserver printed a traceback on stderr, the
        journal, for each)."""
        log.debug("metrics: a request from %s ended early", client_address, exc_info=True)

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()


def _server_for(host: str, port: int, app: Any, timeout: float) -> _BoundedServer:
    """The bound, listening server for ``host:port`` (an IPv6 host gets an IPv6 socket)."""
    family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
    handler = type("_Handler", (_QuietHandler,), {"timeout": timeout})
    server_cls = type("_Server", (_BoundedServer,), {"address_family": family})
    server = server_cls((host, port), handler)
    server.set_app(app)
    return server


class MetricsEndpoint:
    """The HTTP endpoint on ``host:port`` (port 0: any free port; :attr:`address` says which)."""

    def __init__(self, host: str, port: int, *, loop: asyncio.AbstractEventLoop, snapshot: Snapshot,
                 fallback: Callable[[], Iterable[Metric]], timeout: float = 5.0,
                 request_timeout: float = REQUEST_TIMEOUT_S) -> None:
        self.host = host
        self.port = port
        self.request_timeout = request_timeout
        self._bridge = _Bridge(loop, snapshot, timeout, fallback)
        self._server: Any = None
        self._thread: Any = None

    def start(self) -> None:
        """Listen and serve in a daemon thread; raises ``OSError`` when the address cannot be bound."""
        registry = CollectorRegistry(auto_describe=False)
        registry.register(self._bridge)  # type: ignore[arg-type]
        self._server = _server_for(self.host, self.port, make_wsgi_app(registry), self.request_timeout)
        self._thread = threading.Thread(target=self._server.serve_forever, name="edgeorch-metrics-http", daemon=True)
        self._thread.start()

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
