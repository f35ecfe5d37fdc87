"""Retention removes content and runs, never provenance: after `datasets prune` and `edgeorch gc`, lineage still
knows where a data version came from and which runs read it (finding 1: gc erased a version's readers and lineage
said "(nothing recorded)"; finding 2: prune erased a version's record, its drop-folder origin with it)."""

from __future__ import annotations

from pathlib import Path

import pytest

from edgeorch.datasets import service
from edgeorch.datasets.retention import Rule
from edgeorch.errors import NotFoundError
from edgeorch.lineage import render
from edgeorch.lineage.graph import Walk
from edgeorch.lineage.things import Thing, resolve
from edgeorch.store import Store

INPUT_COLUMNS = ("(id, pipeline, watch_folder, source_name, source_path, inbox_path, state, run_id, sha256, size,"
                 " arrived_at, updated_at)")


def two_versions(store: Store, objects, tmp_path: Path, clock) -> None:
    """sales@1 (its own content) and sales@2, a day apart."""
    for day, text in ((1, "a,b\n1,2\n"), (2, "a,b\n3,4\n")):
        path = tmp_path / f"day{day}.csv"
        path.write_text(text)
        service.add(store, objects, "sales", path, actor="alice (uid 1000)")
        clock.now += 86400


def reader_run(store: Store, run_id: int, version: str = "sales@1") -> None:
    """A finished run whose task `train` read `dataset:VERSION` (its attempt recorded it as consumed)."""
    with store.transaction():
        pv = store.pipelines.record_version("p", "h" * 64, "/p.toml", "[tasks.train]\n")
        store.db.conn.execute("INSERT INTO runs (id, pipeline, pipeline_version_id, state, params, trigger, run_dir,"
                              " created_at, finished_at) VALUES (?, 'p', ?, 'succeeded', '{}', 'cli', ?, 0, 1)",
                              (run_id, pv, f"/runs/{run_id}"))
        store.db.conn.execute("INSERT INTO tasks (run_id, name, state, definition_hash) VALUES (?, 'train',"
                              " 'succeeded', 'd')", (run_id,))
    name, _, number = version.partition("@")
    manifest = store.datasets.version(name, int(number))["manifest_sha256"]
    store.lineage.record_consumed(run_id, "train", None, [{"kind": "dataset", "path": f"dataset:{version}",
                                                           "sha256": manifest, "size": 8, "files": 1,
                                                           "spec": "dataset:sales"}])


def walk(store: Store, thing: Thing, *directions: str) -> dict:
    return Walk(store).run(resolve(store.lineage, thing), directions or ("upstream", "downstream"))


def test_a_pruned_drop_folder_version_keeps_its_record_and_the_readers_lineage_reaches_its_input(
        store, objects, tmp_path, clock):
    two_versions(store, objects, tmp_path, clock)
    with store.transaction():
        store.db.conn.execute(f"INSERT INTO inputs {INPUT_COLUMNS} VALUES (4, 'p', '/drop', 'day1.csv',"
                              " '/drop/day1.csv', '/inbox/day1.csv', 'done', NULL, 'ab', 8, 0, 0)")
        store.db.conn.execute("UPDATE dataset_versions SET source = 'input', input_id = 4, source_path = "
                              "'/drop/day1.csv' WHERE version = 1")
    reader_run(store, 3)
    chunks_before = store.datasets.totals()["chunks"]

    res = service.prune(store, objects, Rule(keep_last=1), actor="bob (uid 1001)")

    assert [v["ref"] for v in res["removed"]] == ["sales@1"] and res["removed"][0]["read_by"] == [3]
    # Space accounting unchanged: the content (its chunk and object) is freed.
    assert res["chunks_removed"] == 1 and res["objects_removed"] == 1
    assert store.datasets.totals()["chunks"] == chunks_before - 1
    # The content is gone: nothing reads, restores or holds it, and the error says when and by whom.
    with pytest.raises(NotFoundError) as exc:
        store.datasets.version("sales", 1)
    assert "it was pruned on " in exc.value.render() and "by bob (uid 1001)" in exc.value.render()
    assert [v["version"] for v in store.datasets.versions("sales")] == [2]
    assert [v["version"] for v in store.datasets.pruned("sales")] == [1]
    assert store.datasets.files(store.datasets.pruned("sales")[0]["id"]) == []
    # The record is not: lineage of the version itself works and says it was pruned ...
    doc = walk(store, Thing("dataset", name="sales", version=1))
    node = doc["nodes"]["dataset:sales@1"]
    assert node["pruned"] and node["pruned_at"] == clock.now and node["pruned_by"] == "bob (uid 1001)"
    assert (node["source"], node["source_path"], node["input_id"]) == ("input", "/drop/day1.csv", 4)
    assert node["created_at"] is not None and node["actor"] == "alice (uid 1000)"
    assert ["versioned from", "input:4"] in doc["upstream"]["dataset:sales@1"]
    assert "pruned since on " in render.tree(doc) and "from input 4" in render.tree(doc)
    # ... and the reader's upstream still reaches the drop-folder input through it.
    up = walk(store, Thing("task", run_id=3, task="train"), "upstream")
    assert ["consumed", "dataset:sales@1"] in up["upstream"]["task:3/train"]
    assert ["versioned from", "input:4"] in up["upstream"]["dataset:sales@1"]
    assert up["nodes"]["dataset:sales@1"]["source_path"] == "/drop/day1.csv"


