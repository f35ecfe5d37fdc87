"""Resume-from-failure, the cache, and checkpoints shared across attempts."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from edgeorch.errors import ConflictError
from edgeorch.model import RunState

COUNTING = """
[params]
fail = "yes"
[tasks.prep]
command = ["sh", "-c", "echo prep >> {pipeline_dir}/ran.log; echo data > $EDGEORCH_OUTPUT_DIR/data.txt"]
outputs = ["data.txt"]
[tasks.side]
command = ["sh", "-c", "echo side >> {pipeline_dir}/ran.log; echo side > $EDGEORCH_OUTPUT_DIR/side.txt"]
outputs = ["side.txt"]
[tasks.train]
command = ["sh", "-c", "echo train >> {pipeline_dir}/ran.log; [ -f {pipeline_dir}/fixed ] || exit 1; echo m > $EDGEORCH_OUTPUT_DIR/model.txt"]
needs = ["prep"]
outputs = ["model.txt"]
[tasks.report]
command = ["sh", "-c", "echo report >> {pipeline_dir}/ran.log"]
needs = ["train", "side"]
"""


def _ran(ws) -> list[str]:
    path = ws.pipelines / "ran.log"
    return path.read_text().split() if path.exists() else []


def test_resume_runs_only_what_failed(workspace, harness):
    workspace.pipeline("resumable", COUNTING)
    run_id, state = harness.run("resumable")
    assert state == RunState.FAILED
    assert sorted(_ran(workspace)) == ["prep", "side", "train"]
    (workspace.pipelines / "ran.log").unlink()
    (workspace.pipelines / "fixed").touch()
    redo, state = harness.resume(run_id)
    assert state == RunState.SUCCEEDED
    assert redo == ["train", "report"]
    assert _ran(workspace) == ["train", "report"]
    store = harness.store()
    train_attempts = store.attempts.of_run(run_id, "train")
    assert [a["number"] for a in train_attempts] == [1, 2]  # history kept
    assert store.runs.get(run_id)["state"] == "succeeded"


def test_resume_reruns_a_task_whose_output_was_deleted(workspace, harness):
    workspace.pipeline("resumable", COUNTING)
    (workspace.pipelines / "fixed").touch()
    run_id, state = harness.run("resumable")
    assert state == RunState.SUCCEEDED
    (workspace.pipelines / "ran.log").unlink()
    (side,) = harness.store().outputs.latest_artifacts(run_id, "side")
    Path(side["path"]).unlink()
    redo, state = harness.resume(run_id)
    assert state == RunState.SUCCEEDED
    assert redo == ["side", "report"]
    assert _ran(workspace) == ["side", "report"]


def test_resume_reruns_a_task_whose_output_changed(workspace, harness):
    workspace.pipeline("resumable", COUNTING)
    (workspace.pipelines / "fixed").touch()
    run_id, _ = harness.run("resumable")
    (prep,) = harness.store().outputs.latest_artifacts(run_id, "prep")
    Path(prep["path"]).write_text("tampered")
    redo, state = harness.resume(run_id)
    assert state == RunState.SUCCEEDED
    assert redo == ["prep", "train", "report"]


def test_resume_of_a_clean_run_is_refused(workspace, harness):
    import pytest

    from edgeorch.errors import ConflictError

    workspace.pipeline("resumable", COUNTING)
    (workspace.pipelines / "fixed").touch()
    run_id, _ = harness.run("resumable")
    with pytest.raises(ConflictError, match="nothing to retry"):
        harness.resume(run_id)


CACHED = """
[params]
n = 1
[tasks.expensive]
command = ["sh", "-c", "echo run >> {pipeline_dir}/ran.log; echo {n} > $EDGEORCH_OUTPUT_DIR/out.txt"]
outputs = ["out.txt"]
cache = true
[tasks.use]
command = ["sh", "-c", "cat $EDGEORCH_UPSTREAM_EXPENSIVE"]
needs = ["expensive"]
"""


def test_cache_hit_skips_the_task_and_reuses_its_outputs(workspace, harness):
    workspace.pipeline("cached", CACHED)
    first, _ = harness.run("cached")
    second, state = harness.run("cached")
    assert state == RunState.SUCCEEDED
    assert _ran(workspace) == ["run"]
    store = harness.store()
    task = next(t for t in store.runs.tasks_of(second) if t["name"] == "expensive")
    assert task["state"] == "skipped" and task["reason"] == f"cache hit: outputs of run {first} (expensive #1)"
    (art,) = store.outputs.latest_artifacts(second, "expensive")
    (orig,) = store.outputs.latest_artifacts(first, "expensive")
    assert art["sha256"] == orig["sha256"] and Path(art["path"]).samefile(orig["path"])
    # named by its own link, in its own run's folder: what a retry of the first run never touches
    assert art["path"] == str(Path(store.runs.get(second)["run_dir"]) / "outputs" / "expensive" / "out.txt")


def test_cache_misses_when_params_change(workspace, harness):
    workspace.pipeline("cached", CACHED)
    harness.run("cached")
    _, state = harness.run("cached", {"n": "2"})
    assert state == RunState.SUCCEEDED
    assert _ran(workspace) == ["run", "run"]


def test_cache_misses_when_the_recorded_output_is_gone(workspace, harness):
    workspace.pipeline("cached", CACHED)
    first, _ = harness.run("cached")
    (art,) = harness.store().outputs.latest_artifacts(first, "expensive")
    Path(art["path"]).unlink()
    harness.run("cached")
    assert _ran(workspace) == ["run", "run"]


def test_cache_misses_when_the_definition_changes(workspace, harness):
    workspace.pipeline("cached", CACHED)
    harness.run("cached")
    workspace.pipeline("cached", CACHED.replace("echo {n}", "echo n={n}"))
    harness.run("cached")
    assert _ran(workspace) == ["run", "run"]


def test_checkpoint_dir_is_shared_by_attempts_and_recorded(workspace, harness):
    workspace.pipeline("ckpt", """
        [tasks.train]
        command = ["sh", "-c", "c=$EDGEORCH_CHECKPOINT_DIR/step; n=$(cat $c 2>/dev/null || echo 0); echo $((n+1)) > $c; echo attempt $EDGEORCH_ATTEMPT resumed-from $n; [ $n -ge 1 ]"]
        retries = 2
        retry_delay = "0.05s"
    """)
    run_id, state = harness.run("ckpt")
    assert state == RunState.SUCCEEDED
    store = harness.store()
    attempts = store.attempts.of_run(run_id, "train")
    assert len(attempts) == 2
    assert "attempt 2 resumed-from 1" in Path(attempts[1]["log_path"]).read_text()
    ckpts = store.outputs.checkpoints_of(run_id, "train")
    assert [(c["attempt_id"], c["name"], c["size"]) for c in ckpts] == [
        (attempts[0]["id"], "step", 2), (attempts[1]["id"], "step", 2)]
    assert ckpts[0]["sha256"] != ckpts[1]["sha256"]  # "1\n" then "2\n"


def test_a_failed_attempts_partial_output_never_passes_for_the_next_attempts(workspace, harness):
    """Every attempt of a task shared its output folder: attempt 2 exited 0 without writing its output and
    "succeeded" on the partial file attempt 1 left before it crashed; the next run took it from the cache."""
    workspace.pipeline("stale", """
        [tasks.gen]
        shell = true
        command = "if [ $EDGEORCH_ATTEMPT = 1 ]; then echo partial > $EDGEORCH_OUTPUT_DIR/out.txt; exit 1; fi; [ -e $EDGEORCH_OUTPUT_DIR/out.txt ] || echo 'nothing to do'"
        outputs = ["out.txt"]
        retries = 1
        retry_delay = "0s"
        cache = true
    """)
    run_id, state = harness.run("stale")
    assert state == RunState.FAILED  # attempt 2 wrote no out.txt: its promised output is missing
    store = harness.store()
    first, second = store.attempts.of_run(run_id, "gen")
    assert second["exit_code"] == 0 and "out.txt" in (second["reason"] or "")
    kept = Path(first["attempt_dir"]) / "outputs" / "out.txt"  # what the crashed attempt wrote, to be read
    assert kept.read_text() == "partial\n"
    assert store.outputs.latest_artifacts(run_id, "gen") == []
    again, state = harness.run("stale")
    assert state == RunState.FAILED  # no cache hit on the partial file: both attempts ran again
    assert [a["number"] for a in store.attempts.of_run(again, "gen")] == [1, 2]


SHARED = """
[tasks.prep]
command = ["sh", "-c", "cat {pipeline_dir}/in.txt > $EDGEORCH_OUTPUT_DIR/data.txt"]
outputs = ["data.txt"]
cache = true
[tasks.train]
command = ["sh", "-c", "cat $EDGEORCH_UPSTREAM_PREP > $EDGEORCH_OUTPUT_DIR/model.txt"]
needs = ["prep"]
outputs = ["model.txt"]
cache = true
"""


def test_a_retry_never_rewrites_the_files_other_runs_cache_hits_share_and_their_records_follow_them(workspace,
                                                                                                   harness):
    """A retry of run A, whose files run B's cache hits had hard-linked, rewrote them in place: B (succeeded,
    nothing said) showed a model trained on the new data beside its old data, and its records named A's
    paths, which held the new content. The succeeded attempt's files are set aside before the rerun; every
    record naming them follows them."""
    workspace.pipeline("shared", SHARED)
    (workspace.pipelines / "in.txt").write_text("v1\n")
    first, state = harness.run("shared")
    assert state == RunState.SUCCEEDED
    second, state = harness.run("shared")
    assert state == RunState.SUCCEEDED
    store = harness.store()
    assert {t["name"]: t["state"] for t in store.runs.tasks_of(second)} == {"prep": "skipped", "train": "skipped"}
    b_dir = Path(store.runs.get(second)["run_dir"])
    (data,) = store.outputs.latest_artifacts(first, "prep")
    (workspace.pipelines / "in.txt").write_text("v2\n")
    Path(data["path"]).unlink()  # A's output lost: the retry reruns prep, then train on the new data
    redo, state = harness.resume(first)
    assert state == RunState.SUCCEEDED and redo == ["prep", "train"]
    store = harness.store()
    (model,) = store.outputs.latest_artifacts(first, "train")
    assert Path(model["path"]).read_text() == "v2\n"
    assert (b_dir / "outputs" / "train" / "model.txt").read_text() == "v1\n"  # B's own folder: as it was
    assert (b_dir / "outputs" / "prep" / "data.txt").read_text() == "v1\n"
    train1 = store.attempts.of_run(first, "train")[0]
    for row in store.outputs.latest_artifacts(second, "train"):  # B's records name its own links, intact
        assert row["path"] == str(b_dir / "outputs" / "train" / "model.txt")
        assert Path(row["path"]).read_text() == "v1\n"
    # A's own record of its first attempt follows the file it set aside (the same file as B's link)
    (a1,) = store.outputs.artifacts_of_attempt(train1["id"])
    assert a1["path"] == str(Path(train1["attempt_dir"]) / "outputs" / "model.txt")
    assert Path(a1["path"]).samefile(b_dir / "outputs" / "train" / "model.txt")
    (start,) = [e for e in harness.events if e.get("task") == "train" and e.get("attempt") == 2
                and e.get("state") == "running"]
    assert start["set_aside"][0].startswith(f"attempt 1's outputs were moved to {train1['attempt_dir']}/outputs")
    third, state = harness.run("shared")  # the input is v2 now: a hit of A's rerun, never of the old files
    assert state == RunState.SUCCEEDED
    third_dir = Path(harness.store().runs.get(third)["run_dir"])
    assert (third_dir / "outputs" / "train" / "model.txt").read_text() == "v2\n"


def test_a_rerun_that_writes_nothing_fails_instead_of_passing_off_the_earlier_file(workspace, harness):
    """A task rerun by a retry exited 0 without writing its output ("no rows, nothing to write") and succeeded:
    the succeeded attempt's file, left in place, was recorded as the rerun's."""
    workspace.pipeline("stale", """
        [tasks.up]
        command = ["sh", "-c", "cat {pipeline_dir}/up.txt > $EDGEORCH_OUTPUT_DIR/up.txt"]
        outputs = ["up.txt"]
        [tasks.down]
        shell = true
        command = "grep -q empty $EDGEORCH_UPSTREAM_UP && exit 0; cp $EDGEORCH_UPSTREAM_UP $EDGEORCH_OUTPUT_DIR/result.txt"
        needs = ["up"]
        outputs = ["result.txt"]
    """)
    (workspace.pipelines / "up.txt").write_text("v1\n")
    run_id, state = harness.run("stale")
    assert state == RunState.SUCCEEDED
    (up,) = harness.store().outputs.latest_artifacts(run_id, "up")
    (workspace.pipelines / "up.txt").write_text("empty\n")
    Path(up["path"]).unlink()
    redo, state = harness.resume(run_id)
    assert sorted(redo) == ["down", "up"]
    assert state == RunState.FAILED
    second = harness.store().attempts.of_run(run_id, "down")[1]
    assert second["exit_code"] == 0 and "promised output missing: result.txt" in second["reason"]
    first = harness.store().attempts.of_run(run_id, "down")[0]
    assert (Path(first["attempt_dir"]) / "outputs" / "result.txt").read_text() == "v1\n"  # kept, for reading


TRAINING = """
[tasks.prep]
command = ["sh", "-c", "echo features-$EDGEORCH_ATTEMPT > $EDGEORCH_OUTPUT_DIR/features.txt"]
outputs = ["features.txt"]
[tasks.train]
shell = true
command = "if [ -f $EDGEORCH_CHECKPOINT_DIR/epoch ]; then echo resumed > $EDGEORCH_OUTPUT_DIR/model.txt; else cat $EDGEORCH_UPSTREAM_PREP > $EDGEORCH_OUTPUT_DIR/model.txt; fi; echo 5 > $EDGEORCH_CHECKPOINT_DIR/epoch; [ -f {pipeline_dir}/crash-once ] && rm {pipeline_dir}/crash-once && exit 1; true"
needs = ["prep"]
outputs = ["model.txt"]
retries = 1
retry_delay = "0s"
"""


def test_a_rerun_on_changed_inputs_starts_without_the_old_checkpoint_a_retry_resumes_from_it(workspace, harness):
    """A retry that reran train because its upstream changed kept the checkpoint made from the old features: the
    task resumed 'from epoch 5' and skipped its work, so the "new" model was the old one."""
    workspace.pipeline("training", TRAINING)
    (workspace.pipelines / "crash-once").touch()
    run_id, state = harness.run("training")
    assert state == RunState.SUCCEEDED
    store = harness.store()
    (model,) = store.outputs.latest_artifacts(run_id, "train")
    assert Path(model["path"]).read_text() == "resumed\n"  # attempt 2, same inputs: resumed from attempt 1's
    (prep,) = store.outputs.latest_artifacts(run_id, "prep")
    Path(prep["path"]).write_text("tampered")  # prep reruns, and makes other features (features-2)
    redo, state = harness.resume(run_id)
    assert state == RunState.SUCCEEDED and redo == ["prep", "train"]
    (model,) = harness.store().outputs.latest_artifacts(run_id, "train")
    assert Path(model["path"]).read_text() == "features-2\n"  # trained on the new features, from scratch
    second = harness.store().attempts.of_run(run_id, "train")[1]
    assert (Path(second["attempt_dir"]) / "checkpoints" / "epoch").read_text() == "5\n"  # the old one, kept
    # Said where the retry is watched (it was in the daemon's log alone): the third attempt's start carries it.
    (start,) = [e for e in harness.events if e.get("task") == "train" and e.get("state") == "running"
                and e.get("attempt") == 3]
    assert start["set_aside"] == [f"attempt 2's outputs were moved to {second['attempt_dir']}/outputs (the records "
                                  "of its 1 file(s) follow them); this attempt writes new ones",
                                  f"attempt 2's checkpoints were made from other inputs (an upstream's outputs "
                                  f"changed): moved to {second['attempt_dir']}/checkpoints, this attempt starts "
                                  "without them"]
    # prep's rerun set its tampered file aside (the retry wrote new features): outputs only, no checkpoint of its own
    (prep_note,) = [e["set_aside"] for e in harness.events if e.get("set_aside") and e.get("task") != "train"]
    assert len(prep_note) == 1 and prep_note[0].startswith("attempt 1's outputs were moved to ")


def test_why_says_why_a_cached_task_ran_instead_of_reusing_a_result(workspace, harness):
    """A miss looked like any run: a task rerunning every night said nothing of why its cache never hit."""
    from edgeorch.monitor.views import why_doc

    data = workspace.pipelines / "data.csv"
    data.write_text("a\n1\n")
    workspace.pipeline("cached", CACHED.replace('outputs = ["out.txt"]', 'outputs = ["out.txt"]\ninputs = ["data.csv"]'))

    def said(run_id: int) -> str:
        (task,) = [t for t in why_doc(harness.store(), run_id)["tasks"] if t["task"] == "expensive"]
        return task["cache"]

    first, _ = harness.run("cached")
    assert said(first) == "no earlier success of this task to reuse"
    data.write_text("a\n2\n")
    second, _ = harness.run("cached")
    assert said(second).startswith(f"its inputs differ from run {first} (the last success before)'s: ")
    assert f"{data} changed (sha256 " in said(second)
    again, _ = harness.run("cached", {"n": "2"})
    assert said(again).endswith("param n 1 -> 2"), said(again)  # every param is part of the cache key
    (art,) = harness.store().outputs.latest_artifacts(again, "expensive")
    Path(art["path"]).write_text("tampered\n")
    third, _ = harness.run("cached", {"n": "2"})
    assert "had the same definition and inputs, but its recorded outputs were changed or removed" in said(third)
    workspace.pipeline("cached", CACHED.replace("echo {n}", "echo n={n}").replace(
        'outputs = ["out.txt"]', 'outputs = ["out.txt"]\ninputs = ["data.csv"]'))
    fourth, _ = harness.run("cached", {"n": "2"})
    assert said(fourth).startswith(f"its definition differs from run {third}")
    out = workspace.invoke("why", str(fourth))
    assert "ran instead of a cache hit: its definition differs" in out.stdout, out.stdout + out.stderr
    hit, _ = harness.run("cached", {"n": "2"})  # a hit: why says which run's result it reused (it said nothing)
    out = workspace.invoke("why", str(hit))
    assert f"task expensive (skipped): cache hit: outputs of run {fourth} (expensive #1)" in out.stdout, out.stdout
    # Outputs named by {run_id}: never a hit, and why said "its recorded outputs were changed or removed since",
    # the earlier run's files intact.
    workspace.pipeline("named", CACHED.replace("out.txt", "out-{run_id}.txt"))
    one, _ = harness.run("named")
    two, _ = harness.run("named")
    (task,) = [t for t in why_doc(harness.store(), two)["tasks"] if t["task"] == "expensive"]
    assert f"its outputs have other names (out-{one}.txt against out-{two}.txt)" in task["cache"], task["cache"]
    assert "changed or removed" not in task["cache"]


def test_why_counts_a_resumed_tasks_waits_from_the_resume_and_says_a_succeeded_attempt_succeeded(workspace, harness):
    """After `edgeorch retry`, why said "train: 15.4s for prep" (the time between the run and the retry, which
    nobody waited) and listed a rerun's earlier successful attempt as "#1 exited"."""
    import time

    from edgeorch.monitor.views import why_doc

    workspace.pipeline("resumable", COUNTING)
    run_id, state = harness.run("resumable")
    assert state == RunState.FAILED
    time.sleep(1.5)  # wall-clock time between the run and its retry, which the store's timestamps measure
    (workspace.pipelines / "fixed").touch()
    (prep,) = harness.store().outputs.latest_artifacts(run_id, "prep")
    Path(prep["path"]).write_text("tampered")  # prep reruns too: its first attempt had succeeded
    redo, state = harness.resume(run_id)
    assert state == RunState.SUCCEEDED and {"prep", "train"} <= set(redo)
    doc = why_doc(harness.store(), run_id)
    assert len(doc["resumed_by"]) == 1, doc["resumed_by"]  # it looked for an event kind the store never writes
    tasks = {t["task"]: t for t in doc["tasks"]}
    assert tasks["train"]["waited_for_needs"] < 1.0, tasks["train"]
    assert tasks["prep"]["waited_for_needs"] == 0 and tasks["prep"]["waited_for_turn"] < 1.0, tasks["prep"]
    out = workspace.invoke("why", str(run_id))
    assert "task prep: " in out.stdout and "#1 succeeded" in out.stdout, out.stdout


