"""numba-compiled loops: the only module of the kernels that imports numba.

Every function here works on plain float64 arrays and returns plain numbers or
arrays; the mergeable structures around them live in ``sketches`` and
``profile``. All use ``cache=True``: the cache directory is resolved by
:mod:`edgeorch.kernels.cache` before numba is imported here (``NUMBA_CACHE_DIR``,
else the state dir's ``numba-cache`` that the CLI and the engine choose, else
the user's cache folder), never numba's own fallback inside this package, so
only the first use on a machine pays the compile cost.

Results never depend on the number of threads: parallel loops work on fixed
blocks whose partial results are combined in block order.
"""

from __future__ import annotations

import math

from .cache import use_numba_cache_dir

# Before numba decorates anything: its cache locator is chosen at decoration
# time, and without a cache folder it writes into this package.
use_numba_cache_dir()

import numba  # noqa: E402
import numpy as np  # noqa: E402
from numba.cpython.unsafe.numbers import leading_zeros  # noqa: E402

# Block length of the moment scan. Small enough for a block to stay in L1
# between its two passes (mean, then centred powers), large enough that the
# per-block combine costs nothing.
BLOCK = 4096
# Sub-block of the histogram and HLL pass: its buffers (bin, register and rank of each value) stay in L1.
SUB = 512

_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_LOW63 = np.int64(0x7FFFFFFFFFFFFFFF)
_KEY_MAX = np.int64(0x7FFFFFFFFFFFFFFF)
_KEY_MIN = np.int64(-0x8000000000000000)


@numba.njit(cache=True, nogil=True, fastmath={"reassoc", "contract"})
def _block_sum(x, lo, hi):  # pragma: no cover - compiled
    # Reassociated: vectorised. Not NaN-free math: a NaN or inf (or an overflow) must show in the sum.
    s = 0.0
    for i in range(lo, hi):
        s += x[i]
    return s


@numba.njit(cache=True, nogil=True, inline="always")
def _order_key(v):  # pragma: no cover - compiled
    # The float's bits as an int64 that orders like the float (negatives' magnitude bits flipped), so
    # min/max reduce as integers: LLVM vectorises integer min/max, not numba's float min/max.
    b = np.float64(v).view(np.int64)
    return b ^ ((b >> 63) & _LOW63)


@numba.njit(cache=True, nogil=True, inline="always")
def _from_order_key(k):  # pragma: no cover - compiled
    return np.int64(k ^ ((k >> 63) & _LOW63)).view(np.float64)


@numba.njit(cache=True, nogil=True, fastmath={"reassoc", "contract"})
def _finite_block(x, lo, hi, mean):  # pragma: no cover - compiled
    """Extremes, zero and negative counts and centred power sums of a block known to be all finite.

    One loop the compiler vectorises (the block is in L1 after :func:`_block_sum`).
    """
    kmn = _KEY_MAX
    kmx = _KEY_MIN
    nzero = 0
    nneg = 0
    m2 = 0.0
    m3 = 0.0
    m4 = 0.0
    for i in range(lo, hi):
        v = x[i]
        k = _order_key(v)
        kmn = min(kmn, k)
        kmx = max(kmx, k)
        nzero += v == 0.0
        nneg += v < 0.0
        d = v - mean
        d2 = d * d
        m2 += d2
        m3 += d2 * d
        m4 += d2 * d2
    return _from_order_key(kmn), _from_order_key(kmx), nzero, nneg, m2, m3, m4


