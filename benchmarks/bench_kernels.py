"""Benchmark of the kernels against their references, in the same run.

    python benchmarks/bench_kernels.py            # full sizes (as in benchmarks/README.md)
    python benchmarks/bench_kernels.py --quick    # small sizes, a smoke run

Sections:

1. numba compile cost: a fresh interpreter profiles 1000 values and runs one
   KS test, with an empty cache directory (cold) and again with the cache it
   filled (warm).
2. profile of 10M float64 values vs numpy computing the same statistics in
   separate calls, and vs pandas ``describe`` (which computes fewer).
3. ``ks_2samp`` and ``wasserstein_distance`` on 5M vs 5M vs scipy.
4. per-column drift over 1M rows x 20 numeric columns vs Evidently's
   ``DataDriftPreset`` on the same columns (each column: Wasserstein distance
   normed, Evidently's default for > 1000 rows; ours picks the same method).
   When Evidently cannot be imported the section says so and compares with
   scipy's ``wasserstein_distance`` per column instead.

Every timing is the median of ``--repeat`` runs after one warm-up run; the
ratio is reference / ours (higher is better for us).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("NUMBA_CACHE_DIR", str(Path(tempfile.gettempdir()) / "edgeorch-bench-numba-cache"))

import numpy as np


def median_time(fn: Callable[[], Any], repeat: int, warmup: bool = True) -> float:
    if warmup:
        fn()  # warm-up (compilation, caches, page faults)
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def row(name: str, ours: float, ref: float | None, ref_name: str, extra: str = "") -> None:
    ratio = f"{ref / ours:6.1f}x" if ref else "   n/a"
    ref_txt = f"{ref * 1000:9.1f} ms" if ref else "        -   "
    print(f"{name:<34} ours {ours * 1000:9.1f} ms | {ref_name:<22} {ref_txt} | ratio {ratio} {extra}")


# ---------------------------------------------------------------------------


def compile_times() -> None:
    code = ("import time; t=time.perf_counter(); import numpy as np; import edgeorch.kernels as k;"
            "k.profile(np.arange(1000.0)); k.ks_2samp(np.arange(50.0), np.arange(60.0));"
            "k.wasserstein_distance([1.0],[2.0]); print(time.perf_counter()-t)")
    with tempfile.TemporaryDirectory() as cache:
        env = {**os.environ, "NUMBA_CACHE_DIR": cache, "PYTHONPATH": str(REPO)}
        cold = float(subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                                    check=True).stdout)
        warm = statistics.median(
            float(subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                                 check=True).stdout) for _ in range(3))
    print(f"numba compile: cold (empty cache) {cold:.2f} s, warm (cache filled) {warm:.2f} s "
          f"(import + first profile + first KS, fresh interpreter)")


def bench_profile(n: int, repeat: int) -> None:
    from edgeorch.kernels import profile

    rng = np.random.default_rng(0)
    x = rng.normal(size=n)

    def numpy_same() -> None:
        # the statistics the profile reports, one numpy call each
        np.isnan(x).sum()
        np.isinf(x).sum()
        (x == 0).sum()
        (x < 0).sum()
        x.min()
        x.max()
        m = x.mean()
        d = x - m
        (d ** 2).mean()
        (d ** 3).mean()
        (d ** 4).mean()
        np.histogram(x, bins=64)
        np.quantile(x, [0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99])
        len(np.unique(x))

    ours = median_time(lambda: profile(x), repeat)
    ref = median_time(numpy_same, max(1, repeat // 2))
    gbs = x.nbytes / ours / 1e9
    row(f"profile {n / 1e6:g}M float64", ours, ref, "numpy, separate calls", f"({gbs:.2f} GB/s)")
    try:
        import pandas as pd

        s = pd.Series(x)
        ref_pd = median_time(lambda: s.describe(), repeat)
        row(f"profile {n / 1e6:g}M float64", ours, ref_pd, "pandas describe")
    except ImportError:
        print("pandas not installed: describe comparison skipped")


def bench_two_sample(n: int, repeat: int) -> None:
    import scipy.stats as st

    from edgeorch.kernels import ks_2samp, wasserstein_distance

    rng = np.random.default_rng(1)
    a, b = rng.normal(size=n), rng.normal(0.001, size=n)
    assert ks_2samp(a, b).statistic == st.ks_2samp(a, b).statistic
    ours = median_time(lambda: ks_2samp(a, b), repeat)
    ref = median_time(lambda: st.ks_2samp(a, b), repeat)
    row(f"ks_2samp {n / 1e6:g}M vs {n / 1e6:g}M", ours, ref, "scipy.stats.ks_2samp")
    ours = median_time(lambda: wasserstein_distance(a, b), repeat)
    ref = median_time(lambda: st.wasserstein_distance(a, b), repeat)
    row(f"wasserstein {n / 1e6:g}M vs {n / 1e6:g}M", ours, ref, "scipy wasserstein")


def bench_drift(rows: int, cols: int, repeat: int) -> None:
    from edgeorch.kernels import dataset_drift

    rng = np.random.default_rng(2)
    ref = {f"c{i}": rng.normal(size=rows) for i in range(cols)}
    cur = {f"c{i}": rng.normal(0.05 * (i % 3), size=rows) for i in range(cols)}
    res = dataset_drift(ref, cur)
    ours = median_time(lambda: dataset_drift(ref, cur), repeat)
    methods = {c.method for c in res.columns}
    label = f"drift {rows / 1e6:g}M x {cols} numeric"
    try:
        import pandas as pd
        from evidently import Report
        from evidently.presets import DataDriftPreset

        rdf, cdf = pd.DataFrame(ref), pd.DataFrame(cur)

        def evidently_run() -> None:
            Report([DataDriftPreset()]).run(current_data=cdf, reference_data=rdf)

        # Evidently takes minutes at this size: one run after a small warm-up
        # (its imports and first-call costs), not --repeat.
        Report([DataDriftPreset()]).run(current_data=cdf.head(1000), reference_data=rdf.head(1000))
        ref_t = median_time(evidently_run, 1, warmup=False)
        import evidently

        row(label, ours, ref_t, f"Evidently {evidently.__version__}", f"(methods {sorted(methods)})")
    except Exception as exc:  # noqa: BLE001 - any failure to import or run Evidently
        print(f"Evidently unavailable ({type(exc).__name__}: {str(exc)[:80]}); comparing with scipy instead")
        import scipy.stats as st

        def scipy_run() -> None:
            for k in ref:
                st.wasserstein_distance(ref[k], cur[k]) / np.std(ref[k])

        row(label, ours, median_time(scipy_run, repeat), "scipy wasserstein loop")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="small sizes (smoke run)")
    ap.add_argument("--repeat", type=int, default=5, help="timed runs per measurement (median reported)")
    ap.add_argument("--only", default="compile,profile,two-sample,drift",
                    help="comma-separated sections to run (default: all)")
    args = ap.parse_args()
    import numba

    print(f"python {sys.version.split()[0]}, numpy {np.__version__}, numba {numba.__version__}, "
          f"threads {numba.get_num_threads()}, cpus {os.cpu_count()}")
    only = set(args.only.split(","))
    scale = 100 if args.quick else 1
    if "compile" in only:
        compile_times()
    if "profile" in only:
        bench_profile(10_000_000 // scale, args.repeat)
    if "two-sample" in only:
        bench_two_sample(5_000_000 // scale, args.repeat)
    if "drift" in only:
        bench_drift(1_000_000 // scale, 20, args.repeat)


if __name__ == "__main__":
    main()