BY_PATH = """
[tasks.expensive]
command = ["sh", "-c", "echo run >> {pipeline_dir}/ran.log; echo '{{\\"rmse\\": 1.5}}' > $EDGEORCH_OUTPUT_DIR/m.json"]
outputs = ["m.json"]
cache = true
[tasks.read]
command = ["sh", "-c", "cat {run_dir}/outputs/expensive/m.json > $EDGEORCH_OUTPUT_DIR/copy.json"]
needs = ["expensive"]
outputs = ["copy.json"]
[tasks.gate]
kind = "gate"
needs = ["expensive"]
[tasks.gate.options]
metrics = "{run_dir}/outputs/expensive/m.json"
conditions = ["rmse <= 2"]
"""


def test_after_a_cache_hit_a_task_reading_the_upstreams_file_in_its_run_folder_finds_it(workspace, harness):
    """A cached nightly pipeline failed from its second run on: a task (or a kind's option) reading
    ``{run_dir}/outputs/<cached task>/...`` found nothing, the hit's files being in the earlier run's folder.
    They are hard-linked there now: the same file, nothing copied."""
    workspace.pipeline("bypath", BY_PATH)
    first, state = harness.run("bypath")
    assert state == RunState.SUCCEEDED
    second, state = harness.run("bypath")
    assert state == RunState.SUCCEEDED, harness.store().runs.tasks_of(second)
    assert _ran(workspace) == ["run"]
    store = harness.store()
    (orig,) = store.outputs.latest_artifacts(first, "expensive")
    (copy,) = store.outputs.latest_artifacts(second, "read")
    assert Path(copy["path"]).read_text() == Path(orig["path"]).read_text()
    linked = Path(store.runs.get(second)["run_dir"]) / "outputs" / "expensive" / "m.json"
    assert linked.stat().st_ino == Path(orig["path"]).stat().st_ino


