"""Drift of a column and of a dataset: method choice, verdicts, multiple testing.

Method rule (Evidently's default, documented in docs/kernels.md):

================================  ===========================  =======================
column                            reference has <= 1000 values  more than 1000 values
================================  ===========================  =======================
numeric, more than 5 distinct     ``ks`` (p < 0.05)             ``wasserstein`` (>= 0.1)
numeric <= 5 distinct, categor.   ``chisquare`` (p < 0.05);     ``jensenshannon`` (>= 0.1)
                                  ``z`` if <= 2 categories
================================  ===========================  =======================

``wasserstein`` is normalised by the reference's standard deviation (floor
0.001, as Evidently), so 0.1 means "a tenth of a standard deviation".
``psi`` (>= 0.1) and ``hellinger`` (>= 0.1) are available by name. p-value
methods drift when the (corrected) p-value is below the threshold; distance
methods when the distance is at or above it.

NaN, ±inf and nulls are dropped before every test and reported per column;
a column with nothing left on either side gets the verdict ``no_data`` and
does not count towards the drifted share.

Datetime columns move with time, so a later batch always "drifts" from its
reference: by default they get the verdict ``skipped`` (with the reason in
``details``) and do not count either. Named with a method of their own
(``method=`` of :func:`column_drift`, ``methods={column: ...}`` of
:func:`dataset_drift`) they are tested as instants, in epoch nanoseconds;
naive against zoned datetimes, or datetimes against numbers, is a DataError.
"""

from __future__ import annotations

import warnings
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ColumnKindError, DataError, NoCommonColumnsError, UnknownColumnError, UsageError
from . import _jit
from . import stats as S
from .columns import Batch, CategoricalBatch, DatetimeBatch, NumericBatch, column_of, series_name
from .results import DRIFT_HEADERS, ResultView, Table, doc_tables, drift_row, row_record, strict

P_VALUE_METHODS = ("ks", "chisquare", "z")
DISTANCE_METHODS = ("wasserstein", "psi", "jensenshannon", "hellinger")
METHODS = P_VALUE_METHODS + DISTANCE_METHODS
DEFAULT_THRESHOLDS = {"ks": 0.05, "chisquare": 0.05, "z": 0.05, "wasserstein": 0.1, "psi": 0.1,
                      "jensenshannon": 0.1, "hellinger": 0.1}
_NOT_TESTED = ("no_data", "skipped", "undefined")
"""Row verdicts that do not count towards the drifted share (nothing was measured)."""
SMALL_SAMPLE = 1000  # reference size up to which a statistical test is used
FEW_DISTINCT = 5  # numeric columns with at most this many values are treated as categories
NUMERIC_BINS = 30  # equal-width bins over both samples' range, for binned methods
WASSERSTEIN_STD_FLOOR = 0.001
SKIPPED_DATETIME = ("a datetime column moves with time, so it always drifts from an older reference; "
                    "name a method for this column to compare its instants")


