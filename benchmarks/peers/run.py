"""edgeorch and the tools a user would pick instead, on the same workloads, side by side (issue 11).

    /tmp/peervenv/bin/python benchmarks/peers/run.py [--quick] [--repeat N] [--only fan,one,kernels]

Run it with an interpreter that has the ``bench`` extra (``pip install -e
'.[bench]'`` into a separate venv: benchmarks/README.md, "Peers"); a peer
that cannot be imported is reported as missing and skipped, never a failure.

Sections (every figure a median of ``--repeat`` runs; ratio = peer / edgeorch,
so above 1 means edgeorch is faster):

- ``fan``: a pipeline of ``--tasks`` (200) ``true`` tasks, one root fanning
  out and back into one sink, parallelism 2, each run a whole process as a
  user starts it (interpreter, imports, the run, exit): ``xargs -P2``;
  ``edgeorch run`` without a daemon (an engine in the process) and through a
  running daemon; Luigi (local scheduler, 2 workers); Dagster
  (``execute_in_process``: one op at a time); Prefect (thread pool of 2,
  ephemeral server). Rounds rotate the tools' order so drift in the machine's
  load hits all alike. Wall and CPU (the process and everything it waited for:
  for edgeorch through a daemon only the CLI's CPU, the daemon's is not a
  child).
- ``one``: the same with a one-task pipeline.
- ``kernels``: ``benchmarks/bench_kernels.py``'s comparisons (imported, not
  copied): profile of 10M float64 vs pandas ``describe`` (and numpy), exact
  ``ks_2samp`` 5M vs 5M vs scipy, and a drift report on a small table
  (10,000 rows x 20 numeric columns) vs Evidently's ``DataDriftPreset``.

``--quick``: 2 repeats, 50 fan tasks, 1/100 kernel sizes (a smoke run).
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import statistics
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))

# bench_cli: the whole-process timing and the daemon start; bench_engine: the fan-in pipeline file.
from bench_cli import Tree, measure, start_daemon, stop_daemon
from scratch import scratch
from bench_engine import write_pipeline


@dataclass
class Tool:
    """One way to run the pipeline: ``argv(workdir)`` gives the command; ``module`` must import (else skipped)."""

    name: str
    argv: Callable[[Path], list[str]]
    module: str | None = None
    env: dict[str, str] = field(default_factory=dict)
    daemon: bool = False
    times: list[tuple[float, float]] = field(default_factory=list)

    def available(self) -> str | None:
        """None when it can run here, else why not."""
        if self.module and importlib.util.find_spec(self.module) is None:
            return f"{self.module} not installed (pip install -e '.[bench]')"
        return None


def load() -> str:
    return "/".join(f"{v:.1f}" for v in os.getloadavg())


def tools_for(n: int, root: Path, tree: Tree) -> list[Tool]:
    """The tools running the ``n``-task pipeline (``fan`` when n > 1, else ``one``) in ``root``."""
    py, peers = sys.executable, HERE
    name = "fan" if n > 1 else "one"  # both files written by main before the daemon starts
    xargs = f"seq {n} | xargs -P2 -n1 true"
    return [
        Tool("xargs -P2 (reference)", lambda w: ["sh", "-c", xargs]),
        Tool("edgeorch run (no daemon)", lambda w: [py, "-m", "edgeorch", "run", "-q", name],
             env=tree.env_for(daemon=False)),
        Tool("edgeorch run (daemon)", lambda w: [py, "-m", "edgeorch", "run", "-q", name],
             env=tree.env_for(daemon=True), daemon=True),
        Tool("Luigi (local scheduler)", lambda w: [py, str(peers / "luigi_fan.py"), "--tasks", str(n),
                                                   "--parallelism", "2", "--workdir", str(w)], "luigi"),
        Tool("Dagster (execute_in_process)", lambda w: [py, str(peers / "dagster_fan.py"), "--tasks", str(n)],
             "dagster"),
        Tool("Prefect (threads, ephemeral)", lambda w: [py, str(peers / "prefect_fan.py"), "--tasks", str(n),
                                                        "--parallelism", "2"], "prefect",
             env={"PREFECT_HOME": str(root / "prefect-home"), "PREFECT_LOGGING_LEVEL": "WARNING"}),
    ]


def compare(title: str, n: int, repeat: int, root: Path, tree: Tree, skip: set[str]) -> None:
    """Run every available tool ``repeat`` times, rotating the order each round, and print the table."""
    print(f"\n{title} (load before {load()})", flush=True)
    tools = tools_for(n, root, tree)
    ready = []
    for t in tools:
        why = t.available() or ("skipped (--skip)" if any(s in t.name.lower() for s in skip) else None)
        if why:
            print(f"  {t.name}: {why}")
        else:
            ready.append(t)
    base = dict(os.environ)
    for t in ready:  # one untimed run each: first-use costs (state file, caches, Prefect's database)
        measure(t.argv(Path(tempfile.mkdtemp(dir=root))), {**base, **t.env}, root)
    for i in range(repeat):
        k = i % len(ready)
        for t in ready[k:] + ready[:k]:
            t.times.append(measure(t.argv(Path(tempfile.mkdtemp(dir=root))), {**base, **t.env}, root))
    wall = {t.name: statistics.median(w for w, _ in t.times) for t in ready}
    ours = wall.get("edgeorch run (no daemon)")
    ref = wall.get("xargs -P2 (reference)")
    print(f"  {'tool':<32} {'wall':>9} {'CPU':>9} {'/ edgeorch':>11} {'/ xargs':>9}   per-task beyond xargs")
    for t in ready:
        w, c = wall[t.name], statistics.median(c for _, c in t.times)
        vs_ours = f"{w / ours:10.2f}x" if ours else f"{'-':>11}"
        vs_ref = f"{w / ref:8.1f}x" if ref else f"{'-':>9}"
        per = f"{(w - ref) / n * 1000:8.2f} ms" if ref is not None else ""
        print(f"  {t.name:<32} {w:8.3f}s {c:8.3f}s {vs_ours} {vs_ref}   {per}")
    print(f"  (medians of {repeat}; ranges: "
          + "; ".join(f"{t.name.split(' (')[0]}{' daemon' if t.daemon else ''} "
                      f"{min(w for w, _ in t.times):.2f}-{max(w for w, _ in t.times):.2f}s" for t in ready)
          + f"; load after {load()})", flush=True)


def kernels(quick: bool, repeat: int) -> None:
    """bench_kernels' comparisons against pandas, scipy and Evidently, at the sizes of the task."""
    os.environ.setdefault("NUMBA_CACHE_DIR", str(Path(tempfile.gettempdir()) / "edgeorch-bench-numba-cache"))
    import bench_kernels as bk

    scale = 100 if quick else 1
    print(f"\nkernels (ratio = reference / ours; load before {load()})", flush=True)
    for pkg in ("pandas", "scipy", "evidently"):
        spec = importlib.util.find_spec(pkg)
        if spec is None:
            print(f"  {pkg}: not installed")
        else:
            from importlib.metadata import version

            print(f"  {pkg} {version(pkg)}")
    bk.bench_profile(10_000_000 // scale, repeat)
    bk.bench_two_sample(5_000_000 // scale, repeat)
    bk.bench_drift(10_000 // (10 if quick else 1), 20, repeat)
    print(f"  (load after {load()})")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                 epilog="Sections and figures: see the module docstring and benchmarks/README.md.")
    ap.add_argument("--quick", action="store_true", help="a smoke run: 2 repeats, 50 fan tasks, small kernels")
    ap.add_argument("--repeat", type=int, help="runs per figure (default 5; --quick 2)")
    ap.add_argument("--tasks", type=int, help="tasks in the fan pipeline (default 200; --quick 50)")
    ap.add_argument("--only", default="fan,one,kernels", help="comma-separated sections (default: all)")
    ap.add_argument("--skip", default="", help="comma-separated tools to leave out, e.g. prefect,dagster")
    args = ap.parse_args()
    repeat = args.repeat or (2 if args.quick else 5)
    n = args.tasks or (50 if args.quick else 200)
    if n < 2 or repeat < 1:
        ap.error(f"--tasks must be at least 2 (got {n}) and --repeat at least 1 (got {repeat})")
    only = set(args.only.split(","))
    unknown = only - {"fan", "one", "kernels"}
    if unknown:
        ap.error(f"--only: unknown section(s) {sorted(unknown)}; expected fan, one, kernels")
    skip = {s.strip().lower() for s in args.skip.split(",") if s.strip()}
    print(f"python {sys.version.split()[0]} ({sys.executable}), {os.cpu_count()} CPUs, load {load()}")
    root = scratch("peers-")
    daemon = None
    try:
        if only & {"fan", "one"}:
            (root / "p").mkdir()
            tree = Tree("edgeorch", REPO, root, root / "numba-cache")
            write_pipeline(root / "p", n)
            (root / "p" / "one.toml").write_text('[tasks.a]\ncommand = ["true"]\n')
            daemon = start_daemon(tree, root)
            if "fan" in only:
                compare(f"fan: {n} `true` tasks, parallelism 2, whole process", n, repeat, root, tree, skip)
            if "one" in only:
                compare("one: a one-task pipeline, whole process", 1, repeat, root, tree, skip)
        if "kernels" in only:
            kernels(args.quick, repeat)
    finally:
        stop_daemon(daemon, root)


if __name__ == "__main__":
    main()