def test_a_resumed_cached_task_writes_new_files_never_into_the_earlier_runs(workspace, harness):
    """A cache hit's links share the earlier run's files: a rerun of that task (its outputs changed) must not
    truncate them in place. They are set aside first (``attempts/<task>.cached/outputs``), kept for reading."""
    workspace.pipeline("cached", CACHED)
    first, _ = harness.run("cached")
    second, _ = harness.run("cached")
    (orig,) = harness.store().outputs.latest_artifacts(first, "expensive")
    Path(orig["path"]).write_text("tampered\n")  # the hit's recorded file changed: a resume reruns the task
    redo, state = harness.resume(second)
    assert state == RunState.SUCCEEDED and "expensive" in redo
    assert Path(orig["path"]).read_text() == "tampered\n"  # the earlier run's file: untouched by the rerun
    run_dir = Path(harness.store().runs.get(second)["run_dir"])
    assert (run_dir / "outputs" / "expensive" / "out.txt").read_text() == "1\n"
    assert (run_dir / "attempts" / "expensive.cached" / "outputs" / "out.txt").read_text() == "tampered\n"


def test_outputs_named_after_the_run_never_hit_the_cache(workspace, harness):
    """`outputs = ["m-{run_id}.txt"]` took the earlier run's `m-8.txt` for this run's `m-9.txt` (only the count of
    names was compared): the downstream's `cat {run_dir}/outputs/up/m-9.txt` failed after the "hit"."""
    workspace.pipeline("named", """
        [tasks.up]
        command = ["sh", "-c", "echo run >> {pipeline_dir}/ran.log; echo r > $EDGEORCH_OUTPUT_DIR/m-{run_id}.txt"]
        outputs = ["m-{run_id}.txt"]
        cache = true
        [tasks.down]
        command = ["cat", "{run_dir}/outputs/up/m-{run_id}.txt"]
        needs = ["up"]
    """)
    harness.run("named")
    _, state = harness.run("named")
    assert state == RunState.SUCCEEDED
    assert _ran(workspace) == ["run", "run"]  # a miss: the names differ


