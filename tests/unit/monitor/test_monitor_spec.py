"""[[on]] tables: what a valid rule becomes, and every bad input named by file, field and value."""

from __future__ import annotations

import textwrap
import tomllib
from pathlib import Path

import pytest

from edgeorch.monitor.spec import check_rules, fill
from edgeorch.pipelines.parse import parse_pipeline

HEAD = """
name = "checks"
[params]
batch = { type = "path", default = "b.csv" }
[tasks.drift]
kind = "drift"
[tasks.drift.options]
reference = "a.csv"
current = "{batch}"
[tasks.train]
command = ["true"]
"""


def parse(rules: str):
    text = textwrap.dedent(HEAD) + textwrap.dedent(rules)
    return parse_pipeline(tomllib.loads(text), file=Path("checks.toml"), text=text)


def test_a_valid_rule_is_built_with_its_defaults() -> None:
    data = tomllib.loads(textwrap.dedent(HEAD) + textwrap.dedent("""
        [[on]]
        name = "retrain"
        signal = "drift_share"
        task = "drift"
        threshold = 0.3
        for = "1m"
        cooldown = "1h"
        dedupe = "{input_sha256}"
        [[on.do]]
        trigger = "train"
        params = { data = "{params.batch}" }
        [[on.do]]
        notify = ["logger", "{rule} {value}"]
        """))
    rules, errors = check_rules(data, "checks.toml", pipeline="checks", tasks={"drift": "drift", "train": None},
                                params={"batch"})
    assert errors == []
    (r,) = rules
    assert (r.op, r.for_evaluations, r.for_seconds, r.cooldown) == (">", 1, 60.0, 3600.0)
    assert [x.action for x in r.responses] == ["trigger", "notify"]
    assert r.responses[0].params == (("data", "{params.batch}"),)
    assert r.describe() == "drift_share of task drift > 0.3"


def test_freshness_gets_a_check_cadence_from_max_age() -> None:
    data = {"on": [{"name": "stale", "signal": "freshness", "max_age": "2h", "do": [{"pause": "checks"}]}]}
    (r,), errors = check_rules(data, "f.toml", pipeline="checks")
    assert errors == [] and r.max_age == 7200 and r.check_every == 300 and r.watched == "checks" and r.timed


