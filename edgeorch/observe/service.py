"""The daemon's metrics: one snapshot on the loop, three ways out (HTTP, the textfile, the ``metrics`` op).

:class:`MetricsService` is built by the daemon's wiring with the
collaborators the collectors read (:class:`~edgeorch.observe.collect.Sources`)
and subscribes the bus counters (:class:`~edgeorch.observe.counters.EventCounters`).
Nothing here runs between scrapes unless a textfile is configured:

- ``[metrics] listen``: the HTTP endpoint (:mod:`edgeorch.observe.http`),
  its own thread, sleeping until a request comes;
- ``[metrics] textfile``: the file rewritten every ``interval`` seconds
  (:mod:`edgeorch.observe.textfile`), rendered and written in a worker
  thread;
- the ``metrics`` op (:mod:`edgeorch.daemon.ops.metrics`) calls
  :meth:`MetricsService.snapshot` itself.

Each way reads the state through :meth:`snapshot`, on the loop that owns it,
and writes nothing but its own output.
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
from .textfile import write_textfile

if TYPE_CHECKING:  # pragma: no cover
    from ..config import Config
    from ..engine.engine import Engine
    from ..events import Bus
    from ..pipelines import PipelineRegistry
    from ..store import Store
    from ..triggers.service import Triggers
    from .http import MetricsEndpoint

log = logging.getLogger("edgeorch.observe")


class MetricsService:
    """See the module docstring. ``listen``: ``(host, port)`` or None; ``textfile``: a ``*.prom`` path or None."""

    def __init__(self, sources: Sources, *, listen: tuple[str, int] | None = None, textfile: Path | None = None,
                 interval: float = 15.0, collectors: Sequence[tuple[str, Collector]] | None = None) -> None:
        if collectors is None:
            from .collectors import COLLECTORS

            collectors = COLLECTORS
        self.sources = sources
        self.listen = listen
        self.textfile = textfile
        self.interval = interval
        self.collectors: tuple[tuple[str, Collector], ...] = (*collectors, ("metrics", self._own))
        self.endpoint: MetricsEndpoint | None = None
        self._writer: asyncio.Task[None] | None = None
        self._textfile_error: str | None = None
        self.scrapes = Counts("edgeorch_metrics_scrapes", "Snapshots taken, by who asked (http, textfile, op).",
                              ["output"])
        self.textfile_errors = Counts("edgeorch_metrics_textfile_errors",
                                      "Textfile writes that failed (see the daemon's log).", [])

    @classmethod
    def for_daemon(cls, *, config: "Config", store: "Store", engine: "Engine", registry: "PipelineRegistry",
                   bus: "Bus", clients: Callable[[], int], started_at: float,
                   triggers: "Triggers | None" = None) -> "MetricsService":
        """Build the daemon's service from its collaborators and subscribe its counters to ``bus``.

        Call it after the engine started: attempts already live (adopted) seed
        the duration histogram with the start the state file recorded.
        """
        def pipeline_of(run_id: int) -> str | None:
            ctx = engine.runs.get(run_id)
            return ctx.pipeline.name if ctx is not None else None

        seed = [((a["run_id"], a["task"], a["number"]), a["started_at"]) for a in store.attempts.live()
                if a.get("started_at") is not None]
        counters = EventCounters(pipeline_of, seed)
        bus.subscribe(counters.on_event)
        src = Sources(config=config, store=store, engine=engine, registry=registry, counters=counters,
                      clients=clients, started_at=started_at, triggers=triggers)
        m = config.metrics
        return cls(src, listen=m.listen, textfile=m.textfile, interval=m.interval)

    # -- one snapshot ------------------------------------------------------------------------------

    async def snapshot(self, output: str = "op", requested_at: float | None = None) -> list[Metric]:
        """Every family, read now on the loop; ``requested_at`` (``time.monotonic()``) measures the loop's lag.

        ``output`` (http, textfile, op) is counted in ``edgeorch_metrics_scrapes_total``.
        """
        t0 = time.monotonic() if requested_at is None else requested_at
        await asyncio.sleep(0)  # one turn of the loop: what waits before us is the lag
        self.sources.loop_lag_s = max(0.0, time.monotonic() - t0)
        self.scrapes.inc((output,))
        return collect(self.sources, self.collectors)

    def _own(self, src: Sources) -> list[Metric]:
        """The metrics' own counters (the ``metrics`` collector)."""
        return [self.scrapes.family(), self.textfile_errors.family()]

    # -- lifecycle -----------------------------------------------------------------------------------

    async def start(self) -> None:
        """Serve HTTP and write the textfile once (then every ``interval``), as configured.

        Raises :class:`~edgeorch.errors.ConfigError` naming ``metrics.listen``
        when the address cannot be bound, or ``metrics.textfile`` when its
        folder does not exist or the first write fails: the daemon then stops
        before it says READY, rather than run without the metrics it was told
        to export.
        """
        if self.listen is not None:
            from .collectors.daemon import unresponsive
            from .http import MetricsEndpoint

            host, port = self.listen
            endpoint = MetricsEndpoint(host, port, loop=asyncio.get_running_loop(), fallback=unresponsive,
                                       snapshot=lambda at: self.snapshot("http", at))
            try:
                endpoint.start()
            except OSError as exc:
                raise ConfigError(f"cannot serve metrics on {_hostport(host, port)}: {exc.strerror or exc}",
                                  field="metrics.listen", value=_hostport(host, port),
                                  hint="choose a free port, or leave [metrics] listen unset") from None
            self.endpoint = endpoint
            log.info("metrics: serving http://%s/metrics", _hostport(*endpoint.address))
        if self.textfile is not None:
            if not self.textfile.parent.is_dir():
                raise ConfigError("the textfile's folder does not exist", field="metrics.textfile",
                                  value=str(self.textfile),
                                  hint="create it, or point it at node_exporter's --collector.textfile.directory")
            try:
                await self.write_textfile()
            except OSError as exc:
                raise ConfigError(f"cannot write the metrics textfile: {exc.strerror or exc}",
                                  field="metrics.textfile", value=str(self.textfile)) from None
            self._writer = asyncio.create_task(self._write_every_interval(), name="edgeorch-metrics-textfile")
            log.info("metrics: writing %s every %gs", self.textfile, self.interval)

    async def close(self) -> None:
        """Stop the writer and the endpoint (the textfile stays: node_exporter shows the last numbers)."""
        if self._writer is not None:
            self._writer.cancel()
            try:
                await self._writer
            except asyncio.CancelledError:
                pass
            self._writer = None
        if self.endpoint is not None:
            endpoint, self.endpoint = self.endpoint, None
            await asyncio.to_thread(endpoint.close)

    def describe(self) -> dict[str, Any]:
        """Where the metrics go (for ``status``): the HTTP address (bound port), the textfile and its interval."""
        listen = _hostport(*self.endpoint.address) if self.endpoint is not None else None
        return {"listen": listen, "textfile": str(self.textfile) if self.textfile else None,
                "interval_s": self.interval if self.textfile else None}

    # -- the textfile ----------------------------------------------------------------------------------

    async def write_textfile(self) -> None:
        """Take a snapshot and replace the textfile with it (rendered and written in a worker thread)."""
        assert self.textfile is not None
        families = await self.snapshot("textfile")
        path = self.textfile
        await asyncio.to_thread(lambda: write_textfile(path, to_text(families)))

    async def _write_every_interval(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.write_textfile()
            except OSError as exc:
                self.textfile_errors.inc(())
                text = f"{exc.strerror or exc}"
                if text != self._textfile_error:  # say it once, not every interval
                    log.warning("metrics: cannot write %s: %s (retrying every %gs)", self.textfile, text,
                                self.interval)
                    self._textfile_error = text
                continue
            if self._textfile_error is not None:
                log.info("metrics: writing %s again", self.textfile)
                self._textfile_error = None


def _hostport(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
