"""Per-task overhead of the engine against xargs spawning the same processes.

A pipeline of N no-op tasks (``true``) that fans out from one root and back
in to one sink, run at parallelism 2 by a real engine (zygote, shims, SQLite
with synchronous=FULL); in the same run, the same N processes spawned by
``xargs -P2``. Overhead per task = (engine wall time - xargs wall time) / N.

``--metrics on`` runs the engine with the daemon's metrics attached: the bus
counters subscribed (the only part on the hot path) and, every
``--scrape-every`` seconds (default 1: 15 times Prometheus' default rate; 0:
never), a full snapshot of every collector taken on the loop, as a scrape
does. ``--metrics both`` interleaves off and on runs, pair by pair, so the
machine's drift hits both alike.

``--tree-cpu`` also reports the CPU time of everything each run starts
(the engine process, the zygote, every shim and task; for xargs, xargs and
its ``true``s), read from a cgroup of its own (cgroup v2 ``cpu.stat``, else
v1 ``cpuacct``; needs the right to create one, e.g. root). On a machine
shared with other work, CPU per task moves far less with the load than wall
time does.

    python benchmarks/bench_engine.py [--tasks 1000] [--repeat 3] [--metrics off|on|both] [--scrape-every 1] [--tree-cpu]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from edgeorch.config import load_config  # noqa: E402
from edgeorch.engine.engine import Engine  # noqa: E402
from edgeorch.model import RunState  # noqa: E402
from edgeorch.pipelines import resolve_params, validate_path  # noqa: E402
from edgeorch.store import Store  # noqa: E402
from scratch import create_cost_ms, scratch  # noqa: E402


def write_pipeline(folder: Path, n: int) -> None:
    lines = ['name = "fan"', '[tasks.root]', 'command = ["true"]']
    for i in range(n - 2):
        lines += [f"[tasks.t{i}]", 'command = ["true"]', 'needs = ["root"]']
    lines += ["[tasks.sink]", 'command = ["true"]', "needs = [" + ", ".join(f'"t{i}"' for i in range(n - 2)) + "]"]
    (folder / "fan.toml").write_text("\n".join(lines) + "\n")


CPU: list[float] = []
"""CPU seconds of this (the engine's) process in each engine_once, in call order."""

TREE_CPU: list[float] = []
"""With a :class:`TreeCpu`: CPU seconds of everything in each engine_once's measured span (same order)."""


def engine_once(n: int, metrics: bool = False, scrape_every: float = 1.0, tree: TreeCpu | None = None) -> float:
    root = scratch("engine-")  # kept until the benchmark ends: a removal would slow the next round (scratch.py)
    (root / "p").mkdir()
    write_pipeline(root / "p", n)
    (root / "config.toml").write_text(f'[state]\ndir = "{root}/var"\n[pipelines]\ndir = "{root}/p"\n[engine]\nparallelism = 2\n')
    cfg = load_config(root / "config.toml")
    pipeline = validate_path(cfg.pipelines_dir).pipelines["fan"]

    async def main() -> float:
        store = Store(cfg.state_file)
        engine = Engine(cfg, store)
        await engine.start()
        scraper = None
        if metrics:  # attached before the clock starts, as a daemon does at its start
            service = await attach_metrics(cfg, store, engine)
            scraper = asyncio.create_task(scrape(service, scrape_every))
        t0, c0 = time.perf_counter(), time.process_time()
        g0 = tree.seconds() if tree else 0.0
        run_id = engine.submit(pipeline, resolve_params(pipeline, {}))
        state = await engine.wait_run(run_id)
        took = time.perf_counter() - t0
        CPU.append(time.process_time() - c0)  # the engine process's own CPU: less at the mercy of other load
        if tree:  # every shim and task of the run has exited by now (an attempt ends after its shim)
            TREE_CPU.append(tree.seconds() - g0)
        assert state == RunState.SUCCEEDED, state
        if scraper is not None:
            scraper.cancel()
        await engine.close()
        store.close()
        return took

    return asyncio.run(main())


async def attach_metrics(cfg, store, engine):
    """The daemon's metrics on this engine: its counters on the bus, the start-up read of check results done."""
    from edgeorch.observe.service import MetricsService
    from edgeorch.pipelines import PipelineRegistry

    service = MetricsService(cfg.metrics)
    service.attach(config=cfg, store=store, engine=engine, registry=PipelineRegistry(cfg.pipelines_dir),
                   bus=engine.bus, clients=lambda: 0, started_at=time.time())
    await service._seeding  # a one-time cost of the daemon's start, not of the hot path
    return service


async def scrape(service, every: float) -> None:
    """A snapshot of every collector every ``every`` seconds, as a scrape takes it (0: none)."""
    while every > 0:
        await asyncio.sleep(every)
        await service.snapshot("bench")


class TreeCpu:
    """A cgroup holding this process (so everything it starts): its CPU seconds so far. ``close`` leaves it."""

    def __init__(self) -> None:
        v2 = Path("/sys/fs/cgroup/cgroup.controllers").exists()
        base = Path("/sys/fs/cgroup") if v2 else Path("/sys/fs/cgroup/cpuacct")
        self.path = base / f"edgeorch-bench-{os.getpid()}"
        self.parent_procs = base / "cgroup.procs"
        self.v2 = v2
        try:
            self.path.mkdir()
            (self.path / "cgroup.procs").write_text(str(os.getpid()))
        except OSError as exc:
            raise SystemExit(f"--tree-cpu: cannot make or join the cgroup {self.path}: {exc.strerror}"
                             " (needs cgroup v2 or v1 cpuacct and the right to create a group, e.g. root)") from None

    def seconds(self) -> float:
        if self.v2:
            stat = dict(line.split() for line in (self.path / "cpu.stat").read_text().splitlines())
            return int(stat["usage_usec"]) / 1e6
        return int((self.path / "cpuacct.usage").read_text()) / 1e9

    def close(self) -> None:
        try:
            self.parent_procs.write_text(str(os.getpid()))
            self.path.rmdir()
        except OSError:
            pass  # a process of the last run still exiting keeps it: an empty group is harmless


def xargs_once(n: int) -> float:
    t0 = time.perf_counter()
    subprocess.run(["xargs", "-P2", "-n1", "true"], input="\n".join("x" for _ in range(n)), text=True, check=True)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tasks", type=int, default=1000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--metrics", choices=("off", "on", "both"), default="off",
                    help="the daemon's metrics attached to the engine (both: off and on, interleaved)")
    ap.add_argument("--scrape-every", type=float, default=1.0, metavar="SECONDS",
                    help="with metrics: a full snapshot this often (0: the bus counters only)")
    ap.add_argument("--tree-cpu", action="store_true",
                    help="also the CPU time of everything each run starts (engine, zygote, shims, tasks), from a cgroup")
    args = ap.parse_args()
    tree = TreeCpu() if args.tree_cpu else None
    try:
        run(args, tree)
    finally:
        if tree is not None:
            tree.close()


