"""The latest result of each check task, kept in memory so a scrape never scans the history (pure).

A check task is a task with a built-in ``kind`` (drift, fairness, validate,
profile); its attempts record a verdict and result rows. :class:`LatestChecks`
holds, per ``(pipeline, task)``, the rows of its newest checked attempt:

- filled once from the whole state file (``store.outputs.latest_checks()``,
  read in a worker thread on a read-only connection when the daemon starts);
- then updated from the one attempt that just ended, each time the bus says a
  check attempt ended (an indexed read of that run and task).

:meth:`LatestChecks.merge` keeps, per task, the rows of the highest attempt
id it was given, so the start-up read and the updates may arrive in any
order.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

Row = dict[str, Any]
"""A row of ``store.outputs.latest_checks()``."""


class LatestChecks:
    """Per ``(pipeline, task)``: the rows of the newest checked attempt (see the module docstring)."""

    def __init__(self) -> None:
        self._latest: dict[tuple[str, str], tuple[int, list[Row]]] = {}

    def merge(self, rows: Iterable[Row]) -> None:
        """Take ``rows`` (any number of tasks and attempts); for each task only its newest attempt's rows stay."""
        grouped: dict[tuple[str, str], tuple[int, list[Row]]] = {}
        for r in rows:
            key = (r["pipeline"], r["task"])
            held = grouped.get(key)
            if held is None or r["attempt_id"] > held[0]:
                grouped[key] = (r["attempt_id"], [r])
            elif r["attempt_id"] == held[0]:
                held[1].append(r)
        for key, (attempt_id, task_rows) in grouped.items():
            held = self._latest.get(key)
            if held is None or attempt_id >= held[0]:
                self._latest[key] = (attempt_id, task_rows)

    def rows(self) -> list[Row]:
        """Every task's rows, ordered by pipeline and task."""
        return [r for key in sorted(self._latest) for r in self._latest[key][1]]
