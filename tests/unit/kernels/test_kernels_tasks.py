"""Built-in task kinds: the result document, verdicts, outputs, errors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from edgeorch.errors import DataError, PipelineError
from edgeorch.kernels import run_task

ROW_KEYS = {"column", "metric", "value", "p_value", "threshold", "verdict", "details"}


def strict_json(doc: dict[str, Any]) -> None:
    json.dumps(doc, allow_nan=False)  # raises on NaN/inf or numpy scalars
    assert set(doc) == {"kind", "verdict", "on_violation", "message", "rows", "summary", "outputs"}
    assert doc["verdict"] in ("ok", "warn", "violation")
    for row in doc["rows"]:
        assert set(row) == ROW_KEYS


@pytest.fixture
def data(workdir: Path, rng: np.random.Generator) -> Path:
    n = 2000
    pq.write_table(pa.table({"age": rng.normal(40, 10, n), "city": rng.choice(["a", "b"], n),
                             "score": rng.random(n)}), "ref.parquet")
    pq.write_table(pa.table({"age": rng.normal(60, 10, n), "city": rng.choice(["a", "b", "c"], n),
                             "score": rng.random(n)}), "cur.parquet")
    pq.write_table(pa.table({"age": np.concatenate([rng.normal(40, 10, n - 3), [np.nan, np.inf, -5.0]]),
                             "city": rng.choice(["a", "b"], n), "score": rng.random(n)}), "same.parquet")
    g = rng.choice(["m", "f"], n)
    pacsv.write_csv(pa.table({"sex": g, "y": rng.integers(0, 2, n),
                              "yhat": np.where(g == "m", rng.random(n) < 0.7, rng.random(n) < 0.3).astype(int),
                              "fair": rng.integers(0, 2, n)}), "scored.csv")
    return workdir


def test_drift_task_reports_violation_on_dataset_drift(data: Path) -> None:
    doc = run_task("drift", {"reference": "ref.parquet", "current": "cur.parquet"})
    strict_json(doc)
    assert doc["kind"] == "drift" and doc["verdict"] == "violation" and doc["on_violation"] == "fail"
    verdicts = {r["column"]: r["verdict"] for r in doc["rows"]}
    assert verdicts == {"age": "drift", "city": "drift", "score": "ok"}
    assert "2 of 3 columns drifted" in doc["message"]


def test_drift_task_without_drift_is_ok_and_reports_dropped_values(data: Path) -> None:
    doc = run_task("drift", {"reference": "ref.parquet", "current": "same.parquet", "on_violation": "warn",
                             "columns": ["age", "score"]})
    strict_json(doc)
    assert doc["verdict"] == "ok" and doc["on_violation"] == "warn"
    age = doc["rows"][0]
    assert age["details"]["dropped_cur"] == {"nan": 1, "inf": 1}


def test_some_drift_below_share_is_a_warning(data: Path) -> None:
    doc = run_task("drift", {"reference": "ref.parquet", "current": "cur.parquet", "columns": ["age", "score"],
                             "drift_share": 0.9})
    assert doc["verdict"] == "warn"


def test_drift_task_writes_a_self_contained_html_report(data: Path) -> None:
    doc = run_task("drift", {"reference": "ref.parquet", "current": "cur.parquet", "report": "out/drift.html"})
    assert doc["outputs"] == ["out/drift.html"]
    text = Path("out/drift.html").read_text()
    assert "<svg" in text and "age" in text and "reference" in text
    assert "http://" not in text.replace('xmlns="http://www.w3.org/2000/svg"', "") and "https://" not in text
    assert "<script" not in text and "<link" not in text


def test_profile_task_saves_profile_into_output_dir(data: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (data / "outdir").mkdir()
    monkeypatch.setenv("EDGEORCH_OUTPUT_DIR", str(data / "outdir"))
    doc = run_task("profile", {"input": "ref.parquet", "save": "ref.profile.json"})
    strict_json(doc)
    assert doc["outputs"] == [str(data / "outdir" / "ref.profile.json")]
    assert [r["column"] for r in doc["rows"]] == ["age", "city", "score"]
    assert all(r["metric"] == "null_rate" and r["verdict"] == "ok" for r in doc["rows"])


def test_profile_task_against_reference_profile(data: Path) -> None:
    run_task("profile", {"input": "ref.parquet", "save": "ref.json"})
    doc = run_task("profile", {"input": "cur.parquet", "reference_profile": "ref.json"})
    strict_json(doc)
    assert doc["verdict"] == "violation"
    assert {r["column"]: r["verdict"] for r in doc["rows"]}["age"] == "drift"


def test_fairness_task_flags_violation(data: Path) -> None:
    doc = run_task("fairness", {"input": "scored.csv", "group": "sex", "label": "y", "prediction": "yhat"})
    strict_json(doc)
    assert doc["verdict"] == "violation"
    metrics = {r["metric"]: r for r in doc["rows"] if r["metric"] != "group"}
    assert metrics["disparate_impact"]["verdict"] == "violation"
    assert metrics["disparate_impact"]["value"] == pytest.approx(0.3 / 0.7, abs=0.1)


def test_fair_predictions_are_ok(data: Path) -> None:
    doc = run_task("fairness", {"input": "scored.csv", "group": "sex", "prediction": "fair",
                                "thresholds": {"demographic_parity_ratio": 0.7, "disparate_impact": 0.7}})
    assert doc["verdict"] == "ok", doc["rows"]


def test_fairness_task_with_string_pos_label_from_a_placeholder(data: Path) -> None:
    doc = run_task("fairness", {"input": "scored.csv", "group": ["sex"], "prediction": "yhat", "pos_label": "1"})
    assert doc["verdict"] == "violation"


def test_validate_task(data: Path) -> None:
    doc = run_task("validate", {"input": "same.parquet", "required_columns": ["age", "income"],
                                "types": {"age": "float", "city": "string"}, "ranges": {"age": [-10, 100]},
                                "max_null_rate": 0.01, "allowed": {"city": ["a", "b"]}})
    strict_json(doc)
    by = {(r["column"], r["metric"]): r["verdict"] for r in doc["rows"]}
    assert by[("income", "required")] == "violation"
    assert by[("age", "required")] == "ok"
    assert by[("age", "type")] == "ok" and by[("city", "type")] == "ok"
    assert by[("age", "range")] == "violation"  # +inf is outside any finite range
    assert by[("age", "null_rate")] == "ok" and by[("city", "allowed")] == "ok"
    assert doc["verdict"] == "violation" and doc["message"].startswith("2 of")


def test_missing_input_file_is_a_data_error(data: Path) -> None:
    with pytest.raises(DataError, match="file not found"):
        run_task("drift", {"reference": "nope.parquet", "current": "cur.parquet"})


def test_missing_column_is_a_data_error(data: Path) -> None:
    with pytest.raises(DataError, match="no such column"):
        run_task("fairness", {"input": "scored.csv", "group": "gender", "prediction": "yhat"})


def test_invalid_options_are_rejected_before_reading(data: Path) -> None:
    with pytest.raises(PipelineError, match="unknown key"):
        run_task("drift", {"reference": "ref.parquet", "current": "cur.parquet", "colums": ["a"]})


def test_fairness_report_shows_each_groups_own_selection_rate_and_labels_its_rows(workdir: Path) -> None:
    """Tooltip = the group's selection rate (not its share of the summed rates); rows name their group;
    the minimum group size is not called a threshold (issue 9, item 9)."""
    import re

    g = np.array(["m"] * 80 + ["f"] * 80)
    p = np.array([1] * 39 + [0] * 41 + [1] * 36 + [0] * 44)  # m 48.75 %, f 45 %
    pacsv.write_csv(pa.table({"g": g, "p": p}), "s.csv")
    doc = run_task("fairness", {"input": "s.csv", "group": "g", "prediction": "p", "report": "r.html"})
    groups = {r["column"]: r for r in doc["rows"] if r["metric"] == "group"}
    strict_json(doc)
    assert set(groups) == {"g=m", "g=f"} and groups["g=m"]["details"]["group"] == "m"
    assert groups["g=m"]["value"] == 0.4875 and groups["g=m"]["threshold"] is None
    assert groups["g=m"]["details"]["min_group_size"] == 30
    html = Path("r.html").read_text()
    assert re.findall(r"<title>([^<]*)</title></rect>", html) == ["selection rate f: 45.00%", "selection rate m: 48.75%"]
    assert "<td>g=m</td><td>group</td>" in html and "minimum group size 30" in html


def test_fairness_task_weighs_rows_by_a_weight_column(workdir: Path) -> None:
    # Group b's selected rows weigh 3 each: its weighted selection rate is 0.75, not 0.5.
    pacsv.write_csv(pa.table({"g": ["a"] * 4 + ["b"] * 4, "yhat": [1, 1, 0, 0, 1, 1, 0, 0],
                              "w": [1, 1, 1, 1, 3, 3, 1, 1]}), "w.csv")
    doc = run_task("fairness", {"input": "w.csv", "group": "g", "prediction": "yhat", "weight": "w",
                                "min_group_size": 0})
    rates = {r["details"]["group"]: r["value"] for r in doc["rows"] if r["metric"] == "group"}
    assert rates == {"a": 0.5, "b": 0.75}
    assert doc["summary"]["four_fifths_rule"] is False  # 0.5 / 0.75 < 0.8
    pacsv.write_csv(pa.table({"g": ["a", "b"], "yhat": [1, 0], "w": ["x", "y"]}), "bad.csv")
    with pytest.raises(DataError, match="numbers") as exc:
        run_task("fairness", {"input": "bad.csv", "group": "g", "prediction": "yhat", "weight": "w"})
    assert exc.value.field == "w" and exc.value.file == "bad.csv"
