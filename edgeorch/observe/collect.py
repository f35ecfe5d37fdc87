"""The metrics' one registry: collector functions that read the daemon's state when someone scrapes.

A collector is a plain function ``collect(src: Sources) -> Iterable[Metric]``
(Prometheus families from ``prometheus_client.core``). It reads the
in-memory state of the engine, the registry and the trigger service, and the
store through its aggregates' read methods; it never writes. The daemon's
three outputs (the HTTP endpoint, the node_exporter textfile and the
``metrics`` op) all go through :func:`collect`, on the event loop that owns
that state, so what they show is one consistent moment and nothing is paid
between scrapes.

Adding metrics for a new feature (models, rules, ...): write
``collectors/<feature>.py`` with one ``collect`` function, give
:class:`Sources` the collaborator it reads (optional, so a daemon or test
without it still collects the rest) and add the function to
:data:`edgeorch.observe.collectors.COLLECTORS`. That is the whole change.

A collector that raises is logged (once per distinct error) and reported as
``edgeorch_metrics_collector_up{collector="..."} 0``; the others still
report.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from prometheus_client.core import GaugeMetricFamily, Metric

from .checks import LatestChecks

if TYPE_CHECKING:  # pragma: no cover
    from ..config import Config
    from ..engine.engine import Engine
    from ..monitor.service import Monitors
    from ..pipelines import PipelineRegistry
    from ..store import Store
    from ..triggers.service import Triggers
    from .counters import EventCounters

log = logging.getLogger("edgeorch.observe")


@dataclass
class Sources:
    """What collectors read. Everything is owned by the daemon's event loop, where collectors run.

    ``clients``: connections open on the control socket now; ``started_at``:
    the daemon's start (epoch seconds); ``loop_lag_s``: how long the request
    for this collection waited for the loop (set per collection);
    ``triggers`` is None without a trigger service, ``monitors`` without the
    rules' service (the rules collector then reports nothing).
    """

    config: "Config"
    store: "Store"
    engine: "Engine"
    registry: "PipelineRegistry"
    counters: "EventCounters"
    clients: Callable[[], int]
    started_at: float
    triggers: "Triggers | None" = None
    monitors: "Monitors | None" = None
    checks: LatestChecks = field(default_factory=LatestChecks)
    """The latest result of each check task (filled at start, updated by the checks collector)."""
    loop_lag_s: float = 0.0
    cache: dict[str, Any] | None = None
    """Per-collector memo across scrapes (a collector may keep an expensive result until its input changes)."""


Collector = Callable[[Sources], Iterable[Metric]]


def gauge(name: str, help_text: str, value: float | None = None, *, labels: Sequence[str] = (),
          rows: Iterable[tuple[Sequence[str], float]] = ()) -> GaugeMetricFamily:
    """A gauge family: one unlabelled ``value``, or one sample per ``(label values, value)`` of ``rows``."""
    if not labels:
        return GaugeMetricFamily(name, help_text, value=value)
    fam = GaugeMetricFamily(name, help_text, labels=list(labels))
    for label_values, v in rows:
        fam.add_metric([str(x) for x in label_values], v)
    return fam


def collect(src: Sources, collectors: Sequence[tuple[str, Collector]]) -> list[Metric]:
    """Every family of every collector, in order, then ``edgeorch_metrics_collector_up`` and the time it took.

    Never raises because of a collector (see the module docstring).
    """
    t0 = time.perf_counter()
    out: list[Metric] = []
    up = GaugeMetricFamily("edgeorch_metrics_collector_up",
                           "1 when the collector read its state at this scrape, 0 when it failed (see the log).",
                           labels=["collector"])
    if src.cache is None:
        src.cache = {}
    failed: dict[str, str] = src.cache.setdefault("_failed", {})
    for name, fn in collectors:
        try:
            families = list(fn(src))
        except Exception as exc:  # noqa: BLE001 - one broken collector must not hide the others
            text = f"{type(exc).__name__}: {exc}"
            if failed.get(name) != text:  # log a new failure once, not at every scrape
                log.exception("metrics collector %s failed", name)
                failed[name] = text
            up.add_metric([name], 0)
            continue
        failed.pop(name, None)
        out.extend(families)
        up.add_metric([name], 1)
    out.append(up)
    took = GaugeMetricFamily("edgeorch_metrics_collect_seconds",
                             "Seconds the daemon's event loop spent reading its state for this scrape.",
                             value=time.perf_counter() - t0)
    out.append(took)
    return out
