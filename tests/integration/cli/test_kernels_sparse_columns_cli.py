"""`edgeorch profile|drift|fairness` (subprocesses) on sparse CSV columns and on JSON lines mixing across chunks.

A CSV column empty for the whole first read block (``io.CSV_BLOCK``, 16 MiB: the files are just over it)
failed the read at its first value; numbers in one chunk of JSON lines (``JSON_LINES_PER_BATCH`` lines) and
text in another failed profile. Both now give what one block or chunk of the data gives (unit tests:
tests/unit/kernels/test_kernels_sparse_columns.py).
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from edgeorch.kernels.io import CSV_BLOCK, JSON_LINES_PER_BATCH

PAD = "p" * 100


def edgeorch(workspace, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*workspace.cli(), *args], env=workspace.cli_env(), capture_output=True, text=True,
                          timeout=120)


def lead_empty_csv(path: Path, header: str, empty_row, tail: list[str]) -> tuple[str, int]:
    """Rows from ``empty_row(i)`` (the sparse column empty) for just over one block, then ``tail``."""
    lines, size, i = [header], 0, 0
    while size <= CSV_BLOCK:
        lines.append(empty_row(i))
        size += len(lines[-1]) + 1
        i += 1
    path.write_text("\n".join(lines + tail) + "\n")
    return str(path), i


def test_profile_and_drift_of_a_csv_column_empty_for_the_first_block(workspace, tmp_path: Path) -> None:
    path, lead = lead_empty_csv(tmp_path / "late.csv", "id,x,pad", lambda i: f"{i},,{PAD}",
                                [f"{i},{i % 10},{PAD}" for i in range(100)] + [f"100,oops,{PAD}"])
    proc = edgeorch(workspace, "profile", path, "--json")
    assert proc.returncode == 0, proc.stderr  # was 1: "CSV conversion error to null: invalid value '0'"
    x = {r["column"]: r["details"] for r in json.loads(proc.stdout)["rows"]}["x"]
    assert (x["type"], x["nulls"], x["count"], x["distinct"]) == ("mixed", lead, lead + 101, 11)
    proc = edgeorch(workspace, "drift", path, path, "--columns", "id", "--json")
    assert proc.returncode == 0, proc.stderr  # --columns id: x is no longer read at all
    assert json.loads(proc.stdout)["verdict"] == "ok"


def test_fairness_with_a_csv_column_empty_for_the_first_block(workspace, tmp_path: Path) -> None:
    path, _ = lead_empty_csv(tmp_path / "fair.csv", "g,p,y,w,pad",
                             lambda i: f"{'mf'[i % 2]},{i % 2},{i % 3 % 2},,{PAD}",
                             [f"{'mf'[i % 2]},{i % 2},1,1.0,{PAD}" for i in range(50)])
    proc = edgeorch(workspace, "fairness", path, "--group", "g", "--prediction", "p", "--label", "y", "--json")
    # Was an error: "w: cannot read: ... CSV conversion error to null: invalid value '1.0'" (w is not even used).
    assert "cannot read" not in proc.stderr and json.loads(proc.stdout)["kind"] == "fairness", proc.stderr
    proc = edgeorch(workspace, "fairness", path, "--group", "g", "--prediction", "p", "--weight", "w")
    assert "Traceback" not in proc.stderr and "sample weights must not be missing" in proc.stderr, proc.stderr


def test_profile_of_numbers_then_text_across_jsonl_chunks_is_mixed(workspace, tmp_path: Path) -> None:
    values: list[object] = [i % 10 for i in range(JSON_LINES_PER_BATCH)] + ["a"] * 1000
    jsonl, csv = tmp_path / "m.jsonl", tmp_path / "m.csv"
    jsonl.write_text("".join(json.dumps({"x": v}) + "\n" for v in values))
    csv.write_text("x\n" + "".join(f"{v}\n" for v in values))
    docs = []
    for path in (jsonl, csv):
        proc = edgeorch(workspace, "profile", str(path), "--json")
        assert proc.returncode == 0, proc.stderr  # the JSON lines were 1: "cannot merge a numeric and a categorical"
        docs.append(json.loads(proc.stdout)["rows"][0]["details"])
    assert docs[0] == docs[1] and docs[0]["type"] == "mixed" and docs[0]["top"][:2] == [["0", 10_000], ["1", 10_000]]
