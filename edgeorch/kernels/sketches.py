"""Mergeable summaries: a power-of-two grid histogram, a quantile sample, HyperLogLog.

Each summary merges exactly with another of its kind, so the profile of a
file read in chunks equals the profile of the same data read at once.

Error bounds (stated in docs/kernels.md and checked by the tests):

- :class:`QuantileSketch` keeps all values up to ``size`` (quantiles are then
  exact, numpy's ``linear`` method); beyond that it keeps ``size`` values drawn
  uniformly with replacement from everything seen, so by the
  Dvoretzky–Kiefer–Wolfowitz inequality the rank error of every quantile at
  once exceeds ``eps`` with probability at most ``2 exp(-2 size eps^2)``. At
  the default ``size = 32768``: rank error <= 1% with probability >= 99.7%
  (typical error 0.3%).
- :class:`HyperLogLog` with ``p = 14`` (16384 one-byte registers, 64-bit hash)
  has a relative standard error of ``1.04 / sqrt(2**p)`` = 0.8%; estimates use
  Ertl's improved estimator (2017), which needs no bias tables and is unbiased
  from one distinct value up to billions. About 2% error at 2.5 sigma.
- :class:`GridHistogram` is exact: bins are ``[k w, (k+1) w)`` for integers
  ``k`` and a power-of-two width ``w``, so any two grids nest and merging is
  a sum after coarsening the finer one.
"""

from __future__ import annotations

import base64
import math
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

DEFAULT_SKETCH_SIZE = 32768
DEFAULT_MAX_BINS = 64
HLL_P = 14


def _b64(arr: np.ndarray) -> str:
    return base64.b64encode(np.ascontiguousarray(arr).tobytes()).decode("ascii")


def _unb64(text: str, dtype: Any) -> np.ndarray:
    return np.frombuffer(base64.b64decode(text), dtype=dtype).copy()


def rank_error_bound(size: int, confidence: float = 0.99) -> float:
    """Rank error not exceeded (for all quantiles at once) with ``confidence`` (DKW)."""
    return math.sqrt(math.log(2.0 / (1.0 - confidence)) / (2.0 * size))


# ---------------------------------------------------------------------------
# Grid histogram


def _floor_scaled(v: float, exp: int) -> int:
    """``floor(v / 2**exp)``, exact also when the scaled value underflows."""
    t = math.ldexp(v, -exp)
    if t == 0.0 and v < 0.0:
        return -1
    return math.floor(t)


