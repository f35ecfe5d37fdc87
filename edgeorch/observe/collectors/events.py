"""Changes counted from the bus since the daemon started (:class:`~edgeorch.observe.counters.EventCounters`)."""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client.core import Metric

from ..collect import Sources


def collect(src: Sources) -> Iterable[Metric]:
    return src.counters.families()
