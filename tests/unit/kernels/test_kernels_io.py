"""Reading CSV, TSV, Parquet, .npy, .npz and JSON lines; bad files name file, column and row."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from edgeorch.errors import DataError
from edgeorch.kernels import profile
from edgeorch.kernels.io import load_table, read_table


def write_all_formats(d: Path) -> dict[str, Path]:
    x = np.array([1.5, 2.5, -3.0, 4.0])
    c = ["a", "b", "a", None]
    paths = {}
    paths["csv"] = d / "t.csv"
    paths["csv"].write_text("x,c\n1.5,a\n2.5,b\n-3.0,a\n4.0,\n")
    paths["tsv"] = d / "t.tsv"
    paths["tsv"].write_text("x\tc\n1.5\ta\n2.5\tb\n-3.0\ta\n4.0\t\n")
    paths["parquet"] = d / "t.parquet"
    pq.write_table(pa.table({"x": x, "c": c}), paths["parquet"])
    paths["jsonl"] = d / "t.jsonl"
    paths["jsonl"].write_text("\n".join(json.dumps({"x": float(v), "c": s}) for v, s in zip(x, c)) + "\n")
    paths["npz"] = d / "t.npz"
    np.savez(paths["npz"], x=x, c=np.array(["a", "b", "a", "z"]))
    return paths


@pytest.mark.parametrize("fmt", ["csv", "tsv", "parquet", "jsonl", "npz"])
def test_every_format_gives_the_same_numeric_profile(fmt: str, tmp_path: Path) -> None:
    path = write_all_formats(tmp_path)[fmt]
    s = {c["column"]: c for c in profile(str(path)).summary()}
    assert s["x"]["mean"] == pytest.approx(1.25) and s["x"]["min"] == -3.0 and s["x"]["count"] == 4
    assert s["c"]["type"] == "string"


@pytest.mark.parametrize("fmt", ["csv", "parquet", "jsonl"])
def test_nulls_are_counted(fmt: str, tmp_path: Path) -> None:
    path = write_all_formats(tmp_path)[fmt]
    s = {c["column"]: c for c in profile(str(path)).summary()}
    assert s["c"]["nulls"] == 1


@pytest.mark.parametrize("shape", ["1d", "2d", "structured"])
def test_npy_layouts(shape: str, tmp_path: Path) -> None:
    arr = {"1d": np.arange(6.0), "2d": np.arange(6.0).reshape(3, 2),
           "structured": np.array([(1, 2.0), (3, 4.0)], dtype=[("a", "i8"), ("b", "f8")])}[shape]
    np.save(tmp_path / "a.npy", arr)
    names = [c["column"] for c in profile(str(tmp_path / "a.npy")).summary()]
    assert names == {"1d": ["value"], "2d": ["0", "1"], "structured": ["a", "b"]}[shape]


def test_mixed_csv_column_is_mixed_categorical(tmp_path: Path) -> None:
    (tmp_path / "m.csv").write_text("v\n1\nabc\n2.5\n")
    s = profile(str(tmp_path / "m.csv")).summary()[0]
    assert s["type"] == "mixed"


def test_read_table_selects_columns(tmp_path: Path) -> None:
    path = write_all_formats(tmp_path)["parquet"]
    assert read_table(str(path), ["c"]).column_names == ["c"]


def test_load_table_of_jsonl_merges_batches(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from edgeorch.kernels import io

    monkeypatch.setattr(io, "JSON_LINES_PER_BATCH", 2)
    path = write_all_formats(tmp_path)["jsonl"]
    t = load_table(str(path))
    assert t["x"].values.tolist() == [1.5, 2.5, -3.0, 4.0]


# -- bad input: DataError naming file / column / row ------------------------------------

def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="file not found") as e:
        profile(str(tmp_path / "nope.csv"))
    assert e.value.file.endswith("nope.csv")


def test_unknown_extension(tmp_path: Path) -> None:
    (tmp_path / "d.xlsx").write_text("")
    with pytest.raises(DataError, match="unknown file format"):
        profile(str(tmp_path / "d.xlsx"))


def test_csv_row_with_too_many_fields_names_the_row(tmp_path: Path) -> None:
    (tmp_path / "bad.csv").write_text("a,b\n1,2\n3,4,5\n")
    with pytest.raises(DataError, match="row 2:") as e:
        profile(str(tmp_path / "bad.csv"))
    assert e.value.file.endswith("bad.csv")


def test_csv_value_of_the_wrong_type_after_the_first_block_names_column_and_row(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from edgeorch.kernels import io

    monkeypatch.setattr(io, "CSV_BLOCK", 64)  # type inference sees only the first block
    lines = ["id,amount"] + [f"{i},{i}" for i in range(50)] + ["51,oops"]
    (tmp_path / "late.csv").write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError) as e:
        profile(str(tmp_path / "late.csv"))
    assert e.value.field == "amount"
    assert "row 51:" in e.value.message and "oops" in e.value.message


def test_unknown_column_with_suggestion(tmp_path: Path) -> None:
    path = write_all_formats(tmp_path)["parquet"]
    with pytest.raises(DataError, match="no such column") as e:
        profile(str(path), columns=["cc"])
    assert e.value.hint == "did you mean 'c'?" and e.value.file == str(path)


def test_malformed_json_line_names_the_line(tmp_path: Path) -> None:
    (tmp_path / "bad.jsonl").write_text('{"a": 1}\n{"a": 2\n')
    with pytest.raises(DataError, match="malformed JSON") as e:
        profile(str(tmp_path / "bad.jsonl"))
    assert e.value.line == 2


def test_non_object_json_line(tmp_path: Path) -> None:
    (tmp_path / "bad.jsonl").write_text('{"a": 1}\n[1, 2]\n')
    with pytest.raises(DataError, match="JSON object") as e:
        profile(str(tmp_path / "bad.jsonl"))
    assert e.value.line == 2


def test_corrupt_parquet(tmp_path: Path) -> None:
    (tmp_path / "bad.parquet").write_bytes(b"not parquet at all")
    with pytest.raises(DataError, match="cannot read"):
        profile(str(tmp_path / "bad.parquet"))


def test_npz_columns_of_different_lengths(tmp_path: Path) -> None:
    np.savez(tmp_path / "bad.npz", a=np.arange(3), b=np.arange(4))
    with pytest.raises(DataError, match="same length"):
        profile(str(tmp_path / "bad.npz"))


def test_empty_csv_with_header_profiles_to_empty_columns(tmp_path: Path) -> None:
    (tmp_path / "e.csv").write_text("a,b\n")
    p = profile(str(tmp_path / "e.csv"))
    assert p.rows == 0
    assert all(c["count"] == 0 for c in p.summary())


def test_progress_is_reported_per_chunk_and_closed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import io as stdio

    from edgeorch.kernels import io
    from edgeorch.textui import Progress

    monkeypatch.setattr(io, "BATCH_ROWS", 1000)
    pq.write_table(pa.table({"x": np.arange(5000.0)}), tmp_path / "d.parquet", row_group_size=1000)
    stream = stdio.StringIO()
    profile(str(tmp_path / "d.parquet"), progress=Progress(stream, enabled=True))
    text = stream.getvalue()
    assert "100.0%" in text and text.endswith("\n")


def test_a_csv_that_is_not_utf8_is_a_data_error_naming_the_file_column_and_row(tmp_path: Path) -> None:
    """A Latin-1 export (`caf\\xe9`) ended as "internal error (a bug): ArrowInvalid: Invalid UTF8 payload", exit 70,
    in `profile` and `drift`."""
    path = tmp_path / "latin1.csv"
    path.write_bytes(b"ville,prix\nparis,2\ncaf\xe9,3\n")
    for read in (lambda: profile(str(path)), lambda: load_table(path)):
        with pytest.raises(DataError) as err:
            read()
        e = err.value
        assert e.file == str(path) and e.field == "ville" and e.message == "row 2: is not UTF-8 text"
        assert "iconv" in (e.hint or "")


def test_a_header_that_is_not_utf8_is_a_data_error_not_an_internal_one(tmp_path: Path) -> None:
    """A binary file dropped as `.csv`, or a Latin-1 header (`caf\\xe9`): pyarrow's UnicodeDecodeError reached the
    user as "internal error (a bug)", exit 70, and a kind task's log held a traceback."""
    for name, data in (("binary.csv", b"garbage\x00\xff\n"), ("latin1.csv", b"caf\xe9,b\n1,2\n")):
        path = tmp_path / name
        path.write_bytes(data)
        for read in (lambda: profile(str(path)), lambda: load_table(path)):
            with pytest.raises(DataError) as err:
                read()
            e = err.value
            said = "is not a text CSV file (found a NUL byte" if name == "binary.csv" else "its header is not UTF-8"
            assert e.file == str(path) and e.message.startswith(said), e.message
            assert "iconv" in (e.hint or "")


