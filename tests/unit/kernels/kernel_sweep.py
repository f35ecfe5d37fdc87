"""Call every kernel on hostile random inputs; run as a script by test_kernels_never_hang.py.

Usage: ``python kernel_sweep.py CASES SEED [SEED...]``. Prints one line per
case (flushed) before calling the kernels, so the parent can name the input
that hung. Exits 0 when every call returned or raised an EdgeorchError (a
clear error); prints the traceback and exits 1 on any other exception.

The kernels load from the session's warm numba cache (tests/numba_warmup.py
compiles every signature the sweep calls); one it missed compiles inside the
case that needs it, well within the parent's per-case deadline.
"""

from __future__ import annotations

import sys
import traceback
from collections.abc import Callable
from typing import Any

import numpy as np

import edgeorch.kernels as k
from edgeorch.kernels import _jit
from edgeorch.errors import EdgeorchError

POOL = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, 1.0, 1.0, 2.0, -3.5, 1e308, -1e308, 5e-324, 7.0, 7.0])


def sample(rng: np.random.Generator) -> np.ndarray:
    """0-40 values (sometimes 2000): normal floats mixed with NaN, ±inf, ties, extremes; or integers."""
    n = int(rng.choice([0, 1, 2, 3, 5, 17, 40, 2000], p=[.1, .15, .1, .1, .15, .15, .15, .1]))
    kind = rng.integers(0, 4)
    if kind == 0:
        return rng.normal(size=n)
    if kind == 1:
        return rng.choice(POOL, n)
    if kind == 2:
        x = rng.normal(size=n)
        x[rng.random(n) < 0.2] = rng.choice(POOL[:3])
        return x
    return (rng.integers(-3, 4, n) + (2**60 if rng.random() < 0.3 else 0)).astype(np.int64)


def counts(rng: np.random.Generator, size: int) -> np.ndarray:
    c = rng.integers(0, 5, size).astype(np.float64)
    if size and rng.random() < 0.5:
        c[rng.integers(0, size)] = rng.choice(POOL)
    return c


def calls(rng: np.random.Generator) -> list[tuple[str, Callable[[], Any]]]:
    """One hostile case: every kernel on freshly drawn inputs."""
    a, b = sample(rng), sample(rng)
    m = int(rng.integers(0, 6))
    p, q = counts(rng, m), counts(rng, m)
    wa = np.abs(rng.normal(size=a.size)) if rng.random() < 0.3 else None
    n = int(rng.integers(0, 12))
    yt, yp = rng.integers(0, 2, n), rng.integers(0, 2, n)
    g = rng.choice(np.array(["a", "b", None], dtype=object), n)
    return kernel_calls(a, b, p, q, wa, yt, yp, g)


def kernel_calls(a: np.ndarray, b: np.ndarray, p: np.ndarray, q: np.ndarray, wa: np.ndarray | None,
                 yt: np.ndarray, yp: np.ndarray, g: np.ndarray) -> list[tuple[str, Callable[[], Any]]]:
    """Every kernel on these inputs, as (name, call) pairs."""
    fa, fb, e = np.sort(a.astype(np.float64)), np.sort(b.astype(np.float64)), np.zeros(0)
    walk = [("ecdf_walk (NaN sorted last, no caller check)", lambda: _jit.ecdf_walk(fa, fb, e, e))] if a.size and b.size else []
    return walk + [
        ("ks_2samp", lambda: k.ks_2samp(a, b)),
        ("ks_2samp exact", lambda: k.ks_2samp(a, b, method="exact")),
        ("ks_2samp asymp", lambda: k.ks_2samp(a, b, method="asymp")),
        ("ks_2samp less exact (path count)", lambda: k.ks_2samp(a, b, "less", method="exact")),
        ("wasserstein", lambda: k.wasserstein_distance(a, b)),
        ("wasserstein weighted", lambda: k.wasserstein_distance(a, b, wa, None)),
        ("jensen_shannon", lambda: k.jensen_shannon(p, q)),
        ("psi", lambda: k.psi(p, q)),
        ("hellinger", lambda: k.hellinger(p, q)),
        ("chi_square", lambda: k.chi_square(p, q)),
        ("column_drift", lambda: k.column_drift(a, b)),
        ("profile", lambda: k.profile({"a": a}).summary()),
        ("merge_profiles", lambda: k.merge_profiles(k.profile({"a": a}), k.profile({"a": b})).summary()),
        ("equalized_odds_ratio", lambda: k.equalized_odds_ratio(yt, yp, sensitive_features=g, agg="mean")),
        ("fairness_report", lambda: k.fairness_report(yt, yp, g, min_group_size=0)),
    ]


def main(cases: int, seeds: list[int]) -> int:
    for seed in seeds:
        rng = np.random.default_rng(seed)
        for case in range(cases):
            for name, call in calls(rng):
                print(f"seed {seed} case {case}: {name}", flush=True)
                try:
                    call()
                except EdgeorchError:
                    pass
                except Exception:
                    traceback.print_exc()
                    return 1
    print("done", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(int(sys.argv[1]), [int(s) for s in sys.argv[2:]]))
