"""The sections of the HTML reports, one builder per kind of content (the page itself is :mod:`.report`'s).

- :func:`profile_sections`: overview, alerts, the statistics the CLI prints
  per column (and more: quantiles, zeros, negatives, top values), a chart
  per column, correlation matrices (Pearson, Spearman, Cramér's V) and
  duplicate rows, the last two on a sample of the first ``sample_rows``
  rows (the report says when it is a sample);
- drift needs no builder of its own: the page's results table has per
  column the test, statistic (or distance), p-value, threshold and verdict,
  and its charts overlay reference and current;
- :func:`fairness_sections`: per group selection rate and error rates with
  the verdict, a selection-rate chart with the four-fifths line, the metric
  verdicts (the gate's view);
- :func:`explain_sections`: importances with their confidence intervals.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from .report import Section, hbar_chart, heatmap, table

SAMPLE_ROWS = 100_000
"""Rows read for correlations and duplicates (the statistics themselves always cover the whole file)."""
MAX_CATEGORIES = 50
"""Categorical columns with more distinct values are left out of Cramér's V (a matrix of ids says nothing)."""


def sample_table(path: str | Path, columns: Sequence[str] | None = None, limit: int = SAMPLE_ROWS) -> tuple[Any, bool]:
    """The first ``limit`` rows of a data file as a pyarrow Table, and whether the file had more."""
    import pyarrow as pa

    from .io import checked_format, iter_arrow, read_table

    cols = list(columns) if columns else None
    if checked_format(Path(path)) in ("csv", "tsv", "parquet"):
        batches, n, more = [], 0, False
        for rb in iter_arrow(path, cols):
            if n >= limit:
                more = True
                break
            batches.append(rb.slice(0, limit - n))
            n += min(rb.num_rows, limit - n)
            more = more or rb.num_rows > batches[-1].num_rows
        return (pa.Table.from_batches(batches) if batches else read_table(path, cols).slice(0, 0)), more
    t = read_table(path, cols)
    return t.slice(0, limit), t.num_rows > limit


def _stats_rows(summaries: Sequence[Mapping[str, Any]]) -> tuple[list[str], list[list[Any]]]:
    headers = ["column", "type", "count", "missing", "distinct", "mean", "std", "min", "p5", "p25", "median", "p75",
               "p95", "max", "zeros", "negatives", "top values"]
    rows = []
    for s in summaries:
        q = s.get("quantiles") or {}
        top = ", ".join(f"{v} ({c})" for v, c in (s.get("top") or [])[:5]) or None
        rows.append([s["column"], s["type"], s["count"], (s.get("nulls") or 0) + (s.get("nan") or 0), s.get("distinct"),
                     s.get("mean"), s.get("std"), s.get("min"), q.get("p5"), q.get("p25"), q.get("p50"), q.get("p75"),
                     q.get("p95"), s.get("max"), s.get("zeros"), s.get("negatives"), top])
    return headers, rows