def run(args: argparse.Namespace, tree: TreeCpu | None) -> None:
    eng, xa, with_metrics, cpu_off, cpu_on = [], [], [], [], []
    tree_eng: list[float] = []
    tree_xa: list[float] = []
    for i in range(args.repeat):
        c0 = tree.seconds() if tree else 0.0
        xa.append(xargs_once(args.tasks))
        if tree:
            tree_xa.append(tree.seconds() - c0)
        # Pairs alternate their order (off-on, on-off, ...): the second run of a pair pays for what the first
        # left behind (its state file's writeback, exiting processes), and that must not count as metrics.
        order = [False, True] if i % 2 == 0 else [True, False]
        for metrics in order:
            if metrics and args.metrics in ("on", "both"):
                with_metrics.append(engine_once(args.tasks, metrics=True, scrape_every=args.scrape_every))
                cpu_on.append(CPU[-1])
            elif not metrics and args.metrics in ("off", "both"):
                eng.append(engine_once(args.tasks, tree=tree))
                if tree:  # from submit to the run's end, as the wall time (not the parse, the start or the close)
                    tree_eng.append(TREE_CPU[-1])
                cpu_off.append(CPU[-1])
    if args.metrics == "on":
        eng, with_metrics = with_metrics, []
    e, x = statistics.median(eng), statistics.median(xa)
    print(f"tasks: {args.tasks}, parallelism 2, repeats: {args.repeat}; a file create here {create_cost_ms():.3f} ms"
          " (about 0.01-0.05 at rest; more within minutes of a large removal: see scratch.py)")
    print(f"engine  wall: median {e:.3f}s  ({[round(v, 3) for v in eng]})")
    print(f"xargs   wall: median {x:.3f}s  ({[round(v, 3) for v in xa]})")
    print(f"per-task overhead: {(e - x) / args.tasks * 1000:.2f} ms  (goal <= 1 ms, issue 11)")
    print(f"ratio engine/xargs: {e / x:.2f}x")
    print(f"engine process CPU per task: median {statistics.median(cpu_off or cpu_on) / args.tasks * 1000:.2f} ms"
          f"  (load average {os.getloadavg()[0]:.1f})")
    if tree_eng:
        te, tx = statistics.median(tree_eng), statistics.median(tree_xa)
        print(f"whole-tree CPU per task: engine {te / args.tasks * 1000:.2f} ms ({[round(v, 2) for v in tree_eng]} s),"
              f" xargs {tx / args.tasks * 1000:.2f} ms; beyond xargs {(te - tx) / args.tasks * 1000:.2f} ms")
    if with_metrics:
        m = statistics.median(with_metrics)
        print(f"engine with metrics wall: median {m:.3f}s  ({[round(v, 3) for v in with_metrics]})")
        print(f"metrics cost per task: {(m - e) / args.tasks * 1000:+.3f} ms (median with - median without)")
        con, coff = statistics.median(cpu_on), statistics.median(cpu_off)
        print(f"engine process CPU: median {coff:.3f}s without, {con:.3f}s with metrics: "
              f"{(con - coff) / args.tasks * 1000:+.3f} ms per task")


if __name__ == "__main__":
    main()
