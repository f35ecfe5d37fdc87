"""Observability: Prometheus metrics of the daemon's state (and, in time, its structured logs).

- :mod:`.collect`: :class:`~.collect.Sources` and :func:`~.collect.collect`,
  the one registry of collector functions read at scrape time;
- :mod:`.collectors`: one module per area of state (daemon, runs,
  resources, drop folders, checks, audit) and ``COLLECTORS``;
- :mod:`.counters`: the bus subscriber counting changes (runs finished,
  attempt durations, drop-folder inputs, schedule fires, ...);
- :mod:`.tally`: the plain counts and histograms it keeps (pure);
- :mod:`.exposition`: families to the text format or JSON;
- :mod:`.textfile`: the node_exporter file, replaced atomically;
- :mod:`.http`: the HTTP endpoint in its own thread;
- :mod:`.service`: :class:`~.service.MetricsService`, the three outputs wired.

Imported only by the daemon (and its ``metrics`` op): ``edgeorch --help``
and the other commands never load ``prometheus_client``.
"""
