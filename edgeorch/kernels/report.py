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
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..durable import write_atomic

COLORS = ("#4c78a8", "#f58518")
# Colours are CSS variables: light by default, dark under prefers-color-scheme, plain on paper. Charts draw
# their text and axes in currentColor, so they follow the page.
_CSS = """
:root{--fg:#1f2328;--bg:#fff;--muted:#59636e;--line:#d0d7de;--head:#f6f8fa;--ok:#1a7f37;--warn:#9a6700;--bad:#cf222e}
@media (prefers-color-scheme: dark){:root{--fg:#e6edf3;--bg:#0d1117;--muted:#9198a1;--line:#3d444d;
--head:#151b23;--ok:#3fb950;--warn:#d29922;--bad:#f85149}}
html{color-scheme:light dark}
body{font-family:system-ui,sans-serif;margin:2em auto;padding:0 1.5em;color:var(--fg);background:var(--bg);max-width:1150px;
line-height:1.4}
h1{font-size:1.4em} h2{font-size:1.15em;margin-top:1.8em;border-bottom:1px solid var(--line);padding-bottom:.2em}
h3{font-size:1em;margin:1.2em 0 .3em}
nav{font-size:.9em;color:var(--muted)} nav a{color:inherit;margin-right:1em}
table{border-collapse:collapse;font-size:.88em;margin:.4em 0 1em} td,th{padding:.25em .6em;border-bottom:1px solid var(--line);
text-align:left;vertical-align:top} th{background:var(--head)}
td.n{text-align:right;font-variant-numeric:tabular-nums}
.v-ok{color:var(--ok)}.v-drift,.v-violation{color:var(--bad);font-weight:600}
.v-warn,.v-small_group,.v-no_data,.v-undefined,.v-info{color:var(--warn)}.v-skipped{color:var(--muted)}
.badge{display:inline-block;padding:.2em .6em;border-radius:.3em;color:#fff}
.b-ok{background:#1a7f37}.b-warn{background:#9a6700}.b-violation{background:#cf222e}
.legend span{display:inline-block;width:.8em;height:.8em;margin:0 .3em 0 1em}
.chart{display:inline-block;margin:.5em 1.5em .8em 0;vertical-align:top}
.chart svg{display:block;overflow:visible}
.cols{display:flex;flex-wrap:wrap;gap:0 2em}
.card{break-inside:avoid;page-break-inside:avoid;margin-bottom:1em}
.muted{color:var(--muted)}
@media print{body{margin:0;max-width:none;color:#000;background:#fff} nav{display:none}
h2{break-after:avoid} .chart,table,.card{break-inside:avoid;page-break-inside:avoid}
.badge{border:1px solid #000;color:#000;background:none}}
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


def _fmt_tick(v: float, rates: bool) -> str:
    return f"{v * 100:.0f}%" if rates or v <= 1 else f"{v:g}"


def bar_chart(labels: Sequence[str], series: Sequence[Series], title: str = "", width: int = 560,
              height: int = 200, *, rates: bool = False, x_label: str = "", y_label: str | None = None) -> str:
    """An SVG bar chart of one or two series, with labelled axes.

    Counts (the default) are drawn as shares of each series' total, and a
    tooltip gives the share and the count. ``rates=True``: the values are
    already rates in [0, 1] (a group's selection rate), drawn on a 0-100 %
    scale as they are, and the tooltip gives the rate itself (normalising
    rates to their sum would show a group's share of the summed rates). The
    y axis has ticks at 0, half and the top; the x axis names every bar when
    there are at most 12, else every k-th (bins in order), each label's full
    text in its bar's tooltip. Text and axes use ``currentColor`` (dark mode).
    """
    n = max(len(labels), 1)
    shares = []
    for _, counts in series:
        total = 1.0 if rates else (float(sum(counts)) or 1.0)
        shares.append([float(c or 0) / total for c in counts])
    top = 1.0 if rates else (max((max(s) for s in shares if s), default=1.0) or 1.0)
    left, bottom, pad = 46, 58, 4
    plot_w, plot_h = width - left - pad, height - bottom - 8
    group_w = plot_w / n
    bar_w = max(group_w / max(len(series), 1) - 1, 0.5)
    y_label = y_label if y_label is not None else ("rate" if rates else "share of values")
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img" '
             f'font-family="system-ui,sans-serif">',
             f'<title>{html.escape(title)}</title>']
    base = 8 + plot_h
    for frac in (0.0, 0.5, 1.0):  # y ticks and grid
        y = base - plot_h * frac
        parts.append(f'<line x1="{left}" y1="{y:.1f}" x2="{width - pad}" y2="{y:.1f}" stroke="currentColor" '
                     f'stroke-opacity="{0.6 if frac == 0 else 0.15}"/>')
        parts.append(f'<text x="{left - 4}" y="{y + 3:.1f}" font-size="10" text-anchor="end" fill="currentColor">'
                     f'{html.escape(_fmt_tick(top * frac, rates))}</text>')
    parts.append(f'<text x="10" y="{8 + plot_h / 2:.1f}" font-size="10" text-anchor="middle" fill="currentColor" '
                 f'transform="rotate(-90 10 {8 + plot_h / 2:.1f})">{html.escape(y_label)}</text>')
    for si, s in enumerate(shares):
        for i, v in enumerate(s):
            h = plot_h * v / top
            x = left + i * group_w + si * (bar_w + 1)
            tip = (f"{series[si][0]} {labels[i]}: {v * 100:.2f}%" if rates
                   else f"{series[si][0]} {labels[i]}: {v * 100:.2f}% ({series[si][1][i]:g})")
            parts.append(f'<rect x="{x:.2f}" y="{base - h:.2f}" width="{bar_w:.2f}" height="{h:.2f}" '
                         f'fill="{COLORS[si % 2]}"><title>{html.escape(tip)}</title></rect>')
    step = 1 if n <= 12 else math.ceil(n / 8)
    for i in range(0, len(labels), step):  # x labels, rotated so long ones stay readable
        x = left + (i + 0.5) * group_w
        text = str(labels[i])
        short = text if len(text) <= 18 else text[:17] + "…"
        parts.append(f'<text x="{x:.1f}" y="{base + 10}" font-size="9" text-anchor="end" fill="currentColor" '
                     f'transform="rotate(-35 {x:.1f} {base + 10})">{html.escape(short)}<title>{html.escape(text)}'
                     f'</title></text>')
    if x_label:
        parts.append(f'<text x="{left + plot_w / 2:.1f}" y="{height - 2}" font-size="10" text-anchor="middle" '
                     f'fill="currentColor">{html.escape(x_label)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def hbar_chart(labels: Sequence[str], series: Sequence[Series], title: str = "", width: int = 560, *,
               rates: bool = False, x_label: str | None = None, marker: float | None = None,
               errors: Sequence[tuple[float, float]] | None = None) -> str:
    """A horizontal SVG bar chart: one row per category, its label written beside its bar (every category
    readable), the value at the bar's end. ``rates``: values in [0, 1] as percentages; else counts drawn as
    shares of each series' total (or, with ``errors``, raw values with ``(low, high)`` whiskers, e.g. an
    importance's confidence interval). ``marker``: a dashed vertical line at that value (a limit)."""
    raw = errors is not None
    rows = max(len(labels), 1)
    per_row = 14 * max(len(series), 1) + 6
    height = 26 + rows * per_row + 22
    label_w, pad = 170, 60
    plot_w = width - label_w - pad
    vals = []
    for _, counts in series:
        total = 1.0 if (rates or raw) else (float(sum(counts)) or 1.0)
        vals.append([float(c or 0) / total for c in counts])
    hi = max([max(v, default=0.0) for v in vals] + [e[1] for e in errors or []] + [marker or 0.0, 0.0])
    lo = min([min(v, default=0.0) for v in vals] + [e[0] for e in errors or []] + [0.0])
    top = 1.0 if rates else (hi or 1.0)
    span = (top - lo) or 1.0
    xpos = lambda v: label_w + plot_w * (v - lo) / span
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img" '
             f'font-family="system-ui,sans-serif"><title>{html.escape(title)}</title>',
             f'<line x1="{xpos(0):.1f}" y1="20" x2="{xpos(0):.1f}" y2="{height - 22}" stroke="currentColor" '
             f'stroke-opacity="0.6"/>']
    for i, label in enumerate(labels):
        y0 = 24 + i * per_row
        text = str(label)
        short = text if len(text) <= 28 else text[:27] + "…"
        parts.append(f'<text x="{label_w - 6}" y="{y0 + per_row / 2 + 1:.1f}" font-size="11" text-anchor="end" '
                     f'fill="currentColor">{html.escape(short)}<title>{html.escape(text)}</title></text>')
        for si, v in enumerate(vals):
            y = y0 + si * 14
            x0, x1 = sorted((xpos(0), xpos(v[i])))
            shown = f"{v[i] * 100:.1f}%" if (rates or not raw) else f"{v[i]:.4g}"
            exact = f"{v[i] * 100:.2f}%" if (rates or not raw) else f"{v[i]:.6g}"
            tip = f"{series[si][0]} {text}: {exact}" + ("" if rates or raw else f" ({series[si][1][i]:g})")
            parts.append(f'<rect x="{x0:.1f}" y="{y}" width="{max(x1 - x0, 0.5):.1f}" height="12" '
                         f'fill="{COLORS[si % 2]}"><title>{html.escape(tip)}</title></rect>')
            parts.append(f'<text x="{x1 + 4:.1f}" y="{y + 10}" font-size="10" fill="currentColor">'
                         f'{html.escape(shown)}</text>')
        if errors is not None and errors[i][0] is not None:
            lo_i, hi_i = errors[i]
            yc = y0 + 6
            parts.append(f'<line x1="{xpos(lo_i):.1f}" y1="{yc}" x2="{xpos(hi_i):.1f}" y2="{yc}" '
                         f'stroke="currentColor"/><line x1="{xpos(lo_i):.1f}" y1="{yc - 4}" x2="{xpos(lo_i):.1f}" '
                         f'y2="{yc + 4}" stroke="currentColor"/><line x1="{xpos(hi_i):.1f}" y1="{yc - 4}" '
                         f'x2="{xpos(hi_i):.1f}" y2="{yc + 4}" stroke="currentColor"/>')
    if marker is not None:
        parts.append(f'<line x1="{xpos(marker):.1f}" y1="18" x2="{xpos(marker):.1f}" y2="{height - 22}" '
                     f'stroke="#cf222e" stroke-dasharray="4 3"><title>limit {marker:g}</title></line>')
    axis = x_label if x_label is not None else ("rate" if rates else "value" if raw else "share of values")
    parts.append(f'<text x="{label_w + plot_w / 2:.1f}" y="{height - 4}" font-size="10" text-anchor="middle" '
                 f'fill="currentColor">{html.escape(axis)}</text></svg>')
    return "".join(parts)


def heatmap(names: Sequence[str], matrix: Sequence[Sequence[float | None]], caption: str) -> str:
    """A correlation matrix as an HTML table whose cells are tinted by value (blue positive, orange negative)."""
    e = html.escape
    out = [f"<table class='heat'><caption>{e(caption)}</caption><tr><th></th>"
           + "".join(f"<th>{e(n)}</th>" for n in names) + "</tr>"]
    for name, row in zip(names, matrix):
        cells = []
        for v in row:
            if v is None:
                cells.append("<td class='n muted'>-</td>")
                continue
            rgb = "76,120,168" if v >= 0 else "245,133,24"
            cells.append(f"<td class='n' style='background:rgba({rgb},{min(abs(v), 1) * 0.6:.2f})'>{v:.2f}</td>")
        out.append(f"<tr><th>{e(name)}</th>{''.join(cells)}</tr>")
    out.append("</table>")
    return "".join(out)


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]], caption: str | None = None) -> str:
    """An HTML table: numbers right-aligned (4 significant digits), verdict cells coloured, every value escaped."""
    e = html.escape
    out = ["<table>" + (f"<caption>{e(caption)}</caption>" if caption else "") + "<tr>"
           + "".join(f"<th>{e(h)}</th>" for h in headers) + "</tr>"]
    for r in rows:
        cells = []
        for h, v in zip(headers, r):
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                cells.append(f"<td class='n'>{e(_fmt(v))}</td>")
            elif h in ("verdict", "severity") and v is not None:
                cells.append(f"<td class='v-{_css_token(v)}'>{e(str(v))}</td>")
            else:
                cells.append(f"<td>{e(_fmt(v))}</td>")
        out.append("<tr>" + "".join(cells) + "</tr>")
    out.append("</table>")
    return "".join(out)


