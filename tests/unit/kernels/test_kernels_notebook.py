"""Kernel results in a notebook: to_dict (the CLI's --json), to_pandas, scoped and escaped HTML, repr.

One set of results is built once per module (numba compiles on first use).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pytest

from edgeorch.errors import DataError, MissingDependencyError
from edgeorch.kernels import column_drift, dataset_drift, fairness_report, profile
from edgeorch.kernels.cli import register

pd = pytest.importorskip("pandas")

EVIL = "<script>alert(1)</script>"


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three CSV files: a reference, a moved batch, scored predictions (a column named like markup)."""
    d = tmp_path_factory.mktemp("nb")
    rng = np.random.default_rng(7)
    n = 400
    when = pa.array(np.datetime64("2024-01-01T00:00:00") + np.arange(n) * np.timedelta64(1, "h"))
    pacsv.write_csv(pa.table({"a": rng.normal(size=n), EVIL: rng.choice(["x", "y"], n), "when": when}),
                    d / "ref.csv")
    pacsv.write_csv(pa.table({"a": rng.normal(2, size=n), EVIL: rng.choice(["x", "z"], n), "when": when}),
                    d / "cur.csv")
    g = rng.choice(["m", "<b>f</b>"], n)
    pacsv.write_csv(pa.table({"g": g, "y": rng.integers(0, 2, n),
                              "p": np.where(g == "m", 1, rng.integers(0, 2, n))}), d / "scored.csv")
    return d


@pytest.fixture(scope="module")
def results(folder: Path) -> dict[str, Any]:
    """Every public result kind, built once."""
    scored = pacsv.read_csv(folder / "scored.csv")
    prof = profile(str(folder / "ref.csv"))
    drift = dataset_drift(str(folder / "ref.csv"), str(folder / "cur.csv"))
    fair = fairness_report(scored.column("y").to_numpy(), scored.column("p").to_numpy(),
                           {"g": scored.column("g").to_numpy(zero_copy_only=False)}, min_group_size=30)
    return {"profile": prof, "column_profile": prof["a"], "datetime_profile": prof["when"],
            "drift": drift, "column_drift": drift.columns[0], "fairness": fair}


def cli_json(argv: list[str], capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    parser = argparse.ArgumentParser(prog="edgeorch")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args([*argv, "--json"])
    args.func(args)
    doc = json.loads(capsys.readouterr().out)
    for run_only in ("outputs", "on_violation"):  # these belong to a run, not to the result
        doc.pop(run_only)
    return doc


# -- to_dict -----------------------------------------------------------------------


def test_to_dict_is_the_document_the_cli_prints(folder: Path, results: dict[str, Any],
                                                capsys: pytest.CaptureFixture[str]) -> None:
    ref, cur, scored = str(folder / "ref.csv"), str(folder / "cur.csv"), str(folder / "scored.csv")
    assert cli_json(["profile", ref], capsys) == results["profile"].to_dict()
    assert cli_json(["drift", ref, cur], capsys) == results["drift"].to_dict()
    assert cli_json(["fairness", scored, "--group", "g", "--label", "y", "--prediction", "p"],
                    capsys) == results["fairness"].to_dict()


def test_every_result_is_strict_json(results: dict[str, Any]) -> None:
    for name, res in results.items():
        text = json.dumps(res.to_dict(), allow_nan=False)  # raises on NaN, inf or a numpy scalar
        assert json.loads(text) == res.to_dict(), name
    assert results["column_profile"].to_dict() == results["profile"].to_dict()["rows"][0]["details"]
    assert results["column_drift"].to_dict() == results["drift"].to_dict()["rows"][0]


# -- to_pandas ----------------------------------------------------------------------


def test_to_pandas_gives_one_row_per_column_group_or_metric(results: dict[str, Any]) -> None:
    prof = results["profile"].to_pandas()
    assert list(prof.index) == ["a", EVIL, "when"] and prof.index.name == "column"
    assert prof.loc["a", "count"] == 400 and prof.loc["when", "min"] == "2024-01-01T00:00:00"
    assert prof.loc["when", "largest_gap_s"] == 3600.0 and "quantiles.p50" in prof.columns
    drift = results["drift"].to_pandas()
    assert list(drift.index) == ["a", EVIL, "when"]
    assert drift.loc["a", "verdict"] == "drift" and drift.loc["when", "verdict"] == "skipped"
    assert {"metric", "p_value", "threshold", "n_ref", "n_cur"} <= set(drift.columns)
    fair = results["fairness"]
    assert list(fair.to_pandas().index) == [m["metric"] for m in fair.metrics]
    assert set(fair.to_pandas("groups").index) == {"m", "<b>f</b>"}
    assert len(results["column_profile"].to_pandas()) == len(results["column_drift"].to_pandas()) == 1


def test_to_pandas_without_pandas_says_what_to_install(results: dict[str, Any],
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pandas", None)  # `import pandas` now raises ImportError
    with pytest.raises(MissingDependencyError, match="pip install pandas") as info:
        results["drift"].to_pandas()
    assert isinstance(info.value, ImportError) and "DatasetDrift.to_pandas()" in str(info.value)


def test_to_pandas_of_an_unknown_table_lists_the_tables(results: dict[str, Any]) -> None:
    with pytest.raises(DataError, match="metrics, groups"):
        results["fairness"].to_pandas("group")


# -- HTML ---------------------------------------------------------------------------


class _Tags(HTMLParser):
    """Collects the stylesheet and checks that every opened element is closed in order."""

    VOID = {"br", "img", "meta", "hr", "input"}

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str] = []
        self.css = ""
        self.roots: list[tuple[str, dict[str, str | None]]] = []
        self.elements: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if not self.stack:
            self.roots.append((tag, dict(attrs)))
        self.elements.append(tag)
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag: str) -> None:
        assert self.stack and self.stack.pop() == tag, f"</{tag}> closes nothing open"

    def handle_data(self, data: str) -> None:
        if self.stack and self.stack[-1] == "style":
            self.css += data


