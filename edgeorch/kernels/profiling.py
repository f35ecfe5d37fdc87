"""Column profiles: one pass per column, mergeable, JSON round-trip.

A :class:`ColumnProfile` holds the *state* (counts, central moments, sketches),
from which the reported statistics are derived, so two profiles merge exactly:
counts add, moments combine with Chan's/Pébay's formulas, sketches merge.
``to_state()``/``from_state()`` (and ``Profile.to_json``/``save``) carry the
state; ``to_dict()`` is the report (the reported statistics, JSON-ready), and
``to_pandas()``/``_repr_html_()`` show it (:mod:`.results`).

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
- Datetime columns (``kind`` ``datetime``, type ``datetime`` or ``date``) keep
  the numeric state of their instants in nanoseconds (exact ``min``/``max``)
  and the gaps between consecutive distinct instants: the largest exactly,
  the others in a quantile sketch (the median gap). Gaps merge exactly when
  one profile's instants all precede the other's (a file read in time
  order); when two merged profiles overlap in time the gaps are unknown
  (None) and the distinct count falls back to the HyperLogLog.
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
from .columns import (
    FLOAT_EXACT_INT,
    CategoricalBatch,
    DatetimeBatch,
    NumericBatch,
    columns_of,
    merged_dtype,
    merged_text_dtype,
)
from .datetimes import iso, seconds
from .results import ResultView, Table, doc_tables, strict, summary_tables
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
# Kinds whose state is the numeric one (moments, histogram, quantile sketch).
NUMERIC_STATE = ("numeric", "datetime")


def _num(v: float) -> float | None:
    return float(v) if v is not None and math.isfinite(v) else None


@dataclass(repr=False)
class ColumnProfile(ResultView):
    """Mergeable state of one column. ``kind`` is ``numeric``, ``categorical`` or ``datetime``."""

    name: str
    kind: str
    dtype: str  # inferred type: integer, float, boolean, string, mixed, empty, datetime, date
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
    # every value is a number's text in a text column (CategoricalBatch.numbers_only): mixed beside other text
    numbers_only: bool = False
    # integers beyond ±2**53 were seen: the float64 sketch cannot tell them apart,
    # so the distinct count comes from the HLL (fed with the exact integers)
    ints_beyond_float: bool = False
    # datetime state: the zone (None: naive); gaps (ns) between consecutive distinct
    # instants, None when unknown (overlapping merge); the largest gap, exact
    tz: str | None = None
    gaps: QuantileSketch | None = field(default_factory=QuantileSketch)
    max_gap: int | None = None

    # -- derived statistics -------------------------------------------------

    @property
    def variance(self) -> float | None:
        """None below 2 values, and for integers beyond ±2**53 that float64 rounded onto one value though they
        differ (min < max): a variance of 0 said such a column was constant."""
        if self.n < 2 or (self.m2 == 0.0 and self.ints_beyond_float and self.min != self.max):
            return None
        if self._constant:  # exactly 0 (the merged moments' rounding said 3e-30 for 1,000 values of 3.3)
            return 0.0
        return self.m2 / (self.n - 1)

    def _mean_within(self) -> float:
        """The mean, never outside [min, max] (1,000 values of 3.3 averaged to 3.299999999999998)."""
        mean = float(self.mean)
        if self.min is None or self.max is None or not math.isfinite(mean):
            return mean
        return min(max(mean, float(self.min)), float(self.max))

    @property
    def _constant(self) -> bool:
        """Every finite value is the same one (min == max): no spread, whatever the moments' rounding says."""
        return self.n >= 1 and self.min is not None and self.max is not None and self.min == self.max

    @property
    def skewness(self) -> float | None:
        # None as well when the powers of tiny deviations underflow (data on
        # the scale of 1e-80 or below): the third and fourth moments are lost;
        # and when they overflow (deviations of 1e77 and more: ``m2 ** 1.5`` is
        # an OverflowError in Python, which ended `edgeorch profile` with exit 70).
        if self.n < 1 or self.m2 <= 0.0 or self.m4 == 0.0 or not math.isfinite(self.m2) or self._constant:
            return None
        try:
            spread = self.m2 ** 1.5
        except OverflowError:
            return None
        if spread == 0.0 or not math.isfinite(spread) or not math.isfinite(self.m3):
            return None
        return math.sqrt(self.n) * self.m3 / spread

    @property
    def kurtosis(self) -> float | None:
        square = self.m2 * self.m2  # a float product: inf, never an error, when it overflows
        if self.n < 1 or self.m2 <= 0.0 or square == 0.0 or self.m4 == 0.0 or not math.isfinite(square) \
                or not math.isfinite(self.m4) or self._constant:
            return None
        return self.n * self.m4 / square - 3.0

    @property
    def distinct(self) -> int:
        """Exact when every value is still known (small numeric, tracked categorical, datetime
        with known gaps: one more than the gaps), else HLL."""
        if self.kind == "categorical" and self.counts_exact:
            return len(self.value_counts)
        if self.kind == "datetime" and self.gaps is not None:
            return self.gaps.n + 1 if self.n else 0
        if self.kind == "numeric" and self.sketch.exact and not self.ints_beyond_float:
            return len(np.unique(self.sketch.values + 0.0))
        # An estimate (±2 %) never says more distinct values than there are values: 50,104 distinct of 50,000 rows.
        # Values: a numeric column's finite ones (n; infinities and NaN are counted apart), else the non-null.
        values = self.n if self.kind == "numeric" else self.count - self.nulls
        return min(int(round(self.hll.estimate())), max(values, 0))

    @property
    def distinct_exact(self) -> bool:
        return (self.kind == "categorical" and self.counts_exact) or (
            self.kind == "numeric" and self.sketch.exact and not self.ints_beyond_float) or (
            self.kind == "datetime" and self.gaps is not None)

    def top(self, k: int = TOP_K) -> list[tuple[str, int]]:
        """Most frequent values, most frequent first (ties by value)."""
        return sorted(self.value_counts.items(), key=lambda kv: (-kv[1], kv[0]))[:k]

    def summary(self) -> dict[str, Any]:
        """Reported statistics, strict-JSON ready (NaN/inf as None).

        A datetime column reports ISO 8601 text (``min``, ``max``, quantiles to
        the microsecond) in its zone, durations in seconds (``range_s``,
        ``largest_gap_s``, ``median_gap_s``; None below two distinct instants
        or when the gaps are unknown), ``gaps_exact`` (the median gap is exact
        while the gap sketch holds every gap) and ``timezone``.
        """
        out: dict[str, Any] = {"column": self.name, "type": self.dtype, "count": self.count, "nulls": self.nulls,
                               "distinct": self.distinct, "distinct_exact": self.distinct_exact}
        if self.kind == "datetime":
            out.update(self._datetime_summary())
        elif self.kind == "numeric":
            qs = self.sketch.quantiles(QUANTILES)
            out.update({
                "nan": self.nan, "pos_inf": self.pos_inf, "neg_inf": self.neg_inf, "zeros": self.zeros,
                "negatives": self.negatives, "finite": self.n,
                "min": self.min if isinstance(self.min, int) else _num(self.min) if self.min is not None else None,
                "max": self.max if isinstance(self.max, int) else _num(self.max) if self.max is not None else None,
                "mean": _num(self._mean_within()) if self.n else None,
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

    def _datetime_summary(self) -> dict[str, Any]:
        date = self.dtype == "date"

        def text(ns: float | int | None, round_us: bool = False) -> str | None:
            # Quantiles come from float64 nanoseconds (256 ns apart today): to the microsecond they are exact.
            if ns is not None and round_us:
                ns = round(ns / 1000) * 1000
            return iso(ns, self.tz, date=date)

        known = self.gaps is not None and self.n > 0
        median = self.gaps.quantiles([0.5])[0] if known and self.gaps is not None else None
        return {
            "timezone": self.tz,
            "min": text(self.min), "max": text(self.max),
            "range_s": seconds(self.max - self.min) if self.n else None,  # type: ignore[operator]
            "largest_gap_s": seconds(self.max_gap) if known else None,
            "median_gap_s": seconds(median) if known else None,
            "gaps_exact": bool(known and self.gaps is not None and self.gaps.exact),
            "quantiles": {f"p{round(q * 100)}": text(v, True) for q, v in zip(QUANTILES, self.sketch.quantiles(QUANTILES))},
            "quantiles_exact": self.sketch.exact,
        }

    # -- report ------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """The reported statistics (:meth:`summary`): one row of the profile's ``rows[].details``."""
        return strict(self.summary())

    def _frames(self) -> dict[str, tuple[list[dict[str, Any]], str | None]]:
        return {"column": ([self.to_dict()], "column")}

    def _display(self) -> tuple[str, str | None, str | None, list[Table]]:
        return f"column {self.name}: {self.dtype}", None, None, summary_tables([self.to_dict()])

    # -- serialisation --------------------------------------------------------

    def to_state(self) -> dict[str, Any]:
        """The mergeable state as JSON values (what a saved profile holds); :meth:`from_state` reads it back."""
        d: dict[str, Any] = {"name": self.name, "kind": self.kind, "dtype": self.dtype, "count": self.count,
                             "nulls": self.nulls, "hll": self.hll.to_dict()}
        if self.kind in NUMERIC_STATE:
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
            if self.kind == "datetime":
                d.update({"tz": self.tz, "gaps": self.gaps.to_dict() if self.gaps is not None else None,
                          "max_gap": self.max_gap})
        else:
            d.update({"value_counts": self.value_counts, "counts_exact": self.counts_exact})
            if self.numbers_only:
                d["numbers_only"] = True
        return d

    @classmethod
    def from_state(cls, d: dict[str, Any]) -> ColumnProfile:
        cp = cls(name=d["name"], kind=d["kind"], dtype=d["dtype"], count=int(d["count"]), nulls=int(d["nulls"]),
                 hll=HyperLogLog.from_dict(d["hll"]))
        if cp.kind in NUMERIC_STATE:
            cp.nan, cp.pos_inf, cp.neg_inf = int(d["nan"]), int(d["pos_inf"]), int(d["neg_inf"])
            cp.zeros, cp.negatives, cp.n = int(d["zeros"]), int(d["negatives"]), int(d["n"])
            cp.mean, cp.m2, cp.m3, cp.m4 = (float(v) for v in d["moments"])
            cp.ints_beyond_float = bool(d.get("ints_beyond_float", False))
            cp.min = d["min"] if isinstance(d["min"], int) or d["min"] is None else float(d["min"])
            cp.max = d["max"] if isinstance(d["max"], int) or d["max"] is None else float(d["max"])
            cp.histogram = GridHistogram.from_dict(d["histogram"])
            cp.sketch = QuantileSketch.from_dict(d["sketch"])
            if cp.kind == "datetime":
                cp.tz = d["tz"]
                cp.gaps = QuantileSketch.from_dict(d["gaps"]) if d["gaps"] is not None else None
                cp.max_gap = None if d["max_gap"] is None else int(d["max_gap"])
        else:
            cp.value_counts = {str(k): int(v) for k, v in d["value_counts"].items()}
            cp.counts_exact = bool(d["counts_exact"])
            cp.numbers_only = bool(d.get("numbers_only", False))
        return cp


@dataclass(repr=False)
class Profile(ResultView):
    """Profiles of a table's columns, in column order, plus the row count."""

    columns: dict[str, ColumnProfile]
    rows: int = 0
    source: str | None = None

    def __getitem__(self, name: str) -> ColumnProfile:
        return self.columns[name]

    def summary(self) -> list[dict[str, Any]]:
        return [c.summary() for c in self.columns.values()]

    # -- report ------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """The profile's result document, as the ``profile`` task records it and ``edgeorch profile --json``
        prints it (less ``outputs``/``on_violation``): one ``null_rate`` row per column with the column's
        statistics (:meth:`ColumnProfile.to_dict`) in ``details``."""
        rows = []
        for c in self.columns.values():
            s = c.to_dict()
            rate = ((s["nulls"] + (s.get("nan") or 0)) / s["count"]) if s["count"] else 0.0
            rows.append({"column": s["column"], "metric": "null_rate", "value": rate, "p_value": None,
                         "threshold": None, "verdict": "ok", "details": s})
        return strict({"kind": "profile", "verdict": "ok",
                       "message": f"profiled {self.rows} rows x {len(self.columns)} columns", "rows": rows,
                       "summary": {"rows": self.rows, "columns": len(self.columns)}})

    def _frames(self) -> dict[str, tuple[list[dict[str, Any]], str | None]]:
        return {"columns": ([c.to_dict() for c in self.columns.values()], "column")}

    def _display(self) -> tuple[str, str | None, str | None, list[Table]]:
        doc = self.to_dict()
        title = "edgeorch profile" + (f" of {self.source}" if self.source else "")
        return title, None, doc["message"], doc_tables(doc)

    # -- serialisation (the saved profile: state, mergeable) ---------------------

    def to_state(self) -> dict[str, Any]:
        """The saved form (``format`` edgeorch.profile/1): every column's mergeable state."""
        return {"format": FORMAT, "rows": self.rows, "source": self.source,
                "columns": [c.to_state() for c in self.columns.values()]}

    def to_json(self) -> str:
        """:meth:`to_state` as JSON text (what :meth:`save` writes)."""
        return json.dumps(self.to_state(), allow_nan=False)

    @classmethod
    def from_state(cls, d: dict[str, Any], *, file: str | None = None) -> Profile:
        if not isinstance(d, dict) or d.get("format") != FORMAT:
            raise DataError("not an edgeorch profile", file=file, value=d.get("format") if isinstance(d, dict) else None,
                            expected=f"a JSON document with format {FORMAT!r}")
        try:
            cols = [ColumnProfile.from_state(c) for c in d["columns"]]
        except (KeyError, TypeError, ValueError) as exc:
            raise DataError(f"malformed profile: {exc}", file=file) from None
        return cls({c.name: c for c in cols}, int(d["rows"]), d.get("source"))

    @classmethod
    def from_json(cls, text: str, *, file: str | None = None) -> Profile:
        try:
            doc = json.loads(text)
        except json.JSONDecodeError as exc:
            raise DataError(f"malformed JSON: {exc.msg}", file=file, line=exc.lineno, column=exc.colno) from None
        return cls.from_state(doc, file=file)

    def save(self, path: str | Path) -> None:
        """Write atomically (:func:`edgeorch.durable.write_atomic`), so readers never see half a profile."""
        from ..durable import write_atomic

        write_atomic(Path(path), self.to_json().encode("utf-8"))

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


def profile_datetime(name: str, batch: DatetimeBatch, *, sketch_size: int = DEFAULT_SKETCH_SIZE,
                     max_bins: int = DEFAULT_MAX_BINS, seed: int = 0) -> ColumnProfile:
    """Profile one datetime batch: the numeric state of its nanoseconds, its zone and its gaps."""
    cp = profile_numeric(name, batch, sketch_size=sketch_size, max_bins=max_bins, seed=seed)
    cp.kind, cp.tz = "datetime", batch.tz
    distinct = np.unique(batch.ns)
    # Differences of sorted int64 taken in uint64: exact even across more than 292 years.
    gaps = np.diff(distinct.view(np.uint64))
    cp.gaps = QuantileSketch.of(gaps.astype(np.float64), sketch_size, np.random.default_rng([seed, len(gaps)]))
    cp.max_gap = int(gaps.max()) if len(gaps) else None
    return cp


def profile_categorical(name: str, batch: CategoricalBatch, *, sketch_size: int = DEFAULT_SKETCH_SIZE) -> ColumnProfile:
    """Profile one categorical batch (distinct values with their counts)."""
    cp = ColumnProfile(name, "categorical", batch.dtype, count=batch.nulls + int(sum(batch.counts)), nulls=batch.nulls)
    cp.sketch = QuantileSketch(sketch_size)
    cp.value_counts = dict(zip(batch.values, (int(c) for c in batch.counts)))
    cp.numbers_only = batch.numbers_only
    cp.hll.add_hashes(hash_strings(batch.values))
    _cap(cp)
    return cp


def _cap(cp: ColumnProfile) -> None:
    if len(cp.value_counts) > MAX_TRACKED:
        cp.value_counts = dict(cp.top(MAX_TRACKED))
        cp.counts_exact = False


def _merged_tz(a: ColumnProfile, b: ColumnProfile) -> str | None:
    """The zone of two merged datetime profiles: the same, or UTC for instants of two zones.

    Naive and zoned instants cannot be ordered together: DataError (a side
    without values takes the other's zone).
    """
    if a.tz == b.tz:
        return a.tz
    if a.n == 0 or b.n == 0:
        return b.tz if a.n == 0 else a.tz
    if a.tz is None or b.tz is None:
        raise DataError("cannot merge naive and timezone-aware datetimes", field=a.name,
                        value=f"{a.tz or 'naive'} + {b.tz or 'naive'}",
                        expected="datetimes of the same kind in both profiles")
    return "UTC"


def _merged_gaps(a: ColumnProfile, b: ColumnProfile) -> tuple[QuantileSketch | None, int | None]:
    """Gaps of the union: exact when one side's instants all precede the other's, else unknown.

    Then the union's gaps are both sides' gaps plus the step between them
    (none when the sides meet at one instant, which is counted once).
    """
    if a.n == 0 or b.n == 0:
        return (b.gaps, b.max_gap) if a.n == 0 else (a.gaps, a.max_gap)
    if a.gaps is None or b.gaps is None:
        return None, None
    if a.max <= b.min:  # type: ignore[operator]
        first, second = a, b
    elif b.max <= a.min:  # type: ignore[operator]
        first, second = b, a
    else:
        return None, None  # interleaved instants: the gaps between them are not known
    assert first.gaps is not None and second.gaps is not None
    merged = first.gaps.merge(second.gaps)
    largest = [g for g in (first.max_gap, second.max_gap) if g is not None]
    step = int(second.min) - int(first.max)  # type: ignore[arg-type]
    if step > 0:
        merged = merged.merge(QuantileSketch.of(np.array([float(step)]), merged.size))
        largest.append(step)
    return merged, max(largest) if largest else None


def _same_kind(a: ColumnProfile, b: ColumnProfile) -> tuple[ColumnProfile, ColumnProfile] | None:
    """``a`` and ``b`` as profiles of one kind (a side with no value takes the other's), or None when
    their kinds differ: numbers or instants on one side, text on the other."""
    if a.kind == b.kind:
        return a, b
    # An all-null or empty batch is "numeric" by default: let the other win.
    if a.n == 0 and not a.value_counts and a.dtype == "empty":
        return ColumnProfile(a.name, b.kind, "empty", a.count, a.nulls), b
    if b.n == 0 and not b.value_counts and b.dtype == "empty":
        return a, ColumnProfile(b.name, a.kind, "empty", b.count, b.nulls)
    return None


def merge_columns(a: ColumnProfile, b: ColumnProfile, *, max_bins: int = DEFAULT_MAX_BINS) -> ColumnProfile:
    """Merge two profiles of the same column (see :func:`merge_profiles`).

    Profiles of different kinds (numbers or instants in one, text in the
    other) are a DataError: a numeric profile keeps a sample of its values,
    not the values, so it cannot become the text categories one chunk of
    both would count (:func:`profile` of a file reads such a column again as
    text instead). Two text profiles merge their types by
    :func:`.columns.merged_text_dtype`, others by :func:`.columns.merged_dtype`.
    """
    pair = _same_kind(a, b)
    if pair is None:
        raise DataError(f"cannot merge a {a.kind} and a {b.kind} profile", field=a.name,
                        value=f"{a.dtype} + {b.dtype}", expected="the same column type in both profiles")
    a, b = pair
    if a.kind == "categorical":
        # A side with no value has no type of its own (its dtype may be the file's: an all-null "string").
        dtype, numbers_only = merged_text_dtype(a.dtype if a.count > a.nulls else "empty", a.numbers_only,
                                                b.dtype if b.count > b.nulls else "empty", b.numbers_only)
        if dtype == "empty":  # no value on either side: an all-null text column keeps its type
            dtype = merged_dtype(a.dtype, b.dtype)
    else:
        dtype, numbers_only = merged_dtype(a.dtype, b.dtype), False
    out = ColumnProfile(a.name, a.kind, dtype, a.count + b.count, a.nulls + b.nulls, numbers_only=numbers_only)
    out.hll = a.hll.merge(b.hll)
    out.ints_beyond_float = a.ints_beyond_float or b.ints_beyond_float
    out.sketch = a.sketch.merge(b.sketch)
    if a.kind == "datetime":
        out.tz = _merged_tz(a, b)
        out.gaps, out.max_gap = _merged_gaps(a, b)
    if a.kind in NUMERIC_STATE:
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


def merge_profiles(a: Profile, b: Profile, *, clashes: set[str] | None = None) -> Profile:
    """Profile of the concatenation of the data behind ``a`` and ``b``.

    Counts, min, max, moments and histograms are exact (moments to
    floating-point rounding); quantile sketches and HLL merge within their
    stated error. Columns present in only one profile are kept as they are
    (their rows from the other side count as missing: not added).

    ``clashes``: where given, a column whose two profiles cannot merge (numbers
    on one side, text on the other: :func:`merge_columns`) is added to it and
    keeps ``a``'s profile, instead of a DataError.
    """
    cols: dict[str, ColumnProfile] = {}
    for name in list(a.columns) + [c for c in b.columns if c not in a.columns]:
        if name in a.columns and name in b.columns:
            if clashes is not None and (name in clashes or _same_kind(a.columns[name], b.columns[name]) is None):
                clashes.add(name)
                cols[name] = a.columns[name]
            else:
                cols[name] = merge_columns(a.columns[name], b.columns[name])
        else:
            cols[name] = a.columns.get(name) or b.columns[name]
    return Profile(cols, a.rows + b.rows, a.source if a.source == b.source else None)


def profile_batches(batches: Iterable[dict[str, NumericBatch | CategoricalBatch]], *,
                    sketch_size: int = DEFAULT_SKETCH_SIZE, max_bins: int = DEFAULT_MAX_BINS,
                    source: str | None = None) -> Profile:
    """Profile a stream of column batches (chunks of a file), merging as it goes.

    A column with numbers in one chunk and text in another is a DataError
    here (the stream cannot be read again); :func:`profile` of a file reads
    such a column again as text.
    """
    clashes: set[str] = set()
    result = _profile_stream(batches, clashes, sketch_size=sketch_size, max_bins=max_bins, source=source)
    for name in result.columns:
        if name in clashes:  # the error merge_columns gives
            raise DataError("cannot merge a numeric and a categorical profile", field=name,
                            expected="the same column type in both profiles")
    return result


def _profile_stream(batches: Iterable[dict[str, NumericBatch | CategoricalBatch]], clashes: set[str], *,
                    sketch_size: int, max_bins: int, source: str | None) -> Profile:
    """:func:`profile_batches`, adding to ``clashes`` the columns whose chunks' kinds differ (their profile
    is then the first chunks' only, to be replaced)."""
    result: Profile | None = None
    for i, batch in enumerate(batches):
        cols: dict[str, ColumnProfile] = {}
        rows = 0
        for name, col in batch.items():
            if isinstance(col, DatetimeBatch):
                cols[name] = profile_datetime(name, col, sketch_size=sketch_size, max_bins=max_bins, seed=i)
            elif isinstance(col, NumericBatch):
                cols[name] = profile_numeric(name, col, sketch_size=sketch_size, max_bins=max_bins, seed=i)
            else:
                cols[name] = profile_categorical(name, col, sketch_size=sketch_size)
            rows = cols[name].count
        part = Profile(cols, rows, source)
        result = part if result is None else merge_profiles(result, part, clashes=clashes)
    return result if result is not None else Profile({}, 0, source)


def profile(data: Any, *, columns: list[str] | None = None, sketch_size: int = DEFAULT_SKETCH_SIZE,
            max_bins: int = DEFAULT_MAX_BINS, progress: Any = None) -> Profile:
    """Profile ``data``: a path (CSV, Parquet, .npy/.npz, JSON lines), a mapping of
    column name to values, a pyarrow Table, a DataFrame (pandas, polars), a
    named Series (its name is the column's), or one 1-D array (column ``value``).

    Files are read in chunks (Parquet row groups, CSV blocks), so files larger
    than memory work. A JSON-lines column with numbers in one chunk and text
    in another is read a second time, as text in every chunk, so it is the
    ``mixed`` column one chunk of all of it gives (statistics included). Raises :class:`DataError` naming file/column/row for
    unreadable data and unknown ``columns``.
    """
    if isinstance(data, (str, Path)):
        from .io import read_batches

        clashes: set[str] = set()
        out = _profile_stream(read_batches(data, columns=columns, progress=progress), clashes,
                              sketch_size=sketch_size, max_bins=max_bins, source=str(data))
        if clashes:
            # Numbers in one chunk, text in another (JSON lines): one chunk of both would be a "mixed" column of
            # their texts, and a numeric chunk's profile keeps only a sample. Read these columns again, as text
            # in every chunk (io.read_batches as_text): the statistics are exactly one chunk's. Costs one more
            # pass over the file, only for such files.
            names = [n for n in out.columns if n in clashes]
            again = profile_batches(read_batches(data, columns=names, as_text=names), sketch_size=sketch_size,
                                    max_bins=max_bins, source=str(data))
            out.columns.update(again.columns)
        return out
    return profile_batches([columns_of(data, columns)], sketch_size=sketch_size, max_bins=max_bins)


def iter_numeric(profile_: Profile) -> Iterator[ColumnProfile]:
    return (c for c in profile_.columns.values() if c.kind == "numeric")
