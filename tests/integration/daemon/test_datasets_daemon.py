"""Data versions through a real daemon: the datasets.* ops, drop-folder inputs and task outputs as versions.

Synchronisation: the ``events`` stream wakes the test, which then reads the
state file; a task that must stay running waits for a file the test creates.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess

import numpy as np
import pytest

from edgeorch.errors import EdgeorchError

def q(ws, sql: str, args=()) -> list[sqlite3.Row]:
    conn = sqlite3.connect(ws.state / "edgeorch.db", timeout=30)
    conn.row_factory = sqlite3.Row
    try:
        return conn.execute(sql, args).fetchall()
    finally:
        conn.close()


def cli(ws, *args: str) -> subprocess.CompletedProcess[str]:
    proc = ws.invoke("datasets", *args)  # in this process: output and exit codes are what is tested
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc


def wait_until(daemon, cond, timeout: float = 60, what: str = "") -> None:
    """Follow the events stream; return once ``cond()`` holds (checked at subscribe and after each event)."""
    with daemon.client(timeout=timeout) as c:
        for _ in c.stream("events", {}, timeout=timeout):
            if cond():
                return
    raise AssertionError(f"the events stream ended before {what or cond}")


def random_bytes(n: int, seed: int = 1) -> bytes:
    return np.random.default_rng(seed).integers(0, 256, n, dtype=np.uint8).tobytes()


def test_add_restore_and_prune_go_through_the_daemon(workspace, daemon, tmp_path):
    src = tmp_path / "batch.bin"
    src.write_bytes(random_bytes(3_000_000))
    daemon.start()  # it holds the state-dir lock: only the daemon can record these versions
    added = cli(workspace, "add", "batch", str(src), "--json")
    assert added.returncode == 0, added.stderr
    assert json.loads(added.stdout)["ref"] == "batch@1"
    with daemon.client() as c:
        items = list(c.stream("datasets.add", {"name": "batch", "path": str(src), "compress": True}, timeout=60))
        assert items[-1]["version"]["ref"] == "batch@2" and items[-1]["version"]["new_bytes"] == 0
        assert all("progress" in i for i in items[:-1])
        with pytest.raises(EdgeorchError, match="must be an absolute path"):
            list(c.stream("datasets.add", {"name": "batch", "path": "batch.bin"}, timeout=60))
        with pytest.raises(EdgeorchError, match="is not a valid dataset name"):
            list(c.stream("datasets.add", {"name": "no/slash", "path": str(src)}, timeout=60))
    rows = q(workspace, "SELECT actor, data FROM events WHERE kind = 'dataset_version' ORDER BY id")
    assert len(rows) == 2 and "(uid" in rows[0]["actor"]

    restored = cli(workspace, "restore", "batch@1", str(tmp_path / "out"))
    assert restored.returncode == 0, restored.stderr
    assert (tmp_path / "out" / "batch.bin").read_bytes() == src.read_bytes()
    pruned = cli(workspace, "prune", "batch", "--keep", "1", "--json")
    assert pruned.returncode == 0, pruned.stderr
    assert [v["ref"] for v in json.loads(pruned.stdout)["removed"]] == ["batch@1"]
    assert json.loads(pruned.stdout)["bytes_freed"] == 0  # version 2 uses every chunk of version 1
    listed = cli(workspace, "list", "--json")
    assert [(d["name"], d["versions"], d["latest"]) for d in json.loads(listed.stdout)["datasets"]] == [("batch", 1, 2)]
    assert daemon.stop() == 0


GATED = """
[params]
input = { type = "path", default = "" }
[tasks.read]
command = ["sh", "-c", "test -f {input} && while [ ! -e {gate} ]; do sleep 0.05; done"]
"""


def test_drop_folder_files_become_versions_held_while_their_runs_run(workspace, daemon, tmp_path):
    drop = tmp_path / "drop"
    drop.mkdir()
    gate = tmp_path / "gate"  # the runs go on once it exists
    workspace.write_config(f"""
        [[watch]]
        folder = "{drop}"
        pipeline = "ingest"
        settle = "0.2s"
        dataset = {{ name = "arrivals", compress = true }}
        """)
    workspace.pipeline("ingest", GATED.replace("{gate}", str(gate)))
    staging = tmp_path / "staging"
    staging.mkdir()
    first = random_bytes(2_000_000, seed=1)
    daemon.start()
    for name, data in (("day1.bin", first), ("day2.bin", first + random_bytes(100_000, seed=2))):
        (staging / name).write_bytes(data)
        os.rename(staging / name, drop / name)

    def versions() -> list[sqlite3.Row]:
        return q(workspace, "SELECT v.* FROM dataset_versions v ORDER BY version")

    def started() -> int:
        return q(workspace, "SELECT COUNT(*) FROM inputs WHERE state = 'started'")[0][0]

    wait_until(daemon, lambda: len(versions()) == 2 and started() == 2, what="two inputs started as versions")
    v1, v2 = versions()
    ids = [r["id"] for r in q(workspace, "SELECT id FROM inputs ORDER BY id")]
    assert (v1["source"], v1["input_id"], v2["input_id"]) == ("input", ids[0], ids[1])
    assert v2["new_bytes"] < 2 * 1024 * 1024 < v2["size"]  # the appended day stored little
    kept = daemon.call("datasets.prune", {"keep": 1})
    assert kept["removed"] == [] and {k["ref"]: k["reason"] for k in kept["kept"]}["arrivals@1"].startswith("run ")

    gate.write_text("go")  # release both runs
    wait_until(daemon, lambda: q(workspace, "SELECT COUNT(*) FROM inputs WHERE state = 'done'")[0][0] == 2,
               what="both runs done")
    pruned = daemon.call("datasets.prune", {"keep": 1})
    assert [v["ref"] for v in pruned["removed"]] == ["arrivals@1"]
    restored = cli(workspace, "restore", "arrivals", str(tmp_path / "out"))
    assert restored.returncode == 0, restored.stderr
    assert (tmp_path / "out" / "day2.bin").read_bytes() == first + random_bytes(100_000, seed=2)
    assert daemon.stop() == 0


FEATURES = """
[tasks.make]
command = ["sh", "-c", "mkdir -p $EDGEORCH_OUTPUT_DIR/data/sub && seq 1 50000 > $EDGEORCH_OUTPUT_DIR/data/n.csv && echo x > $EDGEORCH_OUTPUT_DIR/data/sub/x.txt && echo log > $EDGEORCH_OUTPUT_DIR/other.txt"]
dataset = { name = "features", path = "data" }
"""

MISSING = """
[tasks.make]
command = ["true"]
dataset = { name = "features", path = "nothing_here" }
"""


def test_a_task_output_becomes_a_version_with_its_outcome(workspace, daemon, tmp_path):
    workspace.pipeline("features", FEATURES)
    workspace.pipeline("missing", MISSING)
    daemon.start()
    for _ in range(2):
        run_id = daemon.call("trigger", {"pipeline": "features"})["run_id"]
        assert daemon.wait_run(run_id) == "succeeded"
    rows = q(workspace, "SELECT * FROM dataset_versions ORDER BY version")
    assert [(r["version"], r["source"], r["run_id"], r["task"], r["files"]) for r in rows] == [
        (1, "task", 1, "make", 2), (2, "task", 2, "make", 2)]
    assert rows[1]["new_bytes"] == 0 and rows[0]["manifest_sha256"] == rows[1]["manifest_sha256"]
    shown = daemon.call("datasets.show", {"ref": "features@2", "files": True})
    assert [f["path"] for f in shown["entries"]] == ["n.csv", "sub/x.txt"]
    # OpenLineage: the task that made a version lists it among its outputs (no job produced features@1 before).
    exported = workspace.invoke("lineage", "export", "--openlineage", "-", "--run", "1")
    assert exported.returncode == 0, exported.stderr
    make = next(json.loads(line) for line in exported.stdout.splitlines()
                if '"features.make"' in line and '"COMPLETE"' in line)
    assert ("edgeorch-dataset", "features@1") in [(d["namespace"], d["name"]) for d in make["outputs"]]

    run_id = daemon.call("trigger", {"pipeline": "missing"})["run_id"]
    assert daemon.wait_run(run_id) == "failed"
    (reason,) = [r["reason"] for r in q(workspace, "SELECT reason FROM tasks WHERE run_id = ?", (run_id,))]
    assert "dataset features: the declared output" in reason and "nothing_here is missing" in reason
    assert q(workspace, "SELECT COUNT(*) FROM dataset_versions")[0][0] == 2
    assert daemon.stop() == 0


def test_an_add_its_client_leaves_ends_quietly_and_records_nothing(workspace, daemon, tmp_path):
    """Found by a tester: killing `datasets add` mid-way through the daemon left an ERROR with a traceback in the
    log ("Future exception was never retrieved ... SnapshotCancelled"), for what is the expected end of it."""
    big = tmp_path / "big.bin"
    with open(big, "wb") as f:
        for i in range(24):
            f.write(random_bytes(16 << 20, seed=i))
    small = tmp_path / "small.bin"
    small.write_bytes(random_bytes(1000))
    daemon.start()
    with daemon.client() as c:
        for item in c.stream("datasets.add", {"name": "big", "path": str(big)}, timeout=120):
            assert "progress" in item  # the first progress line: the add is under way; the client goes now
            break
    with daemon.client() as c:  # the next add waits for the abandoned one's end (one worker)
        items = list(c.stream("datasets.add", {"name": "small", "path": str(small)}, timeout=120))
    assert items[-1]["version"]["ref"] == "small@1"
    assert [r["name"] for r in q(workspace, "SELECT name FROM datasets")] == ["small"]
    assert daemon.stop() == 0
    out = daemon.output()
    assert "never retrieved" not in out and "Traceback" not in out and " ERROR " not in out, out[-3000:]


def test_a_long_file_of_a_dataset_watch_is_stored_by_its_lane_and_restores_whole(workspace, daemon, tmp_path):
    """A file past the long-file size is claimed in its folder's lane, and its version's chunks are stored there too
    (stored by the claim worker, a 600 MB file held up every folder's claims for seconds)."""
    from edgeorch.triggers.drop.service import LONG_CLAIM_BYTES

    drop = tmp_path / "drop"
    drop.mkdir()
    workspace.write_config(f"""
        [[watch]]
        folder = "{drop}"
        pipeline = "ingest"
        settle = "0.2s"
        dataset = "arrivals"
        """)
    workspace.pipeline("ingest", '[params]\ninput = { type = "path", default = "" }\n[tasks.a]\ncommand = ["true"]\n')
    data = random_bytes(LONG_CLAIM_BYTES + 4096, seed=7)
    (tmp_path / "long.bin").write_bytes(data)
    daemon.start()
    os.rename(tmp_path / "long.bin", drop / "long.bin")
    wait_until(daemon, lambda: q(workspace, "SELECT COUNT(*) FROM inputs WHERE state = 'done'")[0][0] == 1,
               what="the long file's run done")
    (v,) = q(workspace, "SELECT * FROM dataset_versions")
    assert v["size"] == len(data) and v["source"] == "input"
    restored = cli(workspace, "restore", "arrivals", str(tmp_path / "out"))
    assert restored.returncode == 0, restored.stderr
    assert (tmp_path / "out" / "long.bin").read_bytes() == data
    assert daemon.stop() == 0