@numba.njit(cache=True, nogil=True)
def _general_block(x, lo, hi):  # pragma: no cover - compiled
    """One block with NaN/inf (or huge values): classify each value, then centred sums."""
    cnt = 0
    nnan = 0
    npinf = 0
    nninf = 0
    nzero = 0
    nneg = 0
    s = 0.0
    mn = np.inf
    mx = -np.inf
    for i in range(lo, hi):
        v = x[i]
        if v != v:
            nnan += 1
        elif v == np.inf:
            npinf += 1
        elif v == -np.inf:
            nninf += 1
        else:
            cnt += 1
            s += v
            mn = min(mn, v)
            mx = max(mx, v)
            if v == 0.0:
                nzero += 1
            elif v < 0.0:
                nneg += 1
    m2 = 0.0
    m3 = 0.0
    m4 = 0.0
    mean = 0.0
    if cnt > 0:
        mean = s / cnt
        # Values so large that their sum overflows still have a finite
        # mean: fall back to a scaled sum for those rare blocks.
        if not math.isfinite(mean):
            s2 = 0.0
            for i in range(lo, hi):
                v = x[i]
                if math.isfinite(v):
                    s2 += v / cnt
            mean = s2
        for i in range(lo, hi):
            v = x[i]
            if math.isfinite(v):
                d = v - mean
                d2 = d * d
                m2 += d2
                m3 += d2 * d
                m4 += d2 * d2
    return cnt, nnan, npinf, nninf, nzero, nneg, mean, m2, m3, m4, mn, mx


@numba.njit(cache=True, nogil=True, parallel=True)
def block_moments(x):  # pragma: no cover - compiled
    """Per-block partial statistics of ``x`` (float64, any values).

    Returns ``(counts, stats)``: ``counts[b] = [finite, nan, +inf, -inf, zeros,
    negatives]`` and ``stats[b] = [n, mean, M2, M3, M4, min, max]`` over the
    finite values of block ``b`` (``M_k`` = sum of k-th powers of deviations
    from the block mean, computed in two passes, which keeps them accurate).
    """
    n = x.shape[0]
    nb = (n + BLOCK - 1) // BLOCK
    counts = np.zeros((nb, 6), dtype=np.int64)
    stats = np.zeros((nb, 7), dtype=np.float64)
    for b in numba.prange(nb):
        lo = b * BLOCK
        hi = min(lo + BLOCK, n)
        # The block as a view indexed from 0: an index the compiler cannot prove non-negative keeps
        # numba's wraparound check, and the loops then load through gathers (half the speed).
        xb = x[lo:hi]
        cnt = hi - lo
        # Fast path: a block of finite values (the common case), in loops the
        # compiler can vectorise. A non-finite sum means NaN/inf (or an
        # overflowing sum): redo the block on the general path.
        s = _block_sum(xb, 0, cnt)
        nnan = 0
        npinf = 0
        nninf = 0
        mean = s / cnt
        if math.isfinite(s):
            mn, mx, nzero, nneg, m2, m3, m4 = _finite_block(xb, 0, cnt, mean)
        else:
            cnt, nnan, npinf, nninf, nzero, nneg, mean, m2, m3, m4, mn, mx = _general_block(xb, 0, cnt)
        counts[b, 0] = cnt
        counts[b, 1] = nnan
        counts[b, 2] = npinf
        counts[b, 3] = nninf
        counts[b, 4] = nzero
        counts[b, 5] = nneg
        stats[b, 0] = cnt
        stats[b, 1] = mean
        stats[b, 2] = m2
        stats[b, 3] = m3
        stats[b, 4] = m4
        stats[b, 5] = mn
        stats[b, 6] = mx
    return counts, stats


@numba.njit(cache=True, nogil=True)
def combine_moments(na, ma, m2a, m3a, m4a, nb, mb, m2b, m3b, m4b):  # pragma: no cover
    """Chan et al. / Pébay pairwise update of (n, mean, M2, M3, M4)."""
    if nb == 0:
        return na, ma, m2a, m3a, m4a
    if na == 0:
        return nb, mb, m2b, m3b, m4b
    n = na + nb
    delta = mb - ma
    dn = delta / n
    mean = ma + nb * dn
    if not math.isfinite(mean):  # huge values: avoid overflowing delta
        mean = ma * (na / n) + mb * (nb / n)
    m2 = m2a + m2b + delta * dn * na * nb
    m3 = m3a + m3b + delta * dn * dn * na * nb * (na - nb) + 3.0 * dn * (na * m2b - nb * m2a)
    m4 = (
        m4a + m4b
        + delta * dn * dn * dn * na * nb * (na * na - na * nb + nb * nb)
        + 6.0 * dn * dn * (na * na * m2b + nb * nb * m2a)
        + 4.0 * dn * (na * m3b - nb * m3a)
    )
    return n, mean, m2, m3, m4


