"""Runs and tasks: every run in the state file by pipeline and state; the tasks of the active runs by state."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

from prometheus_client.core import Metric

from ..collect import Sources, gauge


def collect(src: Sources) -> Iterator[Metric]:
    yield gauge("edgeorch_runs", "Runs in the state file, by pipeline and state (finished runs stay until "
                "retention removes them).", labels=["pipeline", "state"],
                rows=[((p, s), n) for p, s, n in src.store.runs.counts_by_pipeline()])
    tasks: Counter[tuple[str, str]] = Counter()
    for ctx in src.engine.runs.values():  # the active runs, in the engine's memory
        name = ctx.pipeline.name
        for state in ctx.states.values():
            tasks[(name, str(state))] += 1
    yield gauge("edgeorch_tasks", "Tasks of the active (queued or running) runs, by pipeline and state.",
                labels=["pipeline", "state"], rows=sorted(tasks.items()))
    yield gauge("edgeorch_attempts_running", "Attempts running now (each holds one of the parallelism slots).",
                len(src.engine.live))
    yield gauge("edgeorch_parallelism_slots", "[engine] parallelism: at most this many attempts run at once.",
                src.config.engine.parallelism)
