"""The rules folder: files of [[on]] rules only, validated against the loaded pipelines; a bad file is reported with
its file, field and value and skipped; the monitor reads the folder again when its content changes."""

from __future__ import annotations

import asyncio
import textwrap
from pathlib import Path
from types import SimpleNamespace

import pytest

from edgeorch.monitor.rulesdir import folder_digest, load_rules_dir
from edgeorch.monitor.service import Monitors
from edgeorch.pipelines import validate_path
from edgeorch.store import Store

CHECKS = """
name = "checks"
[params]
batch = { type = "path", default = "b.csv" }
[tasks.drift]
kind = "drift"
[tasks.drift.options]
reference = "a.csv"
current = "{batch}"
"""

GOOD = """
[[on]]
name = "retrain_on_drift"
pipeline = "checks"
signal = "drift_share"
task = "drift"
threshold = 0.5
[[on.do]]
notify = ["true", "{params.batch}"]

[[on]]
name = "champion_degraded"
signal = "model_metric"
model = "house"
metric = "rmse"
threshold = 40
[[on.do]]
rollback = "house"
"""


@pytest.fixture
def pipelines(tmp_path: Path):
    folder = tmp_path / "pipelines"
    folder.mkdir()
    (folder / "checks.toml").write_text(textwrap.dedent(CHECKS))
    report = validate_path(folder)
    assert report.ok, [e.render() for e in report.errors]
    (folder / "rules").mkdir()
    return report.pipelines, folder / "rules"


def test_a_rules_file_reads_a_pipelines_task_or_a_model(pipelines) -> None:
    loaded, rules_dir = pipelines
    (rules_dir / "retrain.toml").write_text(textwrap.dedent(GOOD))
    rules, errors = load_rules_dir(rules_dir, loaded)
    assert errors == []
    drift, model = rules
    assert (drift.pipeline, drift.task, drift.source_file) == ("checks", "drift", str(rules_dir / "retrain.toml"))
    assert (model.pipeline, model.on_model) == ("", True)
    assert load_rules_dir(rules_dir / "missing", loaded) == ([], [])


@pytest.mark.parametrize("text, field, value", [
    ('[tasks.x]\ncommand = ["true"]\n', "tasks", None),
    ('[[on]]\nname = "r"\nsignal = "drift_share"\ntask = "drift"\nthreshold = 1\n[[on.do]]\npause = "x"\n',
     "on[0].pipeline", None),
    ('[[on]]\nname = "r"\npipeline = "nope"\nsignal = "drift_share"\ntask = "drift"\nthreshold = 1\n'
     '[[on.do]]\npause = "x"\n', "on[0].pipeline", "nope"),
    ('[[on]]\nname = "r"\npipeline = "checks"\nsignal = "drift_share"\ntask = "drift"\nthreshold = "high"\n'
     '[[on.do]]\npause = "x"\n', "on[0].threshold", "high"),
    ('[[on]]\nname = "r"\npipeline = "checks"\nsignal = "drift_share"\ntask = "drift"\nthreshold = 1\n'
     '[[on.do]]\nnotify = ["x", "{params.nope}"]\n', "on[0].do[0].notify[1]", "{params.nope}"),
])
def test_bad_rules_files_name_the_file_field_and_value(pipelines, text: str, field: str, value) -> None:
    loaded, rules_dir = pipelines
    (rules_dir / "bad.toml").write_text(text)
    (rules_dir / "good.toml").write_text(textwrap.dedent(GOOD))
    rules, errors = load_rules_dir(rules_dir, loaded)
    assert [r.name for r in rules] == ["retrain_on_drift", "champion_degraded"]  # the good file still counts
    hit = [e for e in errors if e.field == field]
    assert hit and hit[0].file == str(rules_dir / "bad.toml") and hit[0].value == value, [e.render() for e in errors]


def test_bad_toml_is_reported_with_the_file(pipelines) -> None:
    loaded, rules_dir = pipelines
    (rules_dir / "broken.toml").write_text("[[on]\nname = ")
    _rules, (err,) = load_rules_dir(rules_dir, loaded)
    assert err.file == str(rules_dir / "broken.toml") and "not valid TOML" in err.message and "line 1" in err.message


