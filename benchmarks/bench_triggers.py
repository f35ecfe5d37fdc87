"""Drop-folder triggers through a real daemon: rename -> task start latency, and ingest throughput.

``python benchmarks/bench_triggers.py [--drops 200] [--burst 10000] [--repeat 1]``

* latency: one file at a time is renamed into the watched folder; its task
  writes ``time.time()`` (``date +%s.%N``) as its first act; latency = that
  stamp - the time just before ``os.rename``. p50/p99 over ``--drops`` drops
  (goal p99 < 100 ms).
* ingest: ``--burst`` small files are renamed into the folder as fast as
  possible; throughput = files / (time until every file is claimed, hashed,
  recorded and has its run created), from the first rename (goal >= 500
  files/s). The runs themselves are not waited for (that is the engine's
  benchmark); the daemon is stopped afterwards.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from edgeorch.control import Client
from edgeorch.errors import EdgeorchError


def workspace(root: Path, settle: str = "1s") -> tuple[Path, Path, dict[str, str]]:
    drop, pipes, state, stamps = root / "drop", root / "pipelines", root / "var", root / "stamps"
    for d in (drop, pipes, stamps):
        d.mkdir(parents=True)
    (root / "config.toml").write_text(textwrap.dedent(f"""\
        [state]
        dir = "{state}"
        [pipelines]
        dir = "{pipes}"
        [engine]
        parallelism = 2
        stop_tasks_on_shutdown = true
        [[watch]]
        folder = "{drop}"
        pipeline = "ingest"
        settle = "{settle}"
        """))
    (pipes / "ingest.toml").write_text(textwrap.dedent(f"""\
        [params]
        input = {{ type = "path", default = "" }}
        [tasks.stamp]
        command = ["sh", "-c", "date +%s.%N > {stamps}/$(basename {{input}})"]
        """))
    env = dict(os.environ, EDGEORCH_CONFIG=str(root / "config.toml"),
               PYTHONPATH=str(REPO) + (os.pathsep + os.environ["PYTHONPATH"] if os.environ.get("PYTHONPATH") else ""))
    env.pop("NOTIFY_SOCKET", None)
    return drop, stamps, env


def start_daemon(root: Path, env: dict[str, str]) -> tuple[subprocess.Popen[bytes], Path]:
    prof = ["-m", "cProfile", "-o", os.environ["BENCH_PROFILE"]] if os.environ.get("BENCH_PROFILE") else []
    proc = subprocess.Popen([sys.executable, *prof, "-m", "edgeorch.cli", "daemon"], env=env,
                            stdout=open(root / "daemon.log", "ab"), stderr=subprocess.STDOUT)
    sock = root / "var" / "edgeorch.sock"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with Client(sock, timeout=5) as c:
                c.call("ping")
            return proc, sock
        except (OSError, EdgeorchError):
            time.sleep(0.05)
    raise SystemExit("the daemon did not start; see " + str(root / "daemon.log"))


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, round(p / 100 * (len(xs) - 1)))]


def bench_latency(drops: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="bench-trig-") as tmp:
        root = Path(tmp)
        drop, stamps, env = workspace(root)
        stage = root / "stage"
        stage.mkdir()
        proc, sock = start_daemon(root, env)
        lat: list[float] = []
        try:
            with Client(sock, timeout=60) as c:
                events = c.stream("events", {}, timeout=60)
                next(events)  # subscribed
                for i in range(drops + 5):  # the first 5 warm up (imports, first pipeline version)
                    name = f"d{i:05d}.csv"
                    (stage / name).write_text(f"{i}\n")
                    t0 = time.time()
                    os.rename(stage / name, drop / name)
                    for ev in events:
                        if ev.get("kind") == "input" and ev.get("state") in ("done", "quarantined", "refused"):
                            break
                    if i >= 5:
                        lat.append(float((stamps / name).read_text()) - t0)
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=60)
        return {"drops": drops, "p50_ms": pct(lat, 50) * 1e3, "p99_ms": pct(lat, 99) * 1e3,
                "max_ms": max(lat) * 1e3}


def bench_ingest(n: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="bench-trig-") as tmp:
        root = Path(tmp)
        drop, _stamps, env = workspace(root)
        stage = root / "stage"
        stage.mkdir()
        for i in range(n):
            (stage / f"b{i:06d}.csv").write_text(f"{i}\n")
        proc, _sock = start_daemon(root, env)
        db = sqlite3.connect(root / "var" / "edgeorch.db", timeout=60)
        try:
            t0 = time.monotonic()
            for i in range(n):
                os.rename(stage / f"b{i:06d}.csv", drop / f"b{i:06d}.csv")
            renamed = time.monotonic() - t0
            while True:  # a benchmark may poll: it measures, it does not synchronise a test
                done = db.execute("SELECT COUNT(*) FROM inputs WHERE state IN ('started', 'done')").fetchone()[0]
                if done >= n:
                    break
                time.sleep(0.02)
            wall = time.monotonic() - t0
            runs = db.execute("SELECT COUNT(*) FROM runs").fetchone()[0]
        finally:
            db.close()
            proc.send_signal(signal.SIGTERM)  # stop_tasks_on_shutdown: its running tasks stop with it
            proc.wait(timeout=120)
        return {"files": n, "renamed_s": renamed, "ingest_s": wall, "files_per_s": n / wall, "runs": runs}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--drops", type=int, default=200)
    ap.add_argument("--burst", type=int, default=10_000)
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--only", choices=["latency", "ingest"])
    args = ap.parse_args()
    out: dict[str, list[dict[str, float]]] = {"latency": [], "ingest": []}
    for _ in range(args.repeat):
        if args.only in (None, "latency"):
            r = bench_latency(args.drops)
            out["latency"].append(r)
            print(f"latency over {r['drops']} drops: p50 {r['p50_ms']:.1f} ms, p99 {r['p99_ms']:.1f} ms, "
                  f"max {r['max_ms']:.1f} ms (goal p99 < 100 ms)", flush=True)
        if args.only in (None, "ingest"):
            r = bench_ingest(args.burst)
            out["ingest"].append(r)
            print(f"ingest of {r['files']} files: {r['ingest_s']:.2f} s -> {r['files_per_s']:.0f} files/s "
                  f"(renames took {r['renamed_s']:.2f} s; goal >= 500 files/s)", flush=True)
    if args.repeat > 1:
        for key, field in (("latency", "p99_ms"), ("ingest", "files_per_s")):
            if out[key]:
                print(f"median {key} {field}: {statistics.median(r[field] for r in out[key]):.1f}")
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
