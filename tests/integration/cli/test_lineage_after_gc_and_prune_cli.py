"""The tester's two findings, as a user meets them: `edgeorch gc` and `datasets prune` left lineage giving a
confident wrong answer ("(nothing recorded)", "no such data version") about what a data version fed and where it
came from. Without a daemon, in-process (``Workspace.invoke``)."""

from __future__ import annotations

import json
import time

PIPELINE = """\
    name = "train"
    [tasks.train]
    command = ["sh", "-c", "cat {run_dir}/datasets/sales/* > $EDGEORCH_OUTPUT_DIR/model.txt"]
    inputs = ["dataset:sales"]
    outputs = ["model.txt"]
    """


def ok(ws, *args: str):
    proc = ws.invoke(*args)
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, (args, proc.stdout, proc.stderr)
    return proc


def test_gc_of_a_versions_readers_and_a_prune_of_the_version_leave_its_lineage_true(workspace, tmp_path):
    workspace.pipeline("train", PIPELINE)
    (tmp_path / "day1.csv").write_text("a,b\n1,2\n")
    ok(workspace, "datasets", "add", "sales", str(tmp_path / "day1.csv"), "-q")
    for _ in range(3):
        ok(workspace, "run", "train", "-q")
    time.sleep(1.1)  # runs 1 to 3 are older than `--older-than 1s`; run 3 is kept (it holds the newest ids)

    # Finding 1: the gc names the version its runs read, in its dry run and when it applies.
    dry = json.loads(ok(workspace, "gc", "--older-than", "1s", "--keep-last", "0", "--json").stdout)
    assert {r["run_id"]: r["datasets_read"] for r in dry["runs"]} == {1: ["sales@1"], 2: ["sales@1"]}
    assert "data versions read by those runs: sales@1 (runs 1, 2)" in ok(
        workspace, "gc", "--older-than", "1s", "--keep-last", "0").stdout
    applied = ok(workspace, "gc", "--older-than", "1s", "--keep-last", "0", "--apply")
    assert "data versions read by these runs: sales@1 (runs 1, 2)" in applied.stdout
    down = ok(workspace, "lineage", "dataset:sales@1", "--downstream").stdout
    assert "downstream: (runs 1, 2, which read it, were removed from the state file by `edgeorch gc` on " in down
    assert "consumed by: task 3/train" in down
    doc = json.loads(ok(workspace, "lineage", "dataset:sales@1", "--json").stdout)
    assert [(g["run_id"], g["task"]) for g in doc["nodes"]["dataset:sales@1"]["readers_gone"]] == [
        (1, "train"), (2, "train")]

    # Finding 2: a prune removes the content, not the record.
    (tmp_path / "day2.csv").write_text("a,b\n3,4\n")
    ok(workspace, "datasets", "add", "sales", str(tmp_path / "day2.csv"), "-q")
    dry_prune = ok(workspace, "datasets", "prune", "sales", "--keep", "1", "--dry-run").stdout
    assert "warning: sales@1 was read by finished run(s) 3" in dry_prune
    pruned = json.loads(ok(workspace, "datasets", "prune", "sales", "--keep", "1", "--json").stdout)
    assert [(v["ref"], v["read_by"]) for v in pruned["removed"]] == [("sales@1", [3])]
    assert pruned["objects_removed"] == 1 and pruned["bytes_freed"] == 8

    own = ok(workspace, "lineage", "dataset:sales@1")  # was: no such data version, exit 3
    assert "pruned since on " in own.stdout and f"from add {tmp_path / 'day1.csv'}" in own.stdout
    model = workspace.state / "runs" / "3" / "outputs" / "train" / "model.txt"
    up = json.loads(ok(workspace, "lineage", str(model), "--upstream", "--json").stdout)
    node = up["nodes"]["dataset:sales@1"]
    assert node["pruned"] and node["source"] == "add" and node["source_path"] == str(tmp_path / "day1.csv")
    assert node["created_at"] is not None and node["pruned_at"] is not None

    shown = json.loads(ok(workspace, "datasets", "show", "sales", "--json").stdout)
    assert [v["ref"] for v in shown["versions"]] == ["sales@2"] and [v["ref"] for v in shown["pruned"]] == ["sales@1"]
    assert "pruned: sales@1" in ok(workspace, "datasets", "show", "sales").stdout
    gone = workspace.invoke("datasets", "show", "sales@1")
    assert gone.returncode == 3 and "has no version 1 any more: it was pruned on " in gone.stderr
