"""Differentially private releases: counts, sums, means, histograms, quantiles and whole profiles.

Every release goes through OpenDP (``pip install 'edgeorch[dp]'``), whose
mechanisms are floating-point safe: integer counts get discrete Laplace
noise, float sums OpenDP's Laplace mechanism on a discretised lattice, with
privacy maps that account for floating-point rounding. Nothing here adds
noise by hand. Each release is **pure epsilon-DP** (delta = 0), or, with a
``delta`` > 0, **(epsilon, delta)-DP** through OpenDP's (discrete) Gaussian
mechanism, whose zero-concentrated guarantee OpenDP converts to
approximate DP (``make_zCDP_to_approxDP`` and ``make_fix_delta``); both for the
privacy unit "an individual contributes at most ``contributions`` rows"
(OpenDP's symmetric distance ``d_in``): the scale of every mechanism is
found by OpenDP's ``binary_search_chain`` so that its privacy map at
``d_in = contributions`` is at most its share of ``epsilon``.

What a release needs declared, never read from the data (the data would
leak through them): ``bounds`` of every numeric column (values are clamped
into them), ``categories`` of every categorical column (other values are
counted in one ``(other)`` bucket). Columns without them are not released
(:attr:`DPProfile.skipped` says why).

Composition: a profile is several measurements; ``epsilon`` is split evenly
over them and, by sequential composition, the whole release spends
``epsilon``. Derived values (a mean from a noisy sum and a noisy count,
quantiles from a noisy histogram, counts clipped at 0) are post-processing
and cost nothing more. The budget a release is charged to is the store's
(:mod:`edgeorch.store.privacy`): this module computes, it never records.

Not protected: the schema (column names and types), the declared bounds
and categories, the fact that a release was made and how much epsilon it
spent; and anything outside these releases (the data file itself, other
tasks' outputs, logs of your own code).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import ColumnRoleError, DataError, MissingDependencyError, UnknownColumnError, UsageError
from .results import ResultView, Table, doc_tables, strict

OTHER = "(other)"
PROFILE_QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)


def _opendp() -> Any:
    """``opendp.prelude`` with OpenDP's "contrib" components enabled; MissingDependencyError without OpenDP."""
    try:
        import opendp.prelude as dp
    except ImportError:
        raise MissingDependencyError("differentially private releases need OpenDP, which is not installed",
                                     hint="pip install 'edgeorch[dp]'") from None
    # OpenDP gates components not yet vetted by its own review behind "contrib" (every measurement used
    # here: count, clamp, sum, count_by_categories, laplace); their proofs are published with OpenDP.
    dp.enable_features("contrib")
    return dp


def _check_epsilon(epsilon: Any, contributions: Any) -> None:
    if not (isinstance(epsilon, (int, float)) and not isinstance(epsilon, bool) and math.isfinite(epsilon)
            and epsilon > 0):
        raise DataError("must be a positive number", field="epsilon", value=epsilon)
    if not (isinstance(contributions, int) and not isinstance(contributions, bool) and contributions >= 1):
        raise DataError("must be a positive integer (rows one individual contributes at most)",
                        field="contributions", value=contributions)


def _check_delta(delta: Any) -> float:
    """``delta`` as a float in [0, 1); DataError naming ``delta`` otherwise (0: pure epsilon-DP)."""
    if not (isinstance(delta, (int, float)) and not isinstance(delta, bool) and math.isfinite(delta)
            and 0 <= delta < 1):
        raise DataError("must be a number >= 0 and < 1", field="delta", value=delta,
                        expected="0 for pure epsilon-DP, or a small probability such as 1e-6")
    return float(delta)


def _bounds(bounds: Any, name: str) -> tuple[float, float]:
    try:
        lo, hi = (float(b) for b in bounds)
    except (TypeError, ValueError):
        raise DataError("bounds must be a pair of numbers", field=name, value=bounds, expected="[lower, upper]") from None
    if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
        raise DataError("bounds must be finite with lower < upper", field=name, value=[lo, hi])
    return lo, hi


