"""Every metrics collector, in the order the exposition lists their families.

Each module has one ``collect(src: Sources) -> Iterable[Metric]`` for one
area of the daemon's state (see :mod:`edgeorch.observe.collect` for the
contract). A new feature adds its module and one row here; the names are
what ``edgeorch_metrics_collector_up{collector=...}`` reports.
"""

from __future__ import annotations

from ..collect import Collector
from . import audit, checks, daemon, drop, events, models, resources, rules, runs

COLLECTORS: tuple[tuple[str, Collector], ...] = (
    ("daemon", daemon.collect),
    ("runs", runs.collect),
    ("events", events.collect),
    ("resources", resources.collect),
    ("drop", drop.collect),
    ("checks", checks.collect),
    ("models", models.collect),
    ("rules", rules.collect),
    ("audit", audit.collect),
)
