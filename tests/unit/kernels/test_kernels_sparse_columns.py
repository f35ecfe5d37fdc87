"""Columns whose values start late in a file, and columns with numbers and text in different chunks.

CSV: pyarrow fixes a column's type from the first block (``io.CSV_BLOCK``); a column with no value there was
null and its first value failed the read. It now has the type its values have over the whole file, so the
profile equals the one of a read in one block. JSON lines: numbers in one chunk (``JSON_LINES_PER_BATCH``
lines) and text in another made profile fail; the column is now ``mixed`` with one chunk's statistics.
The tests shrink the chunk sizes (the readers look them up at each read) to keep the files small.
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pyarrow as pa
import pytest

from edgeorch.errors import DataError
from edgeorch.kernels import dataset_drift, profile, run_task, validate
from edgeorch.kernels import io as kio
from edgeorch.kernels.io import load_table, read_table
from edgeorch.kernels.profiling import Profile, profile_batches

BLOCK = 1 << 16
LEAD = 2_000  # rows of ~40 bytes: more than one BLOCK with every late column empty


def late_csv(path: Path) -> Path:
    """Columns empty for the first blocks, then values whose type only the whole file tells.

    ``ints``: integers; ``reals``: integers, then decimals blocks later; ``text``: numbers, then words
    blocks later (mixed); ``flags``: 0/1, then true (boolean), ``loose``: 0/1, true, then 2 (none of
    integer or boolean holds: text, mixed); ``never``: empty throughout.
    """
    rows = ["id,ints,reals,text,flags,loose,never,pad"]
    rows += [f"{i},,,,,,,{'p' * 24}" for i in range(LEAD)]
    for i in range(LEAD, 3 * LEAD):
        late = i - LEAD
        real = f"{late}.5" if late > LEAD else str(late)
        word = f"w{late % 7}" if late > LEAD else str(late % 13)
        flag = "true" if late > LEAD else str(late % 2)
        loose = "2" if late == 2 * LEAD - 1 else flag
        rows.append(f"{i},{late},{real},{word},{flag},{loose},,{'p' * 24}")
    path.write_text("\n".join(rows) + "\n")
    return path


def one_block(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(kio, "CSV_BLOCK", 1 << 30)


def same_doc(a: object, b: object) -> bool:
    """Equal documents, floats to rounding: merged chunk moments round differently from one pass's."""
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same_doc(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same_doc(x, y) for x, y in zip(a, b))
    if isinstance(a, float) and isinstance(b, float):
        return a == pytest.approx(b, rel=1e-9, abs=1e-12)
    return type(a) is type(b) and a == b