def _categories(categories: Any, name: str) -> list[str]:
    """Declared ``categories`` as the text labels released: a UsageError naming ``name`` (``categories`` or
    ``categories.COL``, which the command line names ``--categories COL``) unless they are distinct, non-empty
    and not ``(other)``. Declared, not data: a bad list is bad usage (exit 2), never bad data."""
    cats = [str(c) for c in categories] if isinstance(categories, (list, tuple)) else []
    if not cats or len(set(cats)) != len(cats) or OTHER in cats:
        dup = sorted({c for c in cats if cats.count(c) > 1})
        raise UsageError("categories must be distinct, non-empty, and not '(other)'"
                         + (f" ({', '.join(map(repr, dup))} given twice)" if dup else ""), field=name,
                         value=list(categories) if isinstance(categories, (list, tuple)) else categories,
                         expected="a list of different values, none of them '(other)'")
    return cats


def _numbers(values: Any, name: str) -> np.ndarray:
    """The non-missing values of a numeric column as float64 (None and NaN dropped: a row-wise filter)."""
    try:
        import pyarrow as pa
        import pyarrow.compute as pc

        if isinstance(values, (pa.Array, pa.ChunkedArray)):
            values = pc.drop_null(values).to_numpy(zero_copy_only=False)
    except ImportError:  # pragma: no cover
        pass
    arr = np.asarray([np.nan if v is None else v for v in values] if isinstance(values, list) else values)
    try:
        arr = arr.astype(np.float64).ravel()
    except (TypeError, ValueError):
        raise DataError("values must be numbers", field=name, value=str(arr.dtype)) from None
    return arr[~np.isnan(arr)]


def _texts(values: Any) -> list[str]:
    try:
        import pyarrow as pa
        import pyarrow.compute as pc

        if isinstance(values, (pa.Array, pa.ChunkedArray)):
            values = pc.drop_null(values).to_pylist()
    except ImportError:  # pragma: no cover
        pass
    return [str(v) for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]


@dataclass
class Measurement:
    """One OpenDP measurement made: what it released and the (epsilon, delta) its privacy map certifies."""

    name: str
    epsilon: float
    scale: float
    delta: float = 0.0


def _noise(dp: Any, scale: float, delta: float) -> Any:
    """The noise of a count or sum: (discrete) Laplace for pure DP, (discrete) Gaussian when ``delta`` > 0."""
    return dp.m.then_gaussian(scale) if delta > 0 else dp.m.then_laplace(scale)


def _measure(make: Callable[[float], Any], data: Any, epsilon: float, contributions: int, name: str,
             spent: list[Measurement] | None, delta: float = 0.0) -> Any:
    """Run the measurement ``make(scale)`` at the smallest scale whose map at ``contributions`` is <= ``epsilon``
    (and, with ``delta`` > 0, ``(epsilon, delta)``).

    With ``delta`` > 0, ``make`` builds a Gaussian measurement (zero-concentrated DP); OpenDP converts its
    rho to approximate DP (``make_zCDP_to_approxDP``) and fixes delta (``make_fix_delta``), so the map
    certifies ``(epsilon, delta)`` directly.
    """
    dp = _opendp()
    build: Callable[[float], Any] = make
    d_out: Any = epsilon
    if delta > 0:
        def approx_dp(s: float) -> Any:
            return dp.c.make_fix_delta(dp.c.make_zCDP_to_approxDP(make(s)), delta)
        build, d_out = approx_dp, (epsilon, delta)
    from opendp.mod import OpenDPException

    try:
        scale = dp.binary_search_param(build, d_in=contributions, d_out=d_out)
        meas = build(scale)
        got = meas.map(contributions)
    except OpenDPException as exc:
        # Bounds about 1e15 wide or an epsilon of 1e-300 need a noise scale OpenDP cannot represent; its message
        # was ~300 digits of an overflowed number, exit 70. Nothing was released or charged.
        raise UsageError(f"{name}: no noise scale OpenDP can represent gives epsilon {epsilon:g} here: the clamping "
                         "bounds are too wide for it, or epsilon too small", field="epsilon",
                         value=epsilon, expected="narrower bounds (--bounds, options.bounds) or a larger epsilon",
                         hint=_opendp_said(exc)) from None
    certified, cert_delta = (float(got[0]), float(got[1])) if delta > 0 else (float(got), 0.0)
    if certified > epsilon * (1 + 1e-9) or cert_delta > delta * (1 + 1e-9):  # pragma: no cover - binary search
        raise AssertionError(f"{name}: OpenDP certifies ({certified}, {cert_delta}), above ({epsilon}, {delta})")
    if spent is not None:
        spent.append(Measurement(name, certified, float(scale), cert_delta))
    return meas(data)


