"""A column's type across the chunks of a file: one rule (``columns.merged_dtype``), whatever the chunk order.

``io._concat`` joins a column's chunks (JSON lines read ``JSON_LINES_PER_BATCH`` lines at a time) for drift;
``profiling.merge_columns`` merges the chunks' profiles for profile and validate. Both follow
``merged_dtype``: a chunk with no value (``empty``) takes the others' type, numeric types widen, numbers with
text are ``mixed``. The file tests write just over one chunk of rows, so the real reader splits them.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
from pathlib import Path

import numpy as np
import pytest

from edgeorch.errors import DataError
from edgeorch.kernels import dataset_drift, profile, run_task, validate
from edgeorch.kernels import io as kio
from edgeorch.kernels.columns import CategoricalBatch, DatetimeBatch, NumericBatch, column_of, merged_dtype
from edgeorch.kernels.io import _concat, load_table
from edgeorch.kernels.profiling import merge_profiles

# One chunk's values of each type, as a JSON-lines chunk (or Python data) gives them.
CHUNKS: dict[str, list[object]] = {
    "empty": [None, None],
    "boolean": [True, False, None],
    "integer": [1, 2, None],
    "float": [1.5, 2.0],
    "string": ["a", "b", None],
    "mixed": [1, "a"],
    "date": [dt.date(2024, 1, 31)],
    "datetime": [dt.datetime(2024, 1, 31, 12, 30), None],
}
TYPES = list(CHUNKS)

# The rule, written out pair by pair (unordered): what a column holding both chunks is.
EXPECTED = {
    ("empty", t): t for t in TYPES
} | {
    ("boolean", "integer"): "integer", ("boolean", "float"): "float", ("integer", "float"): "float",
    ("date", "datetime"): "datetime",
}


def expected(a: str, b: str) -> str:
    if a == b:
        return a
    return EXPECTED.get((a, b)) or EXPECTED.get((b, a)) or "mixed"


def chunk(t: str) -> NumericBatch | CategoricalBatch:
    batch = column_of(list(CHUNKS[t]), "c")
    assert batch.dtype == t  # the builders give the type they are named after
    return batch


def test_merged_dtype_is_the_rule_symmetric_and_associative() -> None:
    for a, b in itertools.product(TYPES, repeat=2):
        assert merged_dtype(a, b) == merged_dtype(b, a) == expected(a, b), (a, b)
    for a, b, c in itertools.product(TYPES, repeat=3):
        assert merged_dtype(merged_dtype(a, b), c) == merged_dtype(a, merged_dtype(b, c)), (a, b, c)


@pytest.mark.parametrize(("a", "b"), list(itertools.combinations_with_replacement(TYPES, 2)))
def test_concat_of_two_chunks_has_the_rules_type_in_both_orders(a: str, b: str) -> None:
    want = expected(a, b)
    for first, second in ((a, b), (b, a)):
        out = _concat([chunk(first), chunk(second)])
        assert out.dtype == want, (first, second)
        assert out.nulls == chunk(first).nulls + chunk(second).nulls
        # The shape follows the type: text for string/mixed, instants for dates, numbers otherwise.
        shape = {"string": CategoricalBatch, "mixed": CategoricalBatch, "date": DatetimeBatch,
                 "datetime": DatetimeBatch}.get(want, NumericBatch)
        assert isinstance(out, shape), (first, second, type(out).__name__)
        if want not in ("string", "mixed", "date", "datetime"):
            assert not isinstance(out, DatetimeBatch)
        # Profiles of the same chunks merge to the same type (where the two kinds can merge at all).
        try:
            merged = merge_profiles(profile({"c": CHUNKS[first]}), profile({"c": CHUNKS[second]}))
        except DataError:
            continue
        assert merged.columns["c"].dtype == want, (first, second)


@pytest.mark.parametrize("t", [t for t in TYPES if t != "empty"])
def test_an_empty_chunk_before_or_after_adds_only_nulls(t: str) -> None:
    alone = chunk(t)
    for parts in ([chunk("empty"), chunk(t)], [chunk(t), chunk("empty")], [chunk("empty"), chunk(t), chunk("empty")]):
        out = _concat(parts)
        assert type(out) is type(alone) and out.dtype == alone.dtype
        assert out.nulls == alone.nulls + 2 * sum(p.dtype == "empty" for p in parts)
        if isinstance(out, CategoricalBatch):
            assert dict(zip(out.values, out.counts.tolist())) == dict(zip(alone.values, alone.counts.tolist()))
        else:
            assert out.values.tolist() == alone.values.tolist()
            assert (out.int_min, out.int_max) == (alone.int_min, alone.int_max)


def test_only_empty_chunks_stay_empty() -> None:
    out = _concat([chunk("empty"), chunk("empty")])
    assert isinstance(out, NumericBatch) and out.dtype == "empty" and out.nulls == 4 and not len(out.values)


def test_numbers_in_a_mixed_column_read_as_within_one_chunk() -> None:
    """A number is the same category whichever chunk it came from: ``1``, not ``1.0`` beside ``1``."""
    out = _concat([column_of([1, 2, True, 2**60], "c"), column_of([1, "a", 2.5], "c")])
    assert out.dtype == "mixed"
    one_chunk = column_of([1, 2, True, 2**60, 1, "a", 2.5], "c")
    assert isinstance(out, CategoricalBatch) and isinstance(one_chunk, CategoricalBatch)
    assert dict(zip(out.values, out.counts.tolist())) == dict(zip(one_chunk.values, one_chunk.counts.tolist()))
    ints = _concat([column_of([2**60 + 1, 3], "c"), column_of(["x"], "c")])
    assert isinstance(ints, CategoricalBatch) and str(2**60 + 1) in ints.values  # exact, not float64's rounding


# -- through real files: a column empty for the reader's first chunk, then values -----------------------------

def leading_empty_jsonl(path: Path, tail: list[object]) -> Path:
    """JSON lines whose column ``x`` is null for exactly one reader chunk, then holds ``tail``."""
    n = kio.JSON_LINES_PER_BATCH
    with open(path, "w") as fh:
        fh.writelines(json.dumps({"id": i, "x": None}) + "\n" for i in range(n))
        fh.writelines(json.dumps({"id": n + i, "x": v}) + "\n" for i, v in enumerate(tail))
    return path


def test_a_jsonl_column_empty_for_the_first_chunk_keeps_its_type(tmp_path: Path) -> None:
    ints = leading_empty_jsonl(tmp_path / "ints.jsonl", list(range(50)))
    text = leading_empty_jsonl(tmp_path / "text.jsonl", [f"t{i}" for i in range(50)])
    assert sum(1 for _ in kio.read_batches(ints)) == 2  # the reader really splits the file
    t = load_table(str(ints))
    assert t["x"].dtype == "integer" and (t["x"].int_min, t["x"].int_max, t["x"].nulls) == (0, 49, 100_000)
    assert load_table(str(text))["x"].dtype == "string"
    # profile and validate read the same file the same way
    assert profile(str(ints)).columns["x"].dtype == "integer"
    assert profile(str(text)).columns["x"].dtype == "string"


def test_a_string_column_over_two_chunks_is_string_not_mixed(tmp_path: Path) -> None:
    path = tmp_path / "s.jsonl"
    n = kio.JSON_LINES_PER_BATCH
    path.write_text("".join(json.dumps({"s": f"v{i % 7}"}) + "\n" for i in range(n + 10)))
    assert load_table(str(path))["s"].dtype == "string"


def test_drift_names_the_real_types_after_a_leading_empty_chunk(tmp_path: Path) -> None:
    ref = leading_empty_jsonl(tmp_path / "ref.jsonl", list(range(50)))
    cur = tmp_path / "cur.jsonl"
    cur.write_text("".join(json.dumps({"id": i, "x": f"t{i}"}) + "\n" for i in range(50)))
    with pytest.raises(DataError, match="numeric on one side and categorical") as e:
        dataset_drift(str(ref), str(cur), columns=["x"])
    assert e.value.value == "integer vs string"  # the reference holds integers, not "empty"


def test_same_mixed_data_as_csv_and_as_chunked_jsonl_does_not_drift(tmp_path: Path) -> None:
    """Integers in the first chunk, text after: the numbers are the same categories in both files."""
    n = kio.JSON_LINES_PER_BATCH
    values = [i % 10 if i < n else "a" for i in range(n + 1000)]
    csv, jsonl = tmp_path / "m.csv", tmp_path / "m.jsonl"
    csv.write_text("x\n" + "".join(f"{v}\n" for v in values))
    jsonl.write_text("".join(json.dumps({"x": v}) + "\n" for v in values))
    res = dataset_drift(str(csv), str(jsonl))
    col = res.columns[0]
    assert (col.verdict, col.value, res.drift) == ("ok", 0.0, False)
    doc = run_task("drift", {"reference": str(csv), "current": str(jsonl)})
    assert doc["verdict"] == "ok" and doc["rows"][0]["value"] == 0.0


def test_validation_checks_the_values_after_a_leading_empty_chunk(tmp_path: Path) -> None:
    good = leading_empty_jsonl(tmp_path / "good.jsonl", list(range(50)))
    bad = leading_empty_jsonl(tmp_path / "bad.jsonl", [*range(50), "oops"])
    assert validate(str(good), types={"x": "integer"})["violations"] == 0
    rows = validate(str(bad), types={"x": "integer"})["rows"]
    assert [(r["metric"], r["value"], r["verdict"]) for r in rows] == [("type", "mixed", "violation")]
    assert validate(str(good), types={"x": "string"})["violations"] == 1  # integers are not strings
    doc = run_task("validate", {"input": str(bad), "types": {"x": "integer"}})
    assert doc["verdict"] == "violation"


def test_parquet_row_groups_with_a_leading_null_group_keep_the_type(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    n = kio.BATCH_ROWS
    path = tmp_path / "p.parquet"
    pq.write_table(pa.table({"x": pa.array([None] * n + [1, 2, 3], pa.int64())}), path, row_group_size=n)
    assert sum(1 for _ in kio.read_batches(path)) == 2
    assert profile(str(path)).columns["x"].dtype == "integer"
    assert load_table(str(path))["x"].dtype == "integer"
    assert validate(str(path), types={"x": "string"})["violations"] == 1
    np.testing.assert_array_equal(load_table(str(path))["x"].values, [1.0, 2.0, 3.0])
