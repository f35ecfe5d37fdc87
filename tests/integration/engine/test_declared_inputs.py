"""Declared inputs through a real engine: recorded with their sha256, part of the cache key, a missing one fails clearly."""

from __future__ import annotations

import asyncio
import hashlib
import logging

from edgeorch.model import RunState


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


CACHED_READER = """
[params]
data = { type = "path", default = "data/train.csv" }
[tasks.fit]
command = ["sh", "-c", "wc -c < {data} > $EDGEORCH_OUTPUT_DIR/n.txt"]
inputs = ["{data}"]
outputs = ["n.txt"]
cache = true
"""


def _task(store, run_id: int, name: str) -> dict:
    return next(t for t in store.runs.tasks_of(run_id) if t["name"] == name)


def test_a_changed_input_file_misses_the_cache_and_an_unchanged_one_hits(workspace, harness):
    path = workspace.pipeline("fit", CACHED_READER)
    data = path.parent / "data"
    data.mkdir()
    (data / "train.csv").write_bytes(b"x,y\n1,2\n")

    first, state = harness.run("fit")
    assert state == RunState.SUCCEEDED
    again, state = harness.run("fit")
    assert state == RunState.SUCCEEDED
    store = harness.store()
    assert _task(store, again, "fit")["state"] == "skipped"  # same file content: a hit

    (data / "train.csv").write_bytes(b"x,y\n1,2\n3,4\n")  # same path, same params, new content
    changed, state = harness.run("fit")
    assert state == RunState.SUCCEEDED
    store = harness.store()
    assert _task(store, changed, "fit")["state"] == "succeeded"  # it ran: the key saw the new content
    (row,) = store.lineage.consumed_by(changed, "fit")
    assert (row["kind"], row["path"], row["sha256"], row["size"], row["spec"]) == (
        "file", str(data / "train.csv"), _sha(b"x,y\n1,2\n3,4\n"), 12, "{data}")
    assert row["attempt_id"] is not None
    # The cache hit recorded what it stands for: the same file, same hash, no attempt of its own.
    (hit,) = store.lineage.consumed_by(again, "fit")
    assert hit["attempt_id"] is None and hit["sha256"] == _sha(b"x,y\n1,2\n")
    assert _task(store, first, "fit")["input_hash"] != _task(store, changed, "fit")["input_hash"]


def test_a_params_wildcard_characters_are_a_name_never_a_pattern(workspace, harness):
    """`inputs = ["{data}"]` with data = `in[1].csv` was hashed as a glob matching `in1.csv`: a changed `in[1].csv`
    reused the old result, and lineage named the other file. In a glob, a value is matched as it is."""
    path = workspace.pipeline("fit", CACHED_READER)
    data = path.parent / "data"
    data.mkdir()
    (data / "in[1].csv").write_bytes(b"x,y\n")
    (data / "in1.csv").write_bytes(b"other\n")
    first, state = harness.run("fit", {"data": "data/in[1].csv"})
    assert state == RunState.SUCCEEDED
    (data / "in[1].csv").write_bytes(b"CHANGED,DATA\n")
    changed, state = harness.run("fit", {"data": "data/in[1].csv"})
    assert state == RunState.SUCCEEDED
    store = harness.store()
    assert _task(store, changed, "fit")["state"] == "succeeded"  # it ran: no stale hit
    (row,) = store.lineage.consumed_by(changed, "fit")
    assert (row["kind"], row["path"], row["sha256"]) == ("file", str(data / "in[1].csv"), _sha(b"CHANGED,DATA\n"))
    (data / "in1.csv").unlink()  # it said "matches no file" while the file named was there
    assert harness.run("fit", {"data": "data/in[1].csv"})[1] == RunState.SUCCEEDED

    workspace.pipeline("day", """
        [params]
        folder = "d[1]"
        [tasks.read]
        command = ["true"]
        inputs = ["data/{folder}/*.csv"]
    """)
    (data / "d[1]").mkdir()
    (data / "d[1]" / "a.csv").write_bytes(b"a\n")
    (data / "d1").mkdir()
    (data / "d1" / "b.csv").write_bytes(b"b\n")
    run_id, state = harness.run("day")
    assert state == RunState.SUCCEEDED
    (glob_row,) = harness.store().lineage.consumed_by(run_id, "read")
    assert glob_row["kind"] == "glob" and glob_row["size"] == 2  # d[1]/a.csv alone, not d1/b.csv


