"""The faces of kernel results: JSON-ready dicts, DataFrames, notebook HTML, text.

Every public result (:class:`~.profiling.Profile`,
:class:`~.profiling.ColumnProfile`, :class:`~.drift.DatasetDrift`,
:class:`~.drift.ColumnDrift`, :class:`~.fairness.FairnessReport`) derives
from :class:`ResultView` and defines

- ``to_dict()``: strict JSON values (NaN and inf as None, no numpy scalars).
  For the reports this is the result document the pipeline task records
  and ``edgeorch profile|drift|fairness --json`` prints (less ``outputs``
  and ``on_violation``, which belong to the run), built in that one place;
- ``_frames()``: the records of its DataFrames, by table name;
- ``_display()``: its title, verdict, message and compact tables.

From these the mixin derives ``to_pandas()``, ``_repr_html_()`` (Jupyter,
VS Code) and ``__repr__``. The compact tables of a result document
(:func:`doc_tables`) are also what the CLI prints, so a notebook and a
terminal show the same columns.

Light: imports neither numpy nor pandas (pandas only inside ``to_pandas``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from ..errors import DataError, MissingDependencyError

Table = tuple[str, list[str], list[list[Any]]]  # caption, headers, rows

PROFILE_HEADERS = ["column", "type", "count", "missing", "distinct", "min", "median", "max", "mean", "std", "top"]
DATETIME_HEADERS = ["column", "timezone", "min", "max", "range", "largest gap", "median gap"]
DRIFT_HEADERS = ["column", "method", "value", "p_value", "threshold", "verdict"]
GROUP_HEADERS = ["group", "size", "selection_rate", "tpr", "fpr", "verdict"]
METRIC_HEADERS = ["metric", "value", "limit", "verdict"]
DATETIME_TYPES = ("datetime", "date")


def strict(obj: Any) -> Any:
    """Plain JSON values only: NaN/inf -> None, numpy scalars -> Python, tuples -> lists."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {str(k): strict(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [strict(v) for v in obj]
    if hasattr(obj, "item") and not isinstance(obj, (str, bytes)):
        return strict(obj.item())
    return obj


def require_pandas(what: str) -> Any:
    """The pandas module; :class:`MissingDependencyError` (an ImportError) naming ``what`` when absent."""
    try:
        import pandas
    except ImportError:
        raise MissingDependencyError(f"{what} needs pandas, which is not installed",
                                     hint="pip install pandas (or: pip install 'edgeorch[notebook]')") from None
    return pandas


