"""Drop folders and schedules: recorded inputs by state, watched folders, the next fire of each schedule.

Inputs on their way (``claiming`` → ``claimed`` (→ ``waiting``) → ``started``) are read from
the state file through its ``state`` index, so the cost follows the inputs in
flight, not the history. Where they ended (``done``, ``duplicate``,
``quarantined``, ``refused``, ...) is counted from the bus as it happens
(``edgeorch_drop_input_events_total``, :mod:`edgeorch.observe.counters`).
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import Metric

from ..collect import Sources, gauge


def collect(src: Sources) -> Iterator[Metric]:
    yield gauge("edgeorch_drop_inputs_in_flight", "Drop-folder inputs on their way: claiming, claimed (no run "
                "yet), waiting (their pipeline is paused), started (their run has not finished), by pipeline and state.",
                labels=["pipeline", "state"],
                rows=[((p, s), n) for p, s, n in src.store.inputs.unfinished_by_pipeline()])
    triggers = src.triggers
    if triggers is None:
        return
    yield gauge("edgeorch_drop_watches", "Watched drop-in folders ([[watch]]).", len(triggers.watches))
    yield gauge("edgeorch_drop_watch_errors", "[[watch]] tables that are invalid (not watched).",
                len(triggers.watch_errors))
    fires = []
    for name in sorted(triggers.specs):
        nxt = triggers.next_fire(name)
        if nxt is not None:
            fires.append(((name,), nxt.timestamp()))
    yield gauge("edgeorch_schedule_next_fire_timestamp_seconds",
                "When each pipeline's schedule fires next (seconds since the epoch); absent while none is due.",
                labels=["pipeline"], rows=fires)