def test_a_cache_hits_link_removed_from_its_run_folder_is_a_lost_output_a_retry_restores(workspace, harness):
    """`rm runs/35/outputs/prep/data.json` (run 35 was a cache hit): retry said "nothing to retry: every task
    succeeded and its outputs are intact", having checked the earlier run's file only."""
    workspace.pipeline("cached", CACHED)
    harness.run("cached")
    second, _ = harness.run("cached")
    link = Path(harness.store().runs.get(second)["run_dir"]) / "outputs" / "expensive" / "out.txt"
    link.unlink()
    redo, state = harness.resume(second)
    assert state == RunState.SUCCEEDED and "expensive" in redo
    assert link.read_text() == "1\n"  # back (a hit again: the earlier run's file, linked anew)
    with pytest.raises(ConflictError, match="nothing to retry"):  # and now it is intact
        harness.resume(second)


def test_a_cache_hits_readers_read_its_own_links_which_a_retry_of_the_source_never_touches(workspace, harness):
    """A downstream task of a cache hit read `$EDGEORCH_UPSTREAM_<TASK>`, the earlier run's path: a retry of that
    run moved the file and wrote a new one there while the reader ran, and the reader read it (its lineage said
    the old one). The hit's records name its own links now."""
    workspace.pipeline("cached", CACHED)
    first, _ = harness.run("cached")
    second, _ = harness.run("cached")
    store = harness.store()
    own = Path(store.runs.get(second)["run_dir"]) / "outputs" / "expensive" / "out.txt"
    (read,) = [c for c in store.lineage.consumed_by(second, "use") if c["attempt_id"] is not None]
    assert read["path"] == str(own)
    (orig,) = store.outputs.latest_artifacts(first, "expensive")
    assert own.samefile(orig["path"])


