"""Mergeable summaries: exact grid histograms, the quantile sample's rank error, HLL's error."""

from __future__ import annotations

import math

import numpy as np
import pytest

from edgeorch.kernels import _jit
from edgeorch.kernels.sketches import (
    GridHistogram,
    HyperLogLog,
    QuantileSketch,
    hash_strings,
    rank_error_bound,
)


def grid_hist(x: np.ndarray, max_bins: int = 64) -> GridHistogram:
    exp, start, nbins = GridHistogram.grid_for(float(x.min()), float(x.max()), max_bins)
    hist, _ = _jit.histogram_and_hll(x, math.ldexp(1.0, -exp), float(start), nbins, 14)
    return GridHistogram(exp, start, hist)


def test_grid_histogram_counts_match_numpy_on_its_edges(rng: np.random.Generator) -> None:
    x = rng.normal(size=10_000)
    h = grid_hist(x)
    expected, _ = np.histogram(x, bins=h.edges)
    assert h.counts.tolist() == expected.tolist()
    assert len(h.counts) <= 64


def test_values_off_the_grid_land_in_its_end_bins_however_far() -> None:
    # Grid [-4, 4) in 8 bins of 1. A value 2**63 bins or more away once overflowed the int64 floor
    # (math.floor) and landed in the bottom bin whatever its sign.
    x = np.array([-1e300, -5.0, -4.0, 3.5, 4.0, 9.0, 1e19, 1e300, np.inf, np.nan])
    hist, _ = _jit.histogram_and_hll(x, 1.0, -4.0, 8, 14)
    assert hist.tolist() == [3, 0, 0, 0, 0, 0, 0, 5]


def test_block_moments_match_numpy_at_every_block_boundary(rng: np.random.Generator) -> None:
    # Blocks are indexed from 0 as views: every length around a block's end, with values that
    # leave the fast path (NaN, inf) in the last block, agrees with numpy.
    for n in (1, _jit.BLOCK - 1, _jit.BLOCK, _jit.BLOCK + 1, 3 * _jit.BLOCK + 7):
        x = rng.normal(size=n) * 100
        x[-1] = np.nan if n % 2 else np.inf
        counts, stats = _jit.block_moments(x)
        finite = x[np.isfinite(x)]
        cnt, mean, m2, _, _, mn, mx = _jit.reduce_blocks(stats)
        assert counts.sum(axis=0)[0] == len(finite) == cnt
        if len(finite):
            assert mean == pytest.approx(finite.mean(), rel=1e-12, abs=1e-12)
            assert m2 == pytest.approx(((finite - finite.mean()) ** 2).sum(), rel=1e-9)
            assert (mn, mx) == (finite.min(), finite.max())


@pytest.mark.parametrize("lo_hi", [(0.0, 1.0), (-1e9, 3.0), (1e300, 1.5e300), (5.0, 5.0), (0.0, 0.0),
                                   (-3.0, -3.0), (1.0, 1.0 + 1e-12), (0.0, 1.1e-308), (5e-324, 5e-324)])
def test_grid_covers_the_range_within_max_bins(lo_hi: tuple[float, float]) -> None:
    lo, hi = lo_hi
    exp, start, nbins = GridHistogram.grid_for(lo, hi, 64)
    w = math.ldexp(1.0, exp)
    assert start * w <= lo and hi < (start + nbins) * w
    assert 1 <= nbins <= 64


def test_merged_grid_histograms_equal_the_histogram_of_the_union(rng: np.random.Generator) -> None:
    a = rng.normal(0, 1, 5000)
    b = rng.normal(50, 10, 7000)
    merged = grid_hist(a).merge(grid_hist(b))
    expected, _ = np.histogram(np.concatenate([a, b]), bins=merged.edges)
    assert merged.counts.tolist() == expected.tolist()
    assert merged.counts.sum() == 12000


def test_quantile_sketch_is_exact_up_to_its_size(rng: np.random.Generator) -> None:
    x = rng.normal(size=1000)
    s = QuantileSketch.of(x, size=1000)
    assert s.exact
    qs = [0.0, 0.1, 0.5, 0.99, 1.0]
    assert s.quantiles(qs) == [float(v) for v in np.quantile(x, qs)]


