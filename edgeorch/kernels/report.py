"""HTML of kernel results: self-contained report files, and compact blocks for notebooks.

Report files (:func:`render`, :func:`write`): verdicts, a table of rows, a
chart per column. No network assets: CSS inline, charts as inline SVG, so
the file opens offline and can be attached to an alert. Written atomically.

Notebook blocks (:func:`inline`, behind every result's ``_repr_html_``): a
title, the verdict and compact tables inside one ``<div class="edgeorch-report">``.
Every CSS selector starts with that class, so the block never restyles the
notebook around it (Jupyter puts output styles in the page's one document).
Every value is HTML-escaped: column names and group values are user data.
"""

from __future__ import annotations

import html
import math
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

COLORS = ("#4c78a8", "#f58518")
_CSS = """
body{font-family:system-ui,sans-serif;margin:2em;color:#222;max-width:1100px}
h1{font-size:1.4em} h2{font-size:1.1em;margin-top:1.6em}
table{border-collapse:collapse;font-size:.9em} td,th{padding:.25em .6em;border-bottom:1px solid #ddd;text-align:left}
td.n{text-align:right;font-variant-numeric:tabular-nums}
.v-ok{color:#2a7d2a}.v-drift,.v-violation{color:#b00020;font-weight:600}.v-warn,.v-small_group,.v-no_data,.v-undefined{color:#a66b00}
.v-skipped{color:#666}
.badge{display:inline-block;padding:.2em .6em;border-radius:.3em;color:#fff}
.b-ok{background:#2a7d2a}.b-warn{background:#a66b00}.b-violation{background:#b00020}
.legend span{display:inline-block;width:.8em;height:.8em;margin:0 .3em 0 1em}
.chart{display:inline-block;margin:.5em 1em .5em 0;vertical-align:top}
"""

Series = tuple[str, Sequence[float]]


def _fmt(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return "nan" if math.isnan(v) else f"{v:.4g}"
    return str(v)


# -- notebook blocks ------------------------------------------------------------

SCOPE = "edgeorch-report"
# (selectors, declarations): each selector is put under `.edgeorch-report`, so
# there is no bare `table`/`td` rule that would restyle the notebook. Text
# colours inherit, so dark themes stay readable.
_INLINE_RULES = (
    ("", "font-family:system-ui,sans-serif;font-size:13px;line-height:1.35"),
    (".eo-head", "margin:.2em 0 .4em 0"),
    (".eo-title", "font-weight:600;margin-right:.5em"),
    (".eo-badge", "display:inline-block;padding:0 .5em;border-radius:.3em;color:#fff;background:#777"),
    (".eo-b-ok", "background:#2a7d2a"),
    (".eo-b-warn", "background:#a66b00"),
    (".eo-b-violation, .eo-b-drift", "background:#b00020"),
    ("table.eo-t", "border-collapse:collapse;margin:.2em 0 .8em 0"),
    ("table.eo-t caption", "text-align:left;font-weight:600;padding:.2em 0"),
    ("table.eo-t th, table.eo-t td",
     "padding:.15em .6em;border-bottom:1px solid rgba(127,127,127,.35);text-align:left;white-space:nowrap"),
    ("table.eo-t td.eo-n", "text-align:right;font-variant-numeric:tabular-nums"),
    (".eo-v-drift, .eo-v-violation", "color:#b00020;font-weight:600"),
    (".eo-v-warn, .eo-v-small_group, .eo-v-no_data, .eo-v-undefined", "color:#a66b00"),
    (".eo-v-skipped", "opacity:.7"),
)
_INLINE_CSS = "".join(
    ",".join(f".{SCOPE} {sel.strip()}".rstrip() for sel in sels.split(",")) + "{" + body + "}"
    for sels, body in _INLINE_RULES)
_CLASS_CHARS = re.compile(r"[^a-z0-9_]")


def _css_token(text: str) -> str:
    """A verdict as a class-name suffix (only ``[a-z0-9_]``: a verdict is never markup)."""
    return _CLASS_CHARS.sub("", str(text).lower())


def inline(title: str, verdict: str | None, message: str | None,
           tables: Sequence[tuple[str, Sequence[str], Sequence[Sequence[Any]]]]) -> str:
    """A compact HTML block for a notebook: title, verdict badge, message, then each table.

    The CSS is scoped to the block (see the module docstring); numbers are
    right-aligned with 4 significant digits; None shows as ``-``.
    """
    e = html.escape
    out = [f'<div class="{SCOPE}"><style>{_INLINE_CSS}</style><div class="eo-head">'
           f'<span class="eo-title">{e(title)}</span>']
    if verdict:
        out.append(f'<span class="eo-badge eo-b-{_css_token(verdict)}">{e(verdict)}</span>')
    if message:
        out.append(f" {e(message)}")
    out.append("</div>")
    for caption, headers, rows in tables:
        out.append('<table class="eo-t">')
        if len(tables) > 1:
            out.append(f"<caption>{e(caption)}</caption>")
        out.append("<thead><tr>" + "".join(f"<th>{e(h)}</th>" for h in headers) + "</tr></thead><tbody>")
        for row in rows:
            cells = []
            for h, v in zip(headers, row):
                cls = "eo-n" if isinstance(v, (int, float)) and not isinstance(v, bool) else (
                    f"eo-v-{_css_token(v)}" if h == "verdict" and v is not None else "")
                cells.append(f'<td class="{cls}">{e(_fmt(v))}</td>' if cls else f"<td>{e(_fmt(v))}</td>")
            out.append("<tr>" + "".join(cells) + "</tr>")
        out.append("</tbody></table>")
    out.append("</div>")
    return "".join(out)


def bar_chart(labels: Sequence[str], series: Sequence[Series], title: str = "", width: int = 520,
              height: int = 170, *, rates: bool = False) -> str:
    """An SVG bar chart of one or two series.

    Counts (the default) are drawn as shares of each series' total, and a
    tooltip gives the share and the count. ``rates=True``: the values are
    already rates in [0, 1] (a group's selection rate), drawn on a 0-100 %
    scale as they are, and the tooltip gives the rate itself (normalising
    rates to their sum would show a group's share of the summed rates).
    """
    n = max(len(labels), 1)
    shares = []
    for _, counts in series:
        total = 1.0 if rates else (float(sum(counts)) or 1.0)
        shares.append([c / total for c in counts])
    top = 1.0 if rates else (max((max(s) for s in shares if s), default=1.0) or 1.0)
    pad, plot_h = 4, height - 30
    group_w = (width - 2 * pad) / n
    bar_w = max(group_w / max(len(series), 1) - 1, 0.5)
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img">',
             f'<title>{html.escape(title)}</title>',
             f'<line x1="{pad}" y1="{plot_h + 2}" x2="{width - pad}" y2="{plot_h + 2}" stroke="#999"/>']
    for si, s in enumerate(shares):
        for i, v in enumerate(s):
            h = plot_h * v / top
            x = pad + i * group_w + si * (bar_w + 1)
            tip = (f"{series[si][0]} {labels[i]}: {v * 100:.2f}%" if rates
                   else f"{series[si][0]} {labels[i]}: {v * 100:.2f}% ({series[si][1][i]:g})")
            parts.append(f'<rect x="{x:.2f}" y="{plot_h + 2 - h:.2f}" width="{bar_w:.2f}" height="{h:.2f}" '
                         f'fill="{COLORS[si % 2]}"><title>{html.escape(tip)}</title></rect>')
    if labels:
        parts.append(f'<text x="{pad}" y="{height - 4}" font-size="10">{html.escape(str(labels[0]))[:40]}</text>')
        parts.append(f'<text x="{width - pad}" y="{height - 4}" font-size="10" text-anchor="end">'
                     f'{html.escape(str(labels[-1]))[:40]}</text>')
    parts.append("</svg>")
    return "".join(parts)


