"""Column profiles: one pass per column, mergeable, JSON round-trip.

A :class:`ColumnProfile` holds the *state* (counts, central moments, sketches),
from which the reported statistics are derived, so two profiles merge exactly:
counts add, moments combine with Chan's/Pébay's formulas, sketches merge.

Conventions (docs/kernels.md, "Profiles"):

- ``count`` is the number of rows; ``nulls`` missing values (Arrow nulls,
  ``None``, empty CSV cells); ``nan``, ``pos_inf``, ``neg_inf`` count those
  float values. Every other statistic of a numeric column is over the finite
  values only (``n``).
- ``variance`` is the sample variance (``ddof=1``, None below 2 values);
  ``skewness`` and ``kurtosis`` (excess) are the biased moment estimators,
  as ``scipy.stats.skew``/``kurtosis`` with their defaults; None when the
  column is constant or has no finite value.
- Integer columns keep exact integer ``min``/``max``; moments are float64
  (so values near the int64 limits do not overflow, they round).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DataError, DataNotFoundError
from . import _jit
from .columns import FLOAT_EXACT_INT, CategoricalBatch, NumericBatch, columns_of
from .sketches import (
    DEFAULT_MAX_BINS,
    DEFAULT_SKETCH_SIZE,
    GridHistogram,
    HyperLogLog,
    QuantileSketch,
    hash_strings,
)

FORMAT = "edgeorch.profile/1"
QUANTILES = (0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99)
TOP_K = 20
# Categorical value counts are kept exactly up to this many distinct values;
# beyond it the rarest are dropped (``counts_exact`` becomes false) so a
# column of ids cannot exhaust memory.
MAX_TRACKED = 100_000


def _num(v: float) -> float | None:
    return float(v) if v is not None and math.isfinite(v) else None


@dataclass
class ColumnProfile:
    """Mergeable state of one column. ``kind`` is ``numeric`` or ``categorical``."""

    name: str
    kind: str
    dtype: str  # inferred type: integer, float, boolean, string, mixed, empty
    count: int = 0
    nulls: int = 0
    # numeric state
    nan: int = 0
    pos_inf: int = 0
    neg_inf: int = 0
    zeros: int = 0
    negatives: int = 0
    n: int = 0
    mean: float = 0.0
    m2: float = 0.0
    m3: float = 0.0
    m4: float = 0.0
    min: float | int | None = None
    max: float | int | None = None
    histogram: GridHistogram = field(default_factory=GridHistogram)
    sketch: QuantileSketch = field(default_factory=QuantileSketch)
    hll: HyperLogLog = field(default_factory=HyperLogLog)
    # categorical state
    value_counts: dict[str, int] = field(default_factory=dict)
    counts_exact: bool = True
    # integers beyond ±2**53 were seen: the float64 sketch cannot tell them apart,
    # so the distinct count comes from the HLL (fed with the exact integers)
    ints_beyond_float: bool = False

    # -- derived statistics -------------------------------------------------

    @property
    def variance(self) -> float | None:
        return self.m2 / (self.n - 1) if self.n >= 2 else None

    @property
    def skewness(self) -> float | None:
        # None as well when the powers of tiny deviations underflow (data on
        # the scale of 1e-80 or below): the third and fourth moments are lost.
        if self.n < 1 or self.m2 <= 0.0 or self.m2 ** 1.5 == 0.0 or self.m4 == 0.0:
            return None
        return math.sqrt(self.n) * self.m3 / self.m2 ** 1.5

    @property
    def kurtosis(self) -> float | None:
        if self.n < 1 or self.m2 <= 0.0 or self.m2 * self.m2 == 0.0 or self.m4 == 0.0:
            return None
        return self.n * self.m4 / (self.m2 * self.m2) - 3.0

    @property
    def distinct(self) -> int:
        """Exact when every value is still known (small numeric, tracked categorical), else HLL."""
        if self.kind == "categorical" and self.counts_exact:
            return len(self.value_counts)
        if self.kind == "numeric" and self.sketch.exact and not self.ints_beyond_float:
            return len(np.unique(self.sketch.values + 0.0))
        return int(round(self.hll.estimate()))

    @property
    def distinct_exact(self) -> bool:
        return (self.kind == "categorical" and self.counts_exact) or (
            self.kind == "numeric" and self.sketch.exact and not self.ints_beyond_float)

    def top(self, k: int = TOP_K) -> list[tuple[str, int]]:
        """Most frequent values, most frequent first (ties by value)."""
        return sorted(self.value_counts.items(), key=lambda kv: (-kv[1], kv[0]))[:k]

    def summary(self) -> dict[str, Any]:
        """Reported statistics, strict-JSON ready (NaN/inf as None)."""
        out: dict[str, Any] = {"column": self.name, "type": self.dtype, "count": self.count, "nulls": self.nulls,
                               "distinct": self.distinct, "distinct_exact": self.distinct_exact}
        if self.kind == "numeric":
            qs = self.sketch.quantiles(QUANTILES)
            out.update({
                "nan": self.nan, "pos_inf": self.pos_inf, "neg_inf": self.neg_inf, "zeros": self.zeros,
                "negatives": self.negatives, "finite": self.n,
                "min": self.min if isinstance(self.min, int) else _num(self.min) if self.min is not None else None,
                "max": self.max if isinstance(self.max, int) else _num(self.max) if self.max is not None else None,
                "mean": _num(self.mean) if self.n else None,
                "variance": _num(self.variance) if self.variance is not None else None,
                "std": _num(math.sqrt(self.variance)) if self.variance is not None else None,
                "skewness": _num(self.skewness) if self.skewness is not None else None,
                "kurtosis": _num(self.kurtosis) if self.kurtosis is not None else None,
                "quantiles": {f"p{round(q * 100)}": _num(v) if v is not None else None for q, v in zip(QUANTILES, qs)},
                "quantiles_exact": self.sketch.exact,
            })
        else:
            out["top"] = [[v, c] for v, c in self.top()]
            out["counts_exact"] = self.counts_exact
        return out

    # -- serialisation --------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"name": self.name, "kind": self.kind, "dtype": self.dtype, "count": self.count,
                             "nulls": self.nulls, "hll": self.hll.to_dict()}
        if self.kind == "numeric":
            d.update({
                "nan": self.nan, "pos_inf": self.pos_inf, "neg_inf": self.neg_inf, "zeros": self.zeros,
                "negatives": self.negatives, "n": self.n,
                # repr() keeps every bit of a float; JSON floats would too, but
                # the moments may be inf for absurd data and JSON has no inf.
                "moments": [repr(float(v)) for v in (self.mean, self.m2, self.m3, self.m4)],
                "min": self.min if isinstance(self.min, int) or self.min is None else repr(float(self.min)),
                "max": self.max if isinstance(self.max, int) or self.max is None else repr(float(self.max)),
                "histogram": self.histogram.to_dict(), "sketch": self.sketch.to_dict(),
            })
            if self.ints_beyond_float:
                d["ints_beyond_float"] = True
        else:
            d.update({"value_counts": self.value_counts, "counts_exact": self.counts_exact})
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ColumnProfile:
        cp = cls(name=d["name"], kind=d["kind"], dtype=d["dtype"], count=int(d["count"]), nulls=int(d["nulls"]),
                 hll=HyperLogLog.from_dict(d["hll"]))
        if cp.kind == "numeric":
            cp.nan, cp.pos_inf, cp.neg_inf = int(d["nan"]), int(d["pos_inf"]), int(d["neg_inf"])
            cp.zeros, cp.negatives, cp.n = int(d["zeros"]), int(d["negatives"]), int(d["n"])
            cp.mean, cp.m2, cp.m3, cp.m4 = (float(v) for v in d["moments"])
            cp.ints_beyond_float = bool(d.get("ints_beyond_float", False))
            cp.min = d["min"] if isinstance(d["min"], int) or d["min"] is None else float(d["min"])
            cp.max = d["max"] if isinstance(d["max"], int) or d["max"] is None else float(d["max"])
            cp.histogram = GridHistogram.from_dict(d["histogram"])
            cp.sketch = QuantileSketch.from_dict(d["sketch"])
        else:
            cp.value_counts = {str(k): int(v) for k, v in d["value_counts"].items()}
            cp.counts_exact = bool(d["counts_exact"])
        return cp


@dataclass
class Profile:
    """Profiles of a table's columns, in column order, plus the row count."""

    columns: dict[str, ColumnProfile]
    rows: int = 0
    source: str | None = None

    def __getitem__(self, name: str) -> ColumnProfile:
        return self.columns[name]

    def summary(self) -> list[dict[str, Any]]:
        return [c.summary() for c in self.columns.values()]

    def to_dict(self) -> dict[str, Any]:
        return {"format": FORMAT, "rows": self.rows, "source": self.source,
                "columns": [c.to_dict() for c in self.columns.values()]}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), allow_nan=False)

    @classmethod
    def from_dict(cls, d: dict[str, Any], *, file: str | None = None) -> Profile:
        if not isinstance(d, dict) or d.get("format") != FORMAT:
            raise DataError("not an edgeorch profile", file=file, value=d.get("format") if isinstance(d, dict) else None,
                            expected=f"a JSON document with format {FORMAT!r}")
        try:
            cols = [ColumnProfile.from_dict(c) for c in d["columns"]]
        except (KeyError, TypeError, ValueError) as exc:
            raise DataError(f"malformed profile: {exc}", file=file) from None
        return cls({c.name: c for c in cols}, int(d["rows"]), d.get("source"))

    @classmethod
    def from_json(cls, text: str, *, file: str | None = None) -> Profile:
        try:
            doc = json.loads(text)
        except json.JSONDecodeError as exc:
            raise DataError(f"malformed JSON: {exc.msg}", file=file, line=exc.lineno, column=exc.colno) from None
        return cls.from_dict(doc, file=file)

    def save(self, path: str | Path) -> None:
        """Write atomically (temp file + rename), so readers never see half a profile."""
        import os

        path = Path(path)
        tmp = path.with_name(path.name + ".tmp")
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(self.to_json())
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: str | Path) -> Profile:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except FileNotFoundError:
            raise DataNotFoundError("profile not found", file=str(path)) from None
        except OSError as exc:
            raise DataError(f"cannot read profile: {exc.strerror}", file=str(path)) from None
        return cls.from_json(text, file=str(path))