@dataclass(repr=False)
class ColumnDrift(ResultView):
    """Outcome of one column's drift test (``value`` is the statistic or distance).

    ``verdict``: ``ok``, ``drift``, ``no_data`` (nothing left on a side),
    ``skipped`` (a datetime column without a method of its own) or ``undefined`` (the statistic could not be
    computed: NaN; not counted in the share, never ``ok``).
    """

    column: str
    method: str
    value: float | None
    p_value: float | None
    threshold: float
    drift: bool
    verdict: str  # ok | drift | no_data | skipped | undefined
    n_ref: int
    n_cur: int
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The result-document row (strict JSON: NaN as None)."""
        return strict({"column": self.column, "metric": self.method, "value": self.value,
                       "p_value": self.p_value,
                       # no method ran (a skipped or empty column): no threshold either, not a "0"
                       "threshold": None if self.method == "none" else self.threshold, "verdict": self.verdict,
                       "details": {"n_ref": self.n_ref, "n_cur": self.n_cur, **self.details}})

    def _frames(self) -> dict[str, tuple[list[dict[str, Any]], str | None]]:
        return {"column": ([row_record(self.to_dict())], "column")}

    def _display(self) -> tuple[str, str | None, str | None, list[Table]]:
        return (f"drift of column {self.column}", self.verdict, self.details.get("reason"),
                [("column", DRIFT_HEADERS, [drift_row(self.to_dict())])])


@dataclass(repr=False)
class DatasetDrift(ResultView):
    """Per-column drift and the dataset's verdict (see :func:`dataset_drift`)."""

    columns: list[ColumnDrift]
    drift_share: float
    correction: str
    n_drifted: int
    n_tested: int
    share: float
    drift: bool

    @property
    def verdict(self) -> str:
        """``violation`` on dataset drift, ``warn`` when some columns drifted below the share or no column could be
        tested (every one ``no_data``, ``skipped`` or ``undefined``: an empty batch is no evidence of "no
        drift"), else ``ok``."""
        return "violation" if self.drift else ("warn" if self.n_drifted or self._none_tested else "ok")

    @property
    def _none_tested(self) -> bool:
        return bool(self.columns) and self.n_tested == 0

    @property
    def message(self) -> str:
        if self._none_tested:
            counts = Counter(c.verdict for c in self.columns)
            why = ", ".join(f"{n} {v}" for v, n in sorted(counts.items()))
            return f"no column could be tested ({why}): no drift verdict"
        rel = ">=" if self.drift else "<"
        what = "dataset drift" if self.drift else "no dataset drift"
        return (f"{self.n_drifted} of {self.n_tested} columns drifted (share {self.share:.3g} {rel} "
                f"{self.drift_share:g}): {what}")

    def to_dict(self) -> dict[str, Any]:
        """The drift result document, as the ``drift`` task records it and ``edgeorch drift --json`` prints it
        (less ``outputs``/``on_violation``): one row per column (:meth:`ColumnDrift.to_dict`)."""
        return strict({"kind": "drift", "verdict": self.verdict, "message": self.message,
                       "rows": [c.to_dict() for c in self.columns],
                       "summary": {"n_columns": len(self.columns), "n_tested": self.n_tested,
                                   "n_drifted": self.n_drifted, "share": self.share,
                                   "drift_share": self.drift_share, "correction": self.correction,
                                   "dataset_drift": self.drift}})

    def _frames(self) -> dict[str, tuple[list[dict[str, Any]], str | None]]:
        return {"columns": ([row_record(r) for r in self.to_dict()["rows"]], "column")}

    def _display(self) -> tuple[str, str | None, str | None, list[Table]]:
        doc = self.to_dict()
        return "edgeorch drift", doc["verdict"], doc["message"], doc_tables(doc)


# ---------------------------------------------------------------------------
# cleaning


def _clean(batch: Batch) -> tuple[Batch, dict[str, int]]:
    """Drop NaN/±inf from a numeric batch; report what was dropped (nulls too)."""
    dropped = {"nulls": batch.nulls}
    if isinstance(batch, NumericBatch):
        x = batch.values
        fin = np.isfinite(x)
        if not fin.all():
            dropped["nan"] = int(np.isnan(x).sum())
            dropped["inf"] = int((~fin).sum()) - dropped["nan"]
            batch = NumericBatch(x[fin], batch.nulls, batch.dtype)
    return batch, {k: v for k, v in dropped.items() if v}


def _size(b: Batch) -> int:
    return len(b.values) if isinstance(b, NumericBatch) else int(np.sum(b.counts))


def _as_categories(b: Batch) -> tuple[list[str], np.ndarray]:
    if isinstance(b, CategoricalBatch):
        return b.values, b.counts
    uniq, counts = np.unique(b.values + 0.0, return_counts=True)
    return [repr(float(u)) for u in uniq], counts


