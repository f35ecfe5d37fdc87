"""What the metrics cost: the bus subscriber per event, a scrape with a big history, an idle daemon.

    python benchmarks/bench_metrics.py [--runs 100000] [--scrapes 50] [--idle-seconds 30]

Figures:
- the bus subscriber (``EventCounters.on_event``, called inside the engine's
  ``publish``) per event, for the four events one task publishes;
- an HTTP scrape of a daemon whose state file holds N finished runs:
  latency p50/p99, the loop's share (``edgeorch_metrics_collect_seconds``),
  the size of the exposition;
- the idle daemon's CPU over a window, nothing scraping it: metrics off,
  ``[metrics] listen`` set, and ``listen`` plus a textfile every 15 s.

The engine's hot path with metrics on and off: ``bench_engine.py --metrics both``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import timeit
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from bench_daemon import Daemon, fill_history, percentiles  # noqa: E402

from edgeorch.events import AttemptEnded, RunFinished, RunStarted, TaskStarted  # noqa: E402
from edgeorch.observe.counters import EventCounters  # noqa: E402


def subscriber_cost(n: int = 50_000) -> float:
    """Microseconds per event of the four a task publishes (started, ended, and its run's start and end)."""
    counters = EventCounters({1: "p"}.get)
    events = [RunStarted(0.0, 1, "p"), TaskStarted(0.0, 1, "t", 1), AttemptEnded(2.0, 1, "t", "succeeded", 1, 0,
                                                                                    None, None, False),
              RunFinished(2.0, 1, "succeeded", None, "p")]

    def one_task() -> None:
        for e in events:
            counters.on_event(e)

    return timeit.timeit(one_task, number=n) / n / len(events) * 1e6


def write_config(root: Path, metrics: str) -> None:
    (root / "p").mkdir(exist_ok=True)
    (root / "config.toml").write_text(f'[state]\ndir = "{root}/var"\n[pipelines]\ndir = "{root}/p"\n{metrics}')


def scrape(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=60) as resp:
        return resp.read()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=100_000)
    ap.add_argument("--scrapes", type=int, default=50)
    ap.add_argument("--idle-seconds", type=float, default=30)
    args = ap.parse_args()
    print(f"bus subscriber: {subscriber_cost():.2f} us per event")

    with tempfile.TemporaryDirectory() as d:
        root = Path(d)
        (root / "prom").mkdir()
        write_config(root, '[metrics]\nlisten = "127.0.0.1:0"\n')
        (root / "var").mkdir()
        fill_history(root / "var" / "edgeorch.db", args.runs)
        daemon = Daemon(root)
        daemon.start()
        try:
            from edgeorch.control import Client

            with Client(root / "var" / "edgeorch.sock") as c:
                url = f"http://{c.call('metrics')['outputs']['listen']}/metrics"
            times, collect = [], []
            for _ in range(args.scrapes):
                t0 = time.perf_counter()
                body = scrape(url)
                times.append(time.perf_counter() - t0)
                line = next(x for x in body.decode().splitlines() if x.startswith("edgeorch_metrics_collect_seconds "))
                collect.append(float(line.split()[1]))
            p50, p99 = percentiles(times)
            c50, c99 = percentiles(collect)
            print(f"HTTP scrape with {args.runs} runs: p50 {p50:.1f} ms, p99 {p99:.1f} ms; on the loop: p50 "
                  f"{c50:.1f} ms, p99 {c99:.1f} ms; {len(body)} bytes")
        finally:
            daemon.proc.terminate()
            daemon.proc.wait()
            daemon.notify.close()

    for label, metrics in (("metrics off", ""), ("listen, not scraped", '[metrics]\nlisten = "127.0.0.1:0"\n'),
                           ("listen + textfile every 15s", '[metrics]\nlisten = "127.0.0.1:0"\ntextfile = '
                                                           '"{root}/prom/edgeorch.prom"\ninterval = "15s"\n')):
        with tempfile.TemporaryDirectory() as d:
            root = Path(d)
            (root / "prom").mkdir()
            write_config(root, metrics.replace("{root}", str(root)))
            daemon = Daemon(root)
            daemon.start()
            try:
                time.sleep(2)  # let start-up's own work settle before measuring idleness
                c0, w0 = daemon.cpu_seconds(), time.perf_counter()
                time.sleep(args.idle_seconds)  # measuring idleness is the point here
                cpu = (daemon.cpu_seconds() - c0) / (time.perf_counter() - w0) * 100
                print(f"idle CPU over {args.idle_seconds:.0f}s, {label}: {cpu:.3f}%, RSS {daemon.rss_mb():.1f} MB")
            finally:
                daemon.proc.terminate()
                daemon.proc.wait()
                daemon.notify.close()


if __name__ == "__main__":
    main()