def flatten(record: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested dicts as dotted keys (``quantiles.p50``); lists are kept as values."""
    out: dict[str, Any] = {}
    for k, v in record.items():
        key = f"{prefix}{k}"
        if isinstance(v, Mapping):
            out.update(flatten(v, key + "."))
        else:
            out[key] = v
    return out


def row_record(row: Mapping[str, Any]) -> dict[str, Any]:
    """A result-document row with its ``details`` lifted beside the other fields (for a DataFrame)."""
    rec = {k: v for k, v in row.items() if k != "details"}
    for k, v in (row.get("details") or {}).items():
        rec.setdefault(k, v)
    return rec


# ---------------------------------------------------------------------------
# compact tables (CLI, notebook, repr)


def _human(secs: Any) -> str | None:
    from .datetimes import human_duration

    return human_duration(secs)


def profile_row(s: Mapping[str, Any]) -> list[Any]:
    """One column's summary (``ColumnProfile.to_dict()``) as a row under :data:`PROFILE_HEADERS`."""
    q = s.get("quantiles") or {}
    # The statistics are of the finite values; the column's own bounds say where infinities lie (a column of 5,
    # inf and -inf read as constant 5).
    lo = -math.inf if s.get("neg_inf") else s.get("min")
    hi = math.inf if s.get("pos_inf") else s.get("max")
    return [s["column"], s["type"], s["count"], s["nulls"] + s.get("nan", 0), s["distinct"], lo,
            q.get("p50"), hi, s.get("mean"), s.get("std"),
            ", ".join(f"{v}({c})" for v, c in s.get("top", [])[:3]) or None]


def datetime_row(s: Mapping[str, Any]) -> list[Any]:
    """A datetime column's summary as a row under :data:`DATETIME_HEADERS` (durations as text)."""
    median = _human(s.get("median_gap_s"))
    if median is not None and not s.get("gaps_exact", True):
        median = "~" + median
    return [s["column"], s.get("timezone"), s.get("min"), s.get("max"), _human(s.get("range_s")),
            _human(s.get("largest_gap_s")), median]


def summary_tables(summaries: list[Mapping[str, Any]]) -> list[Table]:
    """Column summaries as the profile table, plus a table of the datetime columns when there are any."""
    tables: list[Table] = [("columns", PROFILE_HEADERS, [profile_row(s) for s in summaries])]
    dts = [datetime_row(s) for s in summaries if s.get("type") in DATETIME_TYPES]
    if dts:
        tables.append(("datetime columns", DATETIME_HEADERS, dts))
    return tables


DP_HEADERS = ["column", "type", "count", "mean", "p25", "median", "p75", "top"]
EXPLAIN_HEADERS = ["rank", "feature", "importance", "std", "ci_low", "ci_high", "shap"]


def dp_row(r: Mapping[str, Any]) -> list[Any]:
    """One released column of a ``dp_profile`` document (noisy values) as a row under :data:`DP_HEADERS`."""
    d = r["details"]
    q = d.get("quantiles") or {}
    top = ", ".join(f"{k}({v})" for k, v in (d.get("top") or [])[:3]) or None
    return [r["column"], d.get("type"), r["value"], d.get("mean"), q.get("p25"), q.get("p50"), q.get("p75"), top]


def explain_row(r: Mapping[str, Any]) -> list[Any]:
    """One feature of an ``explain`` document as a row under :data:`EXPLAIN_HEADERS`."""
    d = r["details"]
    return [d.get("rank"), r["column"], r["value"], d.get("std"), d.get("ci_low"), d.get("ci_high"), d.get("shap")]


def drift_row(r: Mapping[str, Any]) -> list[Any]:
    return [r["column"], r["metric"], r["value"], r["p_value"], r["threshold"], r["verdict"]]


def doc_tables(doc: Mapping[str, Any]) -> list[Table]:
    """The compact tables of a result document (what the CLI prints, and a notebook shows).

    A profile without a reference: one row per column (and the datetime
    columns' table); a profile against a reference and a drift document: one
    row per column's test; fairness: the groups, then the metrics.
    """
    rows = doc.get("rows", [])
    kind = doc.get("kind")
    if kind == "fairness":
        groups = [r for r in rows if r["metric"] == "group"]
        metrics = [r for r in rows if r["metric"] != "group"]
        return [("groups", GROUP_HEADERS,
                 [[g["details"]["group"], g["details"]["size"], g["value"], g["details"].get("tpr"),
                   g["details"].get("fpr"), g["verdict"]] for g in groups]),
                ("metrics", METRIC_HEADERS,
                 [[m["metric"] + (f" ({m['details']['rule']})" if m["details"].get("rule") else ""), m["value"],
                   f"{'<=' if m['details']['kind'] == 'maximum' else '>='} {m['threshold']:g}", m["verdict"]]
                  for m in metrics])]
    if kind == "profile" and all(r["metric"] == "null_rate" for r in rows):
        return summary_tables([r["details"] for r in rows])
    if kind == "dp_profile":
        return [("columns", DP_HEADERS, [dp_row(r) for r in rows])]
    if kind == "explain":
        return [("features", EXPLAIN_HEADERS, [explain_row(r) for r in rows])]
    return [("columns", DRIFT_HEADERS, [drift_row(r) for r in rows])]


# ---------------------------------------------------------------------------
# the mixin


class ResultView:
    """``to_pandas``, ``_repr_html_`` and ``__repr__`` of a result (see the module docstring)."""

    def to_dict(self) -> dict[str, Any]:  # pragma: no cover - every result defines it
        raise NotImplementedError

    def _frames(self) -> dict[str, tuple[list[dict[str, Any]], str | None]]:  # pragma: no cover
        """Table name -> (records, the column that names each row); the first table is the default."""
        raise NotImplementedError

    def _display(self) -> tuple[str, str | None, str | None, list[Table]]:  # pragma: no cover
        """(title, verdict or None, message or None, compact tables)."""
        raise NotImplementedError

    def to_pandas(self, table: str | None = None) -> Any:
        """A pandas DataFrame of this result: one row per record of ``table`` (default: the first).

        Values are those of ``to_dict()`` (datetimes as ISO 8601 text, None for
        undefined); nested values become dotted columns (``quantiles.p50``).
        Raises :class:`MissingDependencyError` (an ImportError) without pandas,
        and DataError for an unknown ``table``.
        """
        frames = self._frames()
        name = next(iter(frames)) if table is None else table
        if name not in frames:
            raise DataError("no such table", field="table", value=table, expected=f"one of {', '.join(frames)}")
        pd = require_pandas(f"{type(self).__name__}.to_pandas()")
        records, index = frames[name]
        df = pd.DataFrame([flatten(r) for r in records])
        if index is not None and index in df.columns:
            df = df.set_index(index)
        return df

    def _repr_html_(self) -> str:
        from .report import inline

        return inline(*self._display())

    def __repr__(self) -> str:
        from ..textui import render_table

        title, verdict, message, tables = self._display()
        lines = [title + (f" [{verdict}]" if verdict else "")]
        if message:
            lines.append(message)
        for caption, headers, rows in tables:
            lines.append("")
            if len(tables) > 1:
                lines.append(f"{caption}:")
            lines.append(render_table(headers, rows))
        return "\n".join(lines)
