"""Two-sample statistics agree with scipy: KS (exact and asymptotic), Wasserstein, Jensen-Shannon."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
import scipy.stats as st
from hypothesis import given, settings
from hypothesis import strategies as hs
from scipy.spatial.distance import jensenshannon

from edgeorch.errors import DataError
from edgeorch.kernels import (
    chi_square,
    hellinger,
    jensen_shannon,
    ks_2samp,
    psi,
    wasserstein_distance,
    z_test,
)


def ks_by_searchsorted(a: np.ndarray, b: np.ndarray) -> tuple[float, Any, int]:
    """``(statistic, location, sign)`` as scipy up to 1.17 computed them: ``#{x <= t} / n`` per ECDF.

    The reference for "the same number to the last bit": each ECDF value is
    the correctly rounded ``count / n``, their difference rounded once.
    scipy 1.18 builds the ECDF values with ``linspace(0, 1, n + 1)`` instead,
    which can be a few ulps away from ``count / n``; so the installed scipy
    is compared with a tolerance (:func:`assert_ks_equal`), this one exactly.
    """
    a, b = np.sort(a), np.sort(b)
    pooled = np.concatenate([a, b])
    diffs = np.searchsorted(a, pooled, side="right") / a.size - np.searchsorted(b, pooled, side="right") / b.size
    lo, hi = int(np.argmin(diffs)), int(np.argmax(diffs))
    min_s, max_s = float(np.clip(-diffs[lo], 0, 1)), float(diffs[hi])
    return (min_s, pooled[lo], -1) if min_s > max_s else (max_s, pooled[hi], 1)


SCIPY_TOLERANCE = 4 * np.finfo(np.float64).eps
"""How far scipy's statistic may be from the correctly rounded one (ECDF values in [0, 1], a few roundings)."""


def scaled_gaps(a: np.ndarray, b: np.ndarray, t: Any) -> np.ndarray:
    """``(F_a(t) - F_b(t)) * n_a * n_b`` in exact integers (right-continuous ECDFs), for each value of ``t``."""
    a, b = np.sort(a), np.sort(b)
    return (np.searchsorted(a, t, side="right").astype(np.int64) * b.size
            - np.searchsorted(b, t, side="right").astype(np.int64) * a.size)


def assert_ks_equal(a: np.ndarray, b: np.ndarray, method: str = "auto") -> None:
    """Ours is scipy's KS test: the same ECDF walk to the last bit, scipy's p-value, an extreme location.

    Against the installed scipy: the statistic within a few ulps of 1 (the
    ECDF values lie in [0, 1]; scipy 1.18 rounds them differently), and the
    location and sign where the gap is extreme in exact arithmetic. Where
    several locations tie exactly, scipy 1.18's rounding may pick another of
    them than the one the correctly rounded ECDFs pick, so both are checked
    to be extremes rather than equal.
    """
    ours = ks_2samp(a, b, method=method)
    ref = st.ks_2samp(a, b, method=method)
    walked, location, sign = ks_by_searchsorted(a, b)
    extreme = int(np.abs(scaled_gaps(a, b, np.concatenate([a, b]))).max())
    # The exact method snaps the statistic to the lattice value h / lcm(n1, n2) it stands for (as scipy
    # does): the exact gap, correctly rounded (a quotient of Python ints is). Asymptotic: the walk's value.
    snapped = method == "exact" or (method == "auto" and max(a.size, b.size) <= 10_000)
    assert ours.statistic == (extreme / (a.size * b.size) if snapped else walked)
    assert (ours.statistic_location, ours.statistic_sign) == (location, sign)
    assert abs(ours.statistic - float(ref.statistic)) <= SCIPY_TOLERANCE
    assert ours.pvalue == pytest.approx(ref.pvalue, rel=1e-10, abs=1e-300)
    assert ours.statistic_sign * int(scaled_gaps(a, b, ours.statistic_location)) == extreme
    assert int(ref.statistic_sign) * int(scaled_gaps(a, b, ref.statistic_location)) == extreme


