"""Call every kernel on hostile random inputs; run as a script by test_kernels_never_hang.py.

Usage: ``python kernel_sweep.py CASES SEED [SEED...]``. Prints one line per
case (flushed) before calling the kernels, so the parent can name the input
that hung. Exits 0 when every call returned or raised an EdgeorchError (a
clear error); prints the traceback and exits 1 on any other exception.

:func:`warm_up` calls every kernel once on benign inputs of every dtype the
sweep uses, so that the parent can compile them into the shared numba cache
(where the other kernel tests need them anyway) and the child only loads them.
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


def warm_up() -> None:
    """Compile every kernel the sweep calls, for every dtype it draws (float64, int64), on benign inputs.

    numba compiles once per argument type, not per value: the hostile values
    of the sweep then run on code already in the cache.
    """
    rng = np.random.default_rng(0)
    p = np.array([3.0, 1.0, 2.0, 4.0])
    yt, yp = np.array([0, 1, 1, 0, 1, 0]), np.array([1, 1, 0, 0, 1, 0])
    g = np.array(["a", "b", "a", "b", "a", "b"], dtype=object)
    # Small and large (the large take other paths), with ties, as float64 and int64
    # (also beyond 2**53: exact distinct counts); each against a shifted sample of the
    # same size and of another size (the two exact-KS recursions).
    inputs = (rng.normal(size=40), rng.normal(size=2000), np.arange(-20, 20, dtype=np.int64),
              rng.integers(-3, 4, 2000), rng.integers(-3, 4, 2000) + 2**60,
              rng.integers(-3, 4, 2000).astype(np.float64), rng.integers(0, 3, 40).astype(np.float64))
    for a in inputs:
        # (+ 0.5: a few-valued column against values it lacks is binned on equal widths)
        for b in (a + 1, a[: a.size // 2] - 1, a + 0.5):
            for name, call in kernel_calls(a, b, p, p[::-1].copy(), np.ones(a.size), yt, yp, g):
                call()


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