@numba.njit(cache=True, nogil=True)
def reduce_blocks(stats):  # pragma: no cover - compiled
    """Combine the per-block rows of :func:`block_moments` in block order."""
    n = 0.0
    mean = 0.0
    m2 = 0.0
    m3 = 0.0
    m4 = 0.0
    mn = np.inf
    mx = -np.inf
    for b in range(stats.shape[0]):
        if stats[b, 0] > 0:
            n, mean, m2, m3, m4 = combine_moments(
                n, mean, m2, m3, m4, stats[b, 0], stats[b, 1], stats[b, 2], stats[b, 3], stats[b, 4]
            )
            mn = min(mn, stats[b, 5])
            mx = max(mx, stats[b, 6])
    return n, mean, m2, m3, m4, mn, mx


@numba.njit(cache=True, nogil=True, inline="always")
def _mix64(z):  # pragma: no cover - compiled
    # splitmix64 output of the state key + golden gamma: a cheap, well-mixed
    # 64-bit hash; the added gamma keeps key 0 (the value 0.0) off hash 0.
    z = z + _GOLDEN
    z = (z ^ (z >> np.uint64(30))) * _M1
    z = (z ^ (z >> np.uint64(27))) * _M2
    return z ^ (z >> np.uint64(31))


@numba.njit(cache=True, nogil=True, inline="always")
def _rank(h, p, q):  # pragma: no cover - compiled
    # HLL rank: 1 + leading zeros of the hash bits after the register index.
    # The sentinel bit just below them caps it at q + 1 without a branch.
    w = (h << np.uint64(p)) | np.uint64(1 << (p - 1))
    return np.int32(leading_zeros(w) + 1)


@numba.njit(cache=True, nogil=True)
def _histogram_hll_chunk(x, lo, hi, inv_width, start, nbins, p, hist, regs):  # pragma: no cover - compiled
    """:func:`histogram_and_hll` of ``x[lo:hi]`` into ``hist`` and ``regs`` (this chunk's rows).

    Each sub-block of :data:`SUB` values is done in loops the compiler
    vectorises (bin numbers; hashes, register numbers and ranks, into small
    buffers), then in two scalar scatter loops: two histograms updated in
    turn (consecutive values in one bin would otherwise wait on each other's
    increment) and the registers, by a branchless max (a branch on "rank
    beats register" mispredicted enough to cost a third more). A non-finite
    value goes to a spare bin and a spare register, which are dropped.
    """
    m = 1 << p
    q = 64 - p
    local = np.zeros(m + 1, dtype=np.uint8)
    h0 = np.zeros(nbins + 1, dtype=np.int64)
    h1 = np.zeros(nbins + 1, dtype=np.int64)
    kb = np.empty(SUB, dtype=np.int64)
    ib = np.empty(SUB, dtype=np.int64)
    rb = np.empty(SUB, dtype=np.uint8)
    top = float(nbins - 1)
    for base in range(lo, hi, SUB):
        cnt = min(SUB, hi - base)
        xs = x[base:base + cnt]  # indexed from 0: contiguous vector loads, not gathers (see block_moments)
        for j in range(cnt):
            v = xs[j]
            t = v * inv_width
            t = -0.5 if (t == 0.0 and v < 0.0) else t  # a tiny negative that underflowed: its bin is [-w, 0)
            # Floored and clamped as floats (math.floor would make an int64 first, which a value 2**63 bins
            # off the grid overflows): out-of-grid values land in the end bins.
            kf = min(max(np.floor(t) - start, 0.0), top)
            kb[j] = int(kf) if math.isfinite(v) else nbins
        for j in range(cnt):
            v = xs[j]
            h = _mix64(np.float64(v + 0.0).view(np.uint64))  # -0.0 hashes as 0.0
            ib[j] = np.int64(h >> np.uint64(q)) if math.isfinite(v) else m
            rb[j] = _rank(h, p, q)
        for j in range(0, cnt - 1, 2):
            h0[kb[j]] += 1
            h1[kb[j + 1]] += 1
        if cnt & 1:
            h0[kb[cnt - 1]] += 1
        for j in range(cnt):
            k = ib[j]
            local[k] = max(local[k], rb[j])
    for k in range(nbins):
        hist[k] = h0[k] + h1[k]
    for j in range(m):
        regs[j] = local[j]


