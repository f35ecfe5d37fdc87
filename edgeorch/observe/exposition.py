"""Families -> the Prometheus text format (``prometheus_client``'s own writer) or JSON for scripts."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

from prometheus_client.core import Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

CONTENT_TYPE = CONTENT_TYPE_LATEST
"""The HTTP content type of :func:`to_text`'s bytes (text format 0.0.4)."""


class Frozen:
    """A ``prometheus_client`` collector that yields families already read (the exposition runs off the loop)."""

    def __init__(self, families: Sequence[Metric]) -> None:
        self.families = families

    def collect(self) -> Iterable[Metric]:
        return iter(self.families)


def to_text(families: Sequence[Metric]) -> bytes:
    """The text exposition format of ``families`` (what ``/metrics`` serves and the textfile holds)."""
    return generate_latest(Frozen(families))  # type: ignore[arg-type]


def to_json(families: Sequence[Metric]) -> list[dict[str, Any]]:
    """One dict per family: ``name``, ``type``, ``help``, ``samples`` (``name``, ``labels``, ``value``).

    Sample names are the exposition's (``edgeorch_events_total``,
    ``..._bucket``); a value that is not finite (``+Inf``, ``NaN``) is its
    text form, so the document stays strict JSON.
    """
    return [{"name": f.name, "type": f.type, "help": f.documentation,
             "samples": [{"name": s.name, "labels": dict(s.labels), "value": _value(s.value)} for s in f.samples]}
            for f in families]


def _value(v: float) -> float | str:
    if math.isfinite(v):
        return int(v) if float(v).is_integer() and abs(v) < 2**53 else v
    return "NaN" if math.isnan(v) else ("+Inf" if v > 0 else "-Inf")
