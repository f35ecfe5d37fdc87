"""The bucketed KS extremes (kernels/ksbuckets.py) give exactly what sorting and walking everything gives.

Large samples (above ``MIN_POOLED``) of several shapes: the statistic, its location and sign bit for bit as
the full walk and as scipy; the pure bucket choice keeps every bucket that can hold an extreme; the method
steps aside (None) where it does not apply.
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy
import scipy.stats as st

from edgeorch.kernels import _jit, ks_2samp
from edgeorch.kernels.ksbuckets import (
    CHUNKS,
    MIN_POOLED,
    _grid,
    _kept_buckets,
    ks_extremes,
)

N = MIN_POOLED // 2 + 3000


def _full_walk(a: np.ndarray, b: np.ndarray) -> tuple:
    return tuple(_jit.ecdf_walk(np.sort(a), np.sort(b), np.zeros(0), np.zeros(0))[:4])


def _samples(kind: str, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    if kind == "same":
        return rng.normal(size=N), rng.normal(size=N + 517)
    if kind == "shifted":
        return rng.normal(size=N), rng.normal(0.02, size=N - 911)
    if kind == "ties across":
        a = np.round(rng.normal(size=N), 3)
        return a, np.concatenate([a[: N // 2], np.round(rng.normal(size=N // 2), 3)])
    if kind == "infinities":
        a, b = rng.normal(size=N), rng.normal(size=N)
        a[::1000], b[5::777] = np.inf, -np.inf
        return a, b
    if kind == "small ints":
        return rng.integers(-20, 30, N), rng.integers(-25, 30, N + 11)
    if kind == "wide ints":
        return rng.integers(-(1 << 50), 1 << 50, N), rng.integers(-(1 << 50), 1 << 50, N) + (1 << 44)
    raise AssertionError(kind)


KINDS = ["same", "shifted", "ties across", "infinities", "small ints", "wide ints"]


@pytest.mark.parametrize("kind", KINDS)
def test_the_extremes_are_those_of_the_full_walk(kind: str) -> None:
    a, b = _samples(kind, np.random.default_rng(KINDS.index(kind)))
    keys = (a, b) if a.dtype.kind == "i" else (a.astype(np.float64), b.astype(np.float64))
    found = ks_extremes(*keys)
    assert found is not None, "this shape is one the buckets handle"
    assert tuple(found) == _full_walk(*keys)


SCIPY_ROUNDS_AS_WE_DO = tuple(int(x) for x in scipy.__version__.split(".")[:2]) < (1, 18)
"""scipy up to 1.17 computes each ECDF value as the correctly rounded count / n, as the buckets' walk does."""


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("alternative", ["two-sided", "less", "greater"])
def test_ks_2samp_of_large_samples_is_scipys_bit_for_bit(kind: str, alternative: str) -> None:
    a, b = _samples(kind, np.random.default_rng(10 + KINDS.index(kind)))
    ours, ref = ks_2samp(a, b, alternative=alternative), st.ks_2samp(a, b, alternative=alternative)
    if SCIPY_ROUNDS_AS_WE_DO:
        assert ours.statistic == ref.statistic
        assert ours.statistic_location == ref.statistic_location
        assert ours.statistic_sign == ref.statistic_sign
    else:
        # scipy 1.18 builds its ECDF values with linspace(0, 1, n + 1): a few ulps from the correctly rounded
        # count / n that ours (and scipy up to 1.17) use, and on an exact tie it may name another location
        # (docs/kernels.md). That ours is the full walk's extreme to the bit is tested above.
        assert abs(ours.statistic - float(ref.statistic)) <= 4 * np.finfo(np.float64).eps
    assert ours.pvalue == pytest.approx(ref.pvalue, rel=1e-10, abs=1e-300)


def test_the_extremes_do_not_depend_on_the_thread_count() -> None:
    import numba

    a, b = _samples("shifted", np.random.default_rng(3))
    before = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        one = ks_extremes(a, b)
    finally:
        numba.set_num_threads(before)
    assert one == ks_extremes(a, b)


@pytest.mark.parametrize("case, a, b", [
    ("small samples: sorting is as fast", np.arange(100.0), np.arange(50.0)),
    ("all values equal: no width", np.zeros(N), np.zeros(N)),
    ("identical samples: every bucket may hold the extreme", np.arange(float(N)), np.arange(float(N))),
])
def test_the_buckets_step_aside_where_they_do_not_apply(case: str, a: np.ndarray, b: np.ndarray) -> None:
    assert ks_extremes(a, b) is None, case
    assert ks_2samp(a, b).statistic == st.ks_2samp(a, b).statistic


def test_the_kept_buckets_hold_the_extremes_and_few_values() -> None:
    a, b = _samples("same", np.random.default_rng(4))
    half_lo, inv, nb, single = _grid(a, b)
    assert not single
    ca = _jit.bucket_counts(a, half_lo, inv, nb, CHUNKS).sum(axis=0)
    cb = _jit.bucket_counts(b, half_lo, inv, nb, CHUNKS).sum(axis=0)
    assert ca.sum() == a.size and cb.sum() == b.size
    kept = _kept_buckets(ca, cb, a.size, b.size)
    _, maxloc, _, minloc = _full_walk(a, b)
    for loc in (maxloc, minloc):
        bucket = min(max(int((loc * 0.5 - half_lo) * inv), 0), nb - 1)
        assert kept[bucket]
    # About 200 buckets stay whatever the size: a fifth of ~1,100 buckets here, 0.3% of 65,536 at 10M values.
    assert (ca[kept].sum() + cb[kept].sum()) / (a.size + b.size) < 0.3, "two samples of one distribution"


def test_small_integers_are_counted_one_bucket_per_value() -> None:
    a, b = np.array([3, 3, 5, 9] * 20000), np.array([4, 5, 5, 9, 9] * 16000)
    assert _grid(a, b)[2:] == (7, True)
    assert ks_extremes(a, b) == _full_walk(a, b)