def test_a_later_prune_leaves_a_pruned_version_alone_and_numbers_go_on(store, objects, tmp_path, clock):
    two_versions(store, objects, tmp_path, clock)
    service.prune(store, objects, Rule(keep_last=1))
    again = service.prune(store, objects, Rule(keep_last=1), dry_run=True)
    assert again["removed"] == []
    (tmp_path / "day3.csv").write_text("x\n")
    assert service.add(store, objects, "sales", tmp_path / "day3.csv")["version"] == 3
    (listed,) = store.datasets.list()
    assert (listed["versions"], listed["latest"], listed["pruned"]) == (2, 3, 1)
    overview = service.overview(store, "sales")
    assert [v["version"] for v in overview["versions"]] == [2, 3]
    assert [v["ref"] for v in overview["pruned"]] == ["sales@1"] and overview["pruned"][0]["pruned_at"]


def test_a_pruned_version_made_by_a_run_no_longer_holds_that_run_from_gc(store, objects, tmp_path, clock):
    two_versions(store, objects, tmp_path, clock)
    reader_run(store, 7)  # a run whose output became sales@1 (the reader row is beside the point here)
    store.db.conn.execute("UPDATE dataset_versions SET run_id = 7, task = 'train', source = 'task' WHERE version = 1")
    assert [r["version"] for r in store.retention.dataset_versions_of([7])] == [1]
    service.prune(store, objects, Rule(keep_last=1))
    assert store.retention.dataset_versions_of([7]) == []


def test_gc_names_the_versions_its_runs_read_and_lineage_says_they_were_removed(store, objects, tmp_path, clock):
    two_versions(store, objects, tmp_path, clock)
    reader_run(store, 1)
    reader_run(store, 2)
    reader_run(store, 3, "sales@2")
    assert store.lineage.dataset_reads_of_runs([1, 2, 3, 9]) == {1: ["sales@1"], 2: ["sales@1"], 3: ["sales@2"]}

    removed, _ = store.retention.remove([1, 2], actor="gc-test", message="test")

    assert removed == [1, 2]
    vid = store.datasets.version("sales", 1)["id"]
    assert store.lineage.dataset_readers_gone(vid) == [
        {"run_id": 1, "task": "train", "removed_at": clock.now, "actor": "gc-test"},
        {"run_id": 2, "task": "train", "removed_at": clock.now, "actor": "gc-test"}]
    assert store.lineage.dataset_readers_gone(store.datasets.version("sales", 2)["id"]) == []
    doc = walk(store, Thing("dataset", name="sales", version=1), "downstream")
    assert [g["run_id"] for g in doc["nodes"]["dataset:sales@1"]["readers_gone"]] == [1, 2]
    text = render.tree(doc)
    assert "downstream: (runs 1, 2, which read it, were removed from the state file by `edgeorch gc` on " in text
    assert "nothing recorded" not in text
    # A version whose readers are all still recorded says nothing of the kind.
    assert "readers_gone" not in walk(store, Thing("dataset", name="sales", version=2))["nodes"]["dataset:sales@2"]


def test_readers_removed_and_then_the_version_pruned_both_stay_said(store, objects, tmp_path, clock):
    two_versions(store, objects, tmp_path, clock)
    reader_run(store, 1)
    store.retention.remove([1], actor="gc-test", message="test")
    res = service.prune(store, objects, Rule(keep_last=1), dry_run=True)
    assert res["removed"][0]["read_by"] == []  # its one reader is gone: no finished run to warn of
    service.prune(store, objects, Rule(keep_last=1))
    node = walk(store, Thing("dataset", name="sales", version=1))["nodes"]["dataset:sales@1"]
    assert node["pruned"] and [g["run_id"] for g in node["readers_gone"]] == [1]
