"""The model registry: which version each alias points at, the latest version, open canaries.

Read from ``store.models`` (a row per model and alias: small tables). What
happened since the daemon started (registrations by gate verdict, deployment
outcomes) is counted from the bus (:mod:`edgeorch.observe.counters`).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

from prometheus_client.core import Metric

from ..collect import Sources, gauge


def collect(src: Sources) -> Iterator[Metric]:
    models = src.store.models.listing()
    yield gauge("edgeorch_model_alias_version", "The version each alias of each model points at (champion, ...).",
                labels=["model", "alias"],
                rows=[((m["name"], alias), version) for m in models for alias, version in sorted(m["aliases"].items())])
    yield gauge("edgeorch_model_latest_version", "Each model's newest registered version.", labels=["model"],
                rows=[((m["name"],), m["latest"]) for m in models if m["latest"] is not None])
    yield gauge("edgeorch_model_versions", "Versions registered of each model.", labels=["model"],
                rows=[((m["name"],), m["versions"]) for m in models])
    canaries: Counter[tuple[str]] = Counter((c["model"],) for c in src.store.models.open_canaries())
    yield gauge("edgeorch_model_canaries_open", "Canaries running or being decided, by model.", labels=["model"],
                rows=sorted(canaries.items()))
