"""``dataset:NAME[@V]`` inputs through a real engine: the version's files in ``{run_dir}/datasets/NAME`` before the
attempt, recorded as consumed with the version's reference, part of the cache key, one version per run, and a
clear failure for a version that does not exist or cannot be restored."""

from __future__ import annotations

import os
from pathlib import Path

from edgeorch.datasets.service import add, object_store
from edgeorch.lineage import graph as lineage_graph
from edgeorch.model import RunState
from edgeorch.store import Store

READER = """
[tasks.read]
command = ["sh", "-c", "cat {run_dir}/datasets/sales/day.csv {run_dir}/datasets/sales/sub/notes.txt > $EDGEORCH_OUTPUT_DIR/seen.txt"]
inputs = ["dataset:sales"]
outputs = ["seen.txt"]
cache = true
[tasks.later]
command = ["sh", "-c", "cat {run_dir}/datasets/sales/day.csv > $EDGEORCH_OUTPUT_DIR/later.txt"]
inputs = ["dataset:sales@latest"]
outputs = ["later.txt"]
needs = ["read"]
"""


def _version(workspace, files: dict[str, bytes]) -> int:
    """Add a version of ``sales`` made of ``files`` (relative path -> content); its number."""
    src = workspace.root / "src"
    if src.exists():
        for p in sorted(src.rglob("*"), reverse=True):
            p.rmdir() if p.is_dir() else p.unlink()
    for rel, data in files.items():
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        (src / rel).write_bytes(data)
    cfg = workspace.config()
    cfg.state_dir.mkdir(parents=True, exist_ok=True)
    store = Store(cfg.state_file)
    try:
        return int(add(store, object_store(cfg.state_dir), "sales", src)["version"])
    finally:
        store.close()


def _task(store, run_id: int, name: str) -> dict:
    return next(t for t in store.runs.tasks_of(run_id) if t["name"] == name)


def _out(store, run_id: int, task: str) -> bytes:
    (art,) = store.outputs.latest_artifacts(run_id, task)
    return Path(art["path"]).read_bytes()


def test_a_task_reads_the_version_from_its_run_folder_and_a_new_version_misses_the_cache(workspace, harness):
    workspace.pipeline("use", READER)
    _version(workspace, {"day.csv": b"a,1\n", "sub/notes.txt": b"first\n"})
    first, state = harness.run("use")
    assert state == RunState.SUCCEEDED
    store = harness.store()
    assert _out(store, first, "read") == b"a,1\nfirst\n"
    (row,) = store.lineage.consumed_by(first, "read")
    assert (row["kind"], row["path"], row["spec"], row["files"], row["size"]) == (
        "dataset", "dataset:sales@1", "dataset:sales", 2, 10)
    assert row["sha256"] == store.datasets.version("sales", 1)["manifest_sha256"] and row["attempt_id"] is not None
    run_dir = Path(store.runs.get(first)["run_dir"])
    assert sorted(p.relative_to(run_dir / "datasets" / "sales").as_posix()
                  for p in (run_dir / "datasets" / "sales").rglob("*") if p.is_file()) == ["day.csv", "sub/notes.txt"]

    again, state = harness.run("use")
    assert state == RunState.SUCCEEDED
    store = harness.store()
    assert _task(store, again, "read")["state"] == "skipped"  # the same version: a hit

    assert _version(workspace, {"day.csv": b"b,2\n", "sub/notes.txt": b"first\n"}) == 2
    changed, state = harness.run("use")
    assert state == RunState.SUCCEEDED
    store = harness.store()
    assert _task(store, changed, "read")["state"] == "succeeded"  # @latest is now version 2: its key changed
    assert _out(store, changed, "read") == b"b,2\nfirst\n"
    assert [r["path"] for r in store.lineage.consumed_by(changed, "later") if r["kind"] == "dataset"] == [
        "dataset:sales@2"]
    # Lineage: a version's downstream names the tasks that read it; a task's upstream names the version.
    down = lineage_graph.Walk(store).run(lineage_graph.dataset_node(store.lineage, "sales", 2), ["downstream"])
    assert {f"task:{changed}/read", f"task:{changed}/later"} <= set(down["nodes"])
    assert f"task:{first}/read" not in down["nodes"]  # it read version 1
    up = lineage_graph.Walk(store).run(lineage_graph.task_node(store.lineage, changed, "read"), ["upstream"])
    assert up["nodes"]["dataset:sales@2"]["kind"] == "dataset"


