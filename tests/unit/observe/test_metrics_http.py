"""The HTTP endpoint (edgeorch/observe/http.py): a real socket, a loop in its own thread, a stuck loop."""

from __future__ import annotations

import asyncio
import threading
import urllib.error
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from edgeorch.observe.collect import gauge
from edgeorch.observe.http import MetricsEndpoint


@pytest.fixture
def loop():
    loop = asyncio.new_event_loop()
    t = threading.Thread(target=loop.run_forever)
    t.start()
    yield loop
    loop.call_soon_threadsafe(loop.stop)
    t.join()
    loop.close()


def _scrape(url: str) -> dict[str, float]:
    with urllib.request.urlopen(url, timeout=10) as resp:
        text = resp.read().decode()
    return {s.name: s.value for f in text_string_to_metric_families(text) for s in f.samples}


def test_each_scrape_is_read_on_the_loop_and_a_stuck_loop_gets_the_fallback_in_time(loop):
    on_loop: list[bool] = []

    async def snapshot(requested_at: float):
        on_loop.append(asyncio.get_running_loop() is loop)
        return [gauge("edgeorch_answered", "A.", 1)]

    endpoint = MetricsEndpoint("127.0.0.1", 0, loop=loop, snapshot=snapshot, timeout=0.5,
                               fallback=lambda: [gauge("edgeorch_event_loop_responsive", "R.", 0)])
    endpoint.start()
    try:
        host, port = endpoint.address
        assert port != 0
        url = f"http://{host}:{port}/metrics"
        assert _scrape(url) == {"edgeorch_answered": 1}
        assert on_loop == [True]

        release = threading.Event()
        blocked = threading.Event()

        def stuck() -> None:  # a callback that never returns: the loop is stuck
            blocked.set()
            release.wait()

        loop.call_soon_threadsafe(stuck)
        assert blocked.wait(10)
        try:
            assert _scrape(url) == {"edgeorch_event_loop_responsive": 0}
        finally:
            release.set()
        assert _scrape(url) == {"edgeorch_answered": 1}  # the loop is back
    finally:
        endpoint.close()
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(url, timeout=5)


def test_an_address_in_use_raises_oserror(loop):
    async def snapshot(requested_at: float):
        return []

    first = MetricsEndpoint("127.0.0.1", 0, loop=loop, snapshot=snapshot, fallback=list)
    first.start()
    try:
        second = MetricsEndpoint("127.0.0.1", first.address[1], loop=loop, snapshot=snapshot, fallback=list)
        with pytest.raises(OSError):
            second.start()
    finally:
        first.close()


def test_connections_held_open_take_a_bounded_number_of_threads_and_are_closed_when_silent(loop):
    """Any local user reaches 127.0.0.1: 5,000 half-sent requests made the daemon grow to 2,791 threads and 2,805
    open files. At most MAX_OPEN connections are served at once (more are closed unanswered), and a silent one is
    closed after the request timeout; a scrape works again once they are gone."""
    import socket
    import time

    from edgeorch.observe.http import MAX_OPEN

    async def snapshot(requested_at: float):
        return [gauge("edgeorch_answered", "A.", 1)]

    endpoint = MetricsEndpoint("127.0.0.1", 0, loop=loop, snapshot=snapshot, fallback=list, request_timeout=1.5)
    endpoint.start()
    held: list[socket.socket] = []
    try:
        host, port = endpoint.address
        before = threading.active_count()
        for _ in range(MAX_OPEN * 4):
            s = socket.create_connection((host, port), timeout=10)
            s.sendall(b"GET /metrics HTTP/1.1\r\n")  # the rest never comes
            held.append(s)
        server = endpoint._server
        deadline = time.monotonic() + 10
        while server.refused < MAX_OPEN * 3:  # polled: the server's accept loop has no event to wait on
            assert time.monotonic() < deadline, server.refused
            time.sleep(0.01)
        assert threading.active_count() - before <= MAX_OPEN
        for s in held:  # each is closed: the ones over the bound at once, the others after the request timeout
            while s.recv(1024):
                pass
        assert _scrape(f"http://{host}:{port}/metrics") == {"edgeorch_answered": 1}
    finally:
        for s in held:
            s.close()
        endpoint.close()