def _opendp_said(exc: BaseException) -> str | None:
    """OpenDP's own words for ``exc`` on one line, unless they are an overflowed number's hundreds of digits (what
    it says of too wide bounds); None then, or when it said nothing."""
    said = " ".join(str(getattr(exc, "message", None) or exc).split())
    if not said or re.search(r"\d{24}", said):
        return None
    return f"OpenDP said: {said[:160]}{'...' if len(said) > 160 else ''}"


def _float_space(dp: Any) -> tuple[Any, Any]:
    return dp.vector_domain(dp.atom_domain(T=float, nan=False)), dp.symmetric_distance()


def dp_count(values: Any, *, epsilon: float, contributions: int = 1, delta: float = 0.0,
             _spent: list[Measurement] | None = None) -> int:
    """The number of values (rows), with discrete Laplace noise: epsilon-DP (``delta`` > 0: discrete Gaussian
    noise, (epsilon, delta)-DP). May be negative (unclipped)."""
    _check_epsilon(epsilon, contributions)
    delta = _check_delta(delta)
    dp = _opendp()
    space = dp.vector_domain(dp.atom_domain(T=str)), dp.symmetric_distance()
    data = ["" for _ in range(len(values))]  # a count reads nothing but the number of rows
    return int(_measure(lambda s: space >> dp.t.then_count() >> _noise(dp, s, delta), data, epsilon, contributions,
                        "count", _spent, delta))


def dp_sum(values: Any, *, epsilon: float, bounds: Sequence[float], contributions: int = 1, delta: float = 0.0,
           _spent: list[Measurement] | None = None) -> float:
    """The sum of the values clamped into ``bounds``, with Laplace noise (OpenDP's float sum): epsilon-DP
    (``delta`` > 0: Gaussian noise, (epsilon, delta)-DP)."""
    _check_epsilon(epsilon, contributions)
    delta = _check_delta(delta)
    lo, hi = _bounds(bounds, "bounds")
    dp = _opendp()
    x = _numbers(values, "values").tolist()
    return float(_measure(lambda s: _float_space(dp) >> dp.t.then_clamp((lo, hi)) >> dp.t.then_sum()
                          >> _noise(dp, s, delta), x, epsilon, contributions, "sum", _spent, delta))


def dp_mean(values: Any, *, epsilon: float, bounds: Sequence[float], contributions: int = 1, delta: float = 0.0,
            _spent: list[Measurement] | None = None) -> float | None:
    """The mean of the values clamped into ``bounds``: a noisy sum over a noisy count (epsilon/2, delta/2 each).

    The ratio is post-processing, clamped into ``bounds``; None when the
    noisy count is below 1 (too few values for a meaningful mean).
    """
    _check_epsilon(epsilon, contributions)
    lo, hi = _bounds(bounds, "bounds")
    x = _numbers(values, "values")
    delta = _check_delta(delta)
    n = dp_count(x, epsilon=epsilon / 2, contributions=contributions, delta=delta / 2, _spent=_spent)
    s = dp_sum(x, epsilon=epsilon / 2, bounds=(lo, hi), contributions=contributions, delta=delta / 2, _spent=_spent)
    return None if n < 1 else float(min(max(s / n, lo), hi))


