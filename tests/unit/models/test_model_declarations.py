"""The model key and [models.NAME] tables: every problem names the file, the field and the value."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from edgeorch.models.spec import ModelPolicy
from edgeorch.pipelines.parse import parse_pipeline

BASE = '''
[tasks.check]
kind = "validate"
options = { input = "x.csv", required_columns = ["a"] }
[tasks.train]
command = ["true"]
needs = ["check"]
model = { name = "house", path = "model.bin", metrics = "metrics.json" }
'''


def _errors(extra: str) -> list:
    text = BASE + extra
    _p, errors = parse_pipeline(tomllib.loads(text), file=Path("/p/hp.toml"), text=text)
    return errors


def _parse(extra: str):
    text = BASE + extra
    p, errors = parse_pipeline(tomllib.loads(text), file=Path("/p/hp.toml"), text=text)
    assert errors == [], [e.render() for e in errors]
    return p


def test_a_valid_declaration_parses_into_a_policy() -> None:
    p = _parse('''
        [models.house]
        metrics = ["rmse", "r2"]
        gates = ["rmse <= 60", "rmse <= champion.rmse + 2 and checks.check.passed == 1"]
        strategy = "blue_green"
        [models.house.deploy]
        dir = "serving"
        health = ["curl", "-fsS", "http://127.0.0.1:8000/health"]
        health_timeout = "5s"
        window = "1m"
        ''')
    assert p.tasks["train"].model.name == "house" and p.tasks["train"].model.metrics == "metrics.json"
    policy = p.models["house"]
    assert policy.strategy == "blue_green" and policy.deploy.health_timeout == 5.0 and policy.deploy.window == 60.0
    assert ModelPolicy.from_dict(policy.to_dict()) == policy  # what is stored with the model reads back the same


@pytest.mark.parametrize("extra, field, value, message", [
    ('[models.house]\nmetrics = ["rmse"]\ngates = ["rsme <= 1"]', "models.house.gates[0]", "rsme <= 1",
     "unknown metric 'rsme'"),
    ('[models.house]\nmetrics = ["rmse"]\ngates = ["rmse <= champ.rmse"]', "models.house.gates[0]",
     "rmse <= champ.rmse", "unknown alias 'champ'"),
    ('[models.house]\nmetrics = ["rmse"]\ngates = ["rmse => 1"]', "models.house.gates[0]", "rmse => 1",
     "'=>' is not an operator"),
    ('[models.house]\nmetrics = ["rmse"]\ngates = ["checks.train.passed == 1"]', "models.house.gates[0]",
     "checks.train.passed == 1", "which is not a check task"),
    ('[models.house]\ngates = ["rmse <= 1"]', "models.house.metrics", None, "is required when gates are declared"),
    ('[models.houses]\n', "models.houses", "houses", "no task of this pipeline registers this model"),
    ('[models.house]\nstrategy = "canary"', "models.house.canary", None, "is required with strategy"),
    ('[models.house]\nmetrics = ["rmse", "rmse"]', "models.house.metrics[1]", "rmse", "is named twice"),
    ('[models.house]\npromote = "sometimes"', "models.house.promote", "sometimes", "has an unknown value"),
    ('[models.house]\naliases = ["current"]', "models.house.aliases[0]", "current", "is reserved"),
    ('[models.house.deploy]\nkind = "s3"', "models.house.deploy.kind", "s3", "has an unknown value"),
    ('[models.house.deploy]\nhealth = "curl x"', "models.house.deploy.health", "curl x",
     "must be a non-empty array of strings"),
    ('[models.house.deploy]\nhealth_timeout = "soon"', "models.house.deploy.health_timeout", "soon",
     "is not a valid duration"),
    ('[models.house]\nmetrics = ["rmse"]\nstrategy = "canary"\n[models.house.canary]\nmetric = "auc"\nbatches = 3',
     "models.house.canary.metric", "auc", "is not a declared metric"),
    ('[models.house]\nstrategy = "canary"\n[models.house.canary]\nmetric = "rmse"', "models.house.canary", None,
     "needs a window"),
])
def test_bad_declarations_name_the_file_field_and_value(extra, field, value, message) -> None:
    errors = _errors(extra)
    matching = [e for e in errors if e.field == field]
    assert matching, [e.render() for e in errors]
    e = matching[0]
    assert message in e.message and e.file == "/p/hp.toml" and e.pipeline == "hp"
    if value is not None:
        assert e.value == value


def test_a_canary_table_with_a_bad_field_is_said_once_not_said_missing() -> None:
    """`share = 1.5` gave its own error and `models.mb.canary: is required with strategy = "canary"`, a table that was
    there."""
    errors = _errors('[models.house]\nmetrics = ["rmse"]\nstrategy = "canary"\n[models.house.canary]\n'
                     'share = 1.5\nmetric = "rmse"\nbatches = 3')
    assert [e.field for e in errors] == ["models.house.canary.share"], [e.render() for e in errors]


@pytest.mark.parametrize("decl, field, message", [
    ('{ name = "bad name" }', "tasks.t.model.name", "is not a valid model name"),
    ('{ name = "m", path = "../x" }', "tasks.t.model.path", "must be relative to the task's output folder"),
    ('{ name = "m", metrics = "/abs.json" }', "tasks.t.model.metrics", "must be relative"),
    ('{ name = "m", pth = "x" }', "tasks.t.model.pth", "unknown key"),
    ('3', "tasks.t.model", "has the wrong type"),
    ('{ name = "m", path = "{nope}/m.bin" }', "tasks.t.model.path", "placeholder"),
])
def test_bad_model_keys_are_refused(decl: str, field: str, message: str) -> None:
    text = f'[tasks.t]\ncommand = ["true"]\nmodel = {decl}\n'
    _p, errors = parse_pipeline(tomllib.loads(text), file=Path("/p/x.toml"), text=text)
    assert any(e.field == field and message in e.render() for e in errors), [e.render() for e in errors]


def test_a_gate_task_with_a_bad_condition_is_refused_at_validation() -> None:
    text = '[tasks.g]\nkind = "gate"\noptions = { metrics = "m.json", conditions = ["rmse <== 3"] }\n'
    _p, errors = parse_pipeline(tomllib.loads(text), file=Path("/p/x.toml"), text=text)
    [e] = errors
    assert e.field == "tasks.g.options.conditions[0]" and e.value == "rmse <== 3"


def test_floors_use_declared_metrics_only() -> None:
    errors = _errors('[models.house]\nmetrics = ["rmse"]\nfloors = ["rmse <= champion.rmse"]')
    [e] = [e for e in errors if e.field == "models.house.floors[0]"]
    assert "unknown alias 'champion'" in e.message
    errors = _errors('[models.house]\nfloors = ["rmse <= 1"]')
    assert any(e.field == "models.house.metrics" and "required when floors are declared" in e.message for e in errors)


def test_a_refused_alias_is_not_listed_among_the_known_ones_by_the_next_error() -> None:
    errors = _errors('[models.house]\nmetrics = ["rmse"]\naliases = ["latest"]\n'
                     'gates = ["rmse <= nope.rmse"]')
    rendered = [e.render() for e in errors]
    assert any("aliases[0]" in r and "is reserved" in r for r in rendered), rendered
    gate = next(r for r in rendered if "gates[0]" in r)
    assert "known aliases: champion, challenger, canary" in gate and "latest" not in gate.split("known aliases")[1]
