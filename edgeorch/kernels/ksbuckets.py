"""The exact two-sample KS extremes of large samples without sorting them whole.

The KS statistic is the largest gap between two ECDFs, and a gap can only be
large where it is already nearly large at a coarser scale. So the pooled range
is cut into equal-width buckets (a monotone map: equal values share a bucket),
each sample's values are counted per bucket in one parallel pass, and the
ECDF gap at every bucket's end is then known exactly. Inside bucket ``k`` the
gap ``F1 - F2`` can rise at most by its values of sample 1 and fall at most by
its values of sample 2, which bounds it from both sides; only the buckets
whose bound reaches the best gap already seen at a bucket end (either sign)
can hold an extreme. Those few buckets' values are gathered, sorted and walked
(:func:`_jit.walk_buckets`) with the ECDFs offset by the counts below each
bucket, so every gap is the same float ``i/n1 - j/n2`` that the full walk
(:func:`_jit.ecdf_walk`, scipy's searchsorted) computes, and the first extreme
in scipy's order wins: the result is bit-identical, the statistic, its
location and its sign.

What it saves: sorting both samples (most of the time of the full walk) and
the walk itself become two linear passes. For two samples of one
distribution (drift monitoring's usual case) about 1% of the values are
gathered; integers of a small range need no gathering at all (one bucket per
value). When most values would be kept (values crowding into a few buckets)
or the range has no width, :func:`ks_extremes` returns None and the caller
sorts and walks everything, as before.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from . import _jit

MIN_POOLED = 1 << 16
"""Below this many pooled values sorting everything is as fast: :func:`ks_extremes` is not used."""
VALUES_PER_BUCKET = 64
MAX_BUCKETS = 1 << 16
CHUNKS = 8
"""Fixed chunks of the counting and gathering passes (not per thread: results never depend on threads)."""
MAX_KEPT_SHARE = 0.5
"""Above this share of values kept, gathering costs more than it saves: the caller sorts everything."""
PICK = 4096
"""Values picked from each sample (evenly strided) to place the buckets."""
TAIL = 0.001
"""Share of the picked values left to each end bucket."""
_SLACK = 1e-12
"""Bounds are compared with this margin: a gap's float may differ from the bound's in the last bits
(both are within 1e-15 of the exact rationals), and a bucket kept in vain costs only its walk."""


def ks_extremes(a: np.ndarray, b: np.ndarray) -> tuple[float, Any, float, Any] | None:
    """``(max_diff, argmax_value, min_diff, argmin_value)`` of two unsorted 1-D samples, as
    :func:`_jit.ecdf_walk` gives them for the sorted samples; None where this method does not apply.

    ``a`` and ``b``: non-empty, both float64 without NaN or both int64
    (exact integer KS). None below :data:`MIN_POOLED` values, when nearly all
    values are equal (no width to cut), and when more than
    :data:`MAX_KEPT_SHARE` of them would be gathered.
    """
    n1, n2 = a.shape[0], b.shape[0]
    if n1 + n2 < MIN_POOLED:
        return None
    grid = _grid(a, b)
    if grid is None:
        return None
    half_lo, inv, nb, single = grid
    a, b = _read_only(a), _read_only(b)  # one compiled signature per type, whoever made the arrays
    counts_a = _jit.bucket_counts(a, half_lo, inv, nb, CHUNKS)
    counts_b = _jit.bucket_counts(b, half_lo, inv, nb, CHUNKS)
    ca, cb = counts_a.sum(axis=0), counts_b.sum(axis=0)
    if single:
        return _from_counts(ca, cb, n1, n2, half_lo)
    keep = _kept_buckets(ca, cb, n1, n2)
    kept_a, kept_b = int(ca[keep].sum()), int(cb[keep].sum())
    if kept_a + kept_b > MAX_KEPT_SHARE * (n1 + n2):
        return None
    flags = keep.astype(np.uint8)
    sa = np.sort(_jit.bucket_gather(a, half_lo, inv, flags, _starts(counts_a, keep)))
    sb = np.sort(_jit.bucket_gather(b, half_lo, inv, flags, _starts(counts_b, keep)))
    below_a = np.cumsum(ca) - ca
    below_b = np.cumsum(cb) - cb
    return _jit.walk_buckets(sa, sb, ca[keep], cb[keep], below_a[keep], below_b[keep], n1, n2)


def _kept_buckets(ca: np.ndarray, cb: np.ndarray, n1: int, n2: int) -> np.ndarray:
    """The buckets that may hold an extreme gap (bool per bucket): pure, over the two count vectors.

    The gap at a non-empty bucket's end, ``A_k/n1 - B_k/n2``, is attained
    (at its largest value); inside the bucket the gap lies between
    ``A_(k-1)/n1 - B_k/n2`` and ``A_k/n1 - B_(k-1)/n2``. A bucket is kept when
    that range reaches the largest or the smallest end gap (ties kept: the
    first extreme in scipy's order may lie in an earlier bucket).
    """
    a_end = np.cumsum(ca)
    b_end = np.cumsum(cb)
    nonempty = (ca + cb) > 0
    end = a_end / n1 - b_end / n2
    top = end[nonempty].max()
    bottom = end[nonempty].min()
    upper = a_end / n1 - (b_end - cb) / n2
    lower = (a_end - ca) / n1 - b_end / n2
    return nonempty & ((upper >= top - _SLACK) | (lower <= bottom + _SLACK))


def _from_counts(ca: np.ndarray, cb: np.ndarray, n1: int, n2: int, half_lo: float) -> tuple[float, Any, float, Any]:
    """The extremes when bucket ``k`` is the one integer ``lo + k``: every pooled value's gap from the counts.

    A value is sample 1's when it has some of its values there; scipy's first
    extreme in the order [sorted sample 1, sorted sample 2] is the smallest
    such value (``argmax`` takes the first), and sample 2's only when strictly
    beyond (as :func:`_jit.ecdf_walk`).
    """
    lo = int(half_lo * 2.0)
    end = np.cumsum(ca) / n1 - np.cumsum(cb) / n2
    in_a = ca > 0
    in_b = ~in_a & (cb > 0)
    out: list[Any] = []
    for pick, worst in ((np.argmax, -np.inf), (np.argmin, np.inf)):
        best = []
        for group in (in_a, in_b):
            if group.any():
                k = int(np.flatnonzero(group)[pick(end[group])])
                best.append((float(end[k]), np.int64(lo + k)))
            else:
                best.append((worst, np.int64(lo)))
        (da, la), (db, lb) = best
        beyond = db > da if pick is np.argmax else db < da
        out.extend((db, lb) if beyond else (da, la))
    return out[0], out[1], out[2], out[3]


def _grid(a: np.ndarray, b: np.ndarray) -> tuple[float, float, int, bool] | None:
    """The buckets: ``(half_lo, inv, nb, single)`` for :func:`_jit.bucket_counts`; None when there is no width.

    Integers spanning fewer than :data:`MAX_BUCKETS` values get one bucket per
    value (``single``: exact, as halves of integers below 2**52 are). Other
    samples get equal-width buckets between the 0.1% and 99.9% quantiles of a
    strided pick of the pooled values (so one far value or a long tail does
    not crowd the rest into a few buckets); values beyond, infinities
    included, fall into the end buckets.
    """
    n1, n2 = a.shape[0], b.shape[0]
    if a.dtype.kind == "i":
        lo, hi = min(int(a.min()), int(b.min())), max(int(a.max()), int(b.max()))
        if hi - lo < MAX_BUCKETS and max(-lo, hi) < 2**52:
            return float(lo) * 0.5, 2.0, hi - lo + 1, True
    pick = np.concatenate([a[:: max(1, n1 // PICK)], b[:: max(1, n2 // PICK)]]).astype(np.float64)
    pick = pick[np.isfinite(pick)]
    if pick.size == 0:
        return None
    lo, hi = np.quantile(pick, [TAIL, 1.0 - TAIL])
    half_lo = float(lo) * 0.5
    width = float(hi) * 0.5 - half_lo
    nb = int(min(MAX_BUCKETS, max(16, (n1 + n2) // VALUES_PER_BUCKET)))
    if not (np.isfinite(half_lo) and np.isfinite(width) and width > 0.0) or not np.isfinite(nb / width):
        return None
    return half_lo, nb / width, nb, False


def _read_only(x: np.ndarray) -> np.ndarray:
    """A read-only view of ``x`` (numba compiles writable and read-only arrays apart; slices arrive read-only)."""
    if not x.flags.writeable:
        return x
    view = x.view()
    view.flags.writeable = False
    return view


def _starts(counts: np.ndarray, keep: np.ndarray) -> np.ndarray:
    """Where each chunk writes its kept values: offsets of length ``chunks + 1`` (the last is the total)."""
    per_chunk = counts[:, keep].sum(axis=1)
    return np.concatenate([[0], np.cumsum(per_chunk)]).astype(np.int64)