# ---------------------------------------------------------------------------
# building


def profile_numeric(name: str, batch: NumericBatch, *, sketch_size: int = DEFAULT_SKETCH_SIZE,
                    max_bins: int = DEFAULT_MAX_BINS, seed: int = 0) -> ColumnProfile:
    """Profile one numeric batch (float64 values, nulls already counted)."""
    x = batch.values
    cp = ColumnProfile(name, "numeric", batch.dtype, count=batch.nulls + len(x), nulls=batch.nulls)
    if len(x) == 0:
        cp.sketch = QuantileSketch(sketch_size)
        return cp
    counts, stats = _jit.block_moments(x)
    tot = counts.sum(axis=0)
    _, mean, m2, m3, m4, mn, mx = _jit.reduce_blocks(stats)
    cp.n, cp.nan, cp.pos_inf, cp.neg_inf, cp.zeros, cp.negatives = (int(v) for v in tot)
    cp.mean, cp.m2, cp.m3, cp.m4 = mean, m2, m3, m4
    if cp.n:
        cp.min, cp.max = (batch.int_min, batch.int_max) if batch.int_min is not None else (float(mn), float(mx))
        exp, start, nbins = GridHistogram.grid_for(float(mn), float(mx), max_bins)
        hist, regs = _jit.histogram_and_hll(x, math.ldexp(1.0, -exp), float(start), nbins, cp.hll.p)
        cp.histogram = GridHistogram(exp, start, hist)
        if batch.ints is not None:
            cp.ints_beyond_float = True
            regs = _exact_int_registers(batch.ints, x, cp.hll.p)
        cp.hll = HyperLogLog(cp.hll.p, regs)
        finite = x if cp.n == len(x) else x[np.isfinite(x)]
        cp.sketch = QuantileSketch.of(finite, sketch_size, np.random.default_rng([seed, cp.n]))
    else:
        cp.sketch = QuantileSketch(sketch_size)
    return cp