def test_a_fifo_or_a_dangling_symlink_in_the_rules_folder_is_an_error_and_never_blocks(pipelines, tmp_path) -> None:
    """Entries that are no readable file were skipped in silence; reading a FIFO would block whoever reads
    the folder (the daemon's change check hashes every file)."""
    import os

    loaded, rules_dir = pipelines
    (rules_dir / "good.toml").write_text(textwrap.dedent(GOOD))
    os.mkfifo(rules_dir / "pipe.toml")
    (rules_dir / "linked.toml").symlink_to(tmp_path / "gone.toml")
    rules, errors = load_rules_dir(rules_dir, loaded)
    assert [r.name for r in rules] == ["retrain_on_drift", "champion_degraded"]
    assert sorted((e.file, e.message) for e in errors) == [
        (str(rules_dir / "linked.toml"), "is a symlink to a file that does not exist"),
        (str(rules_dir / "pipe.toml"), "is not a regular file")]
    first = folder_digest(rules_dir)  # returns: the FIFO is never opened for a blocking read
    assert folder_digest(rules_dir) == first
    (tmp_path / "gone.toml").write_text(textwrap.dedent(GOOD))  # the link's target appears: a change
    assert folder_digest(rules_dir) != first


def test_the_monitor_reports_a_bad_file_and_reads_the_folder_again_when_it_changes(pipelines, tmp_path) -> None:
    loaded, rules_dir = pipelines
    bad = rules_dir / "retrain.toml"
    bad.write_text(textwrap.dedent(GOOD).replace("threshold = 0.5", "threshold = \"half\""))

    async def main() -> None:
        store = Store(tmp_path / "state.db")
        monitors = Monitors(store=store, requests=None, registry=SimpleNamespace(pipelines=loaded),  # type: ignore[arg-type]
                            loop=asyncio.get_running_loop(), rules_dir=rules_dir)
        monitors.start()
        assert sorted(monitors.rules) == ["champion_degraded"]
        assert any("retrain.toml" in p and "on[0].threshold" in p and "half" in p for p in monitors.problems)
        assert not monitors.rules_folder_changed()
        before = folder_digest(rules_dir)
        bad.read_text()  # reading is no change
        assert folder_digest(rules_dir) == before
        bad.write_text(textwrap.dedent(GOOD))
        assert monitors.rules_folder_changed()
        monitors.reload()
        assert sorted(monitors.rules) == ["champion_degraded", "retrain_on_drift"]
        # The rollback of a model these pipelines do not declare is said (it would fail when the rule fires).
        assert [p.split(": ", 1)[1] for p in monitors.problems] == [
            "on[1].do[0].rollback: rule 'champion_degraded': rollback names a model no pipeline declares (found "
            "'house'); expected one of (none); hint: it fails each time the rule fires",
            "on[1].model: rule 'champion_degraded': reads a model no pipeline declares (found 'house'); expected one "
            "of (none); hint: it fails each time the rule fires"]
        (rules_dir / "again.toml").write_text(textwrap.dedent(GOOD).split("[[on]]")[0] + "[[on]]" +
                                              textwrap.dedent(GOOD).split("[[on]]")[1])
        monitors.reload()
        assert any(p.startswith(f"{rules_dir / 'retrain.toml'}: on[0].name: rule 'retrain_on_drift' is ignored: "
                                f"{rules_dir / 'again.toml'} declares a rule with that name")
                   for p in monitors.problems), monitors.problems  # files in name order: the first one wins
        await monitors.stop()
        store.close()

    asyncio.run(main())


def test_validate_checks_the_rules_folder_against_the_pipelines(workspace) -> None:
    workspace.pipeline("checks", CHECKS)
    rules = workspace.pipelines / "rules"
    rules.mkdir()
    (rules / "retrain.toml").write_text(textwrap.dedent(GOOD))
    ok = workspace.invoke("validate")
    assert ok.returncode == 0 and "ok     rule retrain_on_drift" in ok.stdout and "2 rule(s)" in ok.stdout
    (rules / "bad.toml").write_text('[[on]]\nname = "r"\npipeline = "nope"\nsignal = "failure_rate"\nthreshold = 1\n'
                                    '[[on.do]]\npause = "x"\n')
    bad = workspace.invoke("validate", "--json")
    assert bad.returncode == 1
    import json

    (err,) = json.loads(bad.stdout)["errors"]
    assert err["file"] == str(rules / "bad.toml") and err["field"] == "on[0].pipeline" and err["value"] == "nope"


