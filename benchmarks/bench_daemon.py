"""The daemon under a big history: request latency, start-up, idle cost, re-adoption.

    python benchmarks/bench_daemon.py [--runs 100000] [--idle-seconds 60] [--adopt 100]

Figures (goals from issue 3):
- ``status`` and ``runs.list`` latency p50/p99 with N finished runs in the state file;
- time from exec to READY=1 with that history (goal < 1.5 s);
- idle CPU over a window (goal < 1 %: nothing polls) and idle RSS (goal < 150 MB);
- time to re-adopt K running tasks after kill -9 (goal < 1 s): from the new
  daemon's exec to READY=1, which is sent only after recovery.

References in the same run: the same ``runs.list`` query straight on the SQLite
file (the floor the daemon adds its socket and JSON cost to), and
``socat``-style raw connection setup cost (a ping).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

import edgeorch.config  # noqa: E402
from edgeorch.control import Client  # noqa: E402
from edgeorch.store import Store  # noqa: E402
from scratch import scratch  # noqa: E402

CLK_TCK = os.sysconf("SC_CLK_TCK")


def fill_history(db: Path, n: int) -> None:
    """N finished runs of one pipeline, 3 tasks and 3 attempts each, written in bulk."""
    store = Store(db)
    vid = store.pipelines.record_version("hist", "h", "/hist.toml", '[tasks.a]\ncommand=["true"]\n')
    store.close()
    conn = sqlite3.connect(db)
    conn.execute("PRAGMA synchronous = OFF")
    now = time.time() - n
    with conn:
        conn.executemany(
            "INSERT INTO runs (id, pipeline, pipeline_version_id, state, params, trigger, actor, run_dir, created_at, started_at, finished_at)"
            " VALUES (?, 'hist', ?, ?, '{}', 'bench', 'bench', '/x', ?, ?, ?)",
            ((i, vid, "succeeded" if i % 10 else "failed", now + i, now + i, now + i + 1) for i in range(1, n + 1)))
        conn.executemany(
            "INSERT INTO tasks (run_id, name, state, attempts, definition_hash) VALUES (?, ?, 'succeeded', 1, 'h')",
            ((i, t) for i in range(1, n + 1) for t in ("a", "b", "c")))
        conn.executemany(
            "INSERT INTO attempts (task_id, run_id, task, number, state, exit_code, started_at, finished_at, log_path, attempt_dir, definition_hash, input_hash)"
            " VALUES (?, ?, ?, 1, 'exited', 0, ?, ?, '/x', '/x', 'h', 'i')",
            ((3 * (i - 1) + k + 1, i, t, now + i, now + i + 1) for i in range(1, n + 1) for k, t in enumerate(("a", "b", "c"))))
    conn.close()


class Daemon:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.notify_path = root / "notify.sock"
        self.notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.notify.bind(str(self.notify_path))
        self.proc: subprocess.Popen | None = None

    def start(self) -> float:
        """Exec the daemon; seconds until READY=1."""
        env = dict(os.environ, NOTIFY_SOCKET=str(self.notify_path), EDGEORCH_CONFIG=str(self.root / "config.toml"),
                   PYTHONPATH=str(REPO))
        t0 = time.perf_counter()
        self.proc = subprocess.Popen([sys.executable, "-m", "edgeorch.cli", "daemon"], env=env,
                                     stdout=subprocess.DEVNULL, stderr=open(self.root / "daemon.log", "a"))
        self.notify.settimeout(120)
        while True:
            msg = self.notify.recv(65536).decode()
            if "READY=1" in msg.splitlines():
                return time.perf_counter() - t0

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLK_TCK

    def rss_mb(self) -> float:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return float("nan")


def kill_tasks(db: Path) -> None:
    """The benchmark's own task process groups (recorded in its state file), never anyone else's."""
    if not db.exists():
        return
    conn = sqlite3.connect(db)
    try:
        groups = {r[0] for r in conn.execute("SELECT pgid FROM attempts WHERE pgid IS NOT NULL AND state IN ('starting', 'running')")}
    finally:
        conn.close()
    for pgid in groups:
        try:
            os.killpg(pgid, signal.SIGKILL)
        except OSError:
            pass


def percentiles(xs: list[float]) -> tuple[float, float]:
    xs = sorted(xs)
    return xs[len(xs) // 2] * 1000, xs[min(len(xs) - 1, int(len(xs) * 0.99))] * 1000


def latency(client: Client, op: str, args: dict | None, n: int) -> tuple[float, float]:
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        client.call(op, args)
        out.append(time.perf_counter() - t0)
    return percentiles(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=100_000)
    ap.add_argument("--requests", type=int, default=500)
    ap.add_argument("--idle-seconds", type=float, default=60)
    ap.add_argument("--adopt", type=int, default=100, help="tasks to re-adopt after kill -9 (0: skip that part)")
    args = ap.parse_args()
    root = scratch("daemon-")
    d: Daemon | None = None
    try:
        (root / "p").mkdir()
        tasks = "\n".join(f'[tasks.t{i}]\ncommand = ["sleep", "120"]\n' for i in range(max(1, args.adopt)))
        (root / "p" / "hold.toml").write_text(tasks)
        (root / "config.toml").write_text(
            f'[state]\ndir = "{root}/var"\n[pipelines]\ndir = "{root}/p"\n[engine]\nparallelism = {max(1, args.adopt)}\nkill_grace = "1s"\n'
            # No numba warm-up competing with the figures (a tree older than issue 11 has no [kernels]).
            + ('[kernels]\nwarm_up = false\n' if hasattr(edgeorch.config, "KernelsConfig") else ""))
        (root / "var").mkdir()
        t0 = time.perf_counter()
        fill_history(root / "var" / "edgeorch.db", args.runs)
        print(f"history: {args.runs} finished runs ({3 * args.runs} attempts) written in {time.perf_counter() - t0:.1f}s")

        d = Daemon(root)
        ready = d.start()
        print(f"start to READY with {args.runs} runs: {ready:.3f}s (goal < 1.5s)")
        client = Client(root / "var" / "edgeorch.sock")
        client.call("ping")
        for op, a in (("ping", None), ("status", None), ("runs.list", {"limit": 20})):
            p50, p99 = latency(client, op, a, args.requests)
            print(f"{op:<10} latency over {args.requests}: p50 {p50:.2f} ms, p99 {p99:.2f} ms")
        # Reference: the same runs.list work straight on the file, no daemon.
        ref = Store(root / "var" / "edgeorch.db", readonly=True)
        xs = []
        for _ in range(args.requests):
            t1 = time.perf_counter()
            ref.runs.list(limit=20)
            xs.append(time.perf_counter() - t1)
        ref.close()
        r50, r99 = percentiles(xs)
        print(f"reference: the runs.list query on the file directly: p50 {r50:.2f} ms, p99 {r99:.2f} ms")

        c0, w0 = d.cpu_seconds(), time.perf_counter()
        time.sleep(args.idle_seconds)  # measuring idleness is the point here
        cpu = (d.cpu_seconds() - c0) / (time.perf_counter() - w0) * 100
        print(f"idle CPU over {args.idle_seconds:.0f}s: {cpu:.3f}% (goal < 1%), idle RSS {d.rss_mb():.1f} MB (goal < 150 MB)")

        if args.adopt <= 0:
            client.close()
            d.proc.send_signal(signal.SIGTERM)
            d.proc.wait(timeout=60)
            return
        run_id = client.call("trigger", {"pipeline": "hold"})["run_id"]
        deadline = time.monotonic() + 120
        while client.call("status")["tasks"]["running"] < args.adopt:
            assert time.monotonic() < deadline, "tasks did not all start"
            time.sleep(0.1)
        db = sqlite3.connect(root / "var" / "edgeorch.db")
        while db.execute("SELECT COUNT(*) FROM attempts WHERE run_id = ? AND state = 'running'", (run_id,)).fetchone()[0] < args.adopt:
            assert time.monotonic() < deadline, "attempts were not all recorded as running"
            time.sleep(0.1)
        client.close()
        d.proc.send_signal(signal.SIGKILL)
        d.proc.wait()
        adopt = d.start()
        client = Client(root / "var" / "edgeorch.sock")
        running = client.call("status")["tasks"]["running"]
        adopted = db.execute("SELECT COUNT(*) FROM events WHERE kind = 'attempt_adopted' AND run_id = ?", (run_id,)).fetchone()[0]
        print(f"re-adopt after kill -9: {running} running, {adopted} adopted; exec to READY {adopt:.3f}s (goal < 1s)")
        client.call("cancel", {"run_id": run_id})
        client.close()
        d.proc.send_signal(signal.SIGTERM)
        d.proc.wait(timeout=60)
    finally:
        if d is not None and d.proc is not None and d.proc.poll() is None:
            d.proc.kill()
            d.proc.wait()
        kill_tasks(root / "var" / "edgeorch.db")  # the folder goes when the benchmark exits (scratch.py)


if __name__ == "__main__":
    main()
