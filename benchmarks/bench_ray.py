"""Per-task overhead of the Ray executor next to the local one, on a local Ray head.

A chain of N no-op tasks (``true``; each needs the previous one, so nothing
overlaps and the figure is the latency a task adds) run by a real engine
twice: with ``[executor] kind = "local"`` and with ``kind = "ray"`` on a Ray
head started here for the run (``ray start --head``, 2 CPUs, stopped after).
Overhead per task = wall time / N for each; the difference is what Ray adds
(creating the attempt's actor, which is a new worker process, launching the
supervisor on the node, streaming the log back, releasing the actor).

    python benchmarks/bench_ray.py [--tasks 20] [--repeat 3] [--address HOST:PORT]

``--address`` uses a running cluster instead of starting a head.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from edgeorch.config import load_config  # noqa: E402
from edgeorch.engine.engine import Engine  # noqa: E402
from edgeorch.model import RunState  # noqa: E402
from edgeorch.pipelines import resolve_params, validate_path  # noqa: E402
from edgeorch.store import Store  # noqa: E402


def write_chain(folder: Path, n: int) -> None:
    lines = ['name = "chain"']
    for i in range(n):
        lines += [f"[tasks.t{i}]", 'command = ["true"]'] + ([f'needs = ["t{i - 1}"]'] if i else [])
    (folder / "chain.toml").write_text("\n".join(lines) + "\n")


def run_once(n: int, executor: str) -> float:
    """Wall seconds of one run of the chain (engine started before the clock, closed after)."""
    with tempfile.TemporaryDirectory() as d:
        root = Path(d)
        (root / "p").mkdir()
        write_chain(root / "p", n)
        (root / "config.toml").write_text(f'[state]\ndir = "{root}/var"\n[pipelines]\ndir = "{root}/p"\n'
                                          f'[engine]\nparallelism = 2\n{executor}\n')
        cfg = load_config(root / "config.toml")
        pipeline = validate_path(cfg.pipelines_dir).pipelines["chain"]

        async def main() -> float:
            store = Store(cfg.state_file)
            engine = Engine(cfg, store)
            await engine.start()
            try:
                t0 = time.perf_counter()
                run_id = engine.submit(pipeline, resolve_params(pipeline, {}))
                state = await engine.wait_run(run_id)
                wall = time.perf_counter() - t0
                assert state == RunState.SUCCEEDED, state
            finally:
                await engine.close()
                store.close()
            return wall

        return asyncio.run(main())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tasks", type=int, default=20)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--address", help="a running Ray cluster (default: start a local head for the run)")
    args = ap.parse_args()
    import rayhead

    head = None
    address = args.address
    if address is None:
        head = rayhead._start(Path(tempfile.mkdtemp(prefix="eo-bench-ray-")))
        address = head.address
    try:
        local, remote = [], []
        ray_cfg = f'[executor]\nkind = "ray"\naddress = "{address}"\nnamespace = "bench-{uuid.uuid4().hex[:8]}"'
        run_once(2, ray_cfg)  # warm: the connection and the first workers
        for _ in range(args.repeat):
            local.append(run_once(args.tasks, ""))
            remote.append(run_once(args.tasks, ray_cfg))
        lw, rw = statistics.median(local), statistics.median(remote)
        print(f"{args.tasks} chained no-op tasks, median of {args.repeat}:")
        print(f"  local executor: {lw:.2f} s wall, {lw / args.tasks * 1000:.0f} ms per task")
        print(f"  ray executor:   {rw:.2f} s wall, {rw / args.tasks * 1000:.0f} ms per task")
        print(f"  ray adds {(rw - lw) / args.tasks * 1000:.0f} ms per task")
    finally:
        import ray

        if ray.is_initialized():
            ray.shutdown()
        if head is not None:
            rayhead._stop(head)


if __name__ == "__main__":
    main()
