"""HTML reports: the content a profile, drift, fairness or explanation report must carry, and the page in a browser."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pytest

from edgeorch.kernels import run_task
from edgeorch.kernels.alerts import profile_alerts
from edgeorch.kernels.correlations import cramers_v, pearson, spearman
from edgeorch.kernels.duplicates import duplicate_rows

st = pytest.importorskip("scipy.stats")


@pytest.fixture(scope="module")
def people(tmp_path_factory: pytest.TempPathFactory) -> Path:
    rng = np.random.default_rng(4)
    n = 600
    age = rng.integers(18, 80, n).astype(float)
    age[:5] = -1  # the declared range starts at 0: unexpected negatives
    income = age * 900 + rng.normal(0, 4000, n)
    city = rng.choice(["Paris", "Lyon", "Nice", "a city with a rather long name indeed"], n)
    region = np.where(np.isin(city, ["Paris"]), "north", "south")
    t = pa.table({"age": age, "income": income, "zeros": np.zeros(n), "city": city, "region": region,
                  "id": [f"u{i}" for i in range(n)]})
    t = pa.concat_tables([t, t.slice(0, 7)])  # 7 duplicate rows
    path = tmp_path_factory.mktemp("reports") / "people.csv"
    pacsv.write_csv(t, path)
    return path


def test_correlations_agree_with_scipy(people: Path) -> None:
    rng = np.random.default_rng(0)
    a = rng.normal(size=300)
    cols = {"a": a, "b": a + rng.normal(size=300), "c": rng.integers(0, 4, 300).astype(float)}
    p, s = pearson(cols).matrix, spearman(cols).matrix
    assert p[0, 1] == pytest.approx(st.pearsonr(cols["a"], cols["b"]).statistic, rel=1e-12)
    assert s[0, 2] == pytest.approx(st.spearmanr(cols["a"], cols["c"]).statistic, rel=1e-12)  # with ties
    x = rng.choice(list("abc"), 300)
    y = np.where(rng.random(300) < 0.6, x, rng.choice(list("xyz"), 300))
    table = np.array([[np.sum((x == i) & (y == j)) for j in sorted(set(y))] for i in sorted(set(x))])
    assert cramers_v({"x": x, "y": y}).matrix[0, 1] == pytest.approx(
        st.contingency.association(table, method="cramer"), rel=1e-12)


def test_alerts_and_duplicates_are_found() -> None:
    summaries = [{"column": "k", "type": "float", "count": 10, "nulls": 5, "distinct": 1, "finite": 5, "zeros": 5,
                  "negatives": 0, "min": 0.0, "max": 0.0, "skewness": None},
                 {"column": "v", "type": "integer", "count": 10, "nulls": 0, "distinct": 10, "finite": 10, "zeros": 0,
                  "negatives": 2, "min": -3, "max": 9, "skewness": 4.5}]
    kinds = {(a["alert"], a["column"]) for a in profile_alerts(summaries, ranges={"v": [0, 100]})}
    assert kinds == {("high_missing", "k"), ("constant", "k"), ("many_zeros", "k"), ("heavy_skew", "v"),
                     ("unexpected_negatives", "v")}
    flag = {"column": "churned", "type": "integer", "count": 1000, "nulls": 0, "distinct": 2, "finite": 1000,
            "zeros": 990, "negatives": 0, "min": 0, "max": 1, "skewness": 9.8}  # a rare event's 0/1 flag
    assert profile_alerts([flag]) == []  # many zeros and skewed is what a flag is: no alert (there were two)
    d = duplicate_rows({"a": [1, 1, 2, None, None], "b": ["x", "x", "y", None, None]})
    assert d["duplicate_rows"] == 2 and d["top"][0]["count"] == 2


def test_profile_report_carries_statistics_charts_correlations_duplicates_and_alerts(people: Path, workdir: Path) -> None:
    run_task("profile", {"input": str(people), "report": "profile.html", "ranges": {"age": [0, 120]}})
    html = Path("profile.html").read_text()
    for section in ("overview", "alerts", "columns", "correlations", "duplicates", "distributions"):
        assert f"<section id='{section}'>" in html, section
    for stat in ("mean", "std", "median", "p95", "zeros", "negatives", "top values", "distinct"):
        assert f"<th>{stat}</th>" in html, stat
    assert "Pearson" in html and "Spearman" in html and "Cramér&#x27;s V" in html
    assert "7 duplicate rows" in html
    assert "unexpected_negatives" in html and "constant" in html and "high_cardinality" in html
    # every category is labelled (horizontal bars, one text per category), axes are named
    assert "a city with a rather long n…<title>a city with a rather long name indeed</title>" in html and html.count(">share of values<") >= 3
    assert "prefers-color-scheme: dark" in html and "@media print" in html
    assert "<script" not in html and "http://" not in html.replace('xmlns="http://www.w3.org/2000/svg"', "")


def test_fairness_report_shows_the_gate_verdict_and_the_four_fifths_line(people: Path, workdir: Path) -> None:
    pacsv.write_csv(pa.table({"g": ["a"] * 50 + ["b"] * 50, "p": [1] * 40 + [0] * 10 + [1] * 20 + [0] * 30}), "s.csv")
    run_task("fairness", {"input": "s.csv", "group": "g", "prediction": "p", "report": "f.html", "on_violation": "warn"})
    html = Path("f.html").read_text()
    assert "<section id='gate'>" in html and "disparate_impact (four-fifths rule)" in html
    assert re.search(r"stroke-dasharray=\"4 3\"><title>limit 0\.64</title>", html)  # 0.8 x the top rate 0.8


@pytest.mark.skipif(shutil.which("chromium-headless-shell") is None and shutil.which("chromium") is None,
                    reason="no headless Chromium (apt install chromium-headless-shell)")
def test_reports_render_in_a_headless_browser(people: Path, workdir: Path) -> None:
    """The page loads in Chromium without errors, its sections are in the rendered DOM, and it prints."""
    run_task("profile", {"input": str(people), "report": "profile.html"})
    browser = shutil.which("chromium-headless-shell") or shutil.which("chromium")
    page = (workdir / "profile.html").as_uri()
    common = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--enable-logging=stderr",
              "--v=0", f"--user-data-dir={workdir / 'chrome-profile'}"]
    dom = subprocess.run([*common, "--dump-dom", page], capture_output=True, text=True, timeout=120)
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert "Uncaught" not in dom.stderr and "SyntaxError" not in dom.stderr
    for section in ("overview", "alerts", "columns", "correlations", "duplicates", "distributions"):
        assert f'<section id="{section}">' in dom.stdout, section
    assert dom.stdout.count("<svg") >= 6
    pdf = subprocess.run([*common, f"--print-to-pdf={workdir / 'profile.pdf'}", "--no-pdf-header-footer", page],
                         capture_output=True, text=True, timeout=120)
    assert pdf.returncode == 0 and (workdir / "profile.pdf").read_bytes()[:4] == b"%PDF"
