"""Monitoring rules (``[[on]]``): each rule's shown state, last value, last response and firings.

The rows are :func:`edgeorch.monitor.views.monitors_doc`'s, the document the
``monitors.list`` op returns (``edgeorch monitors``), so the metrics and the
CLI never disagree (``silenced`` while a silence is in force, whatever the
stored state). Read at scrape time: two indexed reads per loaded rule and one
``GROUP BY`` over ``rule_firings``; evaluating a rule pays nothing for them.
Rules no longer loaded (their pipeline file changed) are not reported.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from prometheus_client.core import CounterMetricFamily, Metric

from ...monitor.rules import SHOWN_STATES
from ...monitor.views import monitors_doc
from ..collect import Sources, gauge

OUTCOMES = ("fire", "held", "deduped")
"""A firing's ``outcome`` (``rule_firings``): answered, held back (silence, cooldown, max_per_day), deduplicated."""


def collect(src: Sources) -> Iterator[Metric]:
    m = src.monitors
    if m is None:
        return
    doc = monitors_doc(src.store, m.rules, m.problems, m.clock())
    yield from families(doc["rules"], src.store.rules.counts(), len(doc["problems"]))


def families(rules: list[dict[str, Any]], counts: dict[tuple[str, str], int], problems: int) -> Iterator[Metric]:
    """The rule families from ``monitors.list``'s rules and ``store.rules.counts()`` (pure)."""
    yield gauge("edgeorch_rule_state", "Each monitoring rule's state as edgeorch monitors shows it: 1 for the "
                "current one (ok, pending, firing, cooling, silenced), 0 for the others.",
                labels=["rule", "pipeline", "state"],
                rows=[((r["name"], r["pipeline"], s), 1 if r["state"] == s else 0) for r in rules for s in SHOWN_STATES])
    yield gauge("edgeorch_rule_last_value", "The signal's value at each rule's last evaluation (a failure rate, "
                "a check's value, a freshness age in seconds, ...); absent before its first signal.",
                labels=["rule", "pipeline", "signal"],
                rows=[((r["name"], r["pipeline"], r["signal"]), r["last_value"]) for r in rules
                      if r["last_value"] is not None])
    yield gauge("edgeorch_rule_last_evaluated_timestamp_seconds", "When each rule was last evaluated.",
                labels=["rule", "pipeline"],
                rows=[((r["name"], r["pipeline"]), r["last_evaluated_at"]) for r in rules
                      if r["last_evaluated_at"] is not None])
    yield gauge("edgeorch_rule_last_fired_timestamp_seconds", "When each rule last answered (its responses ran).",
                labels=["rule", "pipeline"],
                rows=[((r["name"], r["pipeline"]), r["last_fired_at"]) for r in rules if r["last_fired_at"] is not None])
    firings = CounterMetricFamily("edgeorch_rule_firings", "Firings recorded for each rule (the state file's "
                                  "rule_firings, so it survives restarts), by outcome: fire (answered), held "
                                  "(silence, cooldown, max_per_day), deduped.", labels=["rule", "pipeline", "outcome"])
    for r in rules:
        for outcome in OUTCOMES:
            firings.add_metric([r["name"], r["pipeline"], outcome], counts.get((r["name"], outcome), 0))
    yield firings
    yield gauge("edgeorch_rule_problems", "[[on]] rules that are not loaded (invalid, or a name another pipeline "
                "already uses); edgeorch monitors lists them.", problems)