def choose_method(ref: Batch, cur: Batch) -> str:
    """The default method for a column (the rule in this module's docstring)."""
    n = _size(ref)
    if isinstance(ref, NumericBatch) and isinstance(cur, NumericBatch):
        if len(np.unique(ref.values)) > FEW_DISTINCT:
            return "ks" if n <= SMALL_SAMPLE else "wasserstein"
    if n <= SMALL_SAMPLE:
        keys = set(_as_categories(ref)[0]) | set(_as_categories(cur)[0])
        return "z" if len(keys) <= 2 else "chisquare"
    return "jensenshannon"


def _edge_label(b: Batch) -> Any:
    """How a bin edge reads: ISO 8601 for datetimes, else 6 significant digits."""
    if isinstance(b, DatetimeBatch):
        from .datetimes import iso

        return lambda v: iso(v, b.tz, date=b.dtype == "date")
    return lambda v: f"{v:.6g}"


NUMERIC_ONLY_METHODS = ("ks", "wasserstein")


def fits(method: str | None, numeric: bool) -> bool:
    """Whether ``method`` (None: the rule's choice) can measure a column (``numeric`` or not): the numbers-only
    methods (:data:`NUMERIC_ONLY_METHODS`) need a numeric one. The one `method` for every column skips the others."""
    return method not in NUMERIC_ONLY_METHODS or numeric


def _datetime_pair(rb: Batch, cb: Batch, column: str) -> bool:
    """True when both sides are datetimes that can be compared; DataError when only one is, or naive vs zoned."""
    r_dt, c_dt = isinstance(rb, DatetimeBatch), isinstance(cb, DatetimeBatch)
    if not (r_dt or c_dt):
        return False
    if r_dt != c_dt:
        raise ColumnKindError("the column holds datetimes on one side and not on the other", field=column,
                        value=f"{rb.dtype} vs {cb.dtype}", expected="the same type in reference and current")
    if (rb.tz is None) != (cb.tz is None):  # type: ignore[union-attr]
        raise ColumnKindError("naive datetimes on one side and timezone-aware ones on the other", field=column,
                        value=f"{rb.tz or 'naive'} vs {cb.tz or 'naive'}",  # type: ignore[union-attr]
                        expected="the same kind of datetimes in reference and current")
    return True


def _few_values(a: np.ndarray, b: np.ndarray) -> bool:
    # A cheap look at a prefix first: most columns have many values.
    if len(np.unique(np.concatenate([a[:10_000], b[:10_000]]))) > FEW_DISTINCT:
        return False
    return len(np.unique(np.concatenate([a, b]))) <= FEW_DISTINCT


_HUGE_SHIFT = 600
"""Binary orders by which huge values are scaled (exactly: a power of two) before binning or a distance: their
squares (the std) then stay far from float64's limit; only values below ~1e-127 would lose bits, nothing
beside data of ~1e150 and more."""


def _huge(ref: Batch, cur: Batch) -> bool:
    """Whether two numeric samples hold values whose squares (the std) or range (a bin's width, beyond ~1.8e308)
    overflow float64: every method but ks said 0, or nothing with the verdict "ok", for data that had moved.
    Both samples are finite (:func:`_clean`)."""
    if not (isinstance(ref, NumericBatch) and isinstance(cur, NumericBatch)) or not len(ref.values) \
            or not len(cur.values):
        return False
    # From the extremes (no |x| array of the column's size): a value's magnitude is at most the larger of theirs.
    top = max(max(-float(b.values.min()), float(b.values.max())) for b in (ref, cur))
    return top > 2.0 ** 500


def _exact_pair(ref: NumericBatch, cur: NumericBatch) -> tuple[np.ndarray, np.ndarray]:
    """The two samples as ks compares them: their exact integers when either holds integers beyond ±2**53
    (where float64 rounds distinct ones onto one value: 2**60 and 2**60 + 1 tested equal, "no drift" for a
    column whose every value changed), else their float64 values."""
    if ref.ints is None and cur.ints is None:
        return ref.values, cur.values
    if ref.int_min is None or cur.int_min is None:  # integers on one side only: as floats (documented)
        return ref.values, cur.values
    return tuple(b.ints if b.ints is not None else b.values.astype(np.int64) for b in (ref, cur))  # type: ignore[return-value]


