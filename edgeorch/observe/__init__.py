"""Observability: Prometheus metrics of the daemon's state, and its structured log lines.

Metrics (docs/operations.md "Metrics and a live view"):

- :mod:`.collect`: :class:`~.collect.Sources` and :func:`~.collect.collect`,
  the one registry of collector functions read at scrape time;
- :mod:`.collectors`: one module per area of state (daemon, runs, resources,
  drop folders, checks, models, audit, bus counters) and ``COLLECTORS``;
- :mod:`.counters`: the bus subscriber counting changes (runs finished,
  attempt durations, drop-folder outcomes, schedule fires, models, ...);
- :mod:`.tally`: the plain counts and histograms it keeps (pure);
- :mod:`.checks`: each check task's latest result, kept in memory (pure);
- :mod:`.exposition`: families to the text format or JSON;
- :mod:`.textfile`: the node_exporter file, replaced atomically;
- :mod:`.http`: the HTTP endpoint in its own thread;
- :mod:`.service`: :class:`~.service.MetricsService`, the three outputs wired.

Logs (docs/operations.md "Where the logs are"):

- :mod:`.logfields`: the fields a line carries (run, task, attempt, pipeline, input);
- :mod:`.eventlog`: the bus subscriber writing a line per run, attempt and input change;
- :mod:`.journal`: the journal's native protocol; :mod:`.jsonlog`: JSON lines;
- :mod:`.logsetup`: ``[daemon] log_format`` -> the handler.

Imported only by the daemon (and its ``metrics`` op): ``edgeorch --help``
and the other commands never load ``prometheus_client``.
"""