CASES = {
    "normal shift": lambda r: (r.normal(size=80), r.normal(0.4, size=120)),
    "equal sizes (square formula)": lambda r: (r.normal(size=300), r.normal(size=300)),
    "heavy ties": lambda r: (r.integers(0, 4, 200).astype(float), r.integers(0, 4, 150).astype(float)),
    "identical samples": lambda r: (np.arange(50.0), np.arange(50.0)),
    "disjoint samples": lambda r: (np.arange(10.0), np.arange(10.0) + 100),
    "one value each": lambda r: (np.array([1.0]), np.array([2.0])),
    "one vs many": lambda r: (np.array([0.5]), r.random(500)),
    "heavy tails": lambda r: (r.standard_cauchy(400), r.standard_cauchy(350) * 2),
    "infinities": lambda r: (np.array([-np.inf, 0.0, 1.0, np.inf]), np.array([0.5, np.inf, 2.0])),
    "constant": lambda r: (np.full(30, 2.0), np.full(40, 2.0)),
    "exact limit 10000": lambda r: (r.normal(size=10_000), r.normal(0.02, size=9_000)),
    "asymptotic above 10000": lambda r: (r.normal(size=10_001), r.normal(0.02, size=3_000)),
    "integers near int64 max": lambda r: (np.array([2**63 - 1, 2**63 - 3, 2**62], dtype=np.int64),
                                          np.array([2**63 - 2, 2**62 + 1], dtype=np.int64)),
    "integers beyond float precision": lambda r: (np.arange(2**60, 2**60 + 40, dtype=np.int64),
                                                   np.arange(2**60 + 3, 2**60 + 50, 2, dtype=np.int64)),
    "small integers": lambda r: (r.integers(-3, 3, 90), r.integers(-2, 4, 70)),
}


@pytest.mark.parametrize("case", list(CASES))
def test_ks_2samp_matches_scipy(case: str, rng: np.random.Generator) -> None:
    a, b = CASES[case](rng)
    assert_ks_equal(a, b)


@pytest.mark.parametrize("method", ["exact", "asymp"])
def test_ks_2samp_forced_methods_match_scipy(method: str, rng: np.random.Generator) -> None:
    assert_ks_equal(rng.normal(size=70), rng.normal(0.3, size=45), method)


def test_ks_2samp_large_samples_match_scipy(rng: np.random.Generator) -> None:
    assert_ks_equal(rng.normal(size=400_000), rng.normal(0.003, size=300_000))


small = hs.lists(hs.integers(-5, 5).map(float) | hs.floats(-1e3, 1e3), min_size=1, max_size=40)


@settings(max_examples=60, deadline=None)
@given(small, small)
def test_ks_2samp_matches_scipy_on_generated_samples(a: list[float], b: list[float]) -> None:
    assert_ks_equal(np.array(a), np.array(b))


def test_ks_2samp_with_nan_propagates_like_scipy() -> None:
    r = ks_2samp([1.0, np.nan], [2.0])
    assert math.isnan(r.statistic) and math.isnan(r.pvalue)


@pytest.mark.parametrize("fn", [ks_2samp, wasserstein_distance])
def test_empty_sample_is_a_data_error(fn) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(DataError, match="non-empty"):
        fn([], [1.0])


def test_non_numeric_sample_is_a_data_error() -> None:
    with pytest.raises(DataError, match="numbers"):
        ks_2samp(["a", "b"], [1.0])


W_CASES = {
    "normal": lambda r: (r.normal(size=500), r.normal(1, 2, size=300)),
    "ties": lambda r: (r.integers(0, 3, 100).astype(float), r.integers(0, 5, 80).astype(float)),
    "one value": lambda r: (np.array([3.0]), np.array([-1.0])),
    "same": lambda r: (np.arange(5.0), np.arange(5.0)),
    "large": lambda r: (r.exponential(size=200_000), r.exponential(1.1, size=150_000)),
    "one infinity": lambda r: (np.array([1.0, np.inf]), np.array([1.0, 2.0])),
    "negative infinity": lambda r: (np.array([-np.inf, 0.0]), np.array([0.0, 1.0])),
}


@pytest.mark.parametrize(("a", "b"), [([np.inf], [np.inf]), ([1.0, np.inf], [np.inf, 2.0]),
                                      ([np.inf, np.inf], [1.0]), ([-np.inf], [-np.inf, 0.0])])
def test_wasserstein_with_tied_infinities_is_nan_as_scipy(a: list[float], b: list[float]) -> None:
    assert math.isnan(st.wasserstein_distance(a, b))
    with pytest.warns(RuntimeWarning, match="invalid value"):  # scipy warns too
        assert math.isnan(wasserstein_distance(a, b))


@pytest.mark.parametrize("case", list(W_CASES))
def test_wasserstein_matches_scipy(case: str, rng: np.random.Generator) -> None:
    a, b = W_CASES[case](rng)
    assert wasserstein_distance(a, b) == pytest.approx(st.wasserstein_distance(a, b), rel=1e-10, abs=1e-12)


