"""Drop-folder triggers through a real daemon: rename -> task start latency, and ingest throughput.

``python benchmarks/bench_triggers.py [--drops 200] [--burst 10000] [--repeat 1] [--before PATH]``

* latency: one file at a time is renamed into the watched folder; its task
  writes ``time.time()`` (``date +%s.%N``) as its first act; latency = that
  stamp - the time just before ``os.rename``. p50/p99 over ``--drops`` drops
  (issue 11's goal: p50 <= 10 ms, p99 <= 30 ms). ``--latency-task exec``
  (default): the task's program is ``date`` itself, its stamp read back from
  the attempt's log (the state file names it): the time until the task runs.
  ``shell``: ``sh -c "date ... > stamps/<name>"``, which adds the shell's
  own start (~1.4 ms on the development VM) to every figure.
* ingest: ``--burst`` small files (several sizes: ``--burst 1000,10000``) are
  renamed into the folder as fast as possible; throughput = files / (time
  until every file is claimed, hashed, recorded and has its run created),
  from the first rename (issue 11's goal: >= 2,000 files/s for 10,000). The
  runs themselves are not waited for (that is the engine's benchmark); the
  daemon is stopped afterwards. Also reported: the daemon process's own CPU
  time over the same interval, per file (user + system, from
  ``/proc/<pid>/stat``; its task processes are not counted): a figure the
  other jobs of a shared machine disturb far less than the wall clock.
  Then, in the same round, **processed**: files / time from the first rename
  until every file's run has ended and its input is ``done`` (what a user
  waits for), with the daemon's CPU per file over that span.

* arrivals (``--only arrivals``): the drop-folder code's own share of a
  burst, without a daemon, a store or any file: ``--burst`` names are fed to
  a real :class:`~edgeorch.triggers.arrivals.ArrivalLoop`'s watcher from a
  thread while the loop is busy (as inotify does during a burst), each
  ``moved_to`` then ``deleted`` (the claim's move out); the figure is the
  loop thread's CPU per file until every file was handed over and forgotten,
  the minimum of 5 rounds (steady under load, unlike the wall clock).

``--before PATH``: another checkout (e.g. a ``git worktree`` of an older
commit) measured in the same run, interleaved (before, after, then after,
before in the next repeat) so that machine noise hits both alike; its daemon
runs that tree's code (its own ``edgeorch`` first on ``PYTHONPATH``) under
this script's workload. The summary gives medians and the median of the
per-pair ratios after / before.
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
from scratch import create_cost_ms, scratch  # noqa: E402


def workspace(root: Path, settle: str = "1s", repo: Path = REPO,
              task: str = "shell") -> tuple[Path, Path, dict[str, str]]:
    """The watched folder, the stamps folder and the daemon's environment under ``root``.

    ``task``: ``shell`` stamps ``stamps/<name>`` through ``sh -c``; ``exec`` runs ``date`` itself (its stamp
    goes to the attempt's log). The kernels' warm-up is off, as in the other benchmarks: in a fresh state
    folder it compiles for about 40 s beside what is measured; a daemon's warm cache starts none.
    """
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
        [kernels]
        warm_up = false
        [[watch]]
        folder = "{drop}"
        pipeline = "ingest"
        settle = "{settle}"
        """))
    command = ('["date", "+%s.%N"]' if task == "exec"
               else f'["sh", "-c", "date +%s.%N > {stamps}/${{{{EDGEORCH_INPUT##*/}}}}"]')
    (pipes / "ingest.toml").write_text(textwrap.dedent(f"""\
        [params]
        input = {{ type = "path", default = "" }}
        [tasks.stamp]
        command = {command}
        """))
    env = dict(os.environ, EDGEORCH_CONFIG=str(root / "config.toml"),
               PYTHONPATH=str(repo) + (os.pathsep + os.environ["PYTHONPATH"] if os.environ.get("PYTHONPATH") else ""))
    env.pop("NOTIFY_SOCKET", None)
    return drop, stamps, env


def start_daemon(root: Path, env: dict[str, str], repo: Path = REPO) -> tuple[subprocess.Popen[bytes], Path]:
    prof = ["-m", "cProfile", "-o", os.environ["BENCH_PROFILE"]] if os.environ.get("BENCH_PROFILE") else []
    with open(root / "daemon.log", "ab") as log:  # the child keeps its own copy of the descriptor
        proc = subprocess.Popen([sys.executable, *prof, "-m", "edgeorch.cli", "daemon"], env=env, cwd=repo,
                                stdout=log, stderr=subprocess.STDOUT)
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


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process ``pid`` itself (not its children), from ``/proc/<pid>/stat``."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, round(p / 100 * (len(xs) - 1)))]