def test_html_is_one_block_whose_css_cannot_restyle_the_notebook(results: dict[str, Any]) -> None:
    for name, res in results.items():
        parser = _Tags()
        parser.feed(res._repr_html_())
        parser.close()
        assert parser.stack == [], name
        assert parser.roots == [("div", {"class": "edgeorch-report"})], name
        assert "script" not in parser.elements, name
        rules = re.findall(r"([^{}]+)\{[^{}]*\}", parser.css)
        selectors = [sel.strip() for rule in rules for sel in rule.split(",")]
        assert selectors and all(re.match(r"\.edgeorch-report(\s|$)", sel) for sel in selectors), (name, selectors)


def test_html_escapes_column_names_and_group_values(results: dict[str, Any]) -> None:
    for name in ("profile", "drift"):
        text = results[name]._repr_html_()
        assert EVIL not in text and "&lt;script&gt;alert(1)&lt;/script&gt;" in text
    text = results["fairness"]._repr_html_()
    assert "<b>f</b>" not in text and "&lt;b&gt;f&lt;/b&gt;" in text


def test_html_of_a_datetime_column_shows_its_range_and_gaps(results: dict[str, Any]) -> None:
    text = results["datetime_profile"]._repr_html_()
    assert "2024-01-01T00:00:00" in text and "1h 00m" in text  # largest and median gap: one hour


# -- repr ---------------------------------------------------------------------------


def test_repr_is_a_readable_text_table(results: dict[str, Any]) -> None:
    text = repr(results["profile"])
    assert text.splitlines()[0].startswith("edgeorch profile of ")
    assert "profiled 400 rows x 3 columns" in text and "COLUMN" in text and "datetime columns:" in text
    one = repr(results["column_drift"])
    assert one.splitlines()[0] == "drift of column a [drift]" and len(one.splitlines()) == 4
    assert "violation" in repr(results["fairness"]).splitlines()[0]


# -- Series names, polars and pyarrow inputs ---------------------------------------------


def test_a_series_name_is_its_column_name() -> None:
    age = pd.Series([30, 40, None, 50], name="age")
    assert list(profile(age).columns) == ["age"]
    assert list(profile(pd.Series([1, 2])).columns) == ["value"]  # unnamed: as a plain array
    assert column_drift(age, age + 1).column == "age"
    assert column_drift(age, age, column="years").column == "years"
    rep = fairness_report(None, [1, 0, 1, 1], pd.Series(["a", "b", "a", "b"], name="sex"), min_group_size=0)
    assert rep.group_columns == ["sex"] and rep.to_dict()["rows"][0]["column"] == "sex"
    both = fairness_report(None, [1, 0, 1, 1], pd.DataFrame({"sex": list("abab"), "r": list("xxyy")}),
                           min_group_size=0)
    assert both.group_columns == ["sex", "r"] and len(both.groups) == 4


def test_pyarrow_and_polars_inputs_keep_working() -> None:
    data = {"x": [1.5, None, 3.0], "s": ["a", "b", None]}
    want = profile(pa.table(data)).to_dict()
    assert profile(pd.DataFrame(data)).to_dict()["rows"][1] == want["rows"][1]
    pl = pytest.importorskip("polars", reason="polars is optional; install it to test polars inputs")
    assert profile(pl.DataFrame(data)).to_dict() == want
    assert list(profile(pl.Series("height", [1.0, 2.0])).columns) == ["height"]
    assert list(profile(pl.Series([1.0, 2.0])).columns) == ["value"]