def test_weighted_wasserstein_matches_scipy(rng: np.random.Generator) -> None:
    a, b = rng.normal(size=50), rng.normal(size=70)
    wa, wb = rng.random(50), rng.random(70)
    assert wasserstein_distance(a, b, wa, wb) == pytest.approx(st.wasserstein_distance(a, b, wa, wb), rel=1e-10)


@settings(max_examples=40, deadline=None)
@given(small, small)
def test_wasserstein_matches_scipy_on_generated_samples(a: list[float], b: list[float]) -> None:
    assert wasserstein_distance(a, b) == pytest.approx(st.wasserstein_distance(a, b), rel=1e-9, abs=1e-9)


def test_negative_weights_are_a_data_error() -> None:
    with pytest.raises(DataError, match="weights"):
        wasserstein_distance([1.0, 2.0], [1.0], [1.0, -1.0], None)


JS_CASES = [
    ([1, 2, 3], [3, 2, 1], None),
    ([0.5, 0.5, 0.0], [0.0, 0.1, 0.9], 2.0),
    ([10, 0, 0], [0, 0, 10], 2.0),  # disjoint: 1 in base 2
    ([1, 1], [1, 1], None),
    ([5], [7], None),
]


@pytest.mark.parametrize(("p", "q", "base"), JS_CASES)
def test_jensen_shannon_matches_scipy(p: list[float], q: list[float], base: float | None) -> None:
    assert jensen_shannon(p, q, base) == pytest.approx(jensenshannon(p, q, base=base), rel=1e-12, abs=1e-15)


def test_jensen_shannon_of_all_zero_counts_is_nan() -> None:
    assert math.isnan(jensen_shannon([0, 0], [1, 1]))


def test_distributions_of_different_length_are_a_data_error() -> None:
    with pytest.raises(DataError, match="differ in length"):
        psi([1, 2], [1, 2, 3])


def test_psi_is_zero_for_equal_shares_and_finite_with_empty_bins() -> None:
    assert psi([10, 20, 30], [1, 2, 3]) == pytest.approx(0.0, abs=1e-15)
    assert math.isfinite(psi([10, 0], [0, 10]))


def test_psi_by_its_formula() -> None:
    r, c = np.array([0.2, 0.3, 0.5]), np.array([0.25, 0.25, 0.5])
    assert psi(r, c) == pytest.approx(float(np.sum((c - r) * np.log(c / r))))


def test_hellinger_bounds() -> None:
    assert hellinger([1, 1], [1, 1]) == pytest.approx(0.0, abs=1e-12)
    assert hellinger([1, 0], [0, 1]) == pytest.approx(1.0)


def test_chi_square_matches_scipy_contingency_with_unseen_category() -> None:
    r, c = np.array([30, 50, 0, 20]), np.array([25, 40, 10, 25])  # category 3 unseen in reference
    ours = chi_square(r, c)
    stat, p, dof, _ = st.chi2_contingency(np.vstack([r, c]), correction=False)
    assert math.isfinite(ours.statistic)
    assert ours.statistic == pytest.approx(stat, rel=1e-12) and ours.pvalue == pytest.approx(p, rel=1e-10)
    assert ours.dof == dof


def test_chi_square_with_one_category_is_no_evidence() -> None:
    assert chi_square([5, 0], [9, 0]) == (0.0, 1.0, 0)


def test_z_test_matches_the_pooled_formula() -> None:
    res = z_test(30, 100, 45, 100)
    p1, p2, pool = 0.3, 0.45, 0.375
    z = abs(p1 - p2) / math.sqrt(pool * (1 - pool) * (2 / 100))
    assert res.statistic == pytest.approx(z)
    assert res.pvalue == pytest.approx(2 * st.norm.sf(z))


def test_z_test_without_variance_is_no_evidence() -> None:
    assert z_test(10, 10, 5, 5)[:2] == (0.0, 1.0)


# Count-based distances: NaN propagates, negative or infinite counts are refused (issue 9, item 31).

def test_count_distances_propagate_a_nan_count() -> None:
    assert math.isnan(psi([np.nan], [21]))
    assert math.isnan(hellinger([np.nan], [21]))
    res = chi_square([np.nan, 24], [21, 45])
    assert math.isnan(res.statistic) and math.isnan(res.pvalue)