def test_validate_fails_on_a_rule_name_two_files_declare_as_the_daemon_ignores_the_second(workspace) -> None:
    """validate passed (``ok rule retrain_on_drift (.../zz_dup.toml)``) a folder whose second declaration of a
    name the daemon ignores with a warning: both read :func:`in_force`, the one rule for it."""
    workspace.pipeline("checks", CHECKS)
    rules = workspace.pipelines / "rules"
    rules.mkdir()
    (rules / "retrain.toml").write_text(textwrap.dedent(GOOD))
    (rules / "zz_dup.toml").write_text(textwrap.dedent(GOOD).split("[[on]]\nname = \"champion")[0])
    r = workspace.invoke("validate")
    assert r.returncode == 1, r.stdout + r.stderr
    assert (f"error  {rules / 'zz_dup.toml'}: on[0].name: rule 'retrain_on_drift' is ignored: "
            f"{rules / 'retrain.toml'} declares a rule with that name; expected a rule name declared once" in r.stdout)
    assert "zz_dup.toml)" not in r.stdout  # no "ok rule ..." line for the ignored declaration
    assert "ok     rule retrain_on_drift (" + str(rules / "retrain.toml") + ")" in r.stdout
    import json

    doc = json.loads(workspace.invoke("validate", "--json").stdout)
    (err,) = doc["errors"]
    assert (err["file"], err["field"], err["value"]) == (str(rules / "zz_dup.toml"), "on[0].name", "retrain_on_drift")
    assert doc["rules"]["retrain_on_drift"]["file"] == str(rules / "retrain.toml")
    # The same verdict for the file given by path; the first declaration stays valid.
    r = workspace.invoke("validate", str(rules / "zz_dup.toml"))
    assert r.returncode == 1 and str(rules / "retrain.toml") + " declares a rule with that name" in r.stdout, r.stdout
    r = workspace.invoke("validate", str(rules / "retrain.toml"))
    assert r.returncode == 0 and "ok     rule champion_degraded" in r.stdout, r.stdout + r.stderr
    (rules / "zz_dup.toml").unlink()
    assert workspace.invoke("validate").returncode == 0


def test_a_pipelines_own_rule_and_a_rules_file_declaring_one_name_is_an_error_too(workspace) -> None:
    workspace.pipeline("checks", CHECKS + textwrap.dedent(GOOD).split("[[on]]\nname = \"champion")[0]
                       .replace('pipeline = "checks"\n', ""))
    rules = workspace.pipelines / "rules"
    rules.mkdir()
    (rules / "retrain.toml").write_text(textwrap.dedent(GOOD))
    r = workspace.invoke("validate")
    assert r.returncode == 1, r.stdout + r.stderr
    assert (f"error  {rules / 'retrain.toml'}: on[0].name: rule 'retrain_on_drift' is ignored: pipeline checks "
            f"({workspace.pipelines / 'checks.toml'}) declares a rule with that name" in r.stdout), r.stdout


def test_validate_of_a_rules_file_by_path_reads_it_as_rules_not_as_a_pipeline(workspace, tmp_path) -> None:
    """``edgeorch validate rules/x.toml`` said "pipeline x: tasks: the pipeline has no tasks"."""
    workspace.pipeline("checks", CHECKS)
    rules = workspace.pipelines / "rules"
    rules.mkdir()
    (rules / "x.toml").write_text(textwrap.dedent(GOOD))
    r = workspace.invoke("validate", str(rules / "x.toml"))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "has no tasks" not in r.stdout and "ok     rule retrain_on_drift" in r.stdout
    assert f"2 rule(s) in {rules / 'x.toml'}, 0 error(s)" in r.stdout
    # Checked against the configured pipelines, as the daemon reads it.
    (rules / "x.toml").write_text(textwrap.dedent(GOOD).replace('pipeline = "checks"', 'pipeline = "chekcs"'))
    r = workspace.invoke("validate", str(rules / "x.toml"), "--json")
    assert r.returncode == 1
    import json

    (err,) = json.loads(r.stdout)["errors"]
    assert (err["field"], err["value"]) == ("on[0].pipeline", "chekcs") and "checks" in err["expected"]
    # Outside the rules folder, a file of [[on]] rules only is a rules file too.
    elsewhere = tmp_path / "draft.toml"
    elsewhere.write_text(textwrap.dedent(GOOD))
    r = workspace.invoke("validate", str(elsewhere))
    assert r.returncode == 0 and "ok     rule champion_degraded" in r.stdout, r.stdout + r.stderr
    # A pipeline file is still a pipeline file.
    r = workspace.invoke("validate", str(workspace.pipelines / "checks.toml"))
    assert r.returncode == 0 and "ok     checks: 1 task(s)" in r.stdout, r.stdout + r.stderr