@numba.njit(cache=True, nogil=True, parallel=True)
def histogram_and_hll(x, inv_width, start, nbins, p):  # pragma: no cover - compiled
    """Counts of finite ``x`` on the grid ``[(start+i)/inv_width, ...)`` and HLL registers.

    ``inv_width`` is a power of two, so ``x * inv_width`` is exact and a value
    always lands in the same bin whatever else is in the data. Values outside
    the grid (none when the grid came from this data's min and max) are
    clamped into the end bins. Registers: ``2**p`` HyperLogLog registers over
    the bit patterns of the finite values (``-0.0`` counted as ``0.0``).
    """
    n = x.shape[0]
    nchunks = 64
    m = 1 << p
    hists = np.zeros((nchunks, nbins), dtype=np.int64)
    regs = np.zeros((nchunks, m), dtype=np.uint8)
    step = (n + nchunks - 1) // nchunks
    for c in numba.prange(nchunks):
        lo = min(c * step, n)
        hi = min(lo + step, n)
        _histogram_hll_chunk(x, lo, hi, inv_width, start, nbins, p, hists[c], regs[c])
    hist = np.zeros(nbins, dtype=np.int64)
    reg = np.zeros(m, dtype=np.uint8)
    for c in range(nchunks):
        for k in range(nbins):
            hist[k] += hists[c, k]
        for j in range(m):
            reg[j] = max(reg[j], regs[c, j])
    return hist, reg


@numba.njit(cache=True, nogil=True)
def hll_add_hashes(regs, hashes, p):  # pragma: no cover - compiled
    """Add precomputed 64-bit hashes (categorical values) to HLL registers in place."""
    q = 64 - p
    for i in range(hashes.shape[0]):
        h = _mix64(hashes[i])
        idx = int(h >> np.uint64(q))
        rank = _rank(h, p, q)
        regs[idx] = max(regs[idx], rank)


@numba.njit(cache=True, nogil=True, inline="always")
def _note_extremes(maxd, maxloc, mind, minloc, d, t):  # pragma: no cover - compiled
    """The KS walks' running extremes with the difference ``d`` at pooled value ``t`` taken in: a new
    maximum or minimum only when strictly beyond (the first one in the walk's order stays)."""
    if d > maxd:
        maxd = d
        maxloc = t
    if d < mind:
        mind = d
        minloc = t
    return maxd, maxloc, mind, minloc


@numba.njit(cache=True, nogil=True, inline="always")
def _first_extremes(maxd, maxloc, mind, minloc, maxd_b, maxloc_b, mind_b, minloc_b):  # pragma: no cover
    """Extremes found at the first sample's values, unless those at the second's are strictly beyond:
    scipy reports the first extreme in the order [sorted data1, sorted data2]."""
    if maxd_b > maxd:
        maxd = maxd_b
        maxloc = maxloc_b
    if mind_b < mind:
        mind = mind_b
        minloc = minloc_b
    return maxd, maxloc, mind, minloc