@pytest.mark.parametrize("bad", [-1.0, np.inf, -np.inf])
@pytest.mark.parametrize("fn", [psi, hellinger, chi_square])
def test_count_distances_refuse_negative_or_infinite_counts(fn, bad: float) -> None:
    with pytest.raises(DataError, match="finite and non-negative"):
        fn([1.0, bad], [2.0, 3.0])
    with pytest.raises(DataError, match="cur_counts"):
        fn([1.0, 2.0], [bad, 3.0])


# ks_2samp's result unpacks like scipy's (issue 9, item 34).

def test_ks_2samp_result_unpacks_as_statistic_and_pvalue_like_scipy() -> None:
    import copy
    import pickle

    r = ks_2samp([1.0, 2.0, 3.0], [2.5, 4.0])
    d, p = r
    ref = st.ks_2samp([1.0, 2.0, 3.0], [2.5, 4.0])
    assert len(r) == len(ref) == 2 and (d, p) == (r.statistic, r.pvalue)
    assert (r.statistic_location, r.statistic_sign) == (ref.statistic_location, ref.statistic_sign)
    for back in (pickle.loads(pickle.dumps(r)), copy.deepcopy(r), r._replace(pvalue=0.5)._replace(pvalue=r.pvalue)):
        assert back == r and back.statistic_location == r.statistic_location and back.statistic_sign == r.statistic_sign
    assert "statistic_location" in repr(r) and set(r._asdict()) == {"statistic", "pvalue", "statistic_location",
                                                                    "statistic_sign"}


# Integers beyond 2**53 are compared exactly (issue 9, item 32).

@pytest.mark.parametrize(("a", "b"), [
    (np.array([2**60], dtype=np.uint64), np.array([2**60 + 1], dtype=np.uint64)),
    (np.array([2**63 + 5, 2**64 - 1, 7], dtype=np.uint64), np.array([2**63 + 6, 3], dtype=np.uint64)),
    (np.array([2**63 + 5, 2**64 - 1], dtype=np.uint64), np.array([-4, 2**62, 2**62 + 1], dtype=np.int64)),
    (np.arange(2**60, 2**60 + 30, dtype=np.uint64), np.arange(2**60 + 1, 2**60 + 40, 3, dtype=np.int64)),
])
def test_ks_2samp_compares_uint64_and_int64_beyond_2_53_exactly(a: np.ndarray, b: np.ndarray) -> None:
    ours = ks_2samp(a, b)
    xa, xb = [int(v) for v in a], [int(v) for v in b]  # brute-force ECDFs over exact Python integers
    gaps = [sum(v <= t for v in xa) / len(xa) - sum(v <= t for v in xb) / len(xb) for t in xa + xb]
    assert ours.statistic == pytest.approx(max(abs(g) for g in gaps), rel=1e-15)
    if a.dtype == b.dtype:  # scipy is exact too (a uint64/int64 mix it compares as float64)
        ref = st.ks_2samp(a, b)
        assert abs(ours.statistic - float(ref.statistic)) <= SCIPY_TOLERANCE and ours.pvalue == pytest.approx(ref.pvalue, rel=1e-10)
        assert ours.statistic_sign == ref.statistic_sign
    assert int(ours.statistic_location) in {int(v) for v in np.concatenate([a.astype(object), b.astype(object)])}
    assert ks_2samp(np.array([2**60], dtype=np.uint64), np.array([2**60 + 1], dtype=np.uint64)).statistic == 1.0


# Masked samples are refused, never silently unmasked (issue 9, item 33); 2-D samples are computed
# per column as scipy does (ks_2samp, issue 15), or refused where scipy has no axis (wasserstein_distance).

@pytest.mark.parametrize("fn", [ks_2samp, wasserstein_distance])
def test_two_sample_functions_refuse_masked_arrays(fn) -> None:
    with pytest.raises(DataError, match="masked"):
        fn(np.ma.masked_array([1.0, 2.0, 99.0], mask=[0, 0, 1]), [1.0, 2.0])


def test_wasserstein_refuses_2d_arrays_as_scipy_has_no_axis() -> None:
    with pytest.raises(DataError, match="one-dimensional"):
        wasserstein_distance(np.ones((3, 2)), [1.0, 2.0])


# scipy's axis=, keepdims=, nan_policy= and alternative= (issue 15).