def dp_histogram(values: Any, *, epsilon: float, bounds: Sequence[float] | None = None, bins: int = 10,
                 categories: Sequence[Any] | None = None, contributions: int = 1, delta: float = 0.0,
                 _spent: list[Measurement] | None = None) -> tuple[list[str], list[int]]:
    """Noisy counts per bin (numeric: ``bins`` equal bins over ``bounds``, values outside clamped into the end
    bins) or per category (``categories``, plus ``(other)`` for every other value): ``(labels, counts)``.

    One measurement (OpenDP's count by categories and discrete Laplace): the
    bins are disjoint, so one individual's rows move at most
    ``contributions`` counts by one each. Counts are clipped at 0
    (post-processing). ``delta`` > 0: discrete Gaussian noise calibrated to
    the L2 sensitivity, (epsilon, delta)-DP.
    """
    _check_epsilon(epsilon, contributions)
    delta = _check_delta(delta)
    if (bounds is None) == (categories is None):
        raise DataError("a histogram needs either bounds (numeric) or categories", field="bounds",
                        expected="bounds=[lower, upper] for numbers, or categories=[...] for text")
    dp = _opendp()
    if categories is not None:
        cats = _categories(categories, "categories")
        data = _texts(values)
        labels = [*cats, OTHER]
    else:
        lo, hi = _bounds(bounds, "bounds")
        if not isinstance(bins, int) or bins < 1:
            raise DataError("must be a positive integer", field="bins", value=bins)
        x = np.clip(_numbers(values, "values"), lo, hi)
        idx = np.minimum(((x - lo) / (hi - lo) * bins).astype(np.int64), bins - 1)  # a row-wise map
        cats = [str(i) for i in range(bins)]
        data = [cats[i] for i in idx.tolist()]
        edges = np.linspace(lo, hi, bins + 1)
        labels = [f"[{edges[i]:.6g}, {edges[i + 1]:.6g}{']' if i == bins - 1 else ')'}" for i in range(bins)]
    space = dp.vector_domain(dp.atom_domain(T=str)), dp.symmetric_distance()
    metric = dp.L2Distance[int] if delta > 0 else dp.L1Distance[int]  # the Gaussian is calibrated in L2
    counts = _measure(lambda s: space >> dp.t.then_count_by_categories(categories=cats, MO=metric)
                      >> _noise(dp, s, delta), data, epsilon, contributions, "histogram", _spent, delta)
    counts = [max(int(c), 0) for c in counts]
    if categories is None:
        counts = counts[:bins]  # the "other" bucket of a numeric histogram is always 0 (values were clamped in)
    return labels, counts


def quantiles_from_histogram(edges: Sequence[float] | np.ndarray, counts: Sequence[float],
                             qs: Sequence[float]) -> list[float | None]:
    """Quantiles read off a histogram (linear within a bin): post-processing of a DP histogram costs nothing.

    None for every quantile when the counts sum to 0.
    """
    c = np.maximum(np.asarray(counts, dtype=np.float64), 0.0)
    total = c.sum()
    if total <= 0:
        return [None for _ in qs]
    cdf = np.concatenate([[0.0], np.cumsum(c)]) / total
    return [float(np.interp(q, cdf, edges)) if np.all(np.diff(cdf) >= 0) else None for q in qs]


def dp_quantiles(values: Any, qs: Sequence[float], *, epsilon: float, bounds: Sequence[float],
                 candidates: int = 101, contributions: int = 1,
                 _spent: list[Measurement] | None = None) -> list[float]:
    """Each quantile ``q`` of ``qs`` by the exponential mechanism over ``candidates`` evenly spaced values in
    ``bounds`` (OpenDP's quantile score and noisy max with Gumbel noise), epsilon/len(qs) each."""
    _check_epsilon(epsilon, contributions)
    lo, hi = _bounds(bounds, "bounds")
    if not qs or any(not 0.0 <= q <= 1.0 for q in qs):
        raise DataError("quantiles must lie in [0, 1]", field="qs", value=list(qs))
    dp = _opendp()
    grid = np.linspace(lo, hi, candidates).tolist()
    x = np.clip(_numbers(values, "values"), lo, hi).tolist()
    out = []
    for q in qs:
        def make(s: float, q: float = q) -> Any:
            # Report-noisy-min with Gumbel noise (pure DP under max divergence) over the candidates' scores.
            return (_float_space(dp) >> dp.t.then_quantile_score_candidates(grid, q)
                    >> dp.m.then_noisy_max(dp.max_divergence(), s, negate=True))
        out.append(float(grid[int(_measure(make, x, epsilon / len(qs), contributions, f"quantile {q:g}", _spent))]))
    return out


# ---------------------------------------------------------------------------
# whole profiles


