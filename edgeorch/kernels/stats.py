"""Two-sample statistics: KS, Wasserstein, Jensen–Shannon, PSI, Hellinger, chi-square, z.

``ks_2samp``, ``wasserstein_distance`` and ``jensen_shannon`` take the
arguments of, and give the same results as, ``scipy.stats.ks_2samp`` (every
``alternative`` and ``method``, ``axis``/``keepdims``/``nan_policy``),
``scipy.stats.wasserstein_distance`` and
``scipy.spatial.distance.jensenshannon`` (``axis``/``keepdims``), on the
inputs scipy accepts (ties, infinities, unequal sizes, n-dimensional
samples), but sort in parallel and walk the two ECDFs once in compiled code.
The exact KS p-value (``max(n1, n2) <= 10000``) is computed in compiled code
by the same lattice-path recursions as scipy; the asymptotic one calls
``scipy.stats.kstwo.sf`` (one scalar), as scipy does. scipy's own tests run
against them (tests/unit/kernels/test_kernels_scipy_suite.py).

Like scipy, these functions do not drop NaN by default: a NaN input gives NaN results.
:func:`edgeorch.kernels.column_drift` drops NaN and ±inf first and reports
how many it dropped.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, NamedTuple

import numpy as np

from ..errors import DataError
from . import _jit
from .axes import assemble, check_nan_policy, nan_slice, slices
from .columns import unmasked
from .ksbuckets import ks_extremes

_INT64_MAX = int(np.iinfo(np.int64).max)
MAX_EXACT_N = 10000  # scipy's MAX_AUTO_N: 'auto' is exact up to this sample size
PSI_EPS = 1e-4  # share that replaces an empty bin's 0 in PSI (no renormalising): keeps ln finite


class _KSPair(NamedTuple):
    statistic: float
    pvalue: float


class KSResult(_KSPair):
    """As scipy's ``KstestResult``: a ``(statistic, pvalue)`` pair with two more attributes.

    ``D, p = ks_2samp(a, b)`` unpacks as with scipy (``len(result) == 2``);
    ``statistic_location`` (the value where the ECDF gap is largest) and
    ``statistic_sign`` (+1 when the first sample's ECDF is above there, else
    -1) are attributes only, as in scipy.
    """

    statistic_location: float | int
    statistic_sign: int

    def __new__(cls, statistic: float, pvalue: float, statistic_location: float | int = math.nan,
                statistic_sign: int = 1) -> KSResult:
        self = super().__new__(cls, statistic, pvalue)
        self.statistic_location = statistic_location
        self.statistic_sign = statistic_sign
        return self

    def __getnewargs__(self) -> tuple[Any, ...]:  # pickling and copy keep the extra attributes
        return (self.statistic, self.pvalue, self.statistic_location, self.statistic_sign)

    def __repr__(self) -> str:
        return (f"KSResult(statistic={self.statistic!r}, pvalue={self.pvalue!r}, "
                f"statistic_location={self.statistic_location!r}, statistic_sign={self.statistic_sign!r})")

    def _replace(self, **changes: Any) -> KSResult:
        return KSResult(**{**self._asdict(), **changes})

    def _asdict(self) -> dict[str, Any]:
        return {"statistic": self.statistic, "pvalue": self.pvalue,
                "statistic_location": self.statistic_location, "statistic_sign": self.statistic_sign}


def _sample(x: Any, name: str) -> np.ndarray:
    """One 1-D sample as given (any dtype); masked and multi-dimensional arrays are refused.

    scipy computes a 2-D input per column (``axis=0``): flattening it would
    give a plausible wrong number, so only 1-D samples are accepted (a
    scalar counts as one value).
    """
    arr = np.atleast_1d(unmasked(x, name))
    if arr.ndim != 1:
        raise DataError("a sample must be one-dimensional", field=name, value=f"shape {arr.shape}",
                        expected="a 1-D array (call once per column for 2-D data)")
    return arr


def _as_1d(x: Any, name: str) -> np.ndarray:
    arr = _sample(x, name)
    if arr.dtype.kind not in "biuf":
        try:
            arr = arr.astype(np.float64)
        except (TypeError, ValueError):
            raise DataError("values must be numbers", field=name, value=str(arr.dtype)) from None
    return arr.astype(np.float64, copy=False)


def _sort_pair(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    # numpy releases the GIL while sorting: two threads sort the two samples
    # at once (the sort dominates; the ECDF walk after it is linear).
    if a.size + b.size < 200_000:
        return np.sort(a), np.sort(b)
    with ThreadPoolExecutor(2) as pool:
        fa = pool.submit(np.sort, a)
        fb = pool.submit(np.sort, b)
        return fa.result(), fb.result()


_EMPTY = np.zeros(0)


ALTERNATIVES = ("two-sided", "less", "greater")
KS_METHODS = ("auto", "exact", "asymp")


def _alternative(alternative: str) -> str:
    # scipy reads the first letter (t, g, l) of any case: keep its spelling rules.
    text = str(alternative)
    full = {"t": "two-sided", "g": "greater", "l": "less"}.get(text.lower()[:1], text)
    if full not in ALTERNATIVES:
        raise DataError("unknown KS alternative", field="alternative", value=alternative,
                        expected="two-sided, less or greater")
    return full


def ks_2samp(data1: Any, data2: Any, alternative: str = "two-sided", method: str = "auto", *,
             axis: int | None = 0, nan_policy: str = "propagate", keepdims: bool = False,
             mode: str | None = None) -> KSResult:
    """Two-sample Kolmogorov–Smirnov test, as ``scipy.stats.ks_2samp`` (same signature and results).

    ``alternative``: ``two-sided`` (the largest gap either way), ``greater``
    (the largest gap where ``data1``'s ECDF is above: the alternative that
    ``data1`` tends to be smaller) or ``less`` (the opposite); scipy's first
    letter suffices. ``method``: ``auto`` (exact p-value when both samples
    have at most 10000 values, else asymptotic), ``exact`` or ``asymp``;
    ``mode`` is its old name (as scipy). Where the exact computation fails
    (overflow), a RuntimeWarning names it and the asymptotic p-value is
    returned, as scipy does. Ties are handled as scipy does
    (right-continuous ECDFs).

    n-dimensional samples are tested per slice along ``axis`` (default 0:
    per column), broadcast in the other dimensions; ``axis=None`` ravels
    them; ``keepdims`` keeps the reduced axis; the result then holds arrays
    (:mod:`.axes`). ``nan_policy``: ``propagate`` (a sample with NaN gives
    NaN in all four outputs), ``omit`` (NaN left out) or ``raise``.

    Unlike scipy, an empty sample (also one left empty by ``omit``) and a
    masked array raise DataError instead of returning NaN.
    """
    if mode is not None:
        method = mode
    if method not in KS_METHODS:
        raise DataError("unknown KS method", field="method", value=method, expected="auto, exact or asymp")
    alternative = _alternative(alternative)
    check_nan_policy(nan_policy)
    sliced = slices([data1, data2], ["data1", "data2"], axis)
    outputs = []
    for idx, parts in sliced.items():
        parts, nan = nan_slice(parts, nan_policy)
        where = f" (slice {idx} along axis {sliced.axis})" if idx else ""
        for name, part in zip(("data1", "data2"), parts):
            if part.size == 0:
                raise DataError(f"ks_2samp needs two non-empty samples{where}", field=name, value="0 values")
        if nan:
            outputs.append((math.nan, math.nan, math.nan, math.nan))
        else:
            outputs.append(_ks_1d(parts[0], parts[1], alternative, method))
    return KSResult(*assemble(sliced, outputs, keepdims))


def _ks_1d(data1: np.ndarray, data2: np.ndarray, alternative: str, method: str) -> tuple[Any, ...]:
    """``(statistic, pvalue, location, sign)`` of two non-empty 1-D samples without NaN."""
    exact = _int_keys(data1, data2)
    value_of: Callable[[Any], Any]
    if exact is None:
        a, b, value_of = _as_1d(data1, "data1"), _as_1d(data2, "data2"), float
    else:
        a, b, value_of = exact
    n1, n2 = a.size, b.size
    found = ks_extremes(a, b)  # large samples: only the buckets that can hold the extremes are sorted
    if found is None:
        a, b = _sort_pair(a, b)
        found = _jit.ecdf_walk(a, b, _EMPTY, _EMPTY)[:4]
    maxd, maxloc, mind, minloc = found
    min_s = min(max(-mind, 0.0), 1.0)
    if alternative == "less" or (alternative == "two-sided" and min_s > maxd):
        d, loc, sign = min_s, minloc, -1
    else:
        d, loc, sign = maxd, maxloc, 1
    d, p = ks_pvalue(d, n1, n2, method, alternative)
    return d, p, value_of(loc), sign


def _int_keys(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray, Callable[[Any], int]] | None:
    """Two integer samples as int64 keys in the same order as their values, and the map from a key back to its value.

    ``None`` when either sample is not integer (or boolean). Integers beyond
    2**53 do not survive float64 (2**60 and 2**60 + 1 would tie), so they are
    compared exactly: as int64 when both fit; two uint64 samples through the
    order-preserving ``v - 2**63``; a uint64 sample beyond int64 against a
    signed one through their ranks in the pooled distinct values. The KS
    statistic depends only on the order, so each gives scipy's exact answer.
    """
    if a.dtype.kind not in "iub" or b.dtype.kind not in "iub":
        return None
    if all(x.dtype.kind != "u" or x.size == 0 or int(x.max()) <= _INT64_MAX for x in (a, b)):
        return a.astype(np.int64, copy=False), b.astype(np.int64, copy=False), int
    if a.dtype.kind in "ub" and b.dtype.kind in "ub":
        flip = np.uint64(1 << 63)  # v - 2**63 on the bit pattern: order-preserving onto int64
        keys = [(x.astype(np.uint64) ^ flip).view(np.int64) for x in (a, b)]
        return keys[0], keys[1], lambda k: int(k) + (1 << 63)
    pooled = np.unique(np.concatenate([a.astype(object), b.astype(object)]))  # exact Python ints
    ranks = [np.searchsorted(pooled, x.astype(object)).astype(np.int64) for x in (a, b)]
    return ranks[0], ranks[1], lambda k: int(pooled[int(k)])


def ks_pvalue(d: float, n1: int, n2: int, method: str = "auto",
              alternative: str = "two-sided") -> tuple[float, float]:
    """``(statistic, p-value)`` of a KS statistic ``d`` for sizes ``n1``, ``n2`` (scipy's rules).

    The exact method snaps ``d`` to the lattice value ``h / lcm(n1, n2)`` it
    stands for, as scipy does, so the statistic returned may differ from
    ``d`` in the last bit. Where the exact computation is impossible (lcm
    beyond int32) or fails (overflow), a RuntimeWarning says so and the
    asymptotic p-value is returned: Smirnov's ``kstwo`` for two-sided,
    Hodges' approximation (eq. 5.3) for one-sided, as scipy.
    """
    d = float(d)
    g = math.gcd(n1, n2)
    if method == "auto":
        method = "exact" if max(n1, n2) <= MAX_EXACT_N else "asymp"
    elif method == "exact" and (n1 // g) >= np.iinfo(np.int32).max / (n2 // g):
        method = "asymp"
        warnings.warn(f"Exact ks_2samp calculation not possible with samples sizes {n1} and {n2}. "
                      "Switching to 'asymp'.", RuntimeWarning, stacklevel=3)
    if method == "exact":
        ok, d, prob = _ks_exact(d, n1, n2, g, alternative)
        if ok:
            return d, prob
        warnings.warn("ks_2samp: Exact calculation unsuccessful. Switching to method=asymp.",
                      RuntimeWarning, stacklevel=3)
    m, n = sorted([float(n1), float(n2)], reverse=True)
    en = m * n / (m + n)
    if alternative == "two-sided":
        from scipy.stats import kstwo  # one scalar; scipy's kstwo is the reference

        return d, float(np.clip(kstwo.sf(d, np.round(en)), 0.0, 1.0))
    z = math.sqrt(en) * d
    expt = -2 * z ** 2 - 2 * z * (m + 2 * n) / math.sqrt(m * n * (m + n)) / 3.0
    return d, float(np.clip(math.exp(expt), 0.0, 1.0))


def _ks_exact(d: float, n1: int, n2: int, g: int, alternative: str) -> tuple[bool, float, float]:
    """``(succeeded, snapped statistic, p-value)`` of the exact KS distribution (scipy's recursions, compiled)."""
    lcm = (n1 // g) * n2
    h = int(np.round(d * lcm))
    d = h / lcm
    if h == 0:
        return True, d, 1.0
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        if alternative == "two-sided":
            prob = _jit.prob_outside_square(n1, h) if n1 == n2 else _jit.prob_outside_lattice(n1, n2, g, h)
        elif n1 == n2:
            # binom(2n, n - h) / binom(2n, n) as a product: no roundoff from large binomials (scipy's form).
            j = np.arange(h)
            prob = float(np.prod((n1 - j) / (n1 + j + 1.0)))
        else:
            paths = _jit.count_paths_outside(n1, n2, g, h)
            total = _jit.binom(n1 + n2, n1)
            prob = paths / total if math.isfinite(paths) and math.isfinite(total) and paths <= total else math.nan
    prob = float(prob)
    return (math.isfinite(prob) and 0.0 <= prob <= 1.0), d, prob


def wasserstein_distance(u_values: Any, v_values: Any, u_weights: Any = None, v_weights: Any = None) -> float:
    """First Wasserstein distance between two 1-D distributions, as scipy's.

    Weights, when given, must be non-negative with a positive sum (as scipy);
    empty input raises DataError; a NaN value gives NaN (as scipy). Units:
    those of the values.
    """
    u, v = _as_1d(u_values, "u_values"), _as_1d(v_values, "v_values")
    if u.size == 0 or v.size == 0:
        raise DataError("wasserstein_distance needs two non-empty samples", value=f"sizes {u.size} and {v.size}")
    if np.isnan(u).any() or np.isnan(v).any():
        return math.nan  # as scipy: NaN propagates (and NaN has no place in a sorted walk)
    # scipy integrates over np.diff of the pooled sorted values: two equal
    # infinities there give inf - inf = NaN, hence a NaN distance. Same here.
    for inf in (np.inf, -np.inf):
        if int(np.count_nonzero(u == inf)) + int(np.count_nonzero(v == inf)) >= 2:
            warnings.warn("invalid value encountered: equal infinities in the pooled samples make the "
                          "distance undefined (NaN)", RuntimeWarning, stacklevel=2)
            return math.nan
    if u_weights is None and v_weights is None:
        u, v = _sort_pair(u, v)
        return float(_jit.ecdf_walk(u, v, _EMPTY, _EMPTY)[4])
    wu = _weights(u_weights, u.size, "u_weights")
    wv = _weights(v_weights, v.size, "v_weights")
    iu, iv = np.argsort(u, kind="mergesort"), np.argsort(v, kind="mergesort")
    cu, cv = np.cumsum(wu[iu]), np.cumsum(wv[iv])
    return float(_jit.ecdf_walk(u[iu], v[iv], cu / cu[-1], cv / cv[-1])[4])


def _weights(w: Any, n: int, name: str) -> np.ndarray:
    if w is None:
        return np.ones(n)
    arr = np.asarray(w, dtype=np.float64).ravel()
    if arr.size != n:
        raise DataError("weights and values differ in length", field=name, value=arr.size, expected=str(n))
    if not np.all(np.isfinite(arr)) or (arr < 0).any() or arr.sum() <= 0:
        raise DataError("weights must be finite, non-negative, with a positive sum", field=name)
    return arr


def _prob_pair(p: Any, q: Any) -> tuple[np.ndarray, np.ndarray]:
    p, q = np.asarray(p, dtype=np.float64).ravel(), np.asarray(q, dtype=np.float64).ravel()
    if p.shape != q.shape:
        raise DataError("the two distributions differ in length", value=f"{p.size} and {q.size}")
    if p.size == 0:
        raise DataError("empty distributions")
    return p, q


def jensen_shannon(p: Any, q: Any, base: float | None = None, *, axis: int = 0, keepdims: bool = False) -> Any:
    """Jensen–Shannon *distance* (square root of the divergence), as scipy's ``jensenshannon``.

    ``p`` and ``q`` are counts or probabilities over the same bins; each is
    normalised to sum 1 along ``axis``. Natural log unless ``base`` is
    given; with base 2 the result lies in [0, 1]. All-zero input gives NaN
    (as scipy). n-dimensional input gives one distance per slice along
    ``axis`` (default 0: per column), ``p`` and ``q`` broadcast as numpy
    does, ``keepdims`` keeping the reduced axis, exactly scipy's formula;
    1-D input gives a float. Masked arrays, shapes that do not broadcast, an
    axis out of range and empty input raise DataError.
    """
    from scipy.special import (
        rel_entr,  # the reference's own ufunc: 0 log 0 = 0, NaN propagates
    )

    p, q = unmasked(p, "p"), unmasked(q, "q")
    try:
        p, q = np.asarray(p, dtype=np.float64), np.asarray(q, dtype=np.float64)
    except (TypeError, ValueError):
        raise DataError("distributions must be numbers", field="p, q") from None
    if p.ndim <= 1 and q.ndim <= 1 and p.size != q.size:
        raise DataError("the two distributions differ in length", field="q", value=f"{p.size} and {q.size}",
                        expected="the same bins in both")
    try:
        shape = np.broadcast_shapes(p.shape, q.shape)
    except ValueError:
        raise DataError("the two distributions' shapes do not broadcast", field="q",
                        value=f"{p.shape} and {q.shape}", expected="equal shapes (or 1 where they differ)") from None
    ndim = max(len(shape), 1)
    if not -ndim <= axis < ndim:
        raise DataError("axis is out of range for the distributions", field="axis", value=axis,
                        expected=f"an integer from {-ndim} to {ndim - 1}")
    if not shape or shape[axis] == 0 or 0 in shape:
        raise DataError("empty distributions", field="p", value=f"shape {shape}", expected="at least one bin")
    with np.errstate(invalid="ignore", divide="ignore"):
        p = p / np.sum(p, axis=axis, keepdims=True)
        q = q / np.sum(q, axis=axis, keepdims=True)
        m = (p + q) / 2.0
        js = np.sum(rel_entr(p, m), axis=axis, keepdims=keepdims) + np.sum(rel_entr(q, m), axis=axis,
                                                                            keepdims=keepdims)
        if base is not None:
            js /= np.log(base)
        out = np.sqrt(js / 2.0)
    return float(out) if out.ndim == 0 else out


def _count_pair(ref_counts: Any, cur_counts: Any) -> tuple[np.ndarray, np.ndarray, bool]:
    """Two count vectors over the same bins, and whether either holds NaN.

    Counts (or shares) must be non-negative and finite: a negative or
    infinite count is refused with a DataError (it has no meaning, and it
    would give a plausible wrong number). NaN is not refused: the callers
    propagate it as a NaN result, as the module's functions all do.
    """
    r, c = _prob_pair(ref_counts, cur_counts)
    for name, x in (("ref_counts", r), ("cur_counts", c)):
        bad = np.isinf(x) | (x < 0)
        if bad.any():
            raise DataError("counts must be finite and non-negative", field=name,
                            value=float(x[np.argmax(bad)]), expected="a count or share >= 0 per bin")
    return r, c, bool(np.isnan(r).any() or np.isnan(c).any())


def _shares(counts: np.ndarray, eps: float) -> np.ndarray:
    total = counts.sum()
    if total <= 0:
        raise DataError("a distribution has no mass (all counts are zero)")
    share = counts / total
    return np.where(share > 0, share, eps)


def psi(ref_counts: Any, cur_counts: Any, eps: float = PSI_EPS) -> float:
    """Population stability index ``sum((c - r) ln(c / r))`` over bins.

    Inputs are counts (or shares) per bin, normalised here; an empty bin's
    share is replaced by ``eps`` so PSI stays finite (shares are not
    renormalised after the replacement). 0 means identical; 0.1 is the usual
    "some shift" threshold, 0.25 "major shift". A NaN count gives NaN; a
    negative or infinite one raises DataError.
    """
    r, c, nan = _count_pair(ref_counts, cur_counts)
    if nan:
        return math.nan
    r, c = _shares(r, eps), _shares(c, eps)
    return float(np.sum((c - r) * np.log(c / r)))


def hellinger(ref_counts: Any, cur_counts: Any) -> float:
    """Hellinger distance ``sqrt(sum((sqrt p - sqrt q)^2) / 2)`` in [0, 1]; counts are normalised.

    A NaN count gives NaN; a negative or infinite one raises DataError.
    """
    p, q, nan = _count_pair(ref_counts, cur_counts)
    if nan:
        return math.nan
    if p.sum() <= 0 or q.sum() <= 0:
        raise DataError("a distribution has no mass (all counts are zero)")
    p, q = p / p.sum(), q / q.sum()
    return float(math.sqrt(max(0.0, 0.5 * float(np.sum((np.sqrt(p) - np.sqrt(q)) ** 2)))))


class StatResult(NamedTuple):
    statistic: float
    pvalue: float
    dof: int


def chi_square(ref_counts: Any, cur_counts: Any) -> StatResult:
    """Chi-square test of homogeneity of two count vectors over the same categories.

    The 2 x k contingency test (``scipy.stats.chi2_contingency(...,
    correction=False)``): both samples are random, so a category unseen in
    the reference (count 0 there) has a positive expected count and gives no
    infinity. Categories absent from both are dropped. One category in all
    gives statistic 0, p-value 1. A NaN count gives ``(nan, nan, k - 1)``
    (never a dropped category); a negative or infinite one raises DataError.
    """
    r, c, nan = _count_pair(ref_counts, cur_counts)
    if nan:
        return StatResult(math.nan, math.nan, r.size - 1)
    keep = (r + c) > 0
    r, c = r[keep], c[keep]
    if r.sum() <= 0 or c.sum() <= 0:
        raise DataError("a distribution has no mass (all counts are zero)")
    k = r.size
    if k < 2:
        return StatResult(0.0, 1.0, 0)
    table = np.vstack([r, c])
    expected = table.sum(axis=1, keepdims=True) * table.sum(axis=0, keepdims=True) / table.sum()
    stat = float(np.sum((table - expected) ** 2 / expected))
    from scipy.special import chdtrc

    return StatResult(stat, float(chdtrc(k - 1, stat)), k - 1)


def z_test(ref_successes: int, ref_n: int, cur_successes: int, cur_n: int) -> StatResult:
    """Two-proportion z-test (pooled variance), two-sided; for binary columns.

    Returns ``|z|`` as the statistic. Equal proportions of 0 or 1 in both
    (no variance) give statistic 0, p-value 1.
    """
    if ref_n <= 0 or cur_n <= 0:
        raise DataError("z-test needs two non-empty samples", value=f"sizes {ref_n} and {cur_n}")
    p1, p2 = ref_successes / ref_n, cur_successes / cur_n
    pooled = (ref_successes + cur_successes) / (ref_n + cur_n)
    var = pooled * (1 - pooled) * (1 / ref_n + 1 / cur_n)
    if var <= 0:
        return StatResult(0.0, 1.0, 1)
    z = abs(p1 - p2) / math.sqrt(var)
    return StatResult(z, math.erfc(z / math.sqrt(2.0)), 1)


def category_counts(ref: Sequence[str], ref_counts: Any, cur: Sequence[str], cur_counts: Any) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Align two value-count lists on the union of their categories (sorted)."""
    keys = sorted(set(ref) | set(cur))
    pos = {k: i for i, k in enumerate(keys)}
    r = np.zeros(len(keys))
    c = np.zeros(len(keys))
    for k, v in zip(ref, ref_counts):
        r[pos[k]] += v
    for k, v in zip(cur, cur_counts):
        c[pos[k]] += v
    return keys, r, c