def _exact_int_registers(ints: np.ndarray, x: np.ndarray, p: int) -> np.ndarray:
    """HLL registers of an integer column hashed by exact value (``x`` is ``ints`` as float64).

    Integers within ±2**53 hash as their float64 bit pattern, exactly as
    :func:`_jit.histogram_and_hll` hashes floats (so merged float and integer
    batches of a column agree); those beyond hash as their own 64-bit pattern,
    where float64 would round distinct values onto one.
    """
    keys = (x + 0.0).view(np.uint64).copy()
    big = np.asarray((ints > FLOAT_EXACT_INT) | (ints < -FLOAT_EXACT_INT), dtype=bool)
    if ints.dtype == object:
        keys[big] = np.asarray([int(v) & 0xFFFF_FFFF_FFFF_FFFF for v in ints[big]], dtype=np.uint64)
    else:
        keys[big] = ints[big].astype(np.uint64)  # int64 wraps to its two's-complement pattern
    regs = np.zeros(1 << p, dtype=np.uint8)
    _jit.hll_add_hashes(regs, keys, p)
    return regs


def profile_categorical(name: str, batch: CategoricalBatch, *, sketch_size: int = DEFAULT_SKETCH_SIZE) -> ColumnProfile:
    """Profile one categorical batch (distinct values with their counts)."""
    cp = ColumnProfile(name, "categorical", batch.dtype, count=batch.nulls + int(sum(batch.counts)), nulls=batch.nulls)
    cp.sketch = QuantileSketch(sketch_size)
    cp.value_counts = dict(zip(batch.values, (int(c) for c in batch.counts)))
    cp.hll.add_hashes(hash_strings(batch.values))
    _cap(cp)
    return cp