def render(doc: dict[str, Any], charts: dict[str, tuple[Any, ...]] | None = None,
           *, title: str | None = None, extra_tables: Sequence[tuple[str, list[str], list[list[Any]]]] = ()) -> str:
    """The HTML text of a result document (see ``tasks.run_task``) with per-column charts.

    ``charts``: name -> ``(labels, series)`` of counts, or ``(labels, series,
    "rate")`` of rates (see :func:`bar_chart`).
    """
    verdict = doc.get("verdict", "ok")
    title = title or f"edgeorch {doc.get('kind', '')} report"
    out = ["<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
           f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>",
           f"<h1>{html.escape(title)}</h1>",
           f"<p><span class='badge b-{html.escape(verdict)}'>{html.escape(verdict)}</span> "
           f"{html.escape(str(doc.get('message', '')))}</p>"]
    rows = doc.get("rows", [])
    if rows:
        out.append("<table><tr><th>column</th><th>metric</th><th>value</th><th>p-value</th><th>threshold</th>"
                   "<th>verdict</th></tr>")
        for r in rows:
            v = html.escape(str(r.get("verdict")))
            out.append(f"<tr><td>{html.escape(str(r.get('column')))}</td><td>{html.escape(str(r.get('metric')))}</td>"
                       f"<td class='n'>{html.escape(_fmt(r.get('value')))}</td>"
                       f"<td class='n'>{html.escape(_fmt(r.get('p_value')))}</td>"
                       f"<td class='n'>{html.escape(_fmt(r.get('threshold')))}</td><td class='v-{v}'>{v}</td></tr>")
        out.append("</table>")
    for caption, headers, trows in extra_tables:
        out.append(f"<h2>{html.escape(caption)}</h2><table><tr>"
                   + "".join(f"<th>{html.escape(h)}</th>" for h in headers) + "</tr>")
        for tr in trows:
            out.append("<tr>" + "".join(f"<td>{html.escape(_fmt(c))}</td>" for c in tr) + "</tr>")
        out.append("</table>")
    if charts:
        names = {name for spec in charts.values() for name, _ in spec[1]}
        legend = "".join(f"<span style='background:{COLORS[i % 2]}'></span>{html.escape(n)}"
                         for i, n in enumerate(sorted(names, key=lambda x: x != "reference")))
        out.append(f"<h2>Distributions</h2><p class='legend'>{legend}</p>")
        for col, (labels, series, *unit) in charts.items():
            chart = bar_chart(labels, series, col, rates=unit == ["rate"])
            out.append(f"<div class='chart'><div>{html.escape(col)}</div>{chart}</div>")
    out.append("</body></html>")
    return "\n".join(out)


def write(path: str | Path, text: str) -> str:
    """Write ``text`` to ``path`` atomically; return the path as given."""
    p = Path(path)
    if p.parent and not p.parent.exists():
        p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_name(p.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, p)
    return str(path)