def test_validate_warns_of_a_response_naming_a_pipeline_or_model_nothing_declares(workspace) -> None:
    """`trigger = "hose_prices"`, `rollback = "house_price"` passed validate: the typo showed only when the rule
    fired ("trigger house_price refused"). A warning (the rule works but for that), with the nearest name."""
    workspace.pipeline("house_prices", '[tasks.t]\ncommand = ["true"]\noutputs = ["m.bin"]\n'
                                       'model = { name = "house_prices", path = "m.bin" }\n')
    rules = workspace.pipelines / "rules"
    rules.mkdir()
    (rules / "r.toml").write_text('[[on]]\nname = "r"\npipeline = "house_prices"\nsignal = "failure_rate"\n'
                                  'threshold = 0.5\n[[on.do]]\ntrigger = "hose_prices"\n[[on.do]]\n'
                                  'rollback = "house_price"\n[[on.do]]\nrollback = "house_prices"\nalias = "champoin"\n')
    out = workspace.invoke("validate")
    assert out.returncode == 0, out.stdout
    lines = [line for line in out.stdout.splitlines() if line.startswith("warning")]
    assert [line.split(": ", 2)[1:] for line in lines] == [
        ["on[0].do[0].trigger", "rule 'r': trigger names an unknown pipeline (found 'hose_prices'); expected one of "
                                "house_prices"],
        ["on[0].do[1].rollback", "rule 'r': rollback names a model no pipeline declares (found 'house_price'); "
                                 "expected one of house_prices"],
        ["on[0].do[2].alias", "rule 'r': the rollback names an alias house_prices does not have (found 'champoin'); "
                              "expected one of canary, challenger, champion"]]
    assert "did you mean 'house_prices'?" in out.stdout and "did you mean 'champion'?" in out.stdout
    import json

    doc = json.loads(workspace.invoke("validate", "--json").stdout)
    assert doc["ok"] and [w["field"] for w in doc["warnings"]] == ["on[0].do[0].trigger", "on[0].do[1].rollback",
                                                                    "on[0].do[2].alias"]


def test_a_model_rule_reading_a_metric_the_model_does_not_declare_is_said(workspace) -> None:
    """`metric = "rmsee"` passed validate and showed `ok` in `monitors`, while `models observe` refuses that name:
    the rollback rule could never get a value."""
    workspace.pipeline("serving", """
        name = "serving"
        [tasks.train]
        command = ["true"]
        outputs = ["m.bin"]
        model = { name = "house", path = "m.bin" }
        [models.house]
        metrics = ["rmse", "r2"]
        [[on]]
        name = "champion_degraded"
        signal = "model_metric"
        model = "house"
        metric = "rmsee"
        threshold = 2
        [[on.do]]
        rollback = "house"
    """)
    out = workspace.invoke("validate")
    said = out.stdout + out.stderr
    assert "on[0].metric: rule 'champion_degraded': reads a metric model house does not declare" in said, said
    assert "it never gets a value (found 'rmsee'); expected one of r2, rmse" in said
    assert "did you mean 'rmse'?" in said


def test_a_rule_that_is_not_in_force_is_an_error_in_monitors_not_a_warning(workspace) -> None:
    """An invalid rule in the rules folder was listed as `warning ...`, though it is skipped whole: at 3 a.m. an
    inert safety rule read as a mere warning."""
    workspace.pipeline("checks", CHECKS)
    rules = workspace.pipelines / "rules"
    rules.mkdir()
    (rules / "zz_bad.toml").write_text('[[on]]\nname = "x"\nsignal = "nosuch"\nthreshold = 1\n[[on.do]]\ntrigger = "checks"\n')
    out = workspace.invoke("monitors")
    line = next(x for x in out.stdout.splitlines() if "zz_bad.toml" in x)
    assert line.startswith("error    not loaded: "), out.stdout
