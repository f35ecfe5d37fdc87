"""Every metrics collector, in the order the exposition lists their families.

Each module has one ``collect(src: Sources) -> Iterable[Metric]`` for one
area of the daemon's state (see :mod:`edgeorch.observe.collect` for the
contract). A new feature adds its module and one row here; the names are
what ``edgeorch_metrics_collector_up{collector=...}`` reports.

Not yet here because the feature does not exist yet: monitoring rules
(states, firings).
"""

from __future__ import annotations

from ..collect import Collector
from . import audit, checks, daemon, drop, events, models, resources, runs

COLLECTORS: tuple[tuple[str, Collector], ...] = (
    ("daemon", daemon.collect),
    ("runs", runs.collect),
    ("events", events.collect),
    ("resources", resources.collect),
    ("drop", drop.collect),
    ("checks", checks.collect),
    ("models", models.collect),
    ("audit", audit.collect),
)
