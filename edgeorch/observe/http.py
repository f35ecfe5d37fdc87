"""``/metrics`` over HTTP: ``prometheus_client``'s own server, in its own thread, off the event loop.

The server thread parses requests and writes the exposition; for each scrape
it asks the daemon's loop for a snapshot (``snapshot``, a coroutine run with
:func:`asyncio.run_coroutine_threadsafe`) and waits at most ``timeout``
seconds. A loop that does not answer in time (stuck, or drowned in work)
gets a scrape that still succeeds with ``fallback()``'s families, read in
this thread (``edgeorch_event_loop_responsive 0`` and the process metrics),
so an alert can say so instead of Prometheus seeing only a failed scrape.

What is served (the app is edgeorch's, :func:`metrics_app`, not ``prometheus_client``'s, which answered
``HEAD`` with 405, served every path, and filtered ``name[]`` through collectors' descriptions, which a live
snapshot has none of, so the filter found nothing): ``GET`` and ``HEAD`` (headers only) of :data:`METRICS_PATH`;
``?name[]=NAME`` (repeatable) keeps the families of that name and the samples of that name; ``OPTIONS``
says what is allowed; another method is 405, another path 404.

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
import copy
import gzip
import logging
import time
from collections.abc import Callable, Coroutine, Iterable
from typing import Any
from urllib.parse import parse_qs

import socket
import socketserver
import threading
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer

from prometheus_client.core import Metric
from prometheus_client.exposition import choose_encoder, gzip_accepted

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


METRICS_PATH = "/metrics"
"""The one path served; any other is 404 (a browser's ``/favicon.ico`` got the metrics, as every path did)."""
ALLOWED_METHODS = "GET, HEAD, OPTIONS"

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


class _Only:
    """A collector of ``source``'s families restricted to ``names`` (the ``name[]`` parameters): a family whose
    name is one of them whole, else its samples whose name is (``edgeorch_events_total`` of ``edgeorch_events``)."""

    def __init__(self, source: Any, names: Iterable[str]) -> None:
        self.source = source
        self.names = frozenset(names)

    def collect(self) -> Iterable[Metric]:
        for family in self.source.collect():
            if family.name in self.names:
                yield family
                continue
            samples = [s for s in family.samples if s.name in self.names]
            if samples:
                kept = copy.copy(family)  # the family's own object stays as the snapshot made it
                kept.samples = samples
                yield kept


def metrics_app(source: Any) -> WsgiApp:
    """The WSGI app serving ``source``'s families (an object with ``collect()``) at :data:`METRICS_PATH`; what it
    answers to each method and path is in the module docstring. Content negotiation (the text format, or
    OpenMetrics when asked) and gzip are ``prometheus_client``'s."""

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        method = environ["REQUEST_METHOD"]
        if environ.get("PATH_INFO", "") != METRICS_PATH:
            return _plain(start_response, "404 Not Found", f"not found: the metrics are at {METRICS_PATH}\n", method)
        if method == "OPTIONS":
            return _plain(start_response, "200 OK", "", method)
        if method not in ("GET", "HEAD"):
            return _plain(start_response, "405 Method Not Allowed", f"method {method} not allowed; use GET or HEAD\n",
                          method)
        names = parse_qs(environ.get("QUERY_STRING", "")).get("name[]")
        encoder, content_type = choose_encoder(environ.get("HTTP_ACCEPT", ""))
        # HEAD collects as GET does: its status and Content-Length say what a scrape would get (an uptime check).
        output = encoder(source if names is None else _Only(source, names))
        headers = [("Content-Type", content_type)]
        if gzip_accepted(environ.get("HTTP_ACCEPT_ENCODING", "")):
            output = gzip.compress(output)
            headers.append(("Content-Encoding", "gzip"))
        headers.append(("Content-Length", str(len(output))))
        start_response("200 OK", headers)
        return [b"" if method == "HEAD" else output]

    return app


def _plain(start_response: Callable[..., Any], status: str, text: str, method: str) -> list[bytes]:
    """A short text answer (``Allow`` on each: what this endpoint takes); no body to a ``HEAD``."""
    body = text.encode()
    start_response(status, [("Content-Type", "text/plain; charset=utf-8"), ("Allow", ALLOWED_METHODS),
                            ("Content-Length", str(len(body)))])
    return [b"" if method == "HEAD" else body]


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
        self._server = _server_for(self.host, self.port, metrics_app(self._bridge), self.request_timeout)
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