@pytest.mark.parametrize("rules, field, value", [
    ('[[on]]\nname = "r"\nsignal = "drift_shar"\nthreshold = 1\n[[on.do]]\npause = "x"\n', "on[0].signal", "drift_shar"),
    ('[[on]]\nname = "r"\nsignal = "drift_share"\ntask = "drift"\nthreshold = "high"\n[[on.do]]\npause = "x"\n',
     "on[0].threshold", "high"),
    ('[[on]]\nname = "r"\nsignal = "drift_share"\ntask = "nope"\nthreshold = 1\n[[on.do]]\npause = "x"\n',
     "on[0].task", "nope"),
    ('[[on]]\nname = "r"\nsignal = "violations"\ntask = "train"\nthreshold = 1\n[[on.do]]\npause = "x"\n',
     "on[0].task", "train"),
    ('[[on]]\nname = "r"\nsignal = "drift_share"\ntask = "drift"\nthreshold = 1\nop = "=>"\n[[on.do]]\npause = "x"\n',
     "on[0].op", "=>"),
    ('[[on]]\nname = "r"\nsignal = "failure_rate"\nthreshold = 2\n[[on.do]]\npause = "x"\n', "on[0].threshold", 2.0),
    ('[[on]]\nname = "r"\nsignal = "freshness"\n[[on.do]]\npause = "x"\n', "on[0].max_age", None),
    ('[[on]]\nname = "r"\nsignal = "freshness"\nmax_age = "soon"\n[[on.do]]\npause = "x"\n', "on[0].max_age", "soon"),
    ('[[on]]\nname = "r"\nsignal = "drift_share"\ntask = "drift"\nthreshold = 1\ncooldwn = "1h"\n[[on.do]]\npause = "x"\n',
     "on[0].cooldwn", None),
    ('[[on]]\nname = "r"\nsignal = "drift_share"\ntask = "drift"\nthreshold = 1\n', "on[0].do", None),
    ('[[on]]\nname = "r"\nsignal = "drift_share"\ntask = "drift"\nthreshold = 1\n[[on.do]]\npause = "x"\ntrigger = "y"\n',
     "on[0].do[0]", "trigger, pause"),
    ('[[on]]\nname = "r"\nsignal = "drift_share"\ntask = "drift"\nthreshold = 1\n[[on.do]]\nnotify = ["x", "{bogus}"]\n',
     "on[0].do[0].notify[1]", "{bogus}"),
    ('[[on]]\nname = "r"\nsignal = "drift_share"\ntask = "drift"\nthreshold = 1\n[[on.do]]\ntrigger = "t"\n'
     'params = { d = "{params.nope}" }\n', "on[0].do[0].params.d", "{params.nope}"),
    ('[[on]]\nname = "r"\nsignal = "drift_share"\ntask = "drift"\nthreshold = 1\n[[on.do]]\nquarantine = false\n',
     "on[0].do[0].quarantine", False),
    ('[[on]]\nname = "r r"\nsignal = "drift_share"\ntask = "drift"\nthreshold = 1\n[[on.do]]\npause = "x"\n',
     "on[0].name", "r r"),
    ('[[on]]\nname = "r"\nsignal = "model_metric"\nmetric = "rmse"\nthreshold = 40\n[[on.do]]\npause = "x"\n',
     "on[0].model", None),
    ('[[on]]\nname = "r"\nsignal = "model_metric"\nmodel = "m"\nthreshold = 40\n[[on.do]]\npause = "x"\n',
     "on[0].metric", None),
    ('[[on]]\nname = "r"\nsignal = "model_metric"\nmodel = "m"\nmetric = "rmse"\nsource = "drop"\nthreshold = 40\n'
     '[[on.do]]\npause = "x"\n', "on[0].source", "drop"),
    ('[[on]]\nname = "r"\nsignal = "model_metric"\nmodel = "m"\nmetric = "rmse"\ntask = "drift"\nthreshold = 40\n'
     '[[on.do]]\npause = "x"\n', "on[0].task", "drift"),
    ('[[on]]\nname = "r"\nsignal = "model_metric"\nmodel = "m m"\nmetric = "rmse"\nthreshold = 40\n'
     '[[on.do]]\npause = "x"\n', "on[0].model", "m m"),
    ('[[on]]\nname = "r"\nsignal = "drift_share"\ntask = "drift"\nthreshold = 1\nmodel = "m"\n[[on.do]]\npause = "x"\n',
     "on[0].model", "m"),
    ('[[on]]\nname = "r"\nsignal = "drift_share"\ntask = "drift"\nthreshold = 1\n[[on.do]]\nblock_promotions = "m"\n'
     'until = "never"\n', "on[0].do[0].until", "never"),
    ('[[on]]\nname = "r"\nsignal = "drift_share"\ntask = "drift"\nthreshold = 1\n[[on.do]]\nblock_promotions = "m"\n'
     'alias = "canary"\n', "on[0].do[0].alias", None),
    ('[[on]]\nname = "r"\nsignal = "drift_share"\ntask = "drift"\nthreshold = 1\n[[on.do]]\nrollback = "a b"\n',
     "on[0].do[0].rollback", "a b"),
])
def test_bad_rules_name_the_file_field_and_value(rules: str, field: str, value) -> None:
    pipeline, errors = parse(rules)
    assert pipeline is None
    hits = [e for e in errors if e.field == field]
    assert hits, [e.render() for e in errors]
    assert hits[0].file == "checks.toml" and hits[0].value == value and hits[0].expected is not None or value is None


def test_on_must_be_tables() -> None:
    _rules, errors = check_rules({"on": 3}, "f.toml", pipeline="p")
    assert [(e.field, e.value) for e in errors] == [("on", 3)]


def test_a_rule_name_twice_in_a_file_is_refused() -> None:
    rule = '[[on]]\nname = "r"\nsignal = "drift_share"\ntask = "drift"\nthreshold = 1\n[[on.do]]\npause = "x"\n'
    _p, errors = parse(rule + rule)
    assert [e.field for e in errors] == ["on[1].name"]


def test_fill_substitutes_known_values_and_blanks_missing_ones() -> None:
    assert fill("{rule}:{value}:{input_sha256}", {"rule": "r", "value": 0.5}) == "r:0.5:"


def test_a_model_metric_rule_reads_an_alias_realized_metric_by_default() -> None:
    data = {"on": [{"name": "degraded", "signal": "model_metric", "model": "house", "metric": "rmse", "threshold": 40,
                    "do": [{"rollback": "house"}, {"block_promotions": "house", "until": "6h"}]}]}
    (r,), errors = check_rules(data, "f.toml", pipeline="p")
    assert errors == [] and r.on_model and not r.on_runs and not r.timed
    assert (r.model, r.alias, r.source, r.metric) == ("house", "champion", "realized", "rmse")
    assert r.describe() == "realized rmse of house champion > 40"
    assert r.responses[1].to_dict() == {"action": "block_promotions", "target": "house", "until": 21600.0}
