"""The metrics endpoint answers HEAD like GET without a body, filters ``name[]``, and serves /metrics alone
(tester's report, finding 14: HEAD got 405, ``name[]`` an empty 200, ``/favicon.ico`` the metrics)."""

from __future__ import annotations

import asyncio
import http.client
import threading

import pytest
from prometheus_client.parser import text_string_to_metric_families

from edgeorch.observe.collect import gauge
from edgeorch.observe.http import MetricsEndpoint


@pytest.fixture
def endpoint():
    loop = asyncio.new_event_loop()
    t = threading.Thread(target=loop.run_forever)
    t.start()

    async def snapshot(requested_at: float):
        from prometheus_client.core import CounterMetricFamily

        return [gauge("edgeorch_ready", "R.", 1), gauge("edgeorch_other", "O.", 2),
                CounterMetricFamily("edgeorch_events", "E.", value=3)]

    ep = MetricsEndpoint("127.0.0.1", 0, loop=loop, snapshot=snapshot, fallback=list, timeout=5)
    ep.start()
    yield ep.address
    ep.close()
    loop.call_soon_threadsafe(loop.stop)
    t.join()
    loop.close()


def request(address: tuple[str, int], method: str, path: str) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection(*address, timeout=10)
    try:
        conn.request(method, path)
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


def names(body: bytes) -> set[str]:
    return {s.name for f in text_string_to_metric_families(body.decode()) for s in f.samples}


def test_head_is_answered_as_get_without_a_body(endpoint) -> None:
    status, headers, body = request(endpoint, "GET", "/metrics")
    assert status == 200 and names(body) == {"edgeorch_ready", "edgeorch_other", "edgeorch_events_total"}
    status, head_headers, head_body = request(endpoint, "HEAD", "/metrics")
    assert status == 200 and head_body == b""
    assert head_headers["content-type"] == headers["content-type"]
    assert int(head_headers["content-length"]) == len(body)


def test_name_filter_keeps_the_named_families_and_samples(endpoint) -> None:
    status, _, body = request(endpoint, "GET", "/metrics?name[]=edgeorch_ready")
    assert status == 200 and names(body) == {"edgeorch_ready"}
    _, _, body = request(endpoint, "GET", "/metrics?name[]=edgeorch_events_total&name[]=edgeorch_other")
    assert names(body) == {"edgeorch_events_total", "edgeorch_other"}
    _, _, body = request(endpoint, "GET", "/metrics?name%5B%5D=edgeorch_events")  # a family's name: all of it
    assert names(body) == {"edgeorch_events_total"}


def test_only_the_metrics_path_is_served_and_other_methods_are_refused(endpoint) -> None:
    for path in ("/", "/favicon.ico", "/metricsx", "/metrics/x"):
        status, _, body = request(endpoint, "GET", path)
        assert status == 404 and b"/metrics" in body, path
    status, headers, _ = request(endpoint, "POST", "/metrics")
    assert status == 405 and headers["allow"] == "GET, HEAD, OPTIONS"
    status, headers, _ = request(endpoint, "OPTIONS", "/metrics")
    assert status == 200 and headers["allow"] == "GET, HEAD, OPTIONS"
