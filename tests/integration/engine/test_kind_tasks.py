"""Built-in check tasks (validate, profile, drift, fairness) inside pipelines."""

from __future__ import annotations

import numpy as np

from edgeorch.model import RunState


def _csv(path, **cols) -> None:
    names = list(cols)
    with open(path, "w") as f:
        f.write(",".join(names) + "\n")
        for row in zip(*cols.values()):
            f.write(",".join(str(v) for v in row) + "\n")


def test_drift_violation_fails_the_task_without_retry_and_records_every_column(workspace, harness):
    rng = np.random.default_rng(0)
    _csv(workspace.pipelines / "ref.csv", x=rng.normal(0, 1, 400).round(4), y=rng.normal(0, 1, 400).round(4))
    _csv(workspace.pipelines / "cur.csv", x=rng.normal(3, 1, 400).round(4), y=rng.normal(3, 1, 400).round(4))
    workspace.pipeline("drifty", """
        [tasks.drift]
        kind = "drift"
        retries = 3
        [tasks.drift.options]
        reference = "ref.csv"
        current = "cur.csv"
        on_violation = "fail"
        [tasks.after]
        command = ["true"]
        needs = ["drift"]
    """)
    run_id, state = harness.run("drifty")
    assert state == RunState.FAILED
    store = harness.store()
    tasks = {t["name"]: t for t in store.runs.tasks_of(run_id)}
    assert tasks["drift"]["state"] == "failed" and tasks["drift"]["reason"].startswith("violation:")
    assert tasks["drift"]["attempts"] == 1  # a violation is an outcome, not a flake: no retry
    assert tasks["after"]["state"] == "upstream_failed"
    rows = store.outputs.results_of(run_id, "drift")
    assert {r["column_name"] for r in rows} == {"x", "y"}
    assert all(r["verdict"] == "drift" and r["kind"] == "drift" for r in rows)
    (attempt,) = store.attempts.of_run(run_id, "drift")
    assert attempt["verdict"] == "violation" and attempt["exit_code"] == 3


def test_warn_policy_records_the_violation_and_goes_on(workspace, harness):
    _csv(workspace.pipelines / "data.csv", v=[1, 2, 3, -5], c=["a", "b", "a", "z"])
    workspace.pipeline("checks", """
        [params]
        action = "warn"
        [tasks.schema]
        kind = "validate"
        [tasks.schema.options]
        input = "data.csv"
        ranges = { v = [0, 10] }
        allowed = { c = ["a", "b"] }
        on_violation = "{action}"
        [tasks.next]
        command = ["true"]
        needs = ["schema"]
    """)
    run_id, state = harness.run("checks")
    assert state == RunState.SUCCEEDED
    store = harness.store()
    verdicts = {(r["column_name"], r["metric"]): r["verdict"] for r in store.outputs.results_of(run_id, "schema")}
    assert verdicts[("v", "range")] == "violation" and verdicts[("c", "allowed")] == "violation"
    run_id, state = harness.run("checks", {"action": "fail"})
    assert state == RunState.FAILED


def test_show_prints_what_a_check_said_that_is_no_number_and_how_many_rows_are_out_of_range(workspace, harness):
    """A type check's value and expected type, a range's bounds: stored as NULL in the numeric columns,
    they used to show as '-' in `show`; a broken range said its extreme value, not how many rows broke it."""
    _csv(workspace.pipelines / "data.csv", v=[1, 2, 3, -5, -7, 20], w=[0.5, 1, 2, 3, 4, 5])
    workspace.pipeline("schema", """
        [tasks.schema]
        kind = "validate"
        [tasks.schema.options]
        input = "data.csv"
        types = { v = "integer" }
        ranges = { v = [0, 10], w = [0, 100] }
        on_violation = "warn"
    """)
    run_id, state = harness.run("schema")
    assert state == RunState.SUCCEEDED
    rows = {(r["column_name"], r["metric"]): r for r in harness.store().outputs.results_of(run_id, "schema")}
    assert rows[("v", "range")]["details"]["out_of_range"] == 3  # -5, -7 and 20
    assert rows[("v", "range")]["details"]["out_of_range_exact"] is True
    assert rows[("w", "range")]["details"]["out_of_range"] == 0
    show = workspace.invoke("show", str(run_id))
    assert show.returncode == 0, show.stderr
    lines = {tuple(line.split()[1:3]): line for line in show.stdout.splitlines() if line.startswith("schema ")}
    assert "integer" in lines[("v", "type")].split()  # value and threshold both text: 'integer' / 'integer'
    assert "[0, 10]" in lines[("v", "range")] and "-7" in lines[("v", "range")]
    assert "[0.5, 5.0]" in lines[("w", "range")] and "[0, 100]" in lines[("w", "range")]