@dataclass(repr=False)
class DPProfile(ResultView):
    """A differentially private profile (:func:`dp_profile`).

    ``rows``: the noisy row count. ``columns``: one dict per released column:
    ``column``, ``type`` (``numeric`` or ``categorical``), ``count`` (noisy
    non-missing values), and ``mean``, ``quantiles`` (p5 .. p95, from the
    histogram), ``bounds`` for numbers, ``top`` for categories, and the
    ``histogram`` (``labels``, ``counts``). ``skipped``: column -> why it was
    not released. ``measurements``: every OpenDP measurement with the
    (epsilon, delta) its privacy map certifies; ``epsilon`` and ``delta``
    are their sums (what the release spends; delta 0 for pure DP).
    """

    epsilon: float
    contributions: int
    rows: int
    columns: list[dict[str, Any]]
    skipped: dict[str, str]
    measurements: list[Measurement] = field(default_factory=list)
    delta: float = 0.0

    @property
    def spent(self) -> float:
        """The epsilon the release spends: the sum over its measurements (sequential composition)."""
        return float(sum(m.epsilon for m in self.measurements))

    @property
    def spent_delta(self) -> float:
        """The delta the release spends: the sum over its measurements (basic composition; 0 for pure DP)."""
        return float(sum(m.delta for m in self.measurements))

    def to_dict(self) -> dict[str, Any]:
        """The ``dp_profile`` result document (less ``outputs``/``on_violation``/``privacy``): one row per released
        column (``metric`` ``dp_profile``, ``value`` its noisy count, the rest in ``details``)."""
        rows = [{"column": c["column"], "metric": "dp_profile", "value": c["count"], "p_value": None,
                 "threshold": None, "verdict": "ok", "details": {k: v for k, v in c.items() if k != "column"}}
                for c in self.columns]
        # The row count is a release too (a measurement, spent for): said, not only kept in the summary ("a profile
        # of 0 columns" spent budget on a count nobody was shown).
        message = (f"differentially private profile of {len(self.columns)} columns and the row count (noisy: "
                   f"{self.rows}) at epsilon {self.spent:g} "
                   f"(delta {self.spent_delta:g}; {len(self.measurements)} measurements; {self.contributions} row(s) per individual)")
        if self.skipped:
            message += f"; not released (no bounds or categories declared for them): {', '.join(self.skipped)}"
        return strict({"kind": "dp_profile", "verdict": "ok", "message": message, "rows": rows,
                       "summary": {"rows": self.rows, "epsilon": self.spent, "delta": self.spent_delta,
                                   "contributions": self.contributions, "skipped": self.skipped,
                                   "measurements": [{"name": m.name, "epsilon": m.epsilon, "delta": m.delta, "scale": m.scale}
                                                    for m in self.measurements]}})

    def _frames(self) -> dict[str, tuple[list[dict[str, Any]], str | None]]:
        return {"columns": (strict([{k: v for k, v in c.items() if k != "histogram"} for c in self.columns]),
                            "column")}

    def _display(self) -> tuple[str, str | None, str | None, list[Table]]:
        doc = self.to_dict()
        return f"edgeorch dp_profile (epsilon {self.spent:g})", None, doc["message"], doc_tables(doc)