def _cap(cp: ColumnProfile) -> None:
    if len(cp.value_counts) > MAX_TRACKED:
        cp.value_counts = dict(cp.top(MAX_TRACKED))
        cp.counts_exact = False


_TYPE_ORDER = {"empty": 0, "boolean": 1, "integer": 2, "float": 3}


def _merged_dtype(a: str, b: str) -> str:
    if a == b or b == "empty":
        return a
    if a == "empty":
        return b
    if a in _TYPE_ORDER and b in _TYPE_ORDER:
        return a if _TYPE_ORDER[a] > _TYPE_ORDER[b] else b
    return "mixed"


def merge_columns(a: ColumnProfile, b: ColumnProfile, *, max_bins: int = DEFAULT_MAX_BINS) -> ColumnProfile:
    """Merge two profiles of the same column (see :func:`merge_profiles`)."""
    if a.kind != b.kind:
        # An all-null or empty batch is "numeric" by default: let the other win.
        if a.n == 0 and not a.value_counts and a.dtype == "empty":
            a = ColumnProfile(a.name, b.kind, "empty", a.count, a.nulls)
        elif b.n == 0 and not b.value_counts and b.dtype == "empty":
            b = ColumnProfile(b.name, a.kind, "empty", b.count, b.nulls)
        else:
            raise DataError("cannot merge a numeric and a categorical profile", field=a.name,
                            value=f"{a.dtype} + {b.dtype}", expected="the same column type in both profiles")
    out = ColumnProfile(a.name, a.kind, _merged_dtype(a.dtype, b.dtype), a.count + b.count, a.nulls + b.nulls)
    out.hll = a.hll.merge(b.hll)
    out.ints_beyond_float = a.ints_beyond_float or b.ints_beyond_float
    out.sketch = a.sketch.merge(b.sketch)
    if a.kind == "numeric":
        for attr in ("nan", "pos_inf", "neg_inf", "zeros", "negatives"):
            setattr(out, attr, getattr(a, attr) + getattr(b, attr))
        _, out.mean, out.m2, out.m3, out.m4 = _jit.combine_moments(
            float(a.n), a.mean, a.m2, a.m3, a.m4, float(b.n), b.mean, b.m2, b.m3, b.m4)
        out.n = a.n + b.n
        mins = [v for v in (a.min, b.min) if v is not None]
        maxs = [v for v in (a.max, b.max) if v is not None]
        out.min = min(mins) if mins else None
        out.max = max(maxs) if maxs else None
        out.histogram = a.histogram.merge(b.histogram, max_bins)
    else:
        vc = dict(a.value_counts)
        for k, v in b.value_counts.items():
            vc[k] = vc.get(k, 0) + v
        out.value_counts = vc
        out.counts_exact = a.counts_exact and b.counts_exact
        _cap(out)
    return out


