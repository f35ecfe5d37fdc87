"""Schema checks (validate) on in-memory tables: one behaviour per check."""

from __future__ import annotations

import numpy as np
import pytest

from edgeorch.kernels import validate


def verdicts(data: dict, **schema: object) -> dict[tuple[str, str], str]:
    rows = validate(data, **schema)["rows"]  # type: ignore[arg-type]
    return {(r["column"], r["metric"]): r["verdict"] for r in rows}


@pytest.mark.parametrize(("expected", "values", "ok"), [
    ("integer", [1, 2], True), ("integer", [1.5], False), ("float", [1, 2], True), ("float", [1.5], True),
    ("numeric", [True, False], True), ("boolean", [1, 0], False), ("string", ["a"], True),
    ("string", [1.0], False), ("categorical", ["a", 1], True), ("integer", [None, None], True),
])
def test_type_check(expected: str, values: list, ok: bool) -> None:
    assert verdicts({"c": values}, types={"c": expected})[("c", "type")] == ("ok" if ok else "violation")


@pytest.mark.parametrize(("bounds", "values", "ok"), [
    ([0, 10], [0.0, 10.0], True), ([0, 10], [-1.0, 5.0], False), ({"max": 5}, [6.0], False),
    ({"min": 0}, [1e300], True), ([0, 10], [1.0, np.nan], True), ([0, 10], [1.0, np.inf], False),
    ([0, 10], [], True),
])
def test_range_check(bounds: object, values: list, ok: bool) -> None:
    assert verdicts({"c": np.array(values, dtype=float)}, ranges={"c": bounds})[("c", "range")] == \
        ("ok" if ok else "violation")


def test_range_on_text_column_is_a_violation() -> None:
    assert verdicts({"c": ["a"]}, ranges={"c": [0, 1]})[("c", "range")] == "violation"


def test_null_rate_counts_nulls_and_nan() -> None:
    rows = validate({"c": [1.0, None, float("nan"), 2.0]}, max_null_rate=0.4)["rows"]
    assert rows[0]["value"] == 0.5 and rows[0]["verdict"] == "violation"


def test_null_rate_per_column() -> None:
    v = verdicts({"a": [None, 1.0], "b": [1.0, 2.0]}, max_null_rate={"a": 0.5, "b": 0.0})
    assert v == {("a", "null_rate"): "ok", ("b", "null_rate"): "ok"}


def test_allowed_values_list_the_unexpected_ones() -> None:
    rows = validate({"c": ["a", "b", "x", "x", None]}, allowed={"c": ["a", "b"]})["rows"]
    assert rows[0]["verdict"] == "violation" and rows[0]["value"] == 2
    assert rows[0]["details"]["unexpected"] == [("x", 2)]


def test_allowed_numeric_codes_compare_as_text() -> None:
    assert verdicts({"c": [1, 2, 2]}, allowed={"c": [1, 2]})[("c", "allowed")] == "ok"
    assert verdicts({"c": [1, 3]}, allowed={"c": [1, 2]})[("c", "allowed")] == "violation"


def test_checks_on_a_missing_column_are_required_violations() -> None:
    v = verdicts({"a": [1]}, types={"b": "integer"})
    assert v == {("b", "required"): "violation"}


def test_empty_table_passes_null_rate() -> None:
    assert verdicts({"c": []}, max_null_rate=0.0)[("c", "null_rate")] == "ok"


def test_a_broken_range_counts_the_rows_outside_exactly_while_the_sample_holds_every_value() -> None:
    from edgeorch.kernels.validation import validate

    values = np.array([-1.0, 0.0, 5.0, 11.0, 12.0, np.inf, -np.inf, np.nan])
    (row,) = [r for r in validate({"c": values}, ranges={"c": [0, 10]})["rows"] if r["metric"] == "range"]
    assert row["verdict"] == "violation"
    assert row["details"]["out_of_range"] == 5  # -1, 11, 12 and both infinities; NaN is no value
    assert row["details"]["out_of_range_exact"] is True
    (upper,) = [r for r in validate({"c": values}, ranges={"c": {"max": 10}})["rows"] if r["metric"] == "range"]
    assert upper["details"]["out_of_range"] == 3  # 11, 12, +inf


def test_a_broken_range_of_a_long_column_estimates_the_rows_outside_from_its_sample() -> None:
    from edgeorch.kernels.profiling import profile
    from edgeorch.kernels.validation import validate

    rng = np.random.default_rng(7)
    values = rng.uniform(0, 1, 400_000)
    prof = profile({"c": values}, sketch_size=20_000)
    (row,) = [r for r in validate({"c": values}, ranges={"c": [0, 0.9]}, profile=prof)["rows"]
              if r["metric"] == "range"]
    assert row["details"]["out_of_range_exact"] is False
    assert abs(row["details"]["out_of_range"] - int((values > 0.9).sum())) < 0.01 * len(values)
