"""Per-task overhead of the engine against xargs spawning the same processes.

A pipeline of N no-op tasks (``true``) that fans out from one root and back
in to one sink, run at parallelism 2 by a real engine (zygote, shims, SQLite
with synchronous=FULL); in the same run, the same N processes spawned by
``xargs -P2``. Overhead per task = (engine wall time - xargs wall time) / N.

    python benchmarks/bench_engine.py [--tasks 1000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from edgeorch.config import load_config  # noqa: E402
from edgeorch.engine.engine import Engine  # noqa: E402
from edgeorch.model import RunState  # noqa: E402
from edgeorch.pipelines import resolve_params, validate_path  # noqa: E402
from edgeorch.store import Store  # noqa: E402


def write_pipeline(folder: Path, n: int) -> None:
    lines = ['name = "fan"', '[tasks.root]', 'command = ["true"]']
    for i in range(n - 2):
        lines += [f"[tasks.t{i}]", 'command = ["true"]', 'needs = ["root"]']
    lines += ["[tasks.sink]", 'command = ["true"]', "needs = [" + ", ".join(f'"t{i}"' for i in range(n - 2)) + "]"]
    (folder / "fan.toml").write_text("\n".join(lines) + "\n")


def engine_once(n: int) -> float:
    with tempfile.TemporaryDirectory() as d:
        root = Path(d)
        (root / "p").mkdir()
        write_pipeline(root / "p", n)
        (root / "config.toml").write_text(f'[state]\ndir = "{root}/var"\n[pipelines]\ndir = "{root}/p"\n[engine]\nparallelism = 2\n')
        cfg = load_config(root / "config.toml")
        pipeline = validate_path(cfg.pipelines_dir).pipelines["fan"]

        async def main() -> float:
            store = Store(cfg.state_file)
            engine = Engine(cfg, store)
            await engine.start()
            t0 = time.perf_counter()
            run_id = engine.submit(pipeline, resolve_params(pipeline, {}))
            state = await engine.wait_run(run_id)
            took = time.perf_counter() - t0
            assert state == RunState.SUCCEEDED, state
            await engine.close()
            store.close()
            return took

        return asyncio.run(main())


def xargs_once(n: int) -> float:
    t0 = time.perf_counter()
    subprocess.run(["xargs", "-P2", "-n1", "true"], input="\n".join("x" for _ in range(n)), text=True, check=True)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tasks", type=int, default=1000)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    eng, xa = [], []
    for _ in range(args.repeat):
        xa.append(xargs_once(args.tasks))
        eng.append(engine_once(args.tasks))
    e, x = statistics.median(eng), statistics.median(xa)
    print(f"tasks: {args.tasks}, parallelism 2, repeats: {args.repeat}")
    print(f"engine  wall: median {e:.3f}s  ({[round(v, 3) for v in eng]})")
    print(f"xargs   wall: median {x:.3f}s  ({[round(v, 3) for v in xa]})")
    print(f"per-task overhead: {(e - x) / args.tasks * 1000:.2f} ms  (goal <= 3 ms)")
    print(f"ratio engine/xargs: {e / x:.2f}x")


if __name__ == "__main__":
    main()