def test_one_run_reads_one_version_even_when_a_new_one_lands_meanwhile(workspace, harness):
    """`read` resolves sales@latest to version 1; version 2 is added before `later` becomes ready: `later` reads
    version 1 too, from the same folder (a new version never replaces files under a run's other tasks)."""
    workspace.pipeline("use", READER.replace('needs = ["read"]', 'needs = ["read", "gate"]') + """
[tasks.gate]
command = ["sh", "-c", "while [ ! -e {run_dir}/go ]; do sleep 0.01; done"]
""")
    _version(workspace, {"day.csv": b"one\n", "sub/notes.txt": b"n\n"})

    async def during(engine, run_id: int) -> None:
        import asyncio

        store = engine.store
        while _task(store, run_id, "read")["state"] != "succeeded":
            await asyncio.sleep(0.01)
        _version(workspace, {"day.csv": b"two\n", "sub/notes.txt": b"n\n"})
        (Path(store.runs.get(run_id)["run_dir"]) / "go").touch()

    run_id, state = harness.run("use", during=during)
    assert state == RunState.SUCCEEDED
    store = harness.store()
    assert _out(store, run_id, "later") == b"one\n"
    assert {r["path"] for t in ("read", "later") for r in store.lineage.consumed_by(run_id, t)
            if r["kind"] == "dataset"} == {"dataset:sales@1"}


def test_a_changed_or_replaced_folder_is_put_back_before_the_next_task_reads_it(workspace, harness):
    """A task that writes into the run's copy of the version (or replaces it by a link) does not change what the
    next task of the run reads: the folder is verified file by file and rebuilt from the object store."""
    workspace.pipeline("use", """
        [tasks.spoil]
        command = ["sh", "-c", "echo junk > {run_dir}/datasets/sales/day.csv; echo extra > {run_dir}/datasets/sales/x"]
        inputs = ["dataset:sales"]
        [tasks.swap]
        command = ["sh", "-c", "rm -r {run_dir}/datasets/sales && ln -s /etc {run_dir}/datasets/sales"]
        inputs = ["dataset:sales"]
        needs = ["spoil"]
        [tasks.read]
        command = ["sh", "-c", "ls {run_dir}/datasets/sales > $EDGEORCH_OUTPUT_DIR/ls.txt; cat {run_dir}/datasets/sales/day.csv >> $EDGEORCH_OUTPUT_DIR/ls.txt"]
        inputs = ["dataset:sales"]
        outputs = ["ls.txt"]
        needs = ["swap"]
    """)
    _version(workspace, {"day.csv": b"good\n"})
    run_id, state = harness.run("use")
    assert state == RunState.SUCCEEDED
    store = harness.store()
    assert _out(store, run_id, "read") == b"day.csv\ngood\n"
    assert not os.path.islink(Path(store.runs.get(run_id)["run_dir"]) / "datasets" / "sales")


def test_a_version_that_does_not_exist_or_cannot_be_restored_fails_the_task_before_any_attempt(workspace, harness):
    workspace.pipeline("nine", """
        [tasks.read]
        command = ["true"]
        inputs = ["dataset:sales@9"]
        retries = 2
    """)
    workspace.pipeline("none", """
        [tasks.read]
        command = ["true"]
        inputs = ["dataset:nosuch"]
    """)
    _version(workspace, {"day.csv": b"x\n"})
    run_id, state = harness.run("nine")
    assert state == RunState.FAILED
    read = _task(harness.store(), run_id, "read")
    assert read["attempts"] == 0
    assert read["reason"].startswith("declared input tasks.read.inputs[0] = 'dataset:sales@9': dataset sales has no "
                                     "version 9"), read["reason"]
    run_id, state = harness.run("none")
    assert state == RunState.FAILED
    assert "no dataset named 'nosuch'" in _task(harness.store(), run_id, "read")["reason"]

    # Every object of the version gone (a damaged disk): the task fails naming the version, not the engine.
    workspace.pipeline("one", """
        [tasks.read]
        command = ["true"]
        inputs = ["dataset:sales@1"]
    """)
    objects = workspace.config().state_dir / "datasets" / "objects"
    for p in [p for p in objects.rglob("*") if p.is_file()]:
        p.unlink()
    run_id, state = harness.run("one")
    assert state == RunState.FAILED
    reason = _task(harness.store(), run_id, "read")["reason"]
    assert "declared input tasks.read.inputs[0] = 'dataset:sales@1': dataset:sales@1 cannot be restored" in reason