@pytest.fixture(scope="module")
def nd_samples() -> tuple[np.ndarray, np.ndarray]:
    """Two 3-D samples that broadcast apart from their lengths along axis 1, with a few NaN (no slice all NaN)."""
    rng = np.random.default_rng(7)
    a = rng.normal(size=(2, 9, 3))
    b = rng.normal(0.4, 1.0, size=(1, 12, 3))
    a[0, 2, 1] = np.nan
    b[0, 5, 2] = np.nan
    return a, b


@pytest.mark.parametrize("axis", [1, -2, None])
@pytest.mark.parametrize("nan_policy", ["propagate", "omit"])
@pytest.mark.parametrize("keepdims", [False, True])
def test_ks_2samp_along_an_axis_is_scipys(nd_samples: tuple[np.ndarray, np.ndarray], axis: int | None,
                                          nan_policy: str, keepdims: bool) -> None:
    a, b = nd_samples
    ours = ks_2samp(a, b, "less", axis=axis, nan_policy=nan_policy, keepdims=keepdims)
    ref = st.ks_2samp(a, b, "less", axis=axis, nan_policy=nan_policy, keepdims=keepdims)
    for name in ("statistic", "pvalue", "statistic_location", "statistic_sign"):
        got, want = np.asarray(getattr(ours, name)), np.asarray(getattr(ref, name))
        assert got.shape == want.shape, name
        np.testing.assert_allclose(got, want, rtol=1e-10, equal_nan=True, err_msg=name)


def test_ks_2samp_per_column_of_2d_input(rng: np.random.Generator) -> None:
    a, b = rng.normal(size=(40, 3)), rng.normal(size=(30, 3))
    ours = ks_2samp(a, b)
    assert ours.statistic.shape == (3,)
    for j in range(3):
        assert ours.pvalue[j] == pytest.approx(ks_2samp(a[:, j], b[:, j]).pvalue, rel=1e-15)


@pytest.mark.parametrize("alternative", ["greater", "less", "g", "Less"])
@pytest.mark.parametrize("method", ["exact", "asymp"])
def test_ks_2samp_one_sided_matches_scipy(alternative: str, method: str, rng: np.random.Generator) -> None:
    a, b = rng.normal(size=70), rng.normal(0.3, 1.0, size=45)
    ours, ref = ks_2samp(a, b, alternative, method), st.ks_2samp(a, b, alternative, method)
    # Equal to rounding: which CPU the kernel was compiled for (FMA or not) may move the last bit.
    assert ours.statistic == pytest.approx(ref.statistic, rel=1e-13)
    assert ours.statistic_sign == ref.statistic_sign
    assert ours.pvalue == pytest.approx(ref.pvalue, rel=1e-10)


def test_ks_2samp_nan_policy_raise_and_propagate() -> None:
    with pytest.raises(DataError, match="The input contains nan values"):
        ks_2samp([1.0, np.nan], [2.0], nan_policy="raise")
    r = ks_2samp([1.0, np.nan], [2.0])
    assert all(math.isnan(v) for v in (r.statistic, r.pvalue, r.statistic_location, r.statistic_sign))


@pytest.mark.parametrize(("kwargs", "field"), [
    ({"alternative": "sideways"}, "alternative"), ({"method": "fast"}, "method"),
    ({"nan_policy": "drop"}, "nan_policy"), ({"axis": 3}, "axis")])
def test_ks_2samp_bad_arguments_name_the_argument(kwargs: dict[str, Any], field: str) -> None:
    with pytest.raises(DataError) as exc:
        ks_2samp(np.ones((4, 2)), np.ones((5, 2)), **kwargs)
    assert exc.value.field == field


def test_ks_2samp_slices_that_do_not_broadcast_or_end_empty_are_data_errors() -> None:
    with pytest.raises(DataError, match="broadcast"):
        ks_2samp(np.ones((4, 2)), np.ones((5, 3)))
    with pytest.raises(DataError, match=r"non-empty.*slice \(1,\)"):
        ks_2samp(np.array([[1.0, np.nan], [2.0, np.nan]]), np.ones((3, 2)), nan_policy="omit")


@pytest.mark.parametrize("axis", [0, 1, -1])
@pytest.mark.parametrize("keepdims", [False, True])
def test_jensen_shannon_along_an_axis_is_scipys(axis: int, keepdims: bool, rng: np.random.Generator) -> None:
    p, q = rng.random((4, 5)), rng.random((1, 5))  # q broadcasts over p's rows
    np.testing.assert_allclose(jensen_shannon(p, q, axis=axis, keepdims=keepdims),
                               jensenshannon(p, q, axis=axis, keepdims=keepdims), rtol=1e-14)