def test_folder_and_glob_inputs_are_recorded_as_manifests_with_their_files(workspace, harness):
    path = workspace.pipeline("m", """
        [tasks.read]
        command = ["true"]
        inputs = ["images", "logs/*.json"]
    """)
    (path.parent / "images" / "cats").mkdir(parents=True)
    (path.parent / "images" / "cats" / "1.png").write_bytes(b"png1")
    (path.parent / "images" / "2.png").write_bytes(b"png2")
    (path.parent / "logs").mkdir()
    (path.parent / "logs" / "a.json").write_bytes(b"{}")
    (path.parent / "logs" / "skip.txt").write_bytes(b"not matched")
    run_id, state = harness.run("m")
    assert state == RunState.SUCCEEDED
    store = harness.store()
    folder, globbed = store.lineage.consumed_by(run_id, "read")
    assert (folder["kind"], folder["files"], folder["size"]) == ("folder", 2, 8)
    assert [(m["name"], m["sha256"]) for m in store.lineage.members(folder["sha256"])] == [
        ("2.png", _sha(b"png2")), ("cats/1.png", _sha(b"png1"))]
    assert (globbed["kind"], globbed["path"], globbed["files"]) == ("glob", str(path.parent / "logs" / "*.json"), 1)
    assert [m["name"] for m in store.lineage.members(globbed["sha256"])] == ["a.json"]


def test_a_missing_input_fails_the_task_before_any_attempt_naming_task_field_and_path(workspace, harness):
    path = workspace.pipeline("miss", """
        [tasks.read]
        command = ["true"]
        inputs = ["data/absent.csv"]
        retries = 3
        [tasks.after]
        command = ["true"]
        needs = ["read"]
    """)
    run_id, state = harness.run("miss")
    assert state == RunState.FAILED
    store = harness.store()
    read = _task(store, run_id, "read")
    assert read["state"] == "failed" and read["attempts"] == 0  # no attempt, so no retry of a static problem
    assert "tasks.read.inputs[0] = 'data/absent.csv'" in read["reason"]
    assert f"{path.parent / 'data' / 'absent.csv'} does not exist" in read["reason"]
    assert _task(store, run_id, "after")["state"] == "upstream_failed"


def test_upstream_outputs_are_recorded_as_consumed_with_whose_they_are(workspace, harness):
    workspace.pipeline("two", """
        [tasks.make]
        command = ["sh", "-c", "printf abc > $EDGEORCH_OUTPUT_DIR/x.txt"]
        outputs = ["x.txt"]
        [tasks.use]
        command = ["true"]
        needs = ["make"]
    """)
    run_id, state = harness.run("two")
    assert state == RunState.SUCCEEDED
    store = harness.store()
    (art,) = store.outputs.latest_artifacts(run_id, "make")
    (row,) = store.lineage.consumed_by(run_id, "use")
    assert (row["kind"], row["path"], row["sha256"], row["source_run"], row["source_task"], row["source_attempt"]) == (
        "upstream", art["path"], _sha(b"abc"), run_id, "make", art["attempt_id"])
    assert store.lineage.consumed_by(run_id, "make") == []  # consumed nothing: no rows


def test_an_input_changed_while_the_task_waits_for_a_slot_is_hashed_again_before_it_starts(workspace, harness,
                                                                                         wait_for_file, caplog):
    caplog.set_level(logging.INFO, logger="edgeorch.engine")
    # One pool slot: hog takes it at once; read becomes ready (after quick) while hog holds it.
    workspace.write_config("[resources.pools]\nslot = 1\n")
    path = workspace.pipeline("wait", """
        [tasks.hog]
        command = ["sh", "-c", "touch started; while [ ! -f go ]; do sleep 0.02; done"]
        pool = "slot"
        [tasks.quick]
        command = ["true"]
        [tasks.read]
        command = ["true"]
        inputs = ["in.txt"]
        needs = ["quick"]
        pool = "slot"
    """)
    folder = path.parent
    (folder / "in.txt").write_bytes(b"old")

    async def during(engine, run_id):
        await wait_for_file(folder / "started")  # hog holds the only slot; read is ready and hashed
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 20
        while f"{run_id}/read" not in engine._inputs:
            assert loop.time() < deadline, "read's inputs were never hashed"
            await asyncio.sleep(0.01)
        (folder / "in.txt").write_bytes(b"new content")
        (folder / "go").touch()

    run_id, state = harness.run("wait", during=during)
    assert state == RunState.SUCCEEDED
    (row,) = harness.store().lineage.consumed_by(run_id, "read")
    assert row["sha256"] == _sha(b"new content")
    assert f"input {folder / 'in.txt'} changed since it was hashed; hashing again" in caplog.text