def merge_profiles(a: Profile, b: Profile) -> Profile:
    """Profile of the concatenation of the data behind ``a`` and ``b``.

    Counts, min, max, moments and histograms are exact (moments to
    floating-point rounding); quantile sketches and HLL merge within their
    stated error. Columns present in only one profile are kept as they are
    (their rows from the other side count as missing: not added).
    """
    cols: dict[str, ColumnProfile] = {}
    for name in list(a.columns) + [c for c in b.columns if c not in a.columns]:
        if name in a.columns and name in b.columns:
            cols[name] = merge_columns(a.columns[name], b.columns[name])
        else:
            cols[name] = a.columns.get(name) or b.columns[name]
    return Profile(cols, a.rows + b.rows, a.source if a.source == b.source else None)


def profile_batches(batches: Iterable[dict[str, NumericBatch | CategoricalBatch]], *,
                    sketch_size: int = DEFAULT_SKETCH_SIZE, max_bins: int = DEFAULT_MAX_BINS,
                    source: str | None = None) -> Profile:
    """Profile a stream of column batches (chunks of a file), merging as it goes."""
    result: Profile | None = None
    for i, batch in enumerate(batches):
        cols: dict[str, ColumnProfile] = {}
        rows = 0
        for name, col in batch.items():
            if isinstance(col, NumericBatch):
                cols[name] = profile_numeric(name, col, sketch_size=sketch_size, max_bins=max_bins, seed=i)
            else:
                cols[name] = profile_categorical(name, col, sketch_size=sketch_size)
            rows = cols[name].count
        part = Profile(cols, rows, source)
        result = part if result is None else merge_profiles(result, part)
    return result if result is not None else Profile({}, 0, source)


def profile(data: Any, *, columns: list[str] | None = None, sketch_size: int = DEFAULT_SKETCH_SIZE,
            max_bins: int = DEFAULT_MAX_BINS, progress: Any = None) -> Profile:
    """Profile ``data``: a path (CSV, Parquet, .npy/.npz, JSON lines), a mapping of
    column name to values, a pyarrow Table, or one 1-D array (column ``value``).

    Files are read in chunks (Parquet row groups, CSV blocks), so files larger
    than memory work. Raises :class:`DataError` naming file/column/row for
    unreadable data and unknown ``columns``.
    """
    if isinstance(data, (str, Path)):
        from .io import read_batches

        return profile_batches(read_batches(data, columns=columns, progress=progress), sketch_size=sketch_size,
                               max_bins=max_bins, source=str(data))
    return profile_batches([columns_of(data, columns)], sketch_size=sketch_size, max_bins=max_bins)


def iter_numeric(profile_: Profile) -> Iterator[ColumnProfile]:
    return (c for c in profile_.columns.values() if c.kind == "numeric")
