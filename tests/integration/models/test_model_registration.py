"""A task's declared model output becomes a version in its outcome transaction, judged by its gates."""

from __future__ import annotations

import hashlib

from edgeorch.model import RunState


def test_a_task_output_becomes_version_1_with_its_metrics_hash_and_origin(workspace, harness, model_pipeline) -> None:
    model_pipeline(workspace)
    run_id, state = harness.run("trainer")
    assert state == RunState.SUCCEEDED
    store = harness.store()
    try:
        [v] = store.models.versions("house")
        assert v["version"] == 1 and v["kind"] == "file" and v["run_id"] == run_id and v["task"] == "train"
        blob = (workspace.state / "runs" / str(run_id) / "outputs" / "train" / "model.bin").read_bytes()
        assert v["sha256"] == hashlib.sha256(blob).hexdigest()
        assert v["metrics"] == {"rmse": 30.0, "r2": 0.7}
        assert v["params"] == {"rmse": 30.0} and v["pipeline"] == "trainer" and len(v["content_hash"]) == 64
        assert v["gate_verdict"] == "passed"  # the relative condition is skipped: no champion yet
        [decision] = store.models.decisions(v["id"])
        verdicts = {c["condition"]: c["verdict"] for c in decision["conditions"]}
        assert verdicts == {"rmse <= 50": "passed", "rmse <= champion.rmse + 1": "skipped"}
        [dep] = store.models.deployments("house")
        assert dep["alias"] == "champion" and dep["to_version"] == 1 and dep["action"] == "promote"
    finally:
        store.close()
    [registered] = [e for e in harness.events if e.get("kind") == "model" and e["state"] == "registered"]
    assert registered["state"] == "registered" and registered["version"] == 1


def test_a_missing_metrics_file_fails_the_attempt_with_the_reason(workspace, harness, model_pipeline) -> None:
    (workspace.root / "t.py").write_text("import os; open(os.environ['EDGEORCH_OUTPUT_DIR'] + '/model.bin', 'w')")
    workspace.pipeline("p", f'''
        [tasks.train]
        command = ["python", "{workspace.root / 't.py'}"]
        model = {{ name = "m", path = "model.bin", metrics = "metrics.json" }}
        ''')
    run_id, state = harness.run("p")
    assert state == RunState.FAILED
    store = harness.store()
    try:
        [task] = store.runs.tasks_of(run_id)
        assert "model m: the metrics file" in task["reason"] and "metrics.json is missing" in task["reason"]
        assert store.models.model("m") is None
    finally:
        store.close()


def test_retention_keeps_the_run_of_a_version_an_alias_points_at(workspace, harness, model_pipeline) -> None:
    from edgeorch.retention.holds import HoldQuery, collect_holds

    model_pipeline(workspace)
    first, _ = harness.run("trainer")
    blocked, _ = harness.run("trainer", {"rmse": 45.0})
    store = harness.store()
    try:
        holds = [h for h in collect_holds(HoldQuery(store, frozenset({first, blocked}), store.clock()))
                 if h.rule == "models"]
        assert [(h.run_id, h.reason) for h in holds] == [(first, "model house version 1, made by it, is champion")]
    finally:
        store.close()


def test_the_same_artifact_and_metrics_again_add_no_version_and_say_which_it_is(workspace, harness,
                                                                                 model_pipeline) -> None:
    """A nightly run of a deterministic training task must not pile up identical versions."""
    model_pipeline(workspace)
    harness.run("trainer", {"rmse": 30.0})
    run_id, state = harness.run("trainer", {"rmse": 30.0})  # the same bytes and metrics: version 1 again
    assert state == RunState.SUCCEEDED
    store = harness.store()
    try:
        assert [v["version"] for v in store.models.versions("house")] == [1]
        assert len(store.models.deployments("house")) == 1  # nothing judged or deployed again
        [row] = [e for e in store.events.of_run(run_id) if e["kind"] == "model_unchanged"]
        assert "version 1" in row["message"] and row["task"] == "train"
    finally:
        store.close()
    [unchanged] = [e for e in harness.events if e.get("kind") == "model" and e["state"] == "unchanged"]
    assert unchanged["version"] == 1 and unchanged["run_id"] == run_id

    newer, _ = harness.run("trainer", {"rmse": 29.0})  # other bytes: a new version
    store = harness.store()
    try:
        assert [v["version"] for v in store.models.versions("house")] == [1, 2]
        # What `edgeorch show` and `runs.show` say of each run's model output (it said nothing of an unchanged one).
        from edgeorch.rundoc import run_document

        assert run_document(store, run_id)["models"] == [
            {"state": "unchanged", "model": "house", "version": 1, "task": "train", "gate_verdict": None}]
        [added] = run_document(store, newer)["models"]
        assert (added["state"], added["version"], added["task"]) == ("registered", 2, "train")
        assert added["gate_verdict"] in ("passed", "failed", "none")
    finally:
        store.close()
    shown = workspace.invoke("show", str(run_id))
    assert shown.returncode == 0, shown.stderr
    assert "train: model house: unchanged, the same artifact and metrics as version 1 (no new version)" in shown.stdout