@numba.njit(cache=True, nogil=True)
def ecdf_walk(a, b, wa, wb):  # pragma: no cover - compiled
    """Walk two sorted samples; return KS extremes and the Wasserstein-1 integral.

    ``a`` and ``b`` are sorted non-empty arrays of one type (float64, or int64
    for exact integer KS); ``wa`` and ``wb`` their weights'
    cumulative sums normalised to end at 1 (empty arrays mean unit weights).
    At every distinct value ``t`` of the pooled data the right-continuous
    ECDFs are ``F(t) = #{a <= t}/n`` (or the weight share), exactly as scipy
    computes them with ``searchsorted(side='right')``, so the KS statistic is
    bit-identical. Returns ``(max_diff, argmax_value, min_diff, argmin_value,
    w1)``, where ``w1 = sum |Fa - Fb| * (next t - t)`` over the pooled points.
    """
    n1 = a.shape[0]
    n2 = b.shape[0]
    weighted = wa.shape[0] > 0
    i = 0
    j = 0
    # Locations take the samples' own type (int64 samples stay exact).
    maxd = -np.inf
    maxloc = a[0]
    mind = np.inf
    minloc = a[0]
    # scipy reports the first extreme in the order [sorted data1, sorted
    # data2]: keep the extremes found at values of each sample apart.
    maxd_b = -np.inf
    maxloc_b = a[0]
    mind_b = np.inf
    minloc_b = a[0]
    li = 0
    w1 = 0.0
    # Fast merge while both samples have values left: one element per step,
    # written without an unpredictable branch on which sample it comes from
    # (random interleaving would mispredict half the time). The ECDFs are
    # only evaluated where the next pooled value differs (ties resolved).
    if not weighted:
        # Stop one short of either end, so a[i] and b[j] exist after the
        # step: no sentinel (int64 samples stay exact) and no branch.
        while i < n1 - 1 and j < n2 - 1:
            ai = a[i]
            bj = b[j]
            ta = 1 if ai <= bj else 0
            t = min(ai, bj)
            i += ta
            j += 1 - ta
            nxt = min(a[i], b[j])
            if nxt != t:
                d = i / n1 - j / n2
                if i > li:
                    maxd, maxloc, mind, minloc = _note_extremes(maxd, maxloc, mind, minloc, d, t)
                else:
                    maxd_b, maxloc_b, mind_b, minloc_b = _note_extremes(maxd_b, maxloc_b, mind_b, minloc_b, d, t)
                li = i
                w1 += abs(d) * (nxt - t)
    # Slow, general walk: weighted samples and the tail of the longer one.
    while i < n1 or j < n2:
        if j >= n2 or (i < n1 and a[i] <= b[j]):
            t = a[i]
        else:
            t = b[j]
        # "not above t" rather than "<= t": equal for numbers, but a NaN t (or
        # a NaN left in a sample) still advances the sample it came from, so
        # the walk always ends, whatever the input (callers return NaN for
        # NaN input before walking; this only guarantees termination).
        while i < n1 and not a[i] > t:
            i += 1
        while j < n2 and not b[j] > t:
            j += 1
        if weighted:
            fa = wa[i - 1] if i > 0 else 0.0
            fb = wb[j - 1] if j > 0 else 0.0
        else:
            fa = i / n1
            fb = j / n2
        d = fa - fb
        if i > li:
            maxd, maxloc, mind, minloc = _note_extremes(maxd, maxloc, mind, minloc, d, t)
        else:
            maxd_b, maxloc_b, mind_b, minloc_b = _note_extremes(maxd_b, maxloc_b, mind_b, minloc_b, d, t)
        li = i
        if i < n1 or j < n2:
            if j >= n2 or (i < n1 and a[i] <= b[j]):
                nxt = a[i]
            else:
                nxt = b[j]
            w1 += abs(d) * (nxt - t)
    maxd, maxloc, mind, minloc = _first_extremes(maxd, maxloc, mind, minloc, maxd_b, maxloc_b, mind_b, minloc_b)
    return maxd, maxloc, mind, minloc, w1


@numba.njit(cache=True, nogil=True)
def prob_outside_square(n, h):  # pragma: no cover - compiled
    """P(D_{n,n} >= h/n) for two samples of equal size n (alternating series, Horner form)."""
    p = 0.0
    k = n // h
    while k >= 0:
        p1 = 1.0
        for j in range(h):
            p1 = (n - k * h - j) * p1 / (n + k * h + j + 1)
        p = p1 * (1.0 - p)
        k -= 1
    return 2.0 * p


