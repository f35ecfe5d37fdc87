"""Interleaved pairs of ``bench_engine.engine_once(N)`` for two checkouts, each round in a fresh process.

    python benchmarks/bench_pairs.py BEFORE_TREE AFTER_TREE [--tasks 1000] [--pairs 8]

BEFORE_TREE is another checkout (``git worktree add /var/tmp/wt_before <commit>``); each round runs that tree's
``benchmarks/bench_engine.py`` with its own ``edgeorch`` first on ``PYTHONPATH``. The order alternates (before,
after, then after, before) so that a noisy machine hits both alike; the summary is the median of each side and
the median of the per-pair ratios after / before (below 1: the after tree is faster).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys

CODE = ("import sys; sys.path.insert(0, sys.argv[1] + '/benchmarks'); import bench_engine; "
        "print(bench_engine.engine_once(int(sys.argv[2])))")


def once(tree: str, tasks: int) -> float:
    """One ``engine_once(tasks)`` of ``tree``, in a fresh interpreter: seconds."""
    env = dict(os.environ, PYTHONPATH=tree)
    out = subprocess.run([sys.executable, "-c", CODE, tree, str(tasks)], env=env, cwd=tree, capture_output=True,
                         text=True, check=True).stdout
    return float(out.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("before")
    ap.add_argument("after")
    ap.add_argument("--tasks", type=int, default=1000)
    ap.add_argument("--pairs", type=int, default=8)
    args = ap.parse_args()
    before, after, ratios = [], [], []
    for i in range(args.pairs):
        order = (args.before, args.after) if i % 2 == 0 else (args.after, args.before)
        took = {tree: once(tree, args.tasks) for tree in order}
        before.append(took[args.before])
        after.append(took[args.after])
        ratios.append(after[-1] / before[-1])
        print(f"pair {i}: before {before[-1]:.3f} s, after {after[-1]:.3f} s, ratio {ratios[-1]:.3f}", flush=True)
    print(f"median before {statistics.median(before):.3f} s, after {statistics.median(after):.3f} s; median of the "
          f"pair ratios {statistics.median(ratios):.3f} (range {min(ratios):.3f}-{max(ratios):.3f})")


if __name__ == "__main__":
    main()