@pytest.mark.parametrize("column", [pa.array([["x", "y"], ["z"]]), pa.array([{"a": 1}, {"a": 2}]),
                                    pa.array([[("k", 1)], [("k", 2)]], type=pa.map_(pa.string(), pa.int64()))],
                         ids=["list", "struct", "map"])
def test_a_nested_parquet_column_is_a_data_error_naming_it_and_the_others_still_read(tmp_path: Path, column) -> None:
    """Profile and drift ended "internal error (a bug): ArrowNotImplementedError: Unsupported cast from list<...> to
    utf8", exit 70; fairness "unhashable type: 'dict'"."""
    from edgeorch.kernels import dataset_drift

    path = tmp_path / "nested.parquet"
    pq.write_table(pa.table({"id": [1, 2], "tags": column}), path)
    for read in (lambda: profile(str(path)), lambda: read_table(path), lambda: dataset_drift(path, path)):
        with pytest.raises(DataError) as err:
            read()
        e = err.value
        assert (e.file, e.field, e.message) == (str(path), "tags", "nested values are not supported"), e.render()
    assert list(profile(str(path), columns=["id"]).columns) == ["id"]


def test_a_parquet_bytes_column_gets_no_csv_conversion_hint(tmp_path: Path) -> None:
    path = tmp_path / "bin.parquet"
    pq.write_table(pa.table({"b": pa.array([b"x", b"\xff"], pa.binary())}), path)
    with pytest.raises(DataError) as err:
        profile(str(path))
    assert err.value.field == "b" and err.value.hint is None and "bytes" in (err.value.expected or "")


