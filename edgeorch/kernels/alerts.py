"""Alerts of a profile: what a person should look at first (pure; light: no numpy).

:func:`profile_alerts` reads column summaries (``ColumnProfile.to_dict()``)
and returns one alert per finding, most severe first:

| alert | when |
|---|---|
| ``constant`` | one distinct value (and at least one value) |
| ``high_missing`` | missing (nulls + NaN) share of rows above ``max_missing`` (default 0.2) |
| ``high_cardinality`` | a text column whose distinct values exceed ``max_distinct`` (50) and half its values: an id rather than a category |
| ``heavy_skew`` | numeric with abs(skewness) above ``max_skew`` (3); not a two-valued column (a 0/1 flag) |
| ``many_zeros`` | numeric with zeros above ``max_zeros`` (0.5) of its values; not a two-valued column |
| ``unexpected_negatives`` | negatives in a column whose declared range starts at >= 0 |
| ``out_of_range`` | min or max outside a declared range (``ranges``: column -> [min, max], either may be None) |
| ``duplicates`` | duplicate rows (from :func:`.duplicates.duplicate_rows`), when given |
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

SEVERITY = {"constant": "warn", "high_missing": "warn", "high_cardinality": "info", "heavy_skew": "info",
            "many_zeros": "info", "unexpected_negatives": "violation", "out_of_range": "violation",
            "duplicates": "warn"}
_ORDER = {"violation": 0, "warn": 1, "info": 2}


def _alert(kind: str, column: str | None, message: str, value: Any) -> dict[str, Any]:
    return {"alert": kind, "column": column, "severity": SEVERITY[kind], "message": message, "value": value}


def profile_alerts(summaries: Sequence[Mapping[str, Any]], *, ranges: Mapping[str, Sequence[Any]] | None = None,
                   duplicates: Mapping[str, Any] | None = None, max_missing: float = 0.2, max_distinct: int = 50,
                   max_skew: float = 3.0, max_zeros: float = 0.5) -> list[dict[str, Any]]:
    """The alerts of these column summaries (see the module docstring), most severe first, then by column."""
    out: list[dict[str, Any]] = []
    ranges = dict(ranges or {})
    for s in summaries:
        col, count = s["column"], s.get("count") or 0
        missing = (s.get("nulls") or 0) + (s.get("nan") or 0)
        if count and missing / count > max_missing:
            out.append(_alert("high_missing", col, f"{missing / count:.0%} of the rows are missing", missing / count))
        if s.get("distinct") == 1 and count > missing:
            out.append(_alert("constant", col, "one distinct value", 1))
        numeric = s.get("type") in ("integer", "float", "boolean")
        # A two-valued column (0/1, a flag) is mostly zeros and skewed whenever its event is rare: that is what it
        # is, not news (the report raised both on every flag and label column).
        indicator = s.get("distinct") == 2
        if s.get("type") in ("string", "mixed") and (s.get("distinct") or 0) > max_distinct \
                and (s.get("distinct") or 0) > 0.5 * max(count - missing, 1):
            out.append(_alert("high_cardinality", col, f"{s['distinct']} distinct values in {count - missing}: "
                                                      "an identifier rather than a category?", s["distinct"]))
        skew = s.get("skewness")
        if numeric and not indicator and skew is not None and abs(skew) > max_skew:
            out.append(_alert("heavy_skew", col, f"skewness {skew:.3g}", skew))
        finite = s.get("finite") or 0
        if numeric and not indicator and finite and (s.get("zeros") or 0) / finite > max_zeros:
            out.append(_alert("many_zeros", col, f"{s['zeros'] / finite:.0%} of the values are 0",
                              s["zeros"] / finite))
        if col in ranges and numeric:
            r = ranges[col]  # [min, max] or {min = .., max = ..}, as the validate kind's ranges
            lo, hi = (r.get("min"), r.get("max")) if isinstance(r, Mapping) else (list(r) + [None, None])[:2]
            if lo is not None and lo >= 0 and (s.get("negatives") or 0) > 0:
                out.append(_alert("unexpected_negatives", col, f"{s['negatives']} negative values; the declared "
                                                               f"range starts at {lo:g}", s["negatives"]))
            elif lo is not None and s.get("min") is not None and s["min"] < lo:
                out.append(_alert("out_of_range", col, f"min {s['min']:g} below the declared {lo:g}", s["min"]))
            if hi is not None and s.get("max") is not None and s["max"] > hi:
                out.append(_alert("out_of_range", col, f"max {s['max']:g} above the declared {hi:g}", s["max"]))
    if duplicates and duplicates.get("duplicate_rows"):
        d = duplicates
        out.append(_alert("duplicates", None, f"{d['duplicate_rows']} duplicate rows "
                                              f"({d['duplicate_rows'] / max(d['rows'], 1):.1%}"
                                              f"{' of a sample' if d.get('sampled') else ''})", d["duplicate_rows"]))
    return sorted(out, key=lambda a: (_ORDER[a["severity"]], a["column"] or "", a["alert"]))