@numba.njit(cache=True, nogil=True)
def prob_outside_lattice(m, n, g, h):  # pragma: no cover - compiled
    """P(D_{m,n} >= h/lcm) by counting lattice paths that stay strictly inside the band.

    Column-by-column recursion over the band ``|x*n/g - y*m/g| < h`` with each
    column normalised (entries are path probabilities, not counts), keeping
    the dynamic range small. Returns the complement: the probability that a
    path leaves the band, i.e. the exact two-sided p-value.
    """
    if m < n:
        m, n = n, m
    mg = m // g
    ng = n // g
    minj = 0
    maxj = min(int(math.ceil(h / mg)), n + 1)
    curlen = maxj - minj
    lena = min(2 * maxj + 2, n + 1)
    a = np.ones(lena, dtype=np.float64)
    for jj in range(minj, maxj):
        a[jj] = 0.0
    for i in range(1, m + 1):
        lastminj = minj
        lastlen = curlen
        minj = max(int(math.floor((ng * i - h) / mg)) + 1, 0)
        minj = min(minj, n)
        maxj = min(int(math.ceil((ng * i + h) / mg)), n + 1)
        if maxj <= minj:
            return 1.0
        val = 0.0 if minj == 0 else 1.0
        for jj in range(maxj - minj):
            j = jj + minj
            val = (a[jj + minj - lastminj] * i + val * j) / (i + j)
            a[jj] = val
        curlen = maxj - minj
        if lastlen > curlen:
            for t in range(maxj - minj, maxj - minj + (lastlen - curlen)):
                a[t] = 1.0
    return a[maxj - minj - 1]


@numba.njit(cache=True, nogil=True)
def binom(n, k):  # pragma: no cover - compiled
    """``C(n, k)`` as a float, by scipy's rules (``scipy.special.binom`` for integers 0 <= k <= n).

    The product formula for ``k < 20`` (after ``k -> n - k`` symmetry), which
    is exact while the result is; above, ``1 / (n + 1) / B(n - k + 1, k + 1)``
    through log-gamma (inf when it overflows, as scipy).
    """
    if n >= 0 and k > n / 2:
        k = n - k
    if k < 0:
        return 0.0
    if k < 20:
        num = 1.0
        den = 1.0
        for i in range(1, int(k) + 1):
            num *= i + n - k
            den *= i
            if abs(num) > 1e50:
                num /= den
                den = 1.0
        return num / den
    a = n - k + 1.0
    b = k + 1.0
    if a + b > 171.6:
        y = math.lgamma(a) + (math.lgamma(b) - math.lgamma(a + b))
        if y < -708.0:
            return math.inf
        return 1.0 / (n + 1.0) / math.exp(y)
    beta = math.gamma(a) * math.gamma(b) / math.gamma(a + b)
    return 1.0 / (n + 1.0) / beta


@numba.njit(cache=True, nogil=True)
def count_paths_outside(m, n, g, h):  # pragma: no cover - compiled
    """Lattice paths from (0, 0) to (m, n) that reach ``m*y <= n*x - h*g`` somewhere (one-sided exact KS).

    scipy's ``_count_paths_outside_method`` (Hodges' treatment of
    Drion/Gnedenko/Korolyuk), compiled. Symmetric in ``m``, ``n``. The count
    is a float and may overflow: the caller checks it is finite and at most
    ``C(m + n, n)``, and otherwise falls back to the asymptotic p-value.
    """
    if m < n:
        m, n = n, m
    mg = m // g
    ng = n // g
    lxj = n + (mg - h) // mg
    if lxj <= 0:
        return binom(m + n, n)
    xj = np.empty(lxj, dtype=np.int64)
    for j in range(lxj):
        xj[j] = (h + mg * j + ng - 1) // ng
    b = np.zeros(lxj)
    b[0] = 1.0
    for j in range(1, lxj):
        bj = binom(xj[j] + j, j)
        for i in range(j):
            bj -= binom(xj[j] - xj[i] + j - i, j - i) * b[i]
        b[j] = bj
    num_paths = 0.0
    for j in range(lxj):
        num_paths += b[j] * binom((m - xj[j]) + (n - j), n - j)
    return num_paths