def bench_latency(drops: int, repo: Path = REPO, task: str = "exec") -> dict[str, float]:
    root = scratch("trig-")  # kept until the benchmark ends: a removal would slow the next round
    drop, stamps, env = workspace(root, repo=repo, task=task)
    stage = root / "stage"
    stage.mkdir()
    proc, sock = start_daemon(root, env, repo)
    lat: list[float] = []
    t0s: dict[str, float] = {}
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
                    t0s[name] = t0
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
    db = sqlite3.connect(root / "var" / "edgeorch.db")
    try:
        logs = dict(db.execute("SELECT i.source_name, a.log_path FROM inputs i JOIN attempts a"
                               " ON a.run_id = i.run_id"))
    finally:
        db.close()
    for name, t0 in t0s.items():
        stamp = Path(logs[name]) if task == "exec" else stamps / name
        lat.append(float(stamp.read_text().split()[0]) - t0)
    return {"drops": drops, "p50_ms": pct(lat, 50) * 1e3, "p99_ms": pct(lat, 99) * 1e3,
            "max_ms": max(lat) * 1e3, "create_ms": create_cost_ms()}


def bench_ingest(n: int, repo: Path = REPO) -> dict[str, float]:
    root = scratch("trig-")  # kept until the benchmark ends: a removal would slow the next round
    drop, _stamps, env = workspace(root, repo=repo)
    stage = root / "stage"
    stage.mkdir()
    for i in range(n):
        (stage / f"b{i:06d}.csv").write_text(f"{i}\n")
    proc, _sock = start_daemon(root, env, repo)
    db = sqlite3.connect(root / "var" / "edgeorch.db", timeout=60)
    try:
        cpu0 = cpu_seconds(proc.pid)
        t0 = time.monotonic()
        for i in range(n):
            os.rename(stage / f"b{i:06d}.csv", drop / f"b{i:06d}.csv")
        renamed = time.monotonic() - t0
        _until_inputs(db, ("started", "done"), n)
        wall = time.monotonic() - t0
        cpu = cpu_seconds(proc.pid) - cpu0
        runs = db.execute("SELECT COUNT(*) FROM runs").fetchone()[0]
        _until_inputs(db, ("done",), n)  # then until every file's run has ended: what processing takes
        processed = time.monotonic() - t0
        cpu_processed = cpu_seconds(proc.pid) - cpu0
    finally:
        db.close()
        proc.send_signal(signal.SIGTERM)  # stop_tasks_on_shutdown: its running tasks stop with it
        proc.wait(timeout=120)
    return {"files": n, "renamed_s": renamed, "ingest_s": wall, "files_per_s": n / wall, "runs": runs,
            "daemon_cpu_ms_per_file": cpu / n * 1e3, "processed_s": processed, "processed_per_s": n / processed,
            "daemon_cpu_ms_per_processed_file": cpu_processed / n * 1e3, "create_ms": create_cost_ms()}


ARRIVALS = r"""
import asyncio, os, sys, threading, time
from pathlib import Path
from edgeorch.triggers.arrivals import ArrivalLoop
from edgeorch.triggers.drop import WatchSpec
n, folder = int(sys.argv[1]), Path(sys.argv[2])

async def once() -> float:
    loop, handed, done = asyncio.get_running_loop(), [0], asyncio.Event()
    def on_ready(spec, path):
        handed[0] += 1
        if handed[0] == n:
            done.set()
    arr = ArrivalLoop(loop, [WatchSpec(folder=folder, pipeline="p", settle=1.0)], on_ready, rescan_interval=3600)
    w = arr.watcher
    w.folders.add(folder)
    post, delivered, all_out = w.post, [0], asyncio.Event()
    def counting_post(ev):
        post(ev)
        delivered[0] += 1
        if delivered[0] == 2 * n:
            all_out.set()
    w.post = counting_post
    names = [str(folder / f"b{i:06d}.csv") for i in range(n)]
    t0 = time.thread_time()
    for kind, event in (("moved_to", done), ("deleted", all_out)):  # the loop is blocked meanwhile: events
        th = threading.Thread(target=lambda: [w._send(kind, x) for x in names])  # queue as in a busy daemon
        th.start()
        th.join()
        await event.wait()
    cpu = time.thread_time() - t0
    arr.stop()
    return cpu

print(min(asyncio.run(once()) for _ in range(5)) / n)
"""


