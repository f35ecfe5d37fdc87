"""`edgeorch profile` and `edgeorch drift` on files whose column is empty for the reader's whole first chunk.

The files are just over one chunk (``JSON_LINES_PER_BATCH`` lines), so the real reader splits them; the
commands run in-process (``Workspace.invoke``: the same ``main`` and environment as the command). The rule
they rely on (``columns.merged_dtype``) is tested pair by pair in tests/unit/kernels/test_kernels_chunk_types.py.
"""

from __future__ import annotations

import json
from pathlib import Path

from edgeorch.kernels.io import JSON_LINES_PER_BATCH


def write_lines(path: Path, rows: list[dict[str, object]]) -> str:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


def leading_empty(path: Path, tail: list[object]) -> str:
    """Column ``x`` null for exactly one chunk of lines, then ``tail``."""
    n = JSON_LINES_PER_BATCH
    rows = [{"id": i, "x": None} for i in range(n)] + [{"id": n + i, "x": v} for i, v in enumerate(tail)]
    return write_lines(path, rows)


def test_profile_reports_the_type_of_values_after_a_leading_empty_chunk(workspace, tmp_path: Path) -> None:
    path = leading_empty(tmp_path / "late.jsonl", list(range(40)))
    proc = workspace.invoke("profile", path, "--json")
    assert proc.returncode == 0, proc.stderr
    rows = {r["column"]: r for r in json.loads(proc.stdout)["rows"]}
    assert rows["x"]["details"]["type"] == "integer" and rows["x"]["details"]["nulls"] == JSON_LINES_PER_BATCH


def test_drift_error_names_the_type_the_reference_really_holds(workspace, tmp_path: Path) -> None:
    ref = leading_empty(tmp_path / "ref.jsonl", list(range(40)))
    cur = write_lines(tmp_path / "cur.jsonl", [{"id": i, "x": f"t{i}"} for i in range(40)])
    proc = workspace.invoke("drift", ref, cur, "--columns", "x")
    # 2: the wrong pair of files, not "drift found" (1: `drift A B || alert` alerted on it).
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert "numeric on one side and categorical on the other" in proc.stderr
    assert "'integer vs string'" in proc.stderr  # was 'empty vs string': the 40 integers were not seen


def test_drift_of_the_same_mixed_data_as_csv_and_chunked_jsonl_is_none(workspace, tmp_path: Path) -> None:
    """Integers in the first chunk, text after: `1` in one chunk and `1` in the other are one category."""
    values: list[object] = [i % 10 for i in range(JSON_LINES_PER_BATCH)] + ["a"] * 500
    csv = tmp_path / "m.csv"
    csv.write_text("x\n" + "".join(f"{v}\n" for v in values))
    jsonl = write_lines(tmp_path / "m.jsonl", [{"x": v} for v in values])
    proc = workspace.invoke("drift", str(csv), jsonl, "--json")
    assert proc.returncode == 0, proc.stdout + proc.stderr  # was 1: a dataset drift between identical data
    doc = json.loads(proc.stdout)
    assert doc["verdict"] == "ok" and doc["rows"][0]["value"] == 0.0


def test_a_private_profiles_bounds_for_a_column_not_there_or_not_numeric_is_a_usage_error_naming_the_flag(
        workspace, tmp_path: Path) -> None:
    """`--bounds nope=0:1` said "bounds.nope: no such column", exit 1 (a data error), where any other unknown column
    is a usage error (exit 2) naming the option."""
    data = tmp_path / "s.csv"
    data.write_text("a,c\n1,x\n2,y\n3,z\n")
    base = ["profile", str(data), "--epsilon", "0.5", "--dataset", "p3", "--budget", "1"]
    for flag, value, said in (("--bounds", "nope=0:1", "--bounds nope: no such column"),
                              ("--categories", "nope=a,b", "--categories nope: no such column"),
                              ("--bounds", "c=0:1", "--bounds c: bounds are for numeric columns")):
        proc = workspace.invoke(*base, flag, value, env={"EDGEORCH_KEEP_WARM": "0"})
        assert proc.returncode == 2 and said in proc.stderr, (flag, value, proc.stderr)