def test_a_version_read_by_an_active_run_is_held_from_retention(workspace, harness):
    workspace.pipeline("hold", """
        [tasks.read]
        command = ["sh", "-c", "while [ ! -e {run_dir}/go ]; do sleep 0.01; done"]
        inputs = ["dataset:sales@1"]
    """)
    _version(workspace, {"day.csv": b"x\n"})
    seen: dict[int, str] = {}

    async def during(engine, run_id: int) -> None:
        import asyncio

        store = engine.store
        while _task(store, run_id, "read")["state"] != "running":
            await asyncio.sleep(0.01)
        while engine.store.lineage.datasets_read_by_run(run_id) != {"sales": 1}:  # its start transaction landed
            await asyncio.sleep(0.01)
        seen.update(store.datasets.held())
        (Path(store.runs.get(run_id)["run_dir"]) / "go").touch()

    run_id, state = harness.run("hold", during=during)
    assert state == RunState.SUCCEEDED
    store = harness.store()
    vid = store.datasets.version("sales", 1)["id"]
    assert seen[vid] == f"run {run_id} is running and reads it"
    assert vid not in store.datasets.held()  # the run is over: nothing holds it any more



def test_a_pruned_version_stays_in_a_tasks_lineage_and_a_planted_link_is_never_followed(workspace, harness):
    """`lineage task:RUN/TASK` crashed (KeyError) once the version the task read was pruned; a task that replaced
    {run_dir}/datasets by a link to another folder had the next placement delete and write there."""
    from edgeorch.datasets.retention import Rule
    from edgeorch.datasets.service import prune

    outside = workspace.root / "outside" / "sales"
    outside.mkdir(parents=True)
    (outside / "precious.txt").write_text("keep me")
    workspace.pipeline("plant", f"""
        [tasks.a]
        shell = true
        command = "rm -rf {{run_dir}}/datasets; ln -s {outside.parent} {{run_dir}}/datasets"
        inputs = ["dataset:sales"]
        [tasks.b]
        command = ["cat", "{{run_dir}}/datasets/sales/day.csv"]
        inputs = ["dataset:sales"]
        needs = ["a"]
    """)
    _version(workspace, {"day.csv": b"one\n"})
    run_id, state = harness.run("plant")
    assert state == RunState.SUCCEEDED
    assert (outside / "precious.txt").read_text() == "keep me" and not (outside / "day.csv").exists()
    run_dir = Path(harness.store().runs.get(run_id)["run_dir"])
    assert not (run_dir / "datasets").is_symlink() and (run_dir / "datasets" / "sales" / "day.csv").is_file()

    _version(workspace, {"day.csv": b"two\n"})
    store = harness.store()
    prune(store, object_store(workspace.config().state_dir), Rule.parse(keep=1))
    assert [v["version"] for v in store.datasets.versions("sales")] == [2]
    up = lineage_graph.Walk(store).run(lineage_graph.task_node(store.lineage, run_id, "b"), ["upstream"])
    node = up["nodes"]["dataset:sales@1"]
    assert node["pruned"] is True and node["kind"] == "dataset"
    store.close()


