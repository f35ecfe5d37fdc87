"""The daemon's metrics: one snapshot on the loop, three ways out (HTTP, the textfile, the ``metrics`` op).

:class:`MetricsService` has three steps, in the daemon's start-up order:

1. :meth:`~MetricsService.open`, right after the state-dir lock: bind the
   HTTP address and check the textfile's folder, so a ``[metrics]`` setting
   that cannot work stops the daemon before it opens the state file or
   starts anything (a scrape meanwhile gets ``edgeorch_ready 0`` and the
   process metrics);
2. :meth:`~MetricsService.attach`, once the engine and the trigger service
   run: the collaborators the collectors read
   (:class:`~edgeorch.observe.collect.Sources`) and the bus counters
   (:class:`~edgeorch.observe.counters.EventCounters`, subscribed here); the
   latest check results are read from the whole history in a worker thread;
3. :meth:`~MetricsService.start_textfile`: the first write and the timer.

Nothing runs between scrapes unless a textfile is configured:

- ``[metrics] listen``: the HTTP endpoint (:mod:`edgeorch.observe.http`),
  its own thread, asleep until a request comes;
- ``[metrics] textfile``: the file rewritten every ``interval`` seconds
  (:mod:`edgeorch.observe.textfile`), rendered and written in a worker
  thread;
- the ``metrics`` op (:mod:`edgeorch.daemon.ops.metrics`) calls
  :meth:`MetricsService.snapshot` itself.

Each way reads the state through :meth:`~MetricsService.snapshot`, on the
loop that owns it, and writes nothing but its own output.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from prometheus_client.core import Metric

from ..errors import ConfigError
from .collect import Collector, Sources, collect
from .counters import EventCounters
from .exposition import to_text
from .tally import Counts
from .textfile import textfile_problem, write_textfile

if TYPE_CHECKING:  # pragma: no cover
    from ..config import Config, MetricsConfig
    from ..engine.engine import Engine
    from ..events import Bus
    from ..monitor.service import Monitors
    from ..pipelines import PipelineRegistry
    from ..store import Store
    from ..triggers.service import Triggers
    from .http import MetricsEndpoint

log = logging.getLogger("edgeorch.observe")


class MetricsService:
    """See the module docstring. ``settings``: the config's ``[metrics]``."""

    def __init__(self, settings: "MetricsConfig", *, collectors: Sequence[tuple[str, Collector]] | None = None) -> None:
        if collectors is None:
            from .collectors import COLLECTORS

            collectors = COLLECTORS
        self.settings = settings
        self.sources: Sources | None = None
        self._counters: EventCounters | None = None  # the bus counters, subscribed by count() (or attach())
        self.collectors: tuple[tuple[str, Collector], ...] = (*collectors, ("metrics", self._own))
        self.endpoint: MetricsEndpoint | None = None
        self._writer: asyncio.Task[None] | None = None
        self._seeding: asyncio.Task[None] | None = None
        self._textfile_error: str | None = None
        self.scrapes = Counts("edgeorch_metrics_scrapes", "Snapshots taken, by who asked (http, textfile, op).",
                              ["output"])
        self.textfile_errors = Counts("edgeorch_metrics_textfile_errors",
                                      "Textfile writes that failed (see the daemon's log).", [])

    # -- 1. open --------------------------------------------------------------------------------------

    def open(self, loop: asyncio.AbstractEventLoop, *, file: str | None = None) -> None:
        """Bind ``[metrics] listen`` (serving at once) and check ``[metrics] textfile``'s folder.

        Raises :class:`~edgeorch.errors.ConfigError` naming ``metrics.listen``
        when the address cannot be bound (in use, not an address of this
        machine) or ``metrics.textfile`` when its folder is missing or not
        writable, and ``file`` (the config file): the daemon stops rather than
        run without the metrics it was told to export.
        """
        listen = self.settings.listen
        problem = textfile_problem(self.settings.textfile, file)
        if problem is not None:
            raise problem
        if listen is not None:
            from .collectors.daemon import unresponsive
            from .http import MetricsEndpoint

            endpoint = MetricsEndpoint(*listen, loop=loop, fallback=unresponsive,
                                       snapshot=lambda at: self.snapshot("http", at))
            try:
                endpoint.start()
            except OSError as exc:
                where = _hostport(*listen)
                raise ConfigError(f"cannot serve metrics on {where}: {exc.strerror or exc}", field="metrics.listen",
                                  value=where, file=file,
                                  hint="choose a free port, or leave [metrics] listen unset") from None
            self.endpoint = endpoint
            log.info("metrics: serving http://%s/metrics", _hostport(*endpoint.address))

    # -- 2. attach ------------------------------------------------------------------------------------

    def count(self, *, store: "Store", engine: "Engine", bus: "Bus") -> EventCounters:
        """Subscribe the bus counters to ``bus`` now: before the engine starts, so what the start does (attempts
        collected, runs ended, the schedules' start-up fires and catch-up runs) is counted; subscribed later
        (when the collectors were attached) ``edgeorch_schedule_fires_total`` left out every fire of the start.
        The attempts the state file records as live seed the duration histogram with their recorded start."""
        def pipeline_of(run_id: int) -> str | None:
            ctx = engine.runs.get(run_id)
            return ctx.pipeline.name if ctx is not None else None

        def kind_of(run_id: int, task: str) -> str | None:
            ctx = engine.runs.get(run_id)
            spec = ctx.pipeline.tasks.get(task) if ctx is not None else None
            return spec.kind if spec is not None else None

        seed = [((a["run_id"], a["task"], a["number"]), a["started_at"]) for a in store.attempts.live()
                if a.get("started_at") is not None]
        self._counters = EventCounters(pipeline_of, seed, kind_of)
        bus.subscribe(self._counters.on_event)
        return self._counters

    def attach(self, *, config: "Config", store: "Store", engine: "Engine", registry: "PipelineRegistry",
               bus: "Bus", clients: Callable[[], int], started_at: float, triggers: "Triggers | None" = None,
               monitors: "Monitors | None" = None) -> None:
        """Give the collectors what they read (and subscribe the bus counters, unless :meth:`count` did)."""
        counters = self._counters or self.count(store=store, engine=engine, bus=bus)
        self.sources = Sources(config=config, store=store, engine=engine, registry=registry, counters=counters,
                               clients=clients, started_at=started_at, triggers=triggers,
                               monitors=monitors)
        # Every check's latest result, read once from the whole history: off the loop, on a connection of its own.
        self._seeding = asyncio.get_running_loop().create_task(self._seed_checks(config.state_file),
                                                               name="edgeorch-metrics-checks")

    async def _seed_checks(self, state_file: Path) -> None:
        assert self.sources is not None
        try:
            rows = await asyncio.to_thread(_read_latest_checks, state_file)
        except Exception as exc:  # noqa: BLE001 - the checks' metrics then start empty; nothing else depends on it
            log.warning("metrics: cannot read the latest check results: %s", exc)
            return
        self.sources.checks.merge(rows)

    # -- one snapshot ---------------------------------------------------------------------------------

    async def snapshot(self, output: str = "op", requested_at: float | None = None) -> list[Metric]:
        """Every family, read now on the loop; ``requested_at`` (``time.monotonic()``) measures the loop's lag.

        ``output`` (http, textfile, op) is counted in ``edgeorch_metrics_scrapes_total``.
        Before :meth:`attach`: ``edgeorch_ready 0`` and the process metrics only.
        """
        t0 = time.monotonic() if requested_at is None else requested_at
        await asyncio.sleep(0)  # one turn of the loop: what waits before us is the lag
        src = self.sources
        if src is None:
            from .collectors.daemon import starting

            return starting()
        src.loop_lag_s = max(0.0, time.monotonic() - t0)
        self.scrapes.inc((output,))
        # A reader of the state, as the control ops are: outcomes committed without a sync are made durable
        # (and their events counted) before anything is read (Engine.sync_outcomes).
        src.engine.sync_outcomes()
        return collect(src, self.collectors)

    def _own(self, src: Sources) -> list[Metric]:
        """The metrics' own counters (the ``metrics`` collector)."""
        return [self.scrapes.family(), self.textfile_errors.family()]

    def describe(self) -> dict[str, Any]:
        """Where the metrics go (the ``metrics`` op's ``outputs``): HTTP address (bound port), textfile, interval."""
        textfile = self.settings.textfile
        return {"listen": _hostport(*self.endpoint.address) if self.endpoint is not None else None,
                "textfile": str(textfile) if textfile else None,
                "interval_s": self.settings.interval if textfile else None}

    # -- 3. the textfile --------------------------------------------------------------------------------

    def start_textfile(self) -> None:
        """Write the textfile now and every ``interval`` seconds (no-op without one); call after :meth:`attach`."""
        if self.settings.textfile is not None and self._writer is None:
            self._writer = asyncio.create_task(self._write_every_interval(), name="edgeorch-metrics-textfile")
            log.info("metrics: writing %s every %gs", self.settings.textfile, self.settings.interval)

    async def write_textfile(self) -> None:
        """Take a snapshot and replace the textfile with it (rendered and written in a worker thread)."""
        path = self.settings.textfile
        assert path is not None
        families = await self.snapshot("textfile")
        await asyncio.to_thread(lambda: write_textfile(path, to_text(families)))

    async def _write_every_interval(self) -> None:
        while True:
            try:
                await self.write_textfile()
            except OSError as exc:
                self.textfile_errors.inc(())
                text = f"{exc.strerror or exc}"
                if text != self._textfile_error:  # say it once, not every interval
                    log.warning("metrics: cannot write %s: %s (trying again every %gs)", self.settings.textfile,
                                text, self.settings.interval)
                    self._textfile_error = text
            else:
                if self._textfile_error is not None:
                    log.info("metrics: writing %s again", self.settings.textfile)
                    self._textfile_error = None
            await asyncio.sleep(self.settings.interval)

    # -- closing ----------------------------------------------------------------------------------------

    async def close(self) -> None:
        """Stop the writer and the endpoint (the textfile stays: node_exporter shows the last numbers)."""
        for task in (self._writer, self._seeding):
            if task is not None:
                task.cancel()
                try:
                    await task
                except asyncio.CancelledError:
                    pass
        self._writer = self._seeding = None
        if self.endpoint is not None:
            endpoint, self.endpoint = self.endpoint, None
            await asyncio.to_thread(endpoint.close)


def _read_latest_checks(state_file: Path) -> list[dict[str, Any]]:
    """Every check task's latest rows, on a read-only connection of this thread's own (WAL: beside the writer)."""
    from ..store import Store

    store = Store(state_file, readonly=True)
    try:
        return store.outputs.latest_checks()
    finally:
        store.close()


def _hostport(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