@numba.njit(cache=True, nogil=True, parallel=True)
def pearson_pairs(x):  # pragma: no cover - compiled
    """Pearson correlation of every pair of columns of ``x`` (n rows, k columns, float64), pairwise complete.

    For each pair, only the rows where both values are finite count (NaN
    and infinities left out, as pandas' ``corr``); two passes per pair (means,
    then centred sums), one pair per parallel iteration, so the result does
    not depend on the thread count. NaN where fewer than 2 rows remain or a
    column is constant on them. The diagonal is 1 (NaN for a column with
    fewer than 2 finite values or constant).
    """
    n, k = x.shape
    out = np.full((k, k), np.nan)
    npairs = k * (k + 1) // 2
    pi = np.empty(npairs, dtype=np.int64)
    pj = np.empty(npairs, dtype=np.int64)
    t = 0
    for i0 in range(k):  # the upper triangle's pairs (i <= j), row-major
        for j0 in range(i0, k):
            pi[t] = i0
            pj[t] = j0
            t += 1
    for p in numba.prange(npairs):
        i = pi[p]
        j = pj[p]
        m = 0
        sa = 0.0
        sb = 0.0
        for r in range(n):
            a = x[r, i]
            b = x[r, j]
            if math.isfinite(a) and math.isfinite(b):
                m += 1
                sa += a
                sb += b
        if m < 2:
            continue
        ma = sa / m
        mb = sb / m
        caa = 0.0
        cbb = 0.0
        cab = 0.0
        for r in range(n):
            a = x[r, i]
            b = x[r, j]
            if math.isfinite(a) and math.isfinite(b):
                da = a - ma
                db = b - mb
                caa += da * da
                cbb += db * db
                cab += da * db
        if caa > 0.0 and cbb > 0.0:
            v = cab / math.sqrt(caa * cbb)
            v = min(1.0, max(-1.0, v))
            out[i, j] = v
            out[j, i] = v
    return out


@numba.njit(cache=True, nogil=True)
def contingency(a, b, ka, kb):  # pragma: no cover - compiled
    """Counts of each (code of ``a``, code of ``b``) pair; negative codes (missing) are left out."""
    table = np.zeros((ka, kb), dtype=np.float64)
    for r in range(a.shape[0]):
        if a[r] >= 0 and b[r] >= 0:
            table[a[r], b[r]] += 1.0
    return table


@numba.njit(cache=True, nogil=True, parallel=True)
def bin_counts(x, edges):  # pragma: no cover - compiled
    """Counts of finite ``x`` in ``len(edges)+1`` bins: below, each [e_i, e_i+1), at/above the last edge.

    Bin ``0`` holds values below ``edges[0]``; the last bin values ``>= edges[-1]``.
    """
    n = x.shape[0]
    nb = edges.shape[0] + 1
    nchunks = 64
    step = (n + nchunks - 1) // nchunks
    parts = np.zeros((nchunks, nb), dtype=np.int64)
    for c in numba.prange(nchunks):
        lo = c * step
        hi = min(lo + step, n)
        for i in range(lo, hi):
            v = x[i]
            if math.isfinite(v):
                parts[c, np.searchsorted(edges, v, side="right")] += 1
    out = np.zeros(nb, dtype=np.int64)
    for c in range(nchunks):
        for k in range(nb):
            out[k] += parts[c, k]
    return out


# -- KS extremes by buckets: the exact statistic without sorting everything (:mod:`.ksbuckets`) -----------------


@numba.njit(cache=True, nogil=True, inline="always")
def _bucket_of(v, half_lo, inv, top):  # pragma: no cover - compiled
    # Monotone non-decreasing in v (each step rounds monotonically), so equal values share a bucket and
    # a bucket's values all lie between its neighbours'. Halves first: mx - mn cannot overflow.
    k = (float(v) * 0.5 - half_lo) * inv
    return int(min(max(k, 0.0), top))


@numba.njit(cache=True, nogil=True, parallel=True)
def bucket_counts(x, half_lo, inv, nb, nchunks):  # pragma: no cover - compiled
    """Counts of ``x`` (float64 or int64, no NaN) per bucket, one row per chunk: ``(nchunks, nb)`` int32.

    A value's bucket is ``floor((v/2 - half_lo) * inv)`` clamped to ``[0, nb)``.
    Rows per fixed chunk (not per thread): the gather after it writes each
    chunk's values at offsets these rows give, whatever the thread count.
    """
    n = x.shape[0]
    counts = np.zeros((nchunks, nb), dtype=np.int32)  # a chunk holds < 2**31 values; half the cache of int64
    step = (n + nchunks - 1) // nchunks
    top = float(nb - 1)
    for c in numba.prange(nchunks):
        lo = min(c * step, n)
        hi = min(lo + step, n)
        buf = np.empty(SUB, dtype=np.int32)
        row = counts[c]
        for base in range(lo, hi, SUB):
            cnt = min(SUB, hi - base)
            xs = x[base:base + cnt]  # indexed from 0: vector loads, not gathers (see block_moments)
            for j in range(cnt):  # vectorised
                buf[j] = _bucket_of(xs[j], half_lo, inv, top)
            for j in range(cnt):
                row[buf[j]] += 1
    return counts