def test_a_version_a_run_names_is_held_from_prune_before_its_task_is_ready(workspace, harness):
    """`b` (after a slow `a`) names sales@1: a prune meanwhile removed it, and `b` failed "it was pruned"."""
    from edgeorch.datasets.retention import Rule
    from edgeorch.datasets.service import prune

    workspace.pipeline("later", """
        [tasks.a]
        command = ["sh", "-c", "while [ ! -e {run_dir}/go ]; do sleep 0.01; done"]
        [tasks.b]
        command = ["cat", "{run_dir}/datasets/sales/day.csv"]
        inputs = ["dataset:sales@1"]
        needs = ["a"]
    """)
    _version(workspace, {"day.csv": b"one\n"})
    _version(workspace, {"day.csv": b"two\n"})
    pruned: list[int] = []

    async def during(engine, run_id: int) -> None:
        import asyncio

        store = engine.store
        while _task(store, run_id, "a")["state"] != "running":
            await asyncio.sleep(0.01)
        pruned.append(prune(store, object_store(engine.config.state_dir), Rule.parse(keep=1))["removed"])
        (Path(store.runs.get(run_id)["run_dir"]) / "go").touch()

    run_id, state = harness.run("later", during=during)
    assert state == RunState.SUCCEEDED, _task(harness.store(), run_id, "b")["reason"]
    assert pruned == [[]]  # nothing removed: the run holds version 1


def test_a_cache_hit_never_restores_its_version_and_a_miss_restores_it_before_the_attempt(workspace, harness):
    """A cached task's version is placed only once its cache missed: a nightly run that hits restores nothing
    (a version can be gigabytes); a miss finds the files in place; one that can no longer be restored fails
    before any attempt, as an uncached task's does."""
    workspace.pipeline("only", """
        [tasks.read]
        command = ["sh", "-c", "cat {run_dir}/datasets/sales/day.csv > $EDGEORCH_OUTPUT_DIR/seen.txt"]
        inputs = ["dataset:sales"]
        outputs = ["seen.txt"]
        cache = true
    """)
    _version(workspace, {"day.csv": b"a,1\n"})
    first, state = harness.run("only")
    assert state == RunState.SUCCEEDED
    store = harness.store()
    assert _out(store, first, "read") == b"a,1\n"

    again, state = harness.run("only")
    assert state == RunState.SUCCEEDED
    store = harness.store()
    assert _task(store, again, "read")["state"] == "skipped"
    assert not (Path(store.runs.get(again)["run_dir"]) / "datasets" / "sales").exists()
    (row,) = store.lineage.consumed_by(again, "read")  # what the hit stands for, all the same
    assert (row["kind"], row["path"]) == ("dataset", "dataset:sales@1")

    assert _version(workspace, {"day.csv": b"b,2\n"}) == 2
    objects = workspace.config().state_dir / "datasets" / "objects"
    for p in [p for p in objects.rglob("*") if p.is_file()]:
        p.unlink()
    broken, state = harness.run("only")
    assert state == RunState.FAILED
    read = _task(harness.store(), broken, "read")
    assert read["attempts"] == 0
    assert "declared input tasks.read.inputs[0] = 'dataset:sales': dataset:sales@2 cannot be restored" in read["reason"]


def test_a_version_too_large_for_the_state_file_fails_its_task_never_the_engine(workspace, harness):
    """Found by a data user: `-p v=99999999999999999999999` into `inputs = ["dataset:clean@{v}"]` stopped the
    daemon at the query (OverflowError: too large for an SQLite INTEGER), and every start after it (the run was
    still running); `cancel` of it was exit 70 too. The same version written in the file is refused by validate."""
    from edgeorch.pipelines import validate_path

    workspace.pipeline("tv", """
        [params]
        v = { type = "str", default = "1" }
        [tasks.fit]
        command = ["true"]
        inputs = ["dataset:sales@{v}"]
    """)
    _version(workspace, {"day.csv": b"x\n"})
    run_id, state = harness.run("tv", {"v": "99999999999999999999999"})
    assert state == RunState.FAILED
    reason = _task(harness.store(), run_id, "fit")["reason"]
    assert "sales@99999999999999999999999" in reason and "has a bad version" in reason, reason
    workspace.pipeline("lit", '[tasks.fit]\ncommand = ["true"]\ninputs = ["dataset:sales@99999999999999999999999"]\n')
    report = validate_path(workspace.config().pipelines_dir)
    assert "lit" not in report.pipelines
    assert any("has a bad version" in e.render() for e in report.errors)