@dataclass
class GridHistogram:
    """Counts on the grid ``[(start + i) * 2**exp, (start + i + 1) * 2**exp)``.

    ``start`` is a Python int (it can exceed int64 for huge values on a fine
    grid). An empty histogram has no counts.
    """

    exp: int = 0
    start: int = 0
    counts: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))

    @property
    def width(self) -> float:
        return math.ldexp(1.0, self.exp)

    @property
    def edges(self) -> np.ndarray:
        """``len(counts) + 1`` bin edges (floats)."""
        k = np.arange(len(self.counts) + 1, dtype=np.float64) + float(self.start)
        with np.errstate(over="ignore"):  # the last edge of a grid at float64's limit is inf (said so, not warned)
            return np.ldexp(k, self.exp)

    @staticmethod
    def grid_for(lo: float, hi: float, max_bins: int = DEFAULT_MAX_BINS) -> tuple[int, int, int]:
        """``(exp, start, nbins)``: the finest power-of-two grid covering ``[lo, hi]`` in ``max_bins`` bins."""
        if hi == lo:
            # One bin as wide as the value's binade (1 for zero): merges with
            # anything and still tells magnitudes apart.
            exp = math.frexp(lo)[1] - 1 if lo != 0 else 0
        else:
            exp = math.frexp((hi - lo) / max_bins)[1] if math.isfinite(hi - lo) else math.frexp(max(abs(lo), abs(hi)))[1]
        # Keep 2**-exp finite (subnormal data): a coarser grid is still a grid.
        exp = min(max(exp, -1000), 1023)
        while True:
            start = _floor_scaled(lo, exp)
            stop = _floor_scaled(hi, exp)
            if stop - start + 1 <= max_bins or exp >= 1023:
                return exp, start, stop - start + 1
            exp += 1

    def coarsen(self, exp: int) -> GridHistogram:
        """The same counts on the coarser grid ``2**exp`` (``exp >= self.exp``)."""
        if exp <= self.exp or len(self.counts) == 0:
            return GridHistogram(max(exp, self.exp), self.start >> max(exp - self.exp, 0), self.counts.copy())
        shift = exp - self.exp
        ks = [(self.start + i) >> shift for i in range(len(self.counts))]  # floor division
        start = ks[0]
        out = np.zeros(ks[-1] - start + 1, dtype=np.int64)
        np.add.at(out, np.asarray([k - start for k in ks]), self.counts)
        return GridHistogram(exp, start, out)

    def merge(self, other: GridHistogram, max_bins: int = DEFAULT_MAX_BINS) -> GridHistogram:
        """Exact sum of two histograms on the coarser of the two grids (coarsened to fit ``max_bins``)."""
        if len(other.counts) == 0:
            return GridHistogram(self.exp, self.start, self.counts.copy())
        if len(self.counts) == 0:
            return GridHistogram(other.exp, other.start, other.counts.copy())
        exp = max(self.exp, other.exp)
        while True:
            a, b = self.coarsen(exp), other.coarsen(exp)
            start = min(a.start, b.start)
            stop = max(a.start + len(a.counts), b.start + len(b.counts))
            if stop - start <= max_bins:
                break
            exp += 1
        out = np.zeros(stop - start, dtype=np.int64)
        out[a.start - start:a.start - start + len(a.counts)] += a.counts
        out[b.start - start:b.start - start + len(b.counts)] += b.counts
        return GridHistogram(exp, start, out)

    def to_dict(self) -> dict[str, Any]:
        return {"exp": self.exp, "start": self.start, "counts": [int(c) for c in self.counts]}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> GridHistogram:
        return cls(int(d["exp"]), int(d["start"]), np.asarray(d["counts"], dtype=np.int64))


# ---------------------------------------------------------------------------
# Quantile sketch


@dataclass
class QuantileSketch:
    """A uniform sample of the finite values seen (all of them while ``n <= size``).

    ``values`` holds either every value (``exact``) or ``size`` independent
    uniform draws from all ``n`` values, in random order.
    """

    size: int = DEFAULT_SKETCH_SIZE
    n: int = 0
    values: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.float64))

    @property
    def exact(self) -> bool:
        return self.n <= self.size

    @classmethod
    def of(cls, finite: np.ndarray, size: int = DEFAULT_SKETCH_SIZE, rng: np.random.Generator | None = None) -> QuantileSketch:
        """Sketch of ``finite`` (float64, no NaN/inf)."""
        n = int(finite.shape[0])
        if n <= size:
            return cls(size, n, np.array(finite, dtype=np.float64))
        rng = rng or np.random.default_rng(n)
        return cls(size, n, finite[rng.integers(0, n, size)].astype(np.float64, copy=False))

    def _draw(self, k: int, rng: np.random.Generator) -> np.ndarray:
        # k independent uniform draws from the values this sketch stands for.
        if self.exact:
            return self.values[rng.integers(0, self.n, k)] if self.n else np.zeros(0)
        return self.values[:k]  # already independent draws in random order

    def merge(self, other: QuantileSketch, rng: np.random.Generator | None = None) -> QuantileSketch:
        """Sketch of the union; exact when the union fits, else a uniform sample of it."""
        size = min(self.size, other.size)
        n = self.n + other.n
        if n <= size and self.exact and other.exact:
            return QuantileSketch(size, n, np.concatenate([self.values, other.values]))
        rng = rng or np.random.default_rng([self.n, other.n])
        # Each of the `size` draws from the union comes from self with
        # probability n_self / n: the split is binomial.
        k = int(rng.binomial(size, self.n / n)) if n else 0
        vals = np.concatenate([self._draw(k, rng), other._draw(size - k, rng)])
        rng.shuffle(vals)
        return QuantileSketch(size, n, vals)

    def quantiles(self, qs: np.ndarray | Sequence[float]) -> list[float | None]:
        """Quantiles (numpy ``linear`` method) of the sample; ``None`` when empty."""
        if len(self.values) == 0:
            return [None for _ in qs]
        return [float(v) for v in np.quantile(self.values, np.asarray(qs, dtype=np.float64))]

    def cdf(self, x: np.ndarray) -> np.ndarray:
        """Right-continuous ECDF of the sample at ``x``."""
        s = np.sort(self.values)
        return np.searchsorted(s, x, side="right") / max(len(s), 1)

    def to_dict(self) -> dict[str, Any]:
        return {"size": self.size, "n": self.n, "values_f64le_b64": _b64(self.values.astype("<f8"))}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> QuantileSketch:
        return cls(int(d["size"]), int(d["n"]), _unb64(d["values_f64le_b64"], "<f8").astype(np.float64))