def test_a_second_retry_of_a_cache_hit_sets_its_links_aside_under_a_new_name(workspace, harness):
    """The second retry of a cache-hit task failed to set its links aside ("Directory not empty": the first had
    taken `attempts/<task>.cached`) and left a stale file at the name a reader looks, for good."""
    workspace.pipeline("cached", CACHED)
    harness.run("cached")
    second, _ = harness.run("cached")
    run_dir = Path(harness.store().runs.get(second)["run_dir"])
    link = run_dir / "outputs" / "expensive" / "out.txt"
    for n, name in ((1, "expensive.cached"), (2, "expensive.cached.2")):
        link.unlink()
        (run_dir / "outputs" / "expensive" / "stale.txt").write_text("left by someone\n")
        redo, state = harness.resume(second)
        assert state == RunState.SUCCEEDED and "expensive" in redo, n
        assert (run_dir / "attempts" / name / "outputs" / "stale.txt").is_file(), n  # set aside, whole
        assert not (run_dir / "outputs" / "expensive" / "stale.txt").exists() and link.read_text() == "1\n"
    with pytest.raises(ConflictError, match="nothing to retry"):
        harness.resume(second)


def test_records_follow_files_set_aside_before_a_crash_or_removed(workspace, harness):
    """A crash after the rename of a succeeded attempt's outputs and before the commit of its records: the
    restart's rerun found the folder empty, moved nothing, and the records kept naming the old path, where the
    rerun then wrote its new file. The same for files someone removed. The records name the set-aside place."""
    workspace.pipeline("shared", SHARED)
    (workspace.pipelines / "in.txt").write_text("v1\n")
    run_id, _ = harness.run("shared")
    store = harness.store()
    prep1, train1 = store.attempts.of_run(run_id, "prep")[0], store.attempts.of_run(run_id, "train")[0]
    run_dir = Path(store.runs.get(run_id)["run_dir"])
    # train's files set aside as the rename before a crash left them; prep's removed by hand
    (Path(train1["attempt_dir"]) / "outputs").parent.mkdir(parents=True, exist_ok=True)
    os.rename(run_dir / "outputs" / "train", Path(train1["attempt_dir"]) / "outputs")
    (workspace.pipelines / "in.txt").write_text("v2\n")
    (run_dir / "outputs" / "prep" / "data.txt").unlink()
    redo, state = harness.resume(run_id)
    assert state == RunState.SUCCEEDED and redo == ["prep", "train"]
    store = harness.store()
    (t1,) = store.outputs.artifacts_of_attempt(train1["id"])
    assert t1["path"] == str(Path(train1["attempt_dir"]) / "outputs" / "model.txt")
    assert Path(t1["path"]).read_text() == "v1\n"  # the record and its file, together
    (p1,) = store.outputs.artifacts_of_attempt(prep1["id"])
    assert p1["path"] == str(Path(prep1["attempt_dir"]) / "outputs" / "data.txt")  # removed: named missing,
    assert not Path(p1["path"]).exists()  # never the rerun's new file
    assert (run_dir / "outputs" / "prep" / "data.txt").read_text() == "v2\n"


