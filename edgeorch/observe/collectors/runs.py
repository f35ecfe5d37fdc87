"""Runs and tasks now: the active runs by pipeline, their tasks by state, the attempts running.

Read from the engine's memory only. Finished runs are counted as they end
(``edgeorch_runs_finished_total``, :mod:`edgeorch.observe.counters`): a count
over the state file's whole history would cost a scan per scrape (0.26 s
with 100,000 runs).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

from prometheus_client.core import Metric

from ..collect import Sources, gauge


def collect(src: Sources) -> Iterator[Metric]:
    active: Counter[tuple[str]] = Counter()
    tasks: Counter[tuple[str, str]] = Counter()
    for ctx in src.engine.runs.values():  # the active runs, in the engine's memory
        name = ctx.pipeline.name
        active[(name,)] += 1
        for state in ctx.states.values():
            tasks[(name, str(state))] += 1
    yield gauge("edgeorch_runs_active", "Runs that have not finished (queued or running), by pipeline.",
                labels=["pipeline"], rows=sorted(active.items()))
    yield gauge("edgeorch_tasks", "Tasks of the active (queued or running) runs, by pipeline and state.",
                labels=["pipeline", "state"], rows=sorted(tasks.items()))
    yield gauge("edgeorch_attempts_running", "Attempts running now (each holds one of the parallelism slots).",
                len(src.engine.live))
    yield gauge("edgeorch_parallelism_slots", "[engine] parallelism: at most this many attempts run at once.",
                src.config.engine.parallelism)