# ---------------------------------------------------------------------------
# HyperLogLog


def _sigma(x: float) -> float:
    if x == 1.0:
        return math.inf
    y, z = 1.0, x
    while True:
        x *= x
        z_old = z
        z += x * y
        y += y
        if z == z_old:
            return z


def _tau(x: float) -> float:
    if x == 0.0 or x == 1.0:
        return 0.0
    y, z = 1.0, 1.0 - x
    while True:
        x = math.sqrt(x)
        z_old = z
        y *= 0.5
        z -= (1.0 - x) ** 2 * y
        if z == z_old:
            return z / 3.0


@dataclass
class HyperLogLog:
    """Distinct-count sketch: ``2**p`` registers of max leading-zero ranks."""

    p: int = HLL_P
    registers: np.ndarray = field(default_factory=lambda: np.zeros(1 << HLL_P, dtype=np.uint8))

    def merge(self, other: HyperLogLog) -> HyperLogLog:
        if other.p != self.p:
            raise ValueError(f"cannot merge HyperLogLog sketches of precision {self.p} and {other.p}")
        return HyperLogLog(self.p, np.maximum(self.registers, other.registers))

    def add_hashes(self, hashes: np.ndarray) -> None:
        """Add 64-bit hashes (uint64) of values."""
        from . import _jit

        _jit.hll_add_hashes(self.registers, np.ascontiguousarray(hashes, dtype=np.uint64), self.p)

    def estimate(self) -> float:
        """Ertl's improved estimator (no bias correction tables needed)."""
        m = 1 << self.p
        q = 64 - self.p
        c = np.bincount(self.registers, minlength=q + 2).astype(np.float64)
        z = m * _tau(1.0 - c[q + 1] / m)
        for k in range(q, 0, -1):
            z = 0.5 * (z + c[k])
        z += m * _sigma(c[0] / m)
        if z == math.inf:
            return 0.0
        return (m * m / (2.0 * math.log(2.0))) / z

    def to_dict(self) -> dict[str, Any]:
        return {"p": self.p, "registers_b64": _b64(self.registers)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> HyperLogLog:
        return cls(int(d["p"]), _unb64(d["registers_b64"], np.uint8))


def hash_strings(values: list[str]) -> np.ndarray:
    """Stable 64-bit hashes of strings (blake2b), independent of PYTHONHASHSEED."""
    import hashlib

    out = np.empty(len(values), dtype=np.uint64)
    for i, v in enumerate(values):
        out[i] = int.from_bytes(hashlib.blake2b(v.encode("utf-8", "surrogatepass"), digest_size=8).digest(), "little")
    return out