Section = tuple[str, str, str]  # (anchor id, heading, HTML)


def render(doc: dict[str, Any], charts: dict[str, tuple[Any, ...]] | None = None,
           *, title: str | None = None, extra_tables: Sequence[tuple[str, list[str], list[list[Any]]]] = (),
           sections: Sequence[Section] = (), rows_table: bool = True) -> str:
    """The HTML page of a result document (see ``tasks.run_task``): one self-contained file.

    Inline CSS (light and dark colour schemes, a print style), inline SVG,
    no script and no network asset. Parts, in order: the title, the verdict
    and message; a navigation line; ``sections`` (``(id, heading, html)``);
    the rows table (``rows_table``); ``extra_tables``; then the charts:
    ``charts``: name -> ``(labels, series)`` of counts, or ``(labels,
    series, "rate")`` of rates (see :func:`bar_chart`); histograms over bins
    (labels ``[a, b)``) are vertical, categories horizontal (one row each).
    """
    verdict = doc.get("verdict", "ok")
    title = title or f"edgeorch {doc.get('kind', '')} report"
    e = html.escape
    parts: list[Section] = list(sections)
    rows = doc.get("rows", [])
    if rows and rows_table:
        t = ["<table><tr><th>column</th><th>metric</th><th>value</th><th>p-value</th><th>threshold</th>"
             "<th>verdict</th></tr>"]
        for r in rows:
            v = e(str(r.get("verdict")))
            t.append(f"<tr><td>{e(str(r.get('column')))}</td><td>{e(str(r.get('metric')))}</td>"
                     f"<td class='n'>{e(_fmt(r.get('value')))}</td>"
                     f"<td class='n'>{e(_fmt(r.get('p_value')))}</td>"
                     f"<td class='n'>{e(_fmt(r.get('threshold')))}</td><td class='v-{_css_token(v)}'>{v}</td></tr>")
        t.append("</table>")
        parts.append(("results", "Results", "".join(t)))
    for caption, headers, trows in extra_tables:
        t = ["<table><tr>" + "".join(f"<th>{e(h)}</th>" for h in headers) + "</tr>"]
        for tr in trows:
            t.append("<tr>" + "".join(f"<td>{e(_fmt(c))}</td>" for c in tr) + "</tr>")
        t.append("</table>")
        parts.append((f"t{len(parts)}", caption, "".join(t)))
    if charts:
        names = {name for spec in charts.values() for name, _ in spec[1]}
        legend = "".join(f"<span style='background:{COLORS[i % 2]}'></span>{e(n)}"
                         for i, n in enumerate(sorted(names, key=lambda x: x != "reference")))
        body = [f"<p class='legend'>{legend}</p>"]
        for col, (labels, series, *unit) in charts.items():
            rates = unit == ["rate"]
            binned = bool(labels) and all(str(lb).startswith("[") for lb in labels)
            chart = (bar_chart(labels, series, col, rates=rates, x_label=col) if binned
                     else hbar_chart(labels, series, col, rates=rates))
            body.append(f"<div class='chart card'><h3>{e(col)}</h3>{chart}</div>")
        parts.append(("distributions", "Distributions", "".join(body)))
    out = ["<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
           "<meta name='viewport' content='width=device-width, initial-scale=1'>",
           "<meta name='color-scheme' content='light dark'>",
           f"<title>{e(title)}</title><style>{_CSS}</style></head><body>",
           f"<h1>{e(title)}</h1>",
           f"<p><span class='badge b-{_css_token(verdict)}'>{e(verdict)}</span> {e(str(doc.get('message', '')))}</p>"]
    if len(parts) > 1:
        out.append("<nav>" + "".join(f"<a href='#{e(pid)}'>{e(head)}</a>" for pid, head, _ in parts) + "</nav>")
    for pid, head, body_html in parts:
        out.append(f"<section id='{e(pid)}'><h2>{e(head)}</h2>{body_html}</section>")
    out.append("</body></html>")
    return "\n".join(out)


def write(path: str | Path, text: str) -> str:
    """Write ``text`` to ``path`` atomically; return the path as given."""
    p = Path(path)
    if p.parent and not p.parent.exists():
        p.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(p, text.encode("utf-8"))
    return str(path)