def dp_profile(data: Any, *, epsilon: float, bounds: Mapping[str, Sequence[float]] | None = None,
               categories: Mapping[str, Sequence[Any]] | None = None, columns: Sequence[str] | None = None,
               contributions: int = 1, bins: int = 20, delta: float = 0.0) -> DPProfile:
    """A differentially private profile of ``data`` (a path, a pyarrow Table, or a mapping of columns).

    Released: the row count; per numeric column with declared ``bounds``:
    non-missing count, sum (-> mean) and a ``bins``-bin histogram (->
    quantiles); per categorical column with declared ``categories``: its
    counts (-> top values). ``epsilon`` is split evenly over these
    measurements, so the profile spends ``epsilon`` in all. ``delta`` > 0
    releases every count, sum and histogram with Gaussian noise instead,
    splitting ``delta`` evenly too: ``(epsilon, delta)``-DP by basic
    composition. Other columns
    are listed in ``skipped`` with the reason. A bound or category named for
    a column the data does not have is a DataError.
    """
    _check_epsilon(epsilon, contributions)
    delta = _check_delta(delta)
    table = _table(data, columns)
    bounds, categories = dict(bounds or {}), dict(categories or {})
    for name in [*bounds, *categories]:
        if name not in table.column_names:  # a usage error (exit 2), as any unknown column named
            raise UnknownColumnError("no such column", field=f"bounds.{name}" if name in bounds
                                     else f"categories.{name}", value=name,
                                     expected=f"one of {', '.join(table.column_names)}")
    for name, cats in categories.items():  # before anything is measured: nothing spent on a bad declaration
        _categories(cats, f"categories.{name}")
    plan: list[tuple[str, str]] = []
    skipped: dict[str, str] = {}
    for name in table.column_names:
        # A column with no value in the file (a header alone, or every cell empty) has no type to hold a
        # declaration against ("bounds are for numeric columns (found 'null')"): it is released as declared,
        # as noise around nothing (its noisy count near 0; its mean None when that count is 0). Its emptiness is
        # schema, which is not protected (the module docstring), and the release spends what was asked.
        numeric = _is_numeric(table.column(name).type) or _is_empty(table.column(name).type)
        if name in bounds and numeric:
            plan.append((name, "numeric"))
        elif name in categories:
            plan.append((name, "categorical"))
        elif name in bounds:
            raise ColumnRoleError("bounds are for numeric columns", field=f"bounds.{name}",
                                  value=str(table.column(name).type), expected="categories for a text column")
        else:
            skipped[name] = "no declared bounds" if numeric else "no declared categories"
    k = 1 + sum(3 if kind == "numeric" else 1 for _, kind in plan)
    each, each_d = epsilon / k, delta / k
    spent: list[Measurement] = []
    rows = max(dp_count(range(table.num_rows), epsilon=each, contributions=contributions, delta=each_d,
                        _spent=spent), 0)
    out = []
    for name, kind in plan:
        col = table.column(name)
        if kind == "numeric":
            lo, hi = _bounds(bounds[name], f"bounds.{name}")
            x = _numbers(col, name)
            n = dp_count(x, epsilon=each, contributions=contributions, delta=each_d, _spent=spent)
            s = dp_sum(x, epsilon=each, bounds=(lo, hi), contributions=contributions, delta=each_d, _spent=spent)
            labels, counts = dp_histogram(x, epsilon=each, bounds=(lo, hi), bins=bins, contributions=contributions,
                                          delta=each_d, _spent=spent)
            qv = quantiles_from_histogram(np.linspace(lo, hi, bins + 1), counts, PROFILE_QUANTILES)
            out.append({"column": name, "type": "numeric", "count": max(n, 0),
                        "mean": None if n < 1 else float(min(max(s / n, lo), hi)),
                        "quantiles": {f"p{round(q * 100)}": v for q, v in zip(PROFILE_QUANTILES, qv)},
                        "bounds": [lo, hi], "histogram": {"labels": labels, "counts": counts}})
        else:
            labels, counts = dp_histogram(col, epsilon=each, categories=categories[name],
                                          contributions=contributions, delta=each_d, _spent=spent)
            top = sorted(zip(labels, counts), key=lambda kv: -kv[1])
            out.append({"column": name, "type": "categorical", "count": int(sum(counts)),
                        "top": [[k_, v] for k_, v in top if v > 0][:20],
                        "histogram": {"labels": labels, "counts": counts}})
    return DPProfile(epsilon, contributions, rows, out, skipped, spent, sum(m.delta for m in spent))


def _is_empty(t: Any) -> bool:
    """Whether a column of type ``t`` holds no value at all (pyarrow's ``null`` type of an empty CSV column)."""
    import pyarrow.types as pt

    return bool(pt.is_null(t))


def _is_numeric(t: Any) -> bool:
    import pyarrow.types as pt

    return pt.is_integer(t) or pt.is_floating(t) or pt.is_boolean(t)


def _table(data: Any, columns: Sequence[str] | None) -> Any:
    import pyarrow as pa

    if isinstance(data, pa.Table):
        return data.select(list(columns)) if columns else data
    if isinstance(data, Mapping):
        t = pa.table({str(k): list(v) if not isinstance(v, (np.ndarray, pa.Array)) else v for k, v in data.items()})
        return t.select(list(columns)) if columns else t
    from .io import read_table

    return read_table(data, list(columns) if columns else None)