def test_bad_input_file_fails_with_a_clear_message(workspace, harness):
    workspace.pipeline("missing", """
        [tasks.profile]
        kind = "profile"
        [tasks.profile.options]
        input = "no_such.csv"
    """)
    run_id, state = harness.run("missing")
    assert state == RunState.FAILED
    (attempt,) = harness.store().attempts.of_run(run_id)
    log = open(attempt["log_path"]).read()
    assert "no_such.csv" in log and "Traceback" not in log
    assert attempt["exit_code"] == 2


def test_bad_kind_options_are_validation_errors(workspace):
    from edgeorch.pipelines import validate_path

    workspace.pipeline("bad", """
        [tasks.d]
        kind = "drift"
        [tasks.d.options]
        referense = "a.csv"
        current = "b.csv"
    """)
    workspace.pipeline("badkind", """
        [tasks.d]
        kind = "drfit"
    """)
    errors = "\n".join(e.render() for e in validate_path(workspace.pipelines).errors)
    assert "tasks.d.options.referense: unknown key" in errors and "did you mean 'reference'" in errors
    assert "tasks.d.kind: is not a built-in task kind" in errors and "did you mean 'drift'" in errors


def test_a_cached_check_task_keeps_its_results_in_the_run_that_reuses_it(workspace, harness):
    """A `profile` task with `cache = true` hit the cache on the second run, and that run had no result rows: `show`
    listed nothing for it, `Run.results` was empty, and rules read no value."""
    _csv(workspace.pipelines / "data.csv", v=[1, 2, 3, 4], c=["a", "b", "a", "b"])
    workspace.pipeline("prof", """
        [tasks.profile]
        kind = "profile"
        cache = true
        inputs = ["data.csv"]
        [tasks.profile.options]
        input = "data.csv"
    """)
    first, _ = harness.run("prof")
    second, state = harness.run("prof")
    assert state == RunState.SUCCEEDED
    store = harness.store()
    [task] = store.runs.tasks_of(second)
    assert task["state"] == "skipped" and "cache hit" in task["reason"]

    def rows(run_id):
        return [(r["column_name"], r["metric"], r["value"]) for r in store.outputs.results_of(run_id, "profile")]

    assert rows(first) and rows(second) == rows(first)
    third, _ = harness.run("prof")  # hit again: one copy of the rows per run, not one more per hit
    assert rows(third) == rows(first) and rows(second) == rows(first)


def test_a_kind_tasks_save_and_report_files_are_recorded_as_its_artifacts(workspace, harness):
    """A profile task's `save` and a drift task's `report` were written, listed in the result document, but never
    recorded: `lineage FILE` found "no recorded version", OpenLineage left them out."""
    rng = np.random.default_rng(0)
    _csv(workspace.pipelines / "ref.csv", x=rng.normal(0, 1, 200).round(4))
    workspace.pipeline("files", """
        [tasks.prof]
        kind = "profile"
        [tasks.prof.options]
        input = "ref.csv"
        save = "p.json"
        [tasks.drift]
        kind = "drift"
        [tasks.drift.options]
        reference = "ref.csv"
        current = "ref.csv"
        report = "drift.html"
    """)
    run_id, state = harness.run("files")
    assert state == RunState.SUCCEEDED
    store = harness.store()
    (saved,) = store.outputs.latest_artifacts(run_id, "prof")
    (report,) = store.outputs.latest_artifacts(run_id, "drift")
    assert saved["name"] == "p.json" and report["name"] == "drift.html" and report["size"] > 0
    said = workspace.invoke("lineage", saved["path"])
    assert said.returncode == 0 and "output of: task" in said.stdout, said.stdout + said.stderr
