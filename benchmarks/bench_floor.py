"""What this machine charges for the operations edgeorch's protocol cannot skip, against issue 11's goals.

    python benchmarks/bench_floor.py [--dir PATH] [--n 1000] [--rounds 5] [--edgeorch]

Each figure is the cost of one operation on this machine (median of
``--rounds`` rounds of ``--n`` operations, wall and CPU time), measured in a
folder on the file system of ``--dir`` (default: the temporary folder; use the
file system of the state folder, e.g. ``--dir ./var``):

- ``mkdir`` of a new folder; creating a small file (``O_EXCL``, write, close);
  the atomic write of a small JSON file (temporary file, rename), with and
  without ``fsync``; a rename; ``fsync`` of a folder;
- a SQLite commit of one small row in WAL mode, ``synchronous=FULL`` (what a
  durable transition costs) and ``NORMAL``;
- ``posix_spawn`` of ``true`` and its wait (what ``xargs`` pays per task),
  ``xargs -P2`` running 200 ``true`` (the fan's reference), and ``fork`` of a
  Python process that imported the zygote's modules (what a new shim costs;
  a reused shim pays none);
- interpreter starts: ``python -S -c pass``, ``python -c pass``,
  ``python -c "import asyncio, sqlite3"``, the kernels' imports (numba,
  numpy, pyarrow, scipy.special), and those imports plus one call of a
  function numba loads from its warm cache (numba's first use loads its
  target's registries, which import ``scipy.linalg`` to look for a BLAS):
  what any kernel command pays before its work.

Then the **floor** of each goal not met: the sum of the operations the
protocol performs for it (docs/state.md, docs/triggers.md), counted from the
code, with nothing else (no Python bookkeeping, no SQL beyond the commits, no
scheduling); per task, halved (parallelism 2 on two cores: at best two
attempts' work overlaps fully). A goal below its floor cannot be met on this machine without
changing the protocol (the folders and records each attempt and each claim
has, the sync points of the claim). Costs of this VM move twofold from
minute to minute: compare the floor with figures taken the same minute.

``--edgeorch`` measures edgeorch's own figure of each goal in the same run,
right after the floors (``bench_engine.py``'s fan of 300 tasks against
xargs, ``bench_triggers.py``'s ingest of 1,000 files and 30 drops' latency,
whole in-process ``edgeorch run`` commands of a one-task pipeline and of the
200-task fan), and prints it beside its floor.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def per_op(fn: Callable[[int], None], n: int, rounds: int, *, children: bool = False) -> tuple[float, float]:
    """Median (wall, CPU) seconds per call of ``fn(i)``, over ``rounds`` rounds of ``n`` calls.

    ``children``: the CPU of waited-for children counts too (a spawn's or fork's other side).
    """
    walls, cpus = [], []
    for r in range(rounds):
        c0 = time.process_time() + (_children_cpu() if children else 0.0)
        t0 = time.perf_counter()
        for i in range(n):
            fn(r * n + i)
        walls.append((time.perf_counter() - t0) / n)
        cpus.append((time.process_time() + (_children_cpu() if children else 0.0) - c0) / n)
    return statistics.median(walls), statistics.median(cpus)


def _children_cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def file_ops(root: Path, n: int, rounds: int) -> dict[str, tuple[float, float]]:
    """The file system's operations, each in a folder of its own under ``root``."""
    out: dict[str, tuple[float, float]] = {}
    d = root / "mkdir"
    d.mkdir()
    out["mkdir"] = per_op(lambda i: os.mkdir(d / str(i)), n, rounds)
    d = root / "create"
    d.mkdir()

    def create(i: int) -> None:
        fd = os.open(d / str(i), os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        os.write(fd, b'{"attempt_id": 1, "shim_pid": 12345}')
        os.close(fd)

    out["create small file"] = per_op(create, n, rounds)
    d = root / "atomic"
    d.mkdir()

    def atomic(i: int, sync: bool) -> None:
        tmp = d / f"{i}.tmp"
        fd = os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        os.write(fd, b'{"exit_code": 0, "signal": null, "finished_at": 1795779426.15}')
        if sync:
            os.fsync(fd)
        os.close(fd)
        os.rename(tmp, d / f"{i}.json")

    out["atomic write (temp + rename)"] = per_op(lambda i: atomic(i, False), n, rounds)
    out["atomic write + fsync"] = per_op(lambda i: atomic(i + 10 * n * rounds, True), max(n // 4, 1), rounds)
    d2 = root / "renamed"
    d2.mkdir()
    out["rename"] = per_op(lambda i: os.rename(d / f"{i}.json", d2 / f"{i}.json"), n, rounds)
    dfd = os.open(d2, os.O_RDONLY)
    try:
        def dirsync(i: int) -> None:
            os.rename(d2 / f"{i}.json", d2 / f"{i}.moved")
            os.fsync(dfd)

        out["rename + folder fsync"] = per_op(dirsync, max(n // 4, 1), rounds)
    finally:
        os.close(dfd)
    return out


def sqlite_ops(root: Path, n: int, rounds: int) -> dict[str, tuple[float, float]]:
    """One small row per transaction in a WAL database, as the state file is opened (docs/state.md)."""
    conn = sqlite3.connect(root / "state.db", isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, state TEXT, at REAL)")
    out = {}
    for mode in ("FULL", "NORMAL"):
        conn.execute(f"PRAGMA synchronous = {mode}")

        def commit(i: int) -> None:
            conn.execute("BEGIN IMMEDIATE")
            conn.execute("INSERT INTO t (state, at) VALUES ('running', ?)", (time.time(),))
            conn.execute("COMMIT")

        out[f"SQLite commit, synchronous={mode}"] = per_op(commit, n if mode == "NORMAL" else max(n // 4, 1), rounds)
    conn.close()
    return out


def process_ops(n: int, rounds: int) -> dict[str, tuple[float, float]]:
    """A spawn of ``true`` (xargs' work per task) and a fork of a Python process holding the zygote's imports."""
    true = shutil.which("true") or "/bin/true"

    def spawn(i: int) -> None:
        pid = os.posix_spawn(true, [true], os.environ)
        os.waitpid(pid, 0)

    out = {"posix_spawn true + wait": per_op(spawn, n, rounds, children=True)}

    def fan(i: int) -> None:
        subprocess.run(["xargs", "-P2", "-n1", true], input="x\n" * 200, text=True, check=True)

    out["xargs -P2, 200 true"] = per_op(fan, 1, rounds, children=True)
    sys.path.insert(0, str(REPO))
    import edgeorch.engine.executors.local.zygote  # noqa: F401 - the modules a shim is forked with

    def fork(i: int) -> None:
        pid = os.fork()
        if pid == 0:
            os._exit(0)
        os.waitpid(pid, 0)

    out["fork of a Python process (zygote's imports) + wait"] = per_op(fork, max(n // 4, 1), rounds, children=True)
    return out


def starts(rounds: int) -> dict[str, tuple[float, float]]:
    """Whole interpreter starts (wall, CPU of the child), medians of ``rounds``."""
    cases = {
        "python -S -c pass": [sys.executable, "-S", "-c", "pass"],
        "python -c pass": [sys.executable, "-c", "pass"],
        "python -c 'import asyncio, sqlite3'": [sys.executable, "-c", "import asyncio, sqlite3"],
    }
    out = {}
    for name, cmd in cases.items():
        out[name] = per_op(lambda i, cmd=cmd: subprocess.run(cmd, check=True), 1, rounds, children=True)
    kernels = [sys.executable, "-c", "import numba, numpy, pyarrow, scipy.special"]
    try:
        out["kernels' imports (numba, numpy, pyarrow, scipy.special)"] = per_op(
            lambda i: subprocess.run(kernels, check=True, stderr=subprocess.DEVNULL), 1, max(rounds // 2, 1),
            children=True)
    except subprocess.CalledProcessError:
        return out  # not installed here: those lines are left out
    with tempfile.TemporaryDirectory(prefix="bench-floor-numba-") as tmp:
        script = Path(tmp) / "one_kernel.py"
        script.write_text(ONE_CACHED_KERNEL)
        env = dict(os.environ, NUMBA_CACHE_DIR=str(Path(tmp) / "cache"))
        run = [sys.executable, str(script)]
        subprocess.run(run, check=True, env=env, stderr=subprocess.DEVNULL)  # compiles into the cache
        out["kernels' imports + one cached numba function"] = per_op(
            lambda i: subprocess.run(run, check=True, env=env, stderr=subprocess.DEVNULL), 1,
            max(rounds // 2, 1), children=True)
    return out


ONE_CACHED_KERNEL = """
import numba, numpy, pyarrow, scipy.special

@numba.njit(cache=True)
def total(x):
    s = 0.0
    for v in x:
        s += v
    return s

total(numpy.ones(3))
"""
"""The least a kernel command does: the kernels' imports, then one function numba loads from its cache."""


def floors(c: dict[str, tuple[float, float]]) -> list[tuple[str, float, str, str]]:
    """(goal, floor wall seconds, goal text, what the floor counts) for each goal not met."""
    mkdir, create = c["mkdir"][0], c["create small file"][0]
    atomic = c["atomic write (temp + rename)"][0]
    full, normal = c["SQLite commit, synchronous=FULL"][0], c["SQLite commit, synchronous=NORMAL"][0]
    rename, dirsync = c["rename"][0], c["rename + folder fsync"][0]
    spawn = c["posix_spawn true + wait"][0]
    rows = []
    # An attempt (a reused shim: no fork): folders attempts/<t>.<n>, outputs/<t>, checkpoints/<t>; owner.json
    # and output.log created; proc.json and exit.json written atomically (not synced: docs/state.md); the
    # attempt's start and its pids committed (NORMAL), its outcome committed (FULL).
    task = 3 * mkdir + 2 * create + 2 * atomic + 2 * normal + full
    # The goal is wall time at parallelism 2 on two cores: at best two attempts' work overlaps fully.
    rows.append(("engine overhead per task beyond xargs' spawn", task / 2, "<= 1 ms",
                 "(3 mkdir + 2 creates + 2 atomic writes + 2 NORMAL + 1 FULL commits) / 2 slots"))
    rows.append(("200-task fan within 3x xargs", c["xargs -P2, 200 true"][0] + 200 * task / 2,
                 f"<= {3 * c['xargs -P2, 200 true'][0]:.3f} s", "xargs' own time + 200 x the per-task floor"))
    # A dropped file, up to its run's creation: the claim folder and the run folder, the file's rename into the
    # claim (its folder fsyncs and the three durable commits are shared by the group: left out).
    ingest = 2 * mkdir + rename
    rows.append(("drop-folder ingest, per file", ingest, "<= 0.5 ms (2,000 files/s)",
                 "2 mkdir + 1 rename (the group's fsyncs and commits left out)"))
    # rename -> the task's first act: the intent commit, the rename into the claim and its folder fsync, the start
    # commit (run, its task ready, the attempt: one FULL), the attempt (as above, without its end), then the
    # task's program (`date`, bench_triggers.py's default latency task): one spawn.
    latency = full + dirsync + full + 3 * mkdir + 2 * create + atomic + normal + spawn
    rows.append(("rename -> task start, p50", latency, "<= 10 ms",
                 "2 FULL commits + rename with folder fsync + an attempt's start + a spawn"))
    # A one-task run without a daemon: the interpreter with asyncio and sqlite3, the zygote's interpreter
    # (started beside it: left out), the run's 4 folders and the attempt's, the two durable commits, a spawn.
    run = c["python -c 'import asyncio, sqlite3'"][0] + 4 * mkdir + task + full + spawn
    rows.append(("`edgeorch run` of a one-task pipeline, no daemon", run, "<= 0.2 s",
                 "python with asyncio + sqlite3, the run's 4 folders, an attempt, the run's commit, a spawn"))
    kern = c.get("kernels' imports + one cached numba function")
    if kern is not None:
        rows.append(("warm `edgeorch profile` of a 1 MB CSV", kern[0], "<= 0.5 s",
                     "importing numba, numpy, pyarrow, scipy.special, then one cached numba function"))
    return rows


def edgeorch_figures(root: Path) -> dict[str, float]:
    """edgeorch's own figure for each goal of :func:`floors` (seconds; per task or per file where the goal is)."""
    sys.path.insert(0, str(REPO / "benchmarks"))
    import bench_cli  # the benchmarks' own measurements, reused
    import bench_engine
    import bench_triggers

    out: dict[str, float] = {}
    n = 300
    eng = statistics.median(bench_engine.engine_once(n) for _ in range(3))
    xa = statistics.median(bench_engine.xargs_once(n) for _ in range(3))
    out["engine overhead per task beyond xargs' spawn"] = (eng - xa) / n
    out["drop-folder ingest, per file"] = 1 / bench_triggers.bench_ingest(1000)["files_per_s"]
    out["rename -> task start, p50"] = bench_triggers.bench_latency(30)["p50_ms"] / 1000
    ws = root / "whole"
    (ws / "p").mkdir(parents=True)
    (ws / "p" / "one.toml").write_text('name = "one"\n[tasks.a]\ncommand = ["true"]\n')
    bench_engine.write_pipeline(ws / "p", 200)
    (ws / "config.toml").write_text(f'[state]\ndir = "{ws}/var"\n[pipelines]\ndir = "{ws}/p"\n')
    env = dict(os.environ, EDGEORCH_CONFIG=str(ws / "config.toml"),
               PYTHONPATH=str(REPO) + (os.pathsep + os.environ["PYTHONPATH"] if os.environ.get("PYTHONPATH") else ""))
    for name, goal, rounds in (("one", "`edgeorch run` of a one-task pipeline, no daemon", 5),
                               ("fan", "200-task fan within 3x xargs", 3)):
        cmd = [sys.executable, "-m", "edgeorch", "run", name, "-q"]
        bench_cli.measure(cmd, env, ws)  # its first run: the state file
        out[goal] = statistics.median(bench_cli.measure(cmd, env, ws)[0] for _ in range(rounds))
    # A warm profile, as bench_cli.py measures it: the numba cache warmed first (the daemon's warm-up). The
    # command alone, against its floor: no kernel server (bench_cli.py measures the served command).
    env["NUMBA_CACHE_DIR"] = str(ws / "numba-cache")
    env["EDGEORCH_KEEP_WARM"] = "0"
    bench_cli.write_csv(ws / "one_mb.csv")
    subprocess.run([sys.executable, "-c", "from edgeorch.kernels.warmup import compile_everything; "
                    "compile_everything()"], env=env, check=True, cwd=ws)
    cmd = [sys.executable, "-m", "edgeorch", "profile", "one_mb.csv"]
    bench_cli.measure(cmd, env, ws)
    out["warm `edgeorch profile` of a 1 MB CSV"] = statistics.median(bench_cli.measure(cmd, env, ws)[0]
                                                                     for _ in range(5))
    return out


def fmt(seconds: float) -> str:
    return f"{seconds * 1000:.3f} ms" if seconds < 1 else f"{seconds:.2f} s"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dir", type=Path, default=Path(tempfile.gettempdir()),
                    help="where to measure the file system (default: the temporary folder)")
    ap.add_argument("--n", type=int, default=1000, help="operations per round (a quarter for those that fsync)")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--edgeorch", action="store_true", help="also measure edgeorch's figure of each goal, beside its floor")
    args = ap.parse_args()
    args.dir.mkdir(parents=True, exist_ok=True)
    tempfile.tempdir = str(args.dir)  # every scratch folder there, this one's and the benchmarks' it runs
    sys.path.insert(0, str(REPO / "benchmarks"))
    from scratch import create_cost_ms, scratch

    root = scratch("floor-")  # removed at exit, never between measurements (see scratch.py)
    probe = create_cost_ms()
    costs = {**file_ops(root, args.n, args.rounds), **sqlite_ops(root, args.n, args.rounds),
             **process_ops(max(args.n // 2, 1), args.rounds), **starts(args.rounds)}
    ours = edgeorch_figures(root) if args.edgeorch else {}
    print(f"file system of {args.dir} (a file create {probe:.3f} ms before the measurements); {args.rounds} rounds;"
          f" load average {os.getloadavg()[0]:.1f}")
    print(f"{'operation':58} {'wall':>12} {'CPU':>12}")
    for name, (wall, cpu) in costs.items():
        print(f"{name:58} {fmt(wall):>12} {fmt(cpu):>12}")
    print()
    print(f"{'goal':50} {'floor':>10} {'edgeorch':>10}  goal")
    for goal, floor, text, counts in floors(costs):
        verdict = "below the floor" if _limit(text) < floor else "above the floor"
        mine = ours.get(goal)
        shown = f"{fmt(mine):>10}" if mine is not None else f"{'-':>10}"
        ratio = f", edgeorch {mine / floor:.1f}x the floor" if mine is not None else ""
        print(f"{goal:50} {fmt(floor):>10} {shown}  {text} ({verdict}{ratio})")
        print(f"{'':50} {'':>10} {'':>10}  = {counts}")


def _limit(text: str) -> float:
    """The goal's number of seconds, from its text (``<= 1 ms``, ``<= 0.2 s``)."""
    value, unit = text.split()[1:3]
    return float(value) / (1000 if unit.startswith("ms") else 1)


if __name__ == "__main__":
    main()