def test_a_task_that_waited_for_its_turn_asks_the_cache_again_when_a_result_came_meanwhile(workspace, harness):
    """Four runs of one pipeline triggered at once, one slot: each `extract` asked the cache when it became ready
    (nothing yet) and ran, though the first run's result had the same inputs by the time the others started."""
    workspace.write_config(parallelism=1)
    workspace.pipeline("backlog", """
        [tasks.extract]
        command = ["sh", "-c", "echo x > $EDGEORCH_OUTPUT_DIR/x.txt"]
        outputs = ["x.txt"]
        cache = true
    """)
    from edgeorch.pipelines import resolve_params, validate_path

    others: list[int] = []

    async def during(engine, run_id: int) -> None:
        pipeline = validate_path(workspace.pipelines).pipelines["backlog"]
        others.extend(engine.submit(pipeline, resolve_params(pipeline, {})) for _ in range(3))
        for rid in others:
            await asyncio.wait_for(engine.wait_run(rid), 60)

    first, state = harness.run("backlog", during=during)
    assert state == RunState.SUCCEEDED
    store = harness.store()
    states = [_task(store, rid, "extract")["state"] for rid in (first, *others)]
    assert states == ["succeeded", "skipped", "skipped", "skipped"], states


def test_an_input_changed_while_the_task_ran_keeps_its_outputs_but_is_never_a_cache_hit(workspace, harness,
                                                                                        wait_for_file):
    """An input rewritten while the task ran: the result (built from v2) was cached under v1's key and served
    to the next run of v1. Its outputs stay its run's; the attempt is never a cache source; why says so."""
    path = workspace.pipeline("race", """
        [tasks.a]
        command = ["sh", "-c", "touch started; while [ ! -f go ]; do sleep 0.02; done; cp cfg.txt $EDGEORCH_OUTPUT_DIR/out.txt"]
        inputs = ["cfg.txt"]
        outputs = ["out.txt"]
        cache = true
    """)
    folder = path.parent
    (folder / "cfg.txt").write_text("v1\n")

    async def during(engine, run_id):
        await wait_for_file(folder / "started")  # running, its input hashed as v1
        (folder / "cfg.txt").write_text("v2\n")
        (folder / "go").touch()

    first, state = harness.run("race", during=during)
    assert state == RunState.SUCCEEDED
    store = harness.store()
    (attempt,) = store.attempts.of_run(first, "a")
    assert attempt["inputs_moved"] == str(folder / "cfg.txt")
    (art,) = store.outputs.latest_artifacts(first, "a")
    assert open(art["path"]).read() == "v2\n"  # kept for its run
    assert any(e["kind"] == "input_changed" and "cfg.txt changed while it ran" in e["message"]
               for e in store.events.recent(20))
    (folder / "started").unlink()
    (folder / "cfg.txt").write_text("v3\n")
    between, state = harness.run("race")  # other inputs: a run in between
    assert state == RunState.SUCCEEDED
    (folder / "cfg.txt").write_text("v1\n")  # back to v1: the v2 result must not be served for it
    second, state = harness.run("race")
    assert state == RunState.SUCCEEDED
    store = harness.store()
    assert _task(store, second, "a")["state"] == "succeeded"  # it ran
    (art,) = store.outputs.latest_artifacts(second, "a")
    assert open(art["path"]).read() == "v1\n"
    from edgeorch.monitor.views import cache_miss

    (ran,) = store.attempts.of_run(second, "a")
    said = cache_miss(store, "race", ran)  # the run in between differs; the one with these inputs is not reused
    assert f"its inputs differ from run {between}" in said, said
    assert f"run {first} had this task's very inputs, but its input {folder / 'cfg.txt'} changed while it ran" in said
    third, state = harness.run("race")  # an attempt whose inputs held still is a hit as ever
    assert _task(harness.store(), third, "a")["state"] == "skipped"