def test_each_set_aside_hit_keeps_its_records_when_the_same_source_is_hit_again(workspace, harness):
    """Three retries of one hit of the same source: the records that had followed the links into `.cached`,
    `.cached.2` were deleted by the next hit's record (same run, task and source attempt)."""
    workspace.pipeline("cached", CACHED)
    harness.run("cached")
    second, _ = harness.run("cached")
    run_dir = Path(harness.store().runs.get(second)["run_dir"])
    for _ in range(3):
        (run_dir / "outputs" / "expensive" / "out.txt").unlink()
        redo, state = harness.resume(second)
        assert state == RunState.SUCCEEDED
    paths = sorted(a["path"] for a in harness.store().outputs.artifacts_of(second, "expensive"))
    assert paths == sorted([str(run_dir / "outputs" / "expensive" / "out.txt"),
                            *(str(run_dir / "attempts" / n / "outputs" / "out.txt")
                              for n in ("expensive.cached", "expensive.cached.2", "expensive.cached.3"))])
    # the set-aside ones were removed by hand before each retry: missing, as recorded; the current link is there
    assert {p: Path(p).exists() for p in paths} == {p: "/outputs/expensive/" in p for p in paths}
    (latest,) = harness.store().outputs.latest_artifacts(second, "expensive")
    assert latest["path"] == str(run_dir / "outputs" / "expensive" / "out.txt")
