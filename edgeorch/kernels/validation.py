"""Schema checks of a table: required columns, types, ranges, null rates, allowed values.

Checks run on the table's profile (one streaming pass, so any file size).
Each check gives a row ``{column, metric, value, threshold, verdict,
details}``; ``verdict`` is ``ok`` or ``violation``. Definitions:

- ``required``: the column exists (value 1 or 0).
- ``type``: the inferred type is acceptable: ``integer`` (integer),
  ``float`` (float or integer), ``numeric`` (integer, float, boolean),
  ``boolean``, ``string`` (string), ``categorical`` (string, mixed, boolean),
  ``datetime`` (datetime or date). A column with no value (``empty``) passes
  any type.
- ``range``: every value lies in ``[min, max]``; NaN does not count, ±inf
  does (it is outside any finite range). The value reported is the column's
  extreme that breaks the bound (or its min/max when none does);
  ``details.out_of_range`` counts the rows outside, exactly while the
  column's quantile sample holds every value (``out_of_range_exact``), else
  estimated from that sample (± its rank error, ~1 % of the rows).
- ``null_rate``: (nulls + NaN) / rows, at most the limit. An empty table has
  rate 0.
- ``allowed``: every non-null value is one of the allowed ones (compared as
  text); ``details.unexpected`` lists up to 20 others with their counts.
  Not checked on a datetime column (a violation that says so).
"""

from __future__ import annotations

from typing import Any

from .profiling import ColumnProfile, Profile

_TYPE_OK = {
    "integer": {"integer"},
    "float": {"float", "integer"},
    "numeric": {"integer", "float", "boolean"},
    "boolean": {"boolean"},
    "string": {"string"},
    "categorical": {"string", "mixed", "boolean"},
    "datetime": {"datetime", "date"},
}


def _row(column: str, metric: str, value: Any, threshold: Any, ok: bool, **details: Any) -> dict[str, Any]:
    return {"column": column, "metric": metric, "value": value, "p_value": None, "threshold": threshold,
            "verdict": "ok" if ok else "violation", "details": details}


def _null_rate(c: ColumnProfile) -> float:
    return (c.nulls + c.nan) / c.count if c.count else 0.0


def validate(data: Any, *, required_columns: list[str] | None = None, types: dict[str, str] | None = None,
             ranges: dict[str, Any] | None = None, max_null_rate: float | dict[str, float] | None = None,
             allowed: dict[str, list[Any]] | None = None, profile: Profile | None = None) -> dict[str, Any]:
    """Check ``data`` (a path or in-memory table) against the schema; see the module docstring.

    Returns ``{"rows": [...], "violations": n, "profile": Profile}``. A column
    named in ``types``/``ranges``/``allowed`` that does not exist is a
    ``required`` violation (it cannot be checked).
    """
    from .profiling import profile as make_profile

    prof = profile or make_profile(data)
    cols = prof.columns
    rows: list[dict[str, Any]] = []
    named = list(dict.fromkeys([*(required_columns or []), *(types or {}), *(ranges or {}), *(allowed or {}),
                                *(max_null_rate if isinstance(max_null_rate, dict) else {})]))
    for name in named:
        if name not in cols:
            rows.append(_row(name, "required", 0, 1, False, available=list(cols)[:50]))
        elif name in (required_columns or []):
            rows.append(_row(name, "required", 1, 1, True))
    for name, expected in (types or {}).items():
        if name in cols:
            got = cols[name].dtype
            rows.append(_row(name, "type", got, expected, got == "empty" or got in _TYPE_OK[expected]))
    for name, bounds in (ranges or {}).items():
        if name in cols:
            rows.append(_range_row(cols[name], bounds))
    if max_null_rate is not None:
        limits = max_null_rate if isinstance(max_null_rate, dict) else {n: max_null_rate for n in cols}
        for name, limit in limits.items():
            if name in cols:
                rate = _null_rate(cols[name])
                rows.append(_row(name, "null_rate", rate, float(limit), rate <= limit,
                                 nulls=cols[name].nulls, nan=cols[name].nan, rows=cols[name].count))
    for name, values in (allowed or {}).items():
        if name in cols:
            rows.append(_allowed_row(cols[name], values))
    return {"rows": rows, "violations": sum(r["verdict"] == "violation" for r in rows), "profile": prof}


def _range_row(c: ColumnProfile, bounds: Any) -> dict[str, Any]:
    lo, hi = (bounds[0], bounds[1]) if isinstance(bounds, (list, tuple)) else (bounds.get("min"), bounds.get("max"))
    if c.kind != "numeric":
        return _row(c.name, "range", None, [lo, hi], False, reason=f"column is {c.dtype}, not numeric")
    if c.n == 0 and not (c.pos_inf or c.neg_inf):
        return _row(c.name, "range", None, [lo, hi], True, reason="no values")
    mn = float("-inf") if c.neg_inf else c.min
    mx = float("inf") if c.pos_inf else c.max
    below = lo is not None and mn is not None and mn < lo
    above = hi is not None and mx is not None and mx > hi
    value: float | int | list[float | int | None] | str | None  # an infinite bound reads as text
    value = mn if below else mx if above else [mn, mx]
    if isinstance(value, float) and value in (float("inf"), float("-inf")):
        value = str(value)
    return _row(c.name, "range", value, [lo, hi], not (below or above), min=_finite(mn), max=_finite(mx),
                out_of_range=_rows_outside(c, lo, hi) if below or above else 0,
                out_of_range_exact=c.sketch.exact or not (below or above))


def _rows_outside(c: ColumnProfile, lo: float | None, hi: float | None) -> int:
    """How many of the column's values lie outside ``[lo, hi]``: the infinities, and the finite values counted in
    its quantile sample (every value while it is exact; else the sample's share of them times the finite count)."""
    import numpy as np

    kept = c.sketch.values
    outside = (int(np.count_nonzero(kept < lo)) if lo is not None else 0) + \
        (int(np.count_nonzero(kept > hi)) if hi is not None else 0)
    finite = outside if c.sketch.exact or not len(kept) else round(outside / len(kept) * c.n)
    return finite + (c.neg_inf if lo is not None else 0) + (c.pos_inf if hi is not None else 0)


def _finite(v: Any) -> Any:
    return str(v) if isinstance(v, float) and v in (float("inf"), float("-inf")) else v


def _allowed_row(c: ColumnProfile, values: list[Any]) -> dict[str, Any]:
    allowed = {str(v).lower() if isinstance(v, bool) else str(v) for v in values}
    if c.kind == "datetime":
        return _row(c.name, "allowed", None, sorted(allowed), False,
                    reason="allowed values are not checked on a datetime column")
    if c.kind == "categorical":
        counts = c.value_counts
    else:
        # Numeric columns (codes like 1, 2, 3): the distinct values are known
        # exactly while the quantile sample still holds every value.
        import numpy as np

        if not c.sketch.exact:
            return _row(c.name, "allowed", None, sorted(allowed), False,
                        reason="too many values to check a numeric column; store it as text")
        u, n = np.unique(c.sketch.values, return_counts=True)
        counts = {(str(int(v)) if float(v).is_integer() else repr(float(v))): int(k) for v, k in zip(u, n)}
    bad = {k: v for k, v in counts.items() if k not in allowed}
    top = sorted(bad.items(), key=lambda kv: -kv[1])[:20]
    return _row(c.name, "allowed", sum(bad.values()), sorted(allowed), not bad, unexpected=top,
                counts_exact=c.counts_exact)
