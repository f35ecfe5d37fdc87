"""The daemon process: version, start time, socket clients, loop lag, the pipelines it serves, process RSS/CPU/fds."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import ProcessCollector
from prometheus_client.core import Metric

from ... import __version__
from ..collect import Sources, gauge

# `edgeorch_process_*`, not the unprefixed `process_*`: in a node_exporter textfile the
# unprefixed names would collide with node_exporter's own process metrics.
PROCESS = ProcessCollector(namespace="edgeorch", registry=None)


def collect(src: Sources) -> Iterator[Metric]:
    engine = src.engine
    yield _build_info()
    yield _ready(1)
    yield gauge("edgeorch_start_time_seconds", "When the daemon started (seconds since the epoch).", src.started_at)
    yield gauge("edgeorch_socket_clients", "Connections open on the control socket.", src.clients())
    yield gauge("edgeorch_event_loop_lag_seconds",
                "How long this scrape's request waited before the daemon's event loop ran it (a busy or stuck "
                "loop shows here).", src.loop_lag_s)
    yield gauge("edgeorch_engine_accepting",
                "1 while the engine accepts new runs; 0 when shutting down or stopped by a fatal error.",
                1 if engine.accepting and engine.fatal_error is None else 0)
    yield gauge("edgeorch_pipelines_loaded", "Pipelines loaded from the pipelines folder.", len(src.registry.pipelines))
    yield gauge("edgeorch_pipeline_info", "Always 1 for each loaded pipeline (a dashboard's list of pipelines).",
                labels=["pipeline"], rows=[((name,), 1) for name in sorted(src.registry.pipelines)])
    yield gauge("edgeorch_pipeline_file_errors",
                "Pipeline files that do not validate (the last valid version of each keeps serving).",
                len({e.file for e in src.registry.errors}))  # files, not errors (a file with two counted two)
    failing = src.store.db.write_failing
    yield gauge("edgeorch_state_write_failing",
                "1 while writes of the state file fail (a full disk, an I/O error): runs, inputs and schedule fires "
                "wait; 0 once a write succeeds again (`edgeorch status` says since when and why).",
                1 if failing else 0)
    yield gauge("edgeorch_pipeline_paused", "1 for each paused pipeline (its runs are refused).",
                labels=["pipeline"], rows=[([name], 1) for name in sorted(src.store.pipelines.paused())])
    yield _responsive(1)
    yield from PROCESS.collect()


def unresponsive() -> list[Metric]:
    """What an HTTP scrape reports when the loop did not answer in time (read off the loop)."""
    return [_build_info(), _responsive(0), *PROCESS.collect()]


def starting() -> list[Metric]:
    """What a scrape reports while the daemon starts (recovery not done, nothing to read yet)."""
    return [_build_info(), _ready(0), *PROCESS.collect()]


def _build_info() -> Metric:
    return gauge("edgeorch_build_info", "Always 1; the version label says which edgeorch runs.",
                 labels=["version"], rows=[([__version__], 1)])


def _ready(value: int) -> Metric:
    return gauge("edgeorch_ready", "1 once the daemon has started (recovery done, state readable); 0 while it "
                 "starts (a scrape then has only this and the process metrics).", value)


def _responsive(value: int) -> Metric:
    return gauge("edgeorch_event_loop_responsive", "1 when the event loop answered this scrape in time; 0 when it "
                 "did not (an HTTP scrape then has only this and the process metrics).", value)
