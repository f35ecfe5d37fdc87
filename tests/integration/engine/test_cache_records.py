"""Cache hits record their outputs once: a cached nightly pipeline must run forever (issue 9, item 1)."""

from __future__ import annotations

from pathlib import Path

from edgeorch.model import RunState

CACHED_WITH_READER = """
[tasks.expensive]
command = ["sh", "-c", "echo 42 > $EDGEORCH_OUTPUT_DIR/num.txt"]
outputs = ["num.txt"]
cache = true
[tasks.reader]
command = ["sh", "-c", "cat \\"$EDGEORCH_UPSTREAM_EXPENSIVE\\""]
needs = ["expensive"]
"""


def test_cache_hits_keep_artifact_records_bounded_over_50_runs(workspace, harness):
    workspace.pipeline("nightly", CACHED_WITH_READER)
    results = harness.run_many("nightly", 50)
    assert [state for _, state in results] == [RunState.SUCCEEDED] * 50
    store = harness.store()
    first_run = results[0][0]
    (original,) = store.outputs.artifacts_of(first_run, "expensive")
    for run_id, _ in results:
        # One record per promised output per run, each naming the one file the first run made: through its own
        # hard link in its run's folder (a retry of the first run never moves or rewrites it).
        (art,) = store.outputs.artifacts_of(run_id, "expensive")
        assert Path(art["path"]).samefile(original["path"]) and art["sha256"] == original["sha256"]
        assert Path(art["path"]).is_relative_to(store.runs.get(run_id)["run_dir"])
        assert [a["path"] for a in store.outputs.latest_artifacts(run_id, "expensive")] == [art["path"]]
    total = store.db.conn.execute("SELECT COUNT(*) FROM artifacts").fetchone()[0]
    assert total == 50
    # Every reader saw exactly one path (the variable was not a ':'-joined repetition).
    for run_id, _ in results[1:]:
        (attempt,) = store.attempts.of_run(run_id, "reader")
        assert attempt["exit_code"] == 0


def test_a_repeated_cache_hit_in_one_run_replaces_its_records(tmp_path):
    from edgeorch.store import Store

    store = Store(tmp_path / "state.db")
    vid = store.pipelines.record_version("p", "h", "f.toml", "")
    run_ids = [store.runs.create(pipeline="p", version_id=vid, params={}, trigger="manual", actor=None,
                                 run_dir_for=lambda rid: str(tmp_path / str(rid)), tasks=[("t", "d")]) for _ in range(2)]
    art = [{"name": "o", "path": "/x/o", "size": 1, "sha256": "a"}]
    (task,) = store.runs.tasks_of(run_ids[1])
    for _ in range(3):
        store.outputs.mark_cached(task["id"], run_ids[1], "t", "ih", 7, art)
    assert len(store.outputs.artifacts_of(run_ids[1], "t")) == 1


def test_a_cache_hit_is_said_by_the_run_and_task_it_reuses_not_by_an_attempt_id(workspace, harness, caplog):
    """A tester's find: the log said "run 96: train skipped: a verified cache hit from attempt 96" (an attempt's
    internal id, here equal to the run's), and `show 96` said "outputs of run 92 (train #1)": the log, the events
    table and `show` say the same now."""
    import logging

    caplog.set_level(logging.INFO, logger="edgeorch")
    workspace.pipeline("nightly", CACHED_WITH_READER)
    (first, _), (second, _) = harness.run_many("nightly", 2)
    from edgeorch.events import TaskCached
    from edgeorch.observe.eventlog import EventLog

    store = harness.store()
    said = f"cache hit: outputs of run {first} (expensive #1)"
    task = next(t for t in store.runs.tasks_of(second) if t["name"] == "expensive")
    assert task["reason"] == said
    (event,) = [e for e in store.events.recent(200) if e["kind"] == "task_cached"]
    assert event["message"] == f"expensive: {said}"
    cached = [e for e in harness.events if e.get("state") == "skipped"]
    assert len(cached) == 1 and cached[0]["run_id"] == second and cached[0]["reason"] == said
    EventLog({}.get).on_event(TaskCached(0.0, second, "expensive", 7, said))
    assert f"run {second}: expensive skipped: a verified {said}" in caplog.text, caplog.text