def test_csv_columns_empty_for_the_first_block_profile_as_in_one_block(tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    path = late_csv(tmp_path / "late.csv")
    monkeypatch.setattr(kio, "CSV_BLOCK", BLOCK)
    assert sum(1 for _ in kio.iter_arrow(path)) > 3  # really read in blocks, the first with no late value
    chunked = profile(str(path)).to_dict()
    one_block(monkeypatch)
    assert sum(1 for _ in kio.iter_arrow(path)) == 1
    whole = profile(str(path)).to_dict()
    assert same_doc(chunked, whole), (chunked, whole)
    types = {r["column"]: r["details"]["type"] for r in whole["rows"]}
    assert types == {"id": "integer", "ints": "integer", "reals": "float", "text": "mixed", "flags": "boolean",
                     "loose": "mixed", "never": "empty", "pad": "string"}


def test_csv_tables_for_drift_and_fairness_equal_a_read_in_one_block(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    path = late_csv(tmp_path / "late.csv")
    monkeypatch.setattr(kio, "CSV_BLOCK", BLOCK)
    chunked, loaded = read_table(path), load_table(str(path))
    one_block(monkeypatch)
    assert chunked.equals(read_table(path))
    whole = load_table(str(path))
    assert {k: (v.dtype, v.nulls) for k, v in loaded.items()} == {k: (v.dtype, v.nulls) for k, v in whole.items()}
    assert dataset_drift(str(path), str(path)).drift is False


def test_a_selected_column_is_read_without_converting_the_others(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """drift --columns id: a column left out cannot fail the read (it was converted, then dropped)."""
    path = tmp_path / "bad.csv"
    path.write_text("id,b\n" + "".join(f"{i},{i}\n" for i in range(20_000)) + "20000,oops\n")
    monkeypatch.setattr(kio, "CSV_BLOCK", BLOCK)
    assert read_table(path, ["id"]).num_rows == 20_001
    with pytest.raises(DataError, match="row 20001"):  # the column itself still fails, naming the row
        read_table(path)


def test_fairness_reads_columns_empty_for_the_first_block(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An unused sparse column failed the read; a sparse weight column now gets its real error: missing weights."""
    path = tmp_path / "fair.csv"
    rows = [f"{'mf'[i % 2]},{i % 3 == 0:d},{i % 4 == 0:d},{'1.0' if i >= 9_000 else ''},{i if i >= 9_000 else ''}"
            for i in range(12_000)]  # 8 bytes a row: the first 64 KiB block has no w or note
    path.write_text("g,p,y,w,note\n" + "\n".join(rows) + "\n")
    options = {"input": str(path), "group": "g", "prediction": "p", "label": "y"}
    monkeypatch.setattr(kio, "CSV_BLOCK", BLOCK)
    assert sum(1 for _ in kio.iter_arrow(path)) > 1
    chunked = run_task("fairness", options)
    with pytest.raises(DataError, match="sample weights must not be missing") as chunked_error:
        run_task("fairness", {**options, "weight": "w"})
    one_block(monkeypatch)
    assert chunked == run_task("fairness", options)
    with pytest.raises(DataError) as whole_error:
        run_task("fairness", {**options, "weight": "w"})
    assert str(chunked_error.value) == str(whole_error.value)


@pytest.mark.parametrize("values", [["0", "1", "true", "2"], ["1", "2.5", "2024-01-01"], ["7", "1e3", "x"],
                                    ["2024-01-01", "2024-01-01T10:00:00", "10:00:00"], ["1", "2.5", "true"]])
def test_witnesses_have_the_type_of_all_values_in_any_order(values: list[str]) -> None:
    """However the values fall into blocks (here one a block, in every order), pyarrow types the few
    witnesses kept as it types all of them."""
    from edgeorch.kernels.io import _add_witnesses, _csv_type

    for order in itertools.permutations(values):
        kept: dict[object, str] = {}
        for v in order:
            _add_witnesses(kept, pa.array([v]))
        witnesses = pa.array(list(dict.fromkeys(kept.values())), pa.string())
        assert _csv_type(witnesses) == _csv_type(pa.array(values)), order


# -- JSON lines: numbers in one chunk, text in another --------------------------------------------------------

def mixed_jsonl(path: Path, values: list[object]) -> Path:
    path.write_text("".join(json.dumps({"x": v}) + "\n" for v in values))
    return path


def test_jsonl_numbers_and_text_in_different_chunks_profile_as_one_chunk(tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(kio, "JSON_LINES_PER_BATCH", 1_000)
    values: list[object] = [i % 10 for i in range(1_000)] + [2.5, True, None] * 300 + ["a", "1", None] * 400
    path = mixed_jsonl(tmp_path / "m.jsonl", values)
    assert sum(1 for _ in kio.read_batches(path)) == 4
    got = profile(str(path))
    assert got.columns["x"].to_dict() == profile({"x": values}).columns["x"].to_dict()  # one chunk of all
    assert got.columns["x"].dtype == "mixed" and got.rows == len(values)
    assert validate(str(path), types={"x": "integer"})["violations"] == 1  # was a DataError


def test_jsonl_text_then_numbers_and_other_columns_untouched(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(kio, "JSON_LINES_PER_BATCH", 500)
    rows = [{"id": i, "x": f"t{i % 3}" if i < 500 else i} for i in range(1_200)]
    path = tmp_path / "t.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    got = profile(str(path))
    assert list(got.columns) == ["id", "x"]  # column order kept
    assert got.columns["x"].to_dict() == profile({"x": [r["x"] for r in rows]}).columns["x"].to_dict()
    assert got.columns["id"].dtype == "integer" and got.columns["id"].count == 1_200


def test_a_stream_of_batches_that_cannot_be_read_again_still_refuses_the_clash() -> None:
    from edgeorch.kernels.columns import column_of

    with pytest.raises(DataError, match="cannot merge a numeric and a categorical profile"):
        profile_batches([{"x": column_of(list(range(10)), "x")}, {"x": column_of(["a"], "x")}])


# -- text chunks of a CSV column: numbers only in one, words in another ---------------------------------------

STATES = [("empty", False), ("string", True), ("string", False), ("mixed", False)]


def test_merged_text_dtype_is_a_join_symmetric_and_associative() -> None:
    from edgeorch.kernels.columns import merged_text_dtype

    for a, b in itertools.product(STATES, repeat=2):
        assert merged_text_dtype(*a, *b) == merged_text_dtype(*b, *a)
    for a, b, c in itertools.product(STATES, repeat=3):
        assert merged_text_dtype(*merged_text_dtype(*a, *b), *c) == merged_text_dtype(*a, *merged_text_dtype(*b, *c))
    assert merged_text_dtype("string", True, "string", False) == ("mixed", False)
    assert merged_text_dtype("string", True, "string", True) == ("string", True)


def test_a_csv_text_column_with_words_and_numbers_in_different_blocks_is_mixed(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each block alone is "string" (only words, only numbers); one block of both is "mixed"."""
    path = tmp_path / "wn.csv"
    # The header and 1,364 words fill the first 4 KiB block to the byte: no block holds both.
    words, numbers = (f"w{i % 5}\n" for i in range(1_364)), (f"{i}\n" for i in range(1_000, 3_000))
    path.write_text("x\n" + "".join(words) + "".join(numbers))
    monkeypatch.setattr(kio, "CSV_BLOCK", 1 << 12)
    blocks = [set(rb.column("x").to_pylist()) for rb in kio.iter_arrow(path)]
    assert blocks[0] == {f"w{i}" for i in range(5)} and all(v.isdigit() for b in blocks[1:] for v in b)
    chunked = profile(str(path)).to_dict()
    one_block(monkeypatch)
    assert same_doc(chunked, profile(str(path)).to_dict())
    assert chunked["rows"][0]["details"]["type"] == "mixed"


def test_numbers_only_survives_a_saved_profile() -> None:
    from edgeorch.kernels import merge_profiles

    numbers = Profile.from_json(profile({"x": pa.array([str(i) for i in range(9)])}).to_json())
    assert numbers.columns["x"].numbers_only and numbers.columns["x"].dtype == "string"
    assert merge_profiles(numbers, profile({"x": pa.array(["a"])})).columns["x"].dtype == "mixed"
    assert merge_profiles(numbers, numbers).columns["x"].dtype == "string"