def binned(ref: Batch, cur: Batch, bins: int = NUMERIC_BINS) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Counts of both samples on common bins: categories, or equal-width bins over both ranges.

    A numeric column with at most ``FEW_DISTINCT`` distinct values (codes,
    flags) is binned by value, like a categorical one.
    """
    if isinstance(ref, NumericBatch) and isinstance(cur, NumericBatch) and not _few_values(ref.values, cur.values):
        lo = min(ref.values.min(), cur.values.min())
        hi = max(ref.values.max(), cur.values.max())
        label = _edge_label(ref)
        if lo == hi:  # one value: its full text (ISO for a datetime)
            one = label(lo) if isinstance(ref, DatetimeBatch) else repr(float(lo))
            return np.array([len(ref.values)], float), np.array([len(cur.values)], float), [one]
        shift = _HUGE_SHIFT if _huge(ref, cur) else 0  # equal-width bins are the same bins on any scale
        rv, cv = (np.ldexp(ref.values, -shift), np.ldexp(cur.values, -shift)) if shift else (ref.values, cur.values)
        edges = np.linspace(np.ldexp(lo, -shift), np.ldexp(hi, -shift), bins + 1)
        # bin_counts puts values >= the last edge in its last slot: fold the
        # maximum into the top bin, as np.histogram does.
        r = _jit.bin_counts(rv, edges[1:-1])
        c = _jit.bin_counts(cv, edges[1:-1])
        shown = np.ldexp(edges, shift) if shift else edges
        labels = [f"[{label(shown[i])}, {label(shown[i + 1])})" for i in range(bins)]
        return r.astype(float), c.astype(float), labels
    rk, rc = _as_categories(ref)
    ck, cc = _as_categories(cur)
    keys, r, c = S.category_counts(rk, rc, ck, cc)
    return r, c, keys


# ---------------------------------------------------------------------------
# one column


def column_drift(ref: Any, cur: Any, method: str | None = None, threshold: float | None = None, *,
                 column: str | None = None) -> ColumnDrift:
    """Drift of one column between reference ``ref`` and current ``cur`` values.

    ``ref``/``cur``: arrays, lists, pyarrow arrays or Series (numeric,
    categorical or datetime). ``method``: one of ``METHODS`` or None for the
    default rule; ``threshold`` defaults per method (``DEFAULT_THRESHOLDS``).
    ``column`` names the result: by default the reference Series' name, else
    ``value``. Numeric-only methods on a categorical column raise DataError.
    A datetime column without ``method`` is ``skipped`` (module docstring).
    """
    column = column or series_name(ref) or "value"
    if method is not None and method not in METHODS:
        from ..tomlcheck import suggest

        close = suggest(method, list(METHODS))
        raise DataError("unknown drift method", field=column, value=method, expected=f"one of {', '.join(METHODS)}",
                        hint=f"did you mean {close!r}?" if close else None)
    rb, rdrop = _clean(column_of(ref, column))
    cb, cdrop = _clean(column_of(cur, column))
    details: dict[str, Any] = {}
    if rdrop:
        details["dropped_ref"] = rdrop
    if cdrop:
        details["dropped_cur"] = cdrop
    n_ref, n_cur = _size(rb), _size(cb)
    if n_ref == 0 or n_cur == 0:
        m = method or "none"
        return ColumnDrift(column, m, None, None, threshold if threshold is not None else DEFAULT_THRESHOLDS.get(m, 0.0),
                           False, "no_data", n_ref, n_cur, details)
    if isinstance(rb, DatetimeBatch) != isinstance(cb, DatetimeBatch):
        if method is None:  # not asked to test it (datetimes are skipped by default): said, never the whole check's end
            return ColumnDrift(column, "none", None, None, 0.0, False, "skipped", n_ref, n_cur,
                               {**details, "reason": f"{SKIPPED_DATETIME}; and its types differ ({rb.dtype} in the "
                                                     f"reference, {cb.dtype} in the current data)"})
        _datetime_pair(rb, cb, column)  # raises, naming both types (datetimes on one side only)
    if isinstance(rb, NumericBatch) != isinstance(cb, NumericBatch):
        raise ColumnKindError("the column is numeric on one side and categorical on the other", field=column,
                        value=f"{rb.dtype} vs {cb.dtype}", expected="the same type in reference and current")
    if _datetime_pair(rb, cb, column) and method is None:
        return ColumnDrift(column, "none", None, None, 0.0, False, "skipped", n_ref, n_cur,
                           {**details, "reason": SKIPPED_DATETIME})
    method = method or choose_method(rb, cb)
    threshold = DEFAULT_THRESHOLDS[method] if threshold is None else float(threshold)
    check_threshold(method, threshold)
    value, p = _measure(method, rb, cb, column, details)
    if not np.isfinite(value) or (p is not None and not np.isfinite(p)):
        # Never "ok" for a statistic that could not be computed: said as such, not counted in the share.
        details["reason"] = f"{method} is not defined for these samples (value {value}, p-value {p})"
        return ColumnDrift(column, method, value, p, threshold, False, "undefined", n_ref, n_cur, details)
    drift = (p < threshold) if p is not None else (value >= threshold)
    return ColumnDrift(column, method, value, p, threshold, bool(drift), "drift" if drift else "ok",
                       n_ref, n_cur, details)


def check_threshold(method: str, threshold: float) -> None:
    """:class:`UsageError` for a p-value method's threshold above 1: every p-value is below it, so a file compared
    with itself "drifted" in every column (``--threshold 1.5``)."""
    if method in P_VALUE_METHODS and threshold > 1.0:
        raise UsageError(f"is above 1 for {method}, whose threshold is a p-value: every column would drift, the same "
                         "data too", field="threshold", value=threshold,
                         expected=f"a p-value from 0 to 1 ({DEFAULT_THRESHOLDS[method]:g} by default)")


def check_drift_share(drift_share: float) -> None:
    """:class:`UsageError` unless ``drift_share`` is above 0 and at most 1: at 0 a dataset with no column drifted
    "drifted" (0 of 4 >= 0)."""
    if not 0.0 < drift_share <= 1.0:
        raise UsageError("is out of range", field="drift_share", value=drift_share,
                         expected="a share above 0 and at most 1 (0 would call every dataset drifted)")


def _measure(method: str, rb: Batch, cb: Batch, column: str, details: dict[str, Any]) -> tuple[float, float | None]:
    if method in ("ks", "wasserstein"):
        # column_drift refused a pair that is numeric on one side only: rb's kind is cb's
        if not (isinstance(rb, NumericBatch) and isinstance(cb, NumericBatch)):
            raise DataError(f"method {method} needs a numeric column", field=column, value=rb.dtype,
                            expected="psi, jensenshannon, hellinger, chisquare or z for categorical columns")
        if method == "ks":
            ref_values, cur_values = _exact_pair(rb, cb)
            # ks_2samp warns as scipy does when the exact p-value cannot be had: the library's user sees that, a
            # drift check says it in the column's details (it was a raw warning on stderr, a source line with it).
            with warnings.catch_warnings(record=True) as said:
                warnings.simplefilter("always", RuntimeWarning)
                ks = S.ks_2samp(ref_values, cur_values)
            if said:
                details["p_value_method"] = "asymp"
                details["note"] = str(said[-1].message)
            return ks.statistic, ks.pvalue
        # A distance over the reference's std is the same on any scale: huge values (their squares overflow the
        # std) are measured scaled by a power of two, exactly (_huge).
        shift = _HUGE_SHIFT if _huge(rb, cb) else 0
        rv, cv = (np.ldexp(rb.values, -shift), np.ldexp(cb.values, -shift)) if shift else (rb.values, cb.values)
        std = float(np.std(rv))  # wasserstein
        details["reference_std"] = float(np.ldexp(std, shift))
        # The floor is in the data's own units, scaled as the data is (a constant reference of 1e151 against
        # 2e151 was divided by the unscaled floor: "ok" for a column whose every value doubled).
        return S.wasserstein_distance(rv, cv) / max(std, float(np.ldexp(WASSERSTEIN_STD_FLOOR, -shift))), None
    r, c, labels = binned(rb, cb)
    if method == "chisquare":
        res = S.chi_square(r, c)
        details["dof"] = res.dof
        return res.statistic, res.pvalue
    if method == "z":
        if len(labels) > 2:
            raise DataError("method z needs a binary column", field=column, value=f"{len(labels)} categories",
                            expected="at most 2 categories (use chisquare)")
        res = S.z_test(int(r[0]), int(r.sum()), int(c[0]), int(c.sum()))
        return res.statistic, res.pvalue
    if method == "psi":
        return S.psi(r, c), None
    if method == "jensenshannon":
        return S.jensen_shannon(r, c), None
    return S.hellinger(r, c), None


# ---------------------------------------------------------------------------
# many columns


def adjust_pvalues(p: list[float], correction: str) -> list[float]:
    """Bonferroni (``p m``) or Benjamini–Hochberg step-up adjusted p-values, capped at 1."""
    m = len(p)
    if correction == "none" or m == 0:
        return list(p)
    arr = np.asarray(p, dtype=float)
    if correction == "bonferroni":
        return [float(v) for v in np.minimum(arr * m, 1.0)]
    if correction != "bh":
        raise DataError("unknown correction", value=correction, expected="bonferroni, bh or none")
    order = np.argsort(arr)
    ranked = arr[order] * m / np.arange(1, m + 1)
    adj = np.minimum.accumulate(ranked[::-1])[::-1]
    out = np.empty(m)
    out[order] = np.minimum(adj, 1.0)
    return [float(v) for v in out]


def apply_correction(results: list[ColumnDrift], correction: str) -> None:
    """Re-decide p-value columns on corrected p-values (kept in ``details``)."""
    tested = [r for r in results if r.p_value is not None and r.verdict not in _NOT_TESTED]
    adjusted = adjust_pvalues([r.p_value for r in tested], correction)  # type: ignore[misc]
    for r, adj in zip(tested, adjusted):
        if correction != "none":
            r.details["p_value_adjusted"] = adj
            r.details["correction"] = correction
        r.drift = adj < r.threshold
        r.verdict = "drift" if r.drift else "ok"


def summarise(results: list[ColumnDrift], drift_share: float, correction: str) -> DatasetDrift:
    check_drift_share(drift_share)
    tested = [r for r in results if r.verdict not in _NOT_TESTED]
    drifted = sum(1 for r in tested if r.drift)
    share = drifted / len(tested) if tested else 0.0
    return DatasetDrift(results, drift_share, correction, drifted, len(tested), share,
                        bool(tested) and share >= drift_share)


def dataset_drift(ref: Any, cur: Any, *, columns: list[str] | None = None, method: str | None = None,
                  methods: dict[str, str] | None = None, threshold: float | None = None,
                  thresholds: dict[str, float] | None = None, drift_share: float = 0.5,
                  correction: str = "bh", progress: Any = None) -> DatasetDrift:
    """Per-column drift between two tables, then the dataset verdict.

    ``ref``/``cur``: paths or in-memory tables (see ``profile``). Columns
    default to those in both (in reference order); a named column missing on
    either side is a DataError. p-values are corrected across the tested
    columns (``bh`` by default, ``bonferroni`` or ``none``); the dataset
    drifts when the share of drifted columns is at least ``drift_share`` (above 0, at most 1: else UsageError).
    A datetime column is tested only when ``methods`` names a method for it
    (``method`` alone leaves it ``skipped``; see the module docstring).
    """
    from .io import load_table

    check_drift_share(drift_share)  # before any file is read
    rt, ct = load_table(ref, columns, progress=progress), load_table(cur, columns, progress=progress)
    names = columns or [c for c in rt if c in ct]
    if not names:
        if len(rt) == 1 and len(ct) == 1 and _is_series(ref) and _is_series(cur):
            # Two named Series are one quantity under two names (a renamed column): compare them,
            # under the reference's name, rather than test nothing.
            (name,), (other,) = rt, ct
            ct = {name: ct[other]}
            names = [name]
        else:
            # Nothing in common would otherwise read as "0 of 0 columns drifted: no drift".
            raise NoCommonColumnsError(f"the reference and the current data have no column in common (reference: "
                            f"{_listed(rt)}; current: {_listed(ct)})", file=_src(cur),
                            expected="tables with the same column names, or columns= naming the ones to compare")
    for name in names:
        for label, t, src in (("reference", rt, ref), ("current", ct, cur)):
            if name not in t:
                raise UnknownColumnError(f"column missing from the {label} data", file=_src(src), field=name)
    methods = methods or {}
    thresholds = thresholds or {}
    for what, keyed in (("methods", methods), ("thresholds", thresholds)):
        for key in keyed:  # a typo in a key would quietly test that column another way
            if key not in names:
                from ..tomlcheck import suggest

                close = suggest(key, names)
                raise UnknownColumnError(f"{what} names a column that is not compared", field=f"{what}.{key}",
                                         value=key, expected=f"one of {_listed(dict.fromkeys(names))}",
                                         hint=f"did you mean {close!r}?" if close else None)
    results = []
    for i, name in enumerate(names):
        # `method` is for every column it can measure: a datetime column is tested only when named itself, and a
        # numbers-only method leaves text columns to the default rule (a method of their own is still checked).
        default = None if isinstance(rt[name], DatetimeBatch) or not fits(method, isinstance(rt[name], NumericBatch)) else method
        results.append(column_drift(rt[name], ct[name], methods.get(name, default),
                                    thresholds.get(name, threshold), column=name))
        if progress is not None:
            progress.update(i + 1, len(names), f"drift {name}", unit="columns")
    apply_correction(results, correction)
    return summarise(results, drift_share, correction)


def _is_series(x: Any) -> bool:
    """A pandas or polars Series (one named column), not a table or a path."""
    return hasattr(x, "to_numpy") and not hasattr(x, "columns") and not isinstance(x, (str, Path, Mapping))


def _listed(table: Mapping[str, Any], most: int = 8) -> str:
    names = list(table)
    return (", ".join(names[:most]) + (f", ... ({len(names)} in all)" if len(names) > most else "")) or "none"


def _src(x: Any) -> str | None:
    return str(x) if isinstance(x, (str,)) or hasattr(x, "__fspath__") else None


# ---------------------------------------------------------------------------
# against a stored reference profile

PROFILE_METHODS = ("ks", "psi", "jensenshannon", "hellinger", "chisquare")


def drift_from_profile(reference: Any, cur: Any, *, columns: list[str] | None = None, method: str | None = None,
                       threshold: float | None = None, drift_share: float = 0.5, correction: str = "bh",
                       progress: Any = None) -> DatasetDrift:
    """Drift of current data against a saved reference :class:`Profile` (no reference data kept).

    Numeric columns: ``psi``, ``jensenshannon`` or ``hellinger`` on the
    reference's exact grid histogram (current values counted on the same
    grid, plus one bin below and one above it), or ``ks`` against the
    reference's quantile sketch: exact while the reference had at most
    ``sketch_size`` values, otherwise the statistic is within
    ``details.error_bound`` (DKW, 99% confidence; 0.009 at the default size)
    of the exact one. Categorical columns: ``chisquare`` (reference counts
    exact unless more than 100000 categories) or the binned distances.
    Default: ``ks``/``chisquare`` for a reference of <= 1000 values, else
    ``jensenshannon``. Datetime columns are ``skipped`` (module docstring).
    """
    from .io import load_table
    from .profiling import ColumnProfile, Profile
    from .sketches import rank_error_bound

    prof = reference if isinstance(reference, Profile) else Profile.load(reference)
    if method is not None and method not in PROFILE_METHODS:
        raise DataError("method not available against a profile", value=method,
                        expected=f"one of {', '.join(PROFILE_METHODS)}")
    ct = load_table(cur, columns, progress=progress)
    names = columns or [c for c in prof.columns if c in ct]
    results: list[ColumnDrift] = []
    for name in names:
        if name not in prof.columns:
            raise UnknownColumnError("column missing from the reference profile", field=name,
                            file=reference if isinstance(reference, str) else None)
        if name not in ct:
            raise UnknownColumnError("column missing from the current data", file=_src(cur), field=name)
        cp: ColumnProfile = prof.columns[name]
        cb, cdrop = _clean(column_of(ct[name], name))
        details: dict[str, Any] = {"reference": "profile"}
        if cdrop:
            details["dropped_cur"] = cdrop
        n_ref = cp.n if cp.kind in ("numeric", "datetime") else sum(cp.value_counts.values())
        n_cur = _size(cb)
        if n_ref == 0 or n_cur == 0:
            results.append(ColumnDrift(name, method or "none", None, None, threshold or 0.0, False, "no_data",
                                       n_ref, n_cur, details))
            continue
        if cp.kind == "datetime" or isinstance(cb, DatetimeBatch):
            if cp.kind != "datetime" or not isinstance(cb, DatetimeBatch):
                raise ColumnKindError("the column holds datetimes on one side and not on the other", field=name,
                                value=f"{cp.dtype} vs {cb.dtype}", expected="the same type in reference and current")
            results.append(ColumnDrift(name, "none", None, None, 0.0, False, "skipped", n_ref, n_cur,
                                       {**details, "reason": SKIPPED_DATETIME}))
            continue
        numeric = cp.kind == "numeric"
        if numeric != isinstance(cb, NumericBatch):
            raise ColumnKindError("the column is numeric on one side and categorical on the other", field=name,
                            value=f"{cp.dtype} vs {cb.dtype}")
        given = method if fits(method, numeric) else None  # as dataset_drift: text to the rule
        m = given or (("ks" if numeric else "chisquare") if n_ref <= SMALL_SAMPLE else "jensenshannon")
        th = DEFAULT_THRESHOLDS[m] if threshold is None else float(threshold)
        p: float | None = None
        if m == "ks":
            sample = np.sort(cp.sketch.values)
            cur_sorted = np.sort(cb.values)
            maxd, _, mind, _, _ = _jit.ecdf_walk(sample, cur_sorted, S._EMPTY, S._EMPTY)
            d = max(maxd, min(max(-mind, 0.0), 1.0))
            value, p = S.ks_pvalue(d, n_ref, n_cur, "auto" if cp.sketch.exact else "asymp")
            details["sketch_exact"] = cp.sketch.exact
            if not cp.sketch.exact:
                details["error_bound"] = rank_error_bound(cp.sketch.size)
        else:
            if numeric:
                edges = cp.histogram.edges
                c = _jit.bin_counts(cb.values, edges).astype(float)
                r = np.concatenate([[0.0], cp.histogram.counts.astype(float), [0.0]])
            else:
                _, r, c = S.category_counts(list(cp.value_counts), list(cp.value_counts.values()),
                                               *_as_categories(cb))
            if m == "chisquare":
                res = S.chi_square(r, c)
                value, p = res.statistic, res.pvalue
            else:
                measures: dict[str, Callable[[Any, Any], float]] = {
                    "psi": S.psi, "jensenshannon": S.jensen_shannon, "hellinger": S.hellinger}
                value = measures[m](r, c)
        drift = (p < th) if p is not None else (value >= th)
        results.append(ColumnDrift(name, m, float(value), p, th, bool(drift), "drift" if drift else "ok",
                                   n_ref, n_cur, details))
    apply_correction(results, correction)
    return summarise(results, drift_share, correction)