def test_a_kernel_commands_json_result_given_as_data_says_what_it_is(tmp_path: Path) -> None:
    """`edgeorch profile ref.csv --json > prof.json; edgeorch drift prof.json cur.csv` said "prof.json:1: malformed
    JSON" of valid JSON (read as JSON lines): it is a result document, not a saved profile."""
    result = tmp_path / "prof.json"
    result.write_text(json.dumps({"kind": "profile", "verdict": "ok", "rows": []}, indent=2))
    with pytest.raises(DataError) as err:
        load_table(result)
    assert "is the result document of a profile check (--json)" in err.value.message and "--save" in err.value.expected
    broken = tmp_path / "broken.json"
    broken.write_text('{\n"a": 1\n')
    with pytest.raises(DataError, match="malformed JSON"):
        load_table(broken)


def test_a_binary_file_named_csv_is_said_so_not_quoted_as_replacement_characters(tmp_path: Path) -> None:
    """Found by a tester: random bytes named bin.csv said "row 5: CSV parse error: Expected 1 columns, got 3:
    <U+FFFD...>", its bytes shown as replacement characters."""
    rng = np.random.default_rng(5)
    binary = tmp_path / "bin.csv"
    binary.write_bytes(b"a,b\n" + bytes(rng.integers(0, 256, 100_000, dtype=np.uint8)))
    with pytest.raises(DataError) as exc:
        read_table(binary)
    assert "is not a text CSV file (found a NUL byte at offset" in exc.value.message and exc.value.exit_code == 1
    latin = tmp_path / "ragged.csv"  # no NUL, a ragged row of bytes that are not UTF-8: no U+FFFD quoted
    latin.write_bytes(b"a,b\n1,2\n\xff\xfe,\xe9,\xe8\n")
    with pytest.raises(DataError) as exc:
        read_table(latin)
    assert "\ufffd" not in exc.value.render() and "not UTF-8" in exc.value.message, exc.value.render()