def _until_inputs(db: sqlite3.Connection, states: tuple[str, ...], n: int) -> None:
    """Until ``n`` inputs are in one of ``states`` (a benchmark may poll: it measures, it does not synchronise a
    test)."""
    marks = ", ".join("?" * len(states))
    while db.execute(f"SELECT COUNT(*) FROM inputs WHERE state IN ({marks})", states).fetchone()[0] < n:
        time.sleep(0.02)


INGEST_FIGURES = ("files_per_s", "daemon_cpu_ms_per_file", "processed_per_s", "daemon_cpu_ms_per_processed_file")
"""The figures of an ingest round that are summarised (medians, and pair ratios against ``--before``)."""


def bench_arrivals(n: int, repo: Path = REPO) -> dict[str, float]:
    """Loop-thread CPU per file of the arrival path (see the module docstring), in ``repo``'s code."""
    with tempfile.TemporaryDirectory(prefix="bench-arr-") as tmp:
        env = dict(os.environ, PYTHONPATH=str(repo))
        out = subprocess.run([sys.executable, "-c", ARRIVALS, str(n), tmp], env=env, cwd=repo, check=True,
                             capture_output=True, text=True).stdout
    return {"files": n, "loop_cpu_us_per_file": float(out) * 1e6}


def load() -> str:
    """The 1-minute load average (the machine is shared: every figure is quoted with it)."""
    return f"{os.getloadavg()[0]:.1f}"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--drops", type=int, default=200)
    ap.add_argument("--burst", default="10000", help="files per burst; several sizes: 1000,10000")
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--only", choices=["latency", "ingest", "arrivals"])
    ap.add_argument("--latency-task", choices=["exec", "shell"], default="exec",
                    help="the latency task: `date` itself (default) or `sh -c date` (adds the shell's start)")
    ap.add_argument("--before", type=Path, help="another checkout, measured interleaved with this one")
    args = ap.parse_args()
    bursts = [int(b) for b in str(args.burst).split(",")]
    trees = {"after": REPO} if args.before is None else {"before": args.before.resolve(), "after": REPO}
    out: dict[str, dict[str, list[dict[str, float]]]] = {t: {} for t in trees}
    for rnd in range(args.repeat):
        order = list(trees) if rnd % 2 == 0 else list(reversed(trees))
        for tree in order:
            repo, res = trees[tree], out[tree]
            if args.only in (None, "latency"):
                r = bench_latency(args.drops, repo, args.latency_task) | {"load": float(load())}
                res.setdefault("latency", []).append(r)
                print(f"[{tree}] latency over {r['drops']} drops: p50 {r['p50_ms']:.1f} ms, p99 {r['p99_ms']:.1f} ms, "
                      f"max {r['max_ms']:.1f} ms (load {load()}; a file create {r['create_ms']:.3f} ms)", flush=True)
            for n in bursts if args.only == "arrivals" else []:
                r = bench_arrivals(n, repo) | {"load": float(load())}
                res.setdefault(f"arrivals_{n}", []).append(r)
                print(f"[{tree}] arrival path, {n} files: loop CPU {r['loop_cpu_us_per_file']:.1f} us/file "
                      f"(load {load()})", flush=True)
            for n in bursts if args.only in (None, "ingest") else []:
                r = bench_ingest(n, repo) | {"load": float(load())}
                res.setdefault(f"ingest_{n}", []).append(r)
                print(f"[{tree}] ingest of {r['files']} files: {r['ingest_s']:.2f} s -> {r['files_per_s']:.0f} files/s, "
                      f"daemon CPU {r['daemon_cpu_ms_per_file']:.2f} ms/file (renames took {r['renamed_s']:.2f} s; "
                      f"load {load()}; a file create {r['create_ms']:.3f} ms); processed (every run ended, input "
                      f"done) in {r['processed_s']:.2f} s -> {r['processed_per_s']:.0f} files/s, daemon CPU "
                      f"{r['daemon_cpu_ms_per_processed_file']:.2f} ms/file", flush=True)
    fields = {"latency": ("p50_ms", "p99_ms")} | {k: ("loop_cpu_us_per_file",) for k in
                                                 (f"arrivals_{n}" for n in bursts)}
    for tree, res in out.items():
        for key, runs in res.items():
            for f in fields.get(key, INGEST_FIGURES):
                print(f"[{tree}] median {key} {f}: {statistics.median(r[f] for r in runs):.2f}")
    if args.before is not None:
        for key, runs in out["after"].items():
            for f in fields.get(key, INGEST_FIGURES):
                ratios = [a[f] / b[f] for a, b in zip(runs, out["before"][key]) if b[f]]
                print(f"after / before, {key} {f}: median of pair ratios {statistics.median(ratios):.2f} "
                      f"({', '.join(f'{x:.2f}' for x in ratios)})")
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