def _max_rank_error(sample: np.ndarray, data_sorted: np.ndarray) -> float:
    qs = np.linspace(0.001, 0.999, 999)
    est = np.quantile(sample, qs)
    ranks = np.searchsorted(data_sorted, est, side="right") / len(data_sorted)
    return float(np.max(np.abs(ranks - qs)))


def test_quantile_sketch_rank_error_is_below_one_percent_at_default_size(rng: np.random.Generator) -> None:
    x = rng.lognormal(size=400_000)  # heavy right tail
    s = QuantileSketch.of(x, rng=np.random.default_rng(1))
    assert not s.exact and len(s.values) == 32768
    assert _max_rank_error(s.values, np.sort(x)) <= 0.01


def test_merged_quantile_sketches_keep_the_rank_error(rng: np.random.Generator) -> None:
    parts = [rng.normal(i, 1, 100_000) for i in range(4)]
    s = QuantileSketch.of(parts[0])
    for p in parts[1:]:
        s = s.merge(QuantileSketch.of(p))
    assert s.n == 400_000
    assert _max_rank_error(s.values, np.sort(np.concatenate(parts))) <= 0.01


def test_merging_small_exact_sketches_stays_exact() -> None:
    a = QuantileSketch.of(np.array([1.0, 2.0]), size=10)
    b = QuantileSketch.of(np.array([3.0]), size=10)
    m = a.merge(b)
    assert m.exact and sorted(m.values.tolist()) == [1.0, 2.0, 3.0]


def test_rank_error_bound_at_default_size_is_under_one_percent() -> None:
    assert rank_error_bound(32768, 0.99) < 0.01
    assert rank_error_bound(32768, 0.997) <= 0.0101


@pytest.mark.parametrize("cardinality", [1, 10, 1000, 20_000, 50_000, 300_000, 2_000_000])
def test_hll_estimate_is_within_two_percent(cardinality: int) -> None:
    x = np.arange(cardinality, dtype=np.float64) * 1.5 - 7.0
    x = np.concatenate([x, x[: cardinality // 2]])  # duplicates do not count
    _, regs = _jit.histogram_and_hll(x, 1.0, 0.0, 1, 14)
    est = HyperLogLog(14, regs).estimate()
    assert abs(est - cardinality) <= max(0.02 * cardinality, 0.5)


def test_hll_merge_is_the_union() -> None:
    a = np.arange(0, 60_000, dtype=np.float64)
    b = np.arange(30_000, 90_000, dtype=np.float64)
    ha = HyperLogLog(14, _jit.histogram_and_hll(a, 1.0, 0.0, 1, 14)[1])
    hb = HyperLogLog(14, _jit.histogram_and_hll(b, 1.0, 0.0, 1, 14)[1])
    hu = HyperLogLog(14, _jit.histogram_and_hll(np.concatenate([a, b]), 1.0, 0.0, 1, 14)[1])
    assert np.array_equal(ha.merge(hb).registers, hu.registers)


def test_hll_counts_minus_zero_as_zero() -> None:
    regs = _jit.histogram_and_hll(np.array([0.0, -0.0]), 1.0, 0.0, 1, 14)[1]
    assert round(HyperLogLog(14, regs).estimate()) == 1


def test_string_hashes_are_stable_across_processes() -> None:
    # blake2b, not hash(): a profile saved by one process merges in another
    assert hash_strings(["a"])[0] == hash_strings(["a"])[0]
    assert int(hash_strings(["abc"])[0]) == int.from_bytes(
        __import__("hashlib").blake2b(b"abc", digest_size=8).digest(), "little")


@pytest.mark.parametrize("obj", [
    GridHistogram(3, -5, np.array([1, 2, 3], dtype=np.int64)),
    QuantileSketch(4, 3, np.array([1.5, -0.0, 1e308])),
    HyperLogLog(14, np.arange(1 << 14, dtype=np.int64).astype(np.uint8)),
])
def test_summaries_round_trip_through_dicts(obj: object) -> None:
    back = type(obj).from_dict(obj.to_dict())  # type: ignore[attr-defined]
    for k, v in vars(obj).items():
        w = getattr(back, k)
        assert (np.array_equal(v, w) if isinstance(v, np.ndarray) else v == w), k
