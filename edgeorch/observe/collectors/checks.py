"""Data checks (drift, fairness, validation, profiling): the results of each check task's latest attempt.

Kept in memory (:class:`~edgeorch.observe.checks.LatestChecks`, in
``Sources.checks``): the daemon's start reads the whole history once, off the
loop; a scrape reads from the state file only the check tasks the bus saw
end an attempt since the last scrape (an indexed read each), so its cost does
not grow with the history.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Any

from prometheus_client.core import Metric

from ..collect import Sources, gauge

VERDICTS = ("ok", "warn", "violation")
"""A check attempt's verdict (its result document's ``verdict``)."""


def collect(src: Sources) -> Iterator[Metric]:
    for run_id, task in sorted(src.counters.take_checks_ended()):
        src.checks.merge(src.store.outputs.latest_checks(run_id=run_id, task=task))
    yield from families(src.checks.rows())


def families(rows: list[dict[str, Any]]) -> Iterator[Metric]:
    """The check families from ``store.outputs.latest_checks()`` rows (pure)."""
    attempts: dict[tuple[str, str], dict[str, Any]] = {}
    for r in rows:
        attempts.setdefault((r["pipeline"], r["task"]), r)
    yield gauge("edgeorch_check_verdict",
                "The verdict of each check task's latest attempt: 1 for the verdict it returned, 0 for the others.",
                labels=["pipeline", "task", "verdict"],
                rows=[((p, t, v), 1 if a["attempt_verdict"] == v else 0)
                      for (p, t), a in sorted(attempts.items()) for v in VERDICTS])
    yield gauge("edgeorch_check_timestamp_seconds", "When each check task's latest attempt finished.",
                labels=["pipeline", "task"],
                rows=[((p, t), a["finished_at"]) for (p, t), a in sorted(attempts.items())
                      if a["finished_at"] is not None])
    counted: Counter[tuple[str, str, str, str]] = Counter(
        (r["pipeline"], r["task"], r["kind"], r["verdict"] or "") for r in rows if r["kind"] is not None)
    yield gauge("edgeorch_check_rows", "Result rows of the latest check (a column's drift test, a fairness metric, "
                "a rule), by their verdict (ok, drift, violation, no_data, ...).",
                labels=["pipeline", "task", "kind", "verdict"], rows=sorted(counted.items()))
    values, seen = [], set()
    for r in rows:
        key = (r["pipeline"], r["task"], r["kind"], r["column_name"] or "", r["metric"] or "")
        # Two rows with the same labels (two rules on one column) would be one series twice, which makes
        # Prometheus refuse the whole scrape: the first row speaks for them.
        if r["kind"] is not None and r["value"] is not None and key not in seen:
            seen.add(key)
            values.append(r)
    yield gauge("edgeorch_check_value", "The value of each result row of the latest check (a drift statistic, a "
                "fairness ratio, ...); column is empty for a whole-table metric.",
                labels=["pipeline", "task", "kind", "column", "metric"],
                rows=[((r["pipeline"], r["task"], r["kind"], r["column_name"] or "", r["metric"] or ""), r["value"])
                      for r in values])
    yield gauge("edgeorch_check_threshold", "The threshold each result row of the latest check was judged against.",
                labels=["pipeline", "task", "kind", "column", "metric"],
                rows=[((r["pipeline"], r["task"], r["kind"], r["column_name"] or "", r["metric"] or ""), r["threshold"])
                      for r in values if r["threshold"] is not None])