@numba.njit(cache=True, nogil=True, parallel=True)
def bucket_gather(x, half_lo, inv, keep, starts):  # pragma: no cover - compiled
    """The values of ``x`` whose bucket has ``keep[bucket]`` set, chunk after chunk (unsorted).

    ``starts[c]`` is where chunk ``c`` (the chunks of :func:`bucket_counts`,
    ``len(starts) - 1`` of them) writes; ``starts[-1]`` the total.
    """
    n = x.shape[0]
    nchunks = starts.shape[0] - 1
    out = np.empty(starts[nchunks], dtype=x.dtype)
    step = (n + nchunks - 1) // nchunks
    top = float(keep.shape[0] - 1)
    for c in numba.prange(nchunks):
        lo = min(c * step, n)
        hi = min(lo + step, n)
        w = starts[c]
        buf = np.empty(SUB, dtype=np.int32)
        for base in range(lo, hi, SUB):
            cnt = min(SUB, hi - base)
            xs = x[base:base + cnt]  # indexed from 0: vector loads, not gathers (see block_moments)
            for j in range(cnt):  # vectorised
                buf[j] = _bucket_of(xs[j], half_lo, inv, top)
            for j in range(cnt):
                if keep[buf[j]]:  # rarely: predicted
                    out[w] = xs[j]
                    w += 1
    return out


@numba.njit(cache=True, nogil=True)
def walk_buckets(sa, sb, ca, cb, a_before, b_before, n1, n2):  # pragma: no cover - compiled
    """KS extremes of two samples from the sorted values of some of their buckets (:func:`ecdf_walk`'s
    ``(max_diff, argmax_value, min_diff, argmin_value)``, over the values of these buckets only).

    ``sa``/``sb``: the kept buckets' values, sorted (so bucket after bucket);
    per kept bucket ``k`` (in order), ``ca[k]``/``cb[k]`` values of each and
    ``a_before[k]``/``b_before[k]``, the counts of each sample below the
    bucket. Within a bucket the walk is :func:`ecdf_walk`'s, with the ECDFs
    offset by the counts before it, so each pooled value's difference is the
    same float ``i/n1 - j/n2`` the whole walk computes, and the first extreme
    in scipy's order wins in the same way.
    """
    maxd = -np.inf
    mind = np.inf
    maxd_b = -np.inf
    mind_b = np.inf
    first = sa[0] if sa.shape[0] > 0 else sb[0]
    maxloc = first
    minloc = first
    maxloc_b = first
    minloc_b = first
    pa = 0
    pb = 0
    for k in range(ca.shape[0]):
        ea = pa + ca[k]
        eb = pb + cb[k]
        i = pa
        j = pb
        li = i
        while i < ea or j < eb:
            if j >= eb or (i < ea and sa[i] <= sb[j]):
                t = sa[i]
            else:
                t = sb[j]
            while i < ea and not sa[i] > t:
                i += 1
            while j < eb and not sb[j] > t:
                j += 1
            d = (a_before[k] + i - pa) / n1 - (b_before[k] + j - pb) / n2
            if i > li:
                maxd, maxloc, mind, minloc = _note_extremes(maxd, maxloc, mind, minloc, d, t)
            else:
                maxd_b, maxloc_b, mind_b, minloc_b = _note_extremes(maxd_b, maxloc_b, mind_b, minloc_b, d, t)
            li = i
        pa = ea
        pb = eb
    return _first_extremes(maxd, maxloc, mind, minloc, maxd_b, maxloc_b, mind_b, minloc_b)