def profile_sections(prof: Any, sample: Any, sampled: bool, *, ranges: Mapping[str, Sequence[Any]] | None = None
                     ) -> tuple[list[Section], list[dict[str, Any]]]:
    """The profile report's sections and its alerts, from the profile (whole file) and a row sample."""
    import numpy as np
    import pyarrow.types as pt

    from .alerts import profile_alerts
    from .correlations import cramers_v, pearson, spearman
    from .duplicates import duplicate_rows

    summaries = prof.summary()
    numeric, categorical = {}, {}
    for name in sample.column_names:
        col = sample.column(name)
        if pt.is_integer(col.type) or pt.is_floating(col.type) or pt.is_boolean(col.type):
            numeric[name] = np.asarray(col.to_numpy(zero_copy_only=False), dtype=np.float64)
        elif pt.is_string(col.type) or pt.is_large_string(col.type) or pt.is_dictionary(col.type):
            values = col.to_pylist()
            if len({v for v in values if v is not None}) <= MAX_CATEGORIES:
                categorical[name] = values
    dups = duplicate_rows({n: sample.column(n).to_pylist() for n in sample.column_names}, sampled=sampled)
    alerts = profile_alerts(summaries, ranges=ranges, duplicates=dups)
    where = f"the first {sample.num_rows:,} rows" if sampled else f"all {sample.num_rows:,} rows"
    overview = table(["rows", "columns", "alerts", "duplicate rows", "correlations and duplicates on"],
                     [[prof.rows, len(summaries), len(alerts), dups["duplicate_rows"], where]])
    sections: list[Section] = [("overview", "Overview", overview)]
    sections.append(("alerts", f"Alerts ({len(alerts)})",
                     table(["severity", "alert", "column", "message"],
                           [[a["severity"], a["alert"], a["column"], a["message"]] for a in alerts])
                     if alerts else "<p class='muted'>No alerts.</p>"))
    headers, rows = _stats_rows(summaries)
    sections.append(("columns", "Columns", table(headers, rows)))
    corr = []
    if len(numeric) >= 2:
        for c in (pearson(numeric), spearman(numeric)):
            d = c.to_dict()
            corr.append(heatmap(d["columns"], d["matrix"], f"{c.method.capitalize()} (numeric columns)"))
    if len(categorical) >= 2:
        d = cramers_v(categorical).to_dict()
        corr.append(heatmap(d["columns"], d["matrix"], "Cramér's V (categorical columns)"))
    sections.append(("correlations", "Correlations",
                     f"<p class='muted'>On {where}.</p><div class='cols'>{''.join(corr)}</div>" if corr else
                     "<p class='muted'>Fewer than two numeric (or categorical) columns.</p>"))
    dup_html = f"<p>{dups['duplicate_rows']:,} duplicate rows in {where}.</p>"
    if dups["top"]:
        names = list(dups["top"][0]["row"])
        dup_html += table(["count", *names], [[t["count"], *[t["row"][n] for n in names]] for t in dups["top"]],
                          "most repeated rows")
    sections.append(("duplicates", "Duplicate rows", dup_html))
    return sections, alerts


def fairness_sections(doc: Mapping[str, Any], groups: Sequence[Mapping[str, Any]], min_group_size: int
                      ) -> list[Section]:
    """Groups with their rates and verdicts, a selection-rate chart with the four-fifths line, the metrics."""
    metrics = [r for r in doc["rows"] if r["metric"] != "group"]
    labels = [g["group"] for g in groups]
    top = max((g["selection_rate"] or 0 for g in groups if g["verdict"] == "ok"), default=0.0)
    chart = hbar_chart(labels, [("selection rate", [g["selection_rate"] or 0 for g in groups])],
                       "selection rate by group", rates=True, x_label="selection rate",
                       marker=0.8 * top if top else None)
    group_rows = [[g["group"], g["size"], g["selection_rate"], g.get("tpr"), g.get("fpr"), g["verdict"]]
                  for g in groups]
    metric_rows = [[m["metric"] + (f" ({m['details']['rule']})" if m["details"].get("rule") else ""), m["value"],
                    ("<= " if m["details"]["kind"] == "maximum" else ">= ") + f"{m['threshold']:g}", m["verdict"]]
                   for m in metrics]
    return [("gate", "Verdict by metric", table(["metric", "value", "limit", "verdict"], metric_rows)),
            ("groups", f"Groups (minimum group size {min_group_size}: smaller groups are left out)",
             table(["group", "size", "selection rate", "tpr", "fpr", "verdict"], group_rows)
             + f"<div class='chart card'>{chart}<p class='muted'>Dashed line: four fifths of the highest "
               f"selection rate among the groups that count (the four-fifths rule).</p></div>")]


def explain_sections(doc: Mapping[str, Any]) -> list[Section]:
    """Importances as bars with their confidence intervals, and the table."""
    rows = doc["rows"]
    labels = [r["column"] for r in rows]
    values = [r["value"] or 0.0 for r in rows]
    errors = [(r["details"].get("ci_low"), r["details"].get("ci_high")) for r in rows]
    errors = [(lo, hi) if lo is not None else (v, v) for (lo, hi), v in zip(errors, values)]
    chart = hbar_chart(labels, [("importance", values)], "permutation importance", errors=errors,
                       x_label=f"drop in {doc['summary']['metric']} when the feature is shuffled")
    headers = ["rank", "feature", "importance", "std", "ci_low", "ci_high"] + (
        ["shap"] if any("shap" in r["details"] for r in rows) else [])
    trows = [[r["details"].get("rank"), r["column"], r["value"], r["details"].get("std"), r["details"].get("ci_low"),
              r["details"].get("ci_high"), *([r["details"].get("shap")] if len(headers) > 6 else [])] for r in rows]
    return [("importance", "Permutation importance", f"<div class='chart card'>{chart}</div>" + table(headers, trows))]