def test_retention_keeps_the_runs_of_the_versions_a_rollback_would_return_to(workspace, harness,
                                                                              model_pipeline) -> None:
    """`gc` removed the run of the champion's previous version (no alias pointed at it): a rollback then chose it
    and could not stage its files. The versions the next three rollbacks return to keep their runs, chosen by the
    rule `models rollback` follows: three `promote --again` of the champion (5 -> 5) filled "the last three moves"
    with version 5, and gc removed the run of version 4, the real target (and said it kept 5 as "what a rollback
    returns to")."""
    from edgeorch.retention.holds import HoldQuery, collect_holds

    model_pipeline(workspace)
    runs = [harness.run("trainer", {"rmse": rmse})[0] for rmse in (30.0, 29.0, 28.0, 27.0, 26.0)]
    for _ in range(3):
        assert harness.models(lambda s: s.promote("house", 5, actor="alice (uid 1000)", again=True))["state"] \
            == "succeeded"
    store = harness.store()
    try:
        holds = {h.run_id: h.reason for h in collect_holds(HoldQuery(store, frozenset(runs), store.clock()))
                 if h.rule == "models"}
    finally:
        store.close()
    assert runs[0] not in holds  # a fourth rollback in a row
    assert holds[runs[3]] == "model house version 4, made by it, is what a rollback of champion returns to"
    assert holds[runs[2]] == "model house version 3, made by it, is what rollback number 2 in a row of champion returns to"
    assert holds[runs[1]] == "model house version 2, made by it, is what rollback number 3 in a row of champion returns to"
    assert holds[runs[4]] == "model house version 5, made by it, is champion"

    async def previous(service):
        return service.previous("house", "champion")

    assert harness.models(previous) == 4  # the same rule


def test_models_show_says_when_the_pipelines_now_declare_another_policy(workspace, harness, model_pipeline,
                                                                        daemon) -> None:
    """The strategy changed to canary in the file, and `models show` went on saying blue_green (the policy of the
    last registration) without a word until a version registered."""
    import json

    model_pipeline(workspace)
    harness.run("trainer")
    shown = workspace.invoke("models", "show", "house")
    assert shown.returncode == 0 and "note:" not in shown.stdout
    model_pipeline(workspace, extra='strategy = "canary"\n[models.house.canary]\nbatches = 2\nmetric = "rmse"')
    for through in ("no daemon", "daemon"):
        if through == "daemon":
            daemon.start()
        shown = workspace.invoke("models", "show", "house")
        assert "note: this is the policy recorded with the latest registration; the pipelines now declare another " \
               "(canary, strategy changed), which applies from the next version registered" in shown.stdout, shown.stdout
        doc = json.loads(workspace.invoke("models", "show", "house", "--json").stdout)
        assert doc["policy_changed"] == ["canary", "strategy"], (through, doc["policy_changed"])


def test_why_says_when_the_run_of_a_version_failed_after_registering_it(workspace, harness) -> None:
    """Found by a user: a smoke test after the training task failed the run; the version was promoted and neither
    `models versions` nor `models why` said the run had failed."""
    from edgeorch.models.views import why

    (workspace.root / "train.py").write_text(
        "import json, os\nout = os.environ['EDGEORCH_OUTPUT_DIR']\nopen(os.path.join(out, 'model.bin'), 'w')"
        ".write('m')\njson.dump({'rmse': 10}, open(os.path.join(out, 'metrics.json'), 'w'))\n")
    workspace.pipeline("fr", f'''
        name = "fr"
        [tasks.train]
        command = ["python", "{workspace.root / 'train.py'}"]
        outputs = ["model.bin", "metrics.json"]
        model = {{ name = "frm", path = "model.bin", metrics = "metrics.json" }}
        [tasks.smoke]
        command = ["sh", "-c", "exit 3"]
        needs = ["train"]
        ''')
    run_id, state = harness.run("fr")
    assert state == "failed"
    store = harness.store()
    try:
        doc = why(store, "frm", 1)
    finally:
        store.close()
    assert doc["run_state"] == "failed"
    assert f"Its run {run_id} failed" in doc["text"] and "later tasks of the run do not hold it back" in doc["text"]
