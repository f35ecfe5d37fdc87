"""The published JSON Schema of pipeline files (schemas/pipeline.schema.json) cannot drift from the parser.

Editors (taplo, Even Better TOML) check pipelines against the schema as people
type; edgeorch's own validation stays the authority. These tests hold the two
together: every table's keys in the schema are the keys its parser accepts (the
parser's own lists, or its unknown-key error where a list is inline), every
enum is the parser's, duration and size patterns agree with the parsers of
durations and sizes, and every example pipeline validates.
"""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from edgeorch.kernels.kinds import kind_names, registered_kinds
from edgeorch.model import PARAM_TYPES
from edgeorch.monitor.spec import ACTIONS, FRESHNESS_SOURCES, MODEL_SOURCES, OPS, RULE_KEYS, SIGNALS
from edgeorch.models.spec import (CANARY_KEYS, CANARY_MODES, DIRECTIONS, POLICY_KEYS, PROMOTE, STRATEGIES,
                                  TARGET_KEYS, TARGET_KINDS)
from edgeorch.pipelines.inputs import RESERVED_SCHEMES
from edgeorch.pipelines.parse import PIPELINE_KEYS, TASK_KEYS, parse_pipeline
from edgeorch.pipelines.substitute import BUILTIN_PLACEHOLDERS
from edgeorch.triggers.drop.spec import MODES, WATCH_KEYS
from edgeorch.triggers.schedule import CATCHUP_POLICIES, ON_MAX_ACTIVE, SCHEDULE_KEYS
from edgeorch.units import parse_duration, parse_size

ROOT = Path(__file__).resolve().parents[3]
SCHEMA_FILE = ROOT / "schemas" / "pipeline.schema.json"
EXAMPLES = sorted((ROOT / "examples" / "pipelines").glob("*.toml"))


@pytest.fixture(scope="module")
def schema() -> dict[str, Any]:
    return json.loads(SCHEMA_FILE.read_text())


@pytest.fixture(scope="module")
def validator(schema: dict[str, Any]) -> jsonschema.Draft7Validator:
    jsonschema.Draft7Validator.check_schema(schema)
    return jsonschema.Draft7Validator(schema)


def _defs(schema: dict[str, Any], name: str) -> dict[str, Any]:
    return schema["definitions"][name]


def _unknown_key_expected(data: dict[str, Any], field: str) -> set[str]:
    """The keys the parser accepts where ``field`` is an unknown key (read from its error)."""
    _pipeline, errors = parse_pipeline(data, file=Path("probe.toml"), text="")
    for e in errors:
        if e.field == field and "unknown key" in str(e):
            return set(e.expected.removeprefix("one of ").split(", "))
    raise AssertionError(f"the parser reported no unknown key at {field}: {[str(e) for e in errors]}")


def test_schema_top_level_keys_are_the_parsers(schema: dict[str, Any]) -> None:
    assert set(schema["properties"]) == set(PIPELINE_KEYS)
    assert set(SCHEDULE_KEYS) <= set(schema["properties"])
    assert schema["additionalProperties"] is False


def test_schema_task_keys_are_the_parsers(schema: dict[str, Any]) -> None:
    task = _defs(schema, "task")
    assert set(task["properties"]) == set(TASK_KEYS)
    assert task["additionalProperties"] is False


def test_schema_watch_keys_are_the_parsers(schema: dict[str, Any]) -> None:
    watch = _defs(schema, "watch")
    assert set(watch["properties"]) == set(WATCH_KEYS)
    assert watch["properties"]["mode"]["enum"] == list(MODES)
    assert watch["additionalProperties"] is False


def test_schema_rule_keys_are_the_parsers(schema: dict[str, Any]) -> None:
    rule = _defs(schema, "rule")
    assert set(rule["properties"]) == set(RULE_KEYS)
    assert rule["additionalProperties"] is False
    assert rule["properties"]["signal"]["enum"] == list(SIGNALS)
    assert rule["properties"]["op"]["enum"] == list(OPS)
    assert rule["properties"]["source"]["enum"] == list(FRESHNESS_SOURCES) + list(MODEL_SOURCES)
    response = _defs(schema, "rule_response")
    assert [r["required"][0] for r in response["oneOf"]] == list(ACTIONS)
    assert set(ACTIONS) <= set(response["properties"])


def test_schema_model_tables_are_the_parsers(schema: dict[str, Any]) -> None:
    policy, target, canary = (_defs(schema, n) for n in ("model_policy", "model_target", "model_canary"))
    assert set(policy["properties"]) == set(POLICY_KEYS) and policy["additionalProperties"] is False
    assert set(target["properties"]) == set(TARGET_KEYS) and target["additionalProperties"] is False
    assert set(canary["properties"]) == set(CANARY_KEYS) and canary["additionalProperties"] is False
    assert policy["properties"]["promote"]["enum"] == list(PROMOTE)
    assert policy["properties"]["strategy"]["enum"] == list(STRATEGIES)
    assert target["properties"]["kind"]["enum"] == list(TARGET_KINDS)
    assert canary["properties"]["mode"]["enum"] == list(CANARY_MODES)
    assert canary["properties"]["better"]["enum"] == list(DIRECTIONS)
    probe = {"tasks": {"a": {"command": ["true"], "model": {"name": "m", "zz_unknown": 1}}}}
    assert set(_defs(schema, "task")["properties"]["model"]["oneOf"][1]["properties"]) == \
        _unknown_key_expected(probe, "tasks.a.model.zz_unknown")


def test_schema_param_table_keys_are_the_parsers(schema: dict[str, Any]) -> None:
    table_form = next(alt for alt in _defs(schema, "param")["oneOf"] if alt["type"] == "object")
    probe = {"params": {"p": {"default": 1, "zz_unknown": 1}}, "tasks": {"a": {"command": ["true"]}}}
    assert set(table_form["properties"]) == _unknown_key_expected(probe, "params.p.zz_unknown")
    assert table_form["properties"]["type"]["enum"] == list(PARAM_TYPES)
    assert schema["properties"]["params"]["propertyNames"]["not"]["enum"] == list(BUILTIN_PLACEHOLDERS)


def test_schema_schedule_enums_are_the_parsers(schema: dict[str, Any]) -> None:
    assert schema["properties"]["catchup"]["enum"] == list(CATCHUP_POLICIES)
    assert schema["properties"]["on_max_active"]["enum"] == list(ON_MAX_ACTIVE)


def test_schema_kinds_and_their_options_are_the_registrys(schema: dict[str, Any]) -> None:
    task = _defs(schema, "task")
    assert task["properties"]["kind"]["enum"] == list(kind_names())
    per_kind = {rule["if"]["properties"]["kind"]["const"]: rule["then"]["properties"]["options"]
                for rule in task["allOf"] if "kind" in rule["if"].get("properties", {})}
    assert set(per_kind) == set(kind_names())
    for kind in registered_kinds():
        assert set(per_kind[kind.name]["properties"]) == set(kind.options), kind.name
        assert per_kind[kind.name]["additionalProperties"] is False


def test_schema_reserved_input_schemes_are_the_parsers(schema: dict[str, Any]) -> None:
    pattern = _defs(schema, "task")["properties"]["inputs"]["items"]["not"]["pattern"]
    assert pattern == "^(" + "|".join(RESERVED_SCHEMES) + "):"


@pytest.mark.parametrize("text", ["0", "30", "1.5", "500ms", "30s", " 15m ", "2h", "1d", "1 s", "1w", "1sec",
                                  "1h30m", "1h 30m", "2 min", "10 minutes", "1.5 hours",
                                  "", "-1s", "1.s", "ten", "1 h m", "1h30", "1M", "2 months", "1msx", "s",
                                  "\t5m ", "٣٠s", "5m\x1c", "\ufeff5m", "\u00a05m"])
def test_schema_duration_pattern_agrees_with_parse_duration(validator: jsonschema.Draft7Validator, text: str) -> None:
    try:
        parse_duration(text)
        accepted = True
    except ValueError:
        accepted = False
    doc = {"tasks": {"a": {"command": ["true"], "timeout": text}}}
    assert validator.is_valid(doc) == accepted, text


@pytest.mark.parametrize("text", ["0", "512", "512M", "8G", "1.5GiB", "2kb", "3TB", "1p", " 4 G ",
                                  "", "8Gi", "8GB2", "lots", "-1G", "1X"])
def test_schema_size_pattern_agrees_with_parse_size(validator: jsonschema.Draft7Validator, text: str) -> None:
    try:
        parse_size(text)
        accepted = True
    except ValueError:
        accepted = False
    doc = {"tasks": {"a": {"command": ["true"], "memory": text}}}
    assert validator.is_valid(doc) == accepted, text


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_every_example_pipeline_validates_against_the_schema(validator: jsonschema.Draft7Validator,
                                                             path: Path) -> None:
    data = tomllib.loads(path.read_text())
    _pipeline, errors = parse_pipeline(data, file=path, text=path.read_text())
    assert errors == []  # the example is valid to edgeorch, so the schema must accept it too
    assert [e.message for e in validator.iter_errors(data)] == []


def test_examples_exist() -> None:
    assert len(EXAMPLES) >= 2


@pytest.mark.parametrize("doc", [
    {"descripton": "typo", "tasks": {"a": {"command": ["true"]}}},
    {"tasks": {"a": {"command": ["true"], "retry": 3}}},
    {"tasks": {"a": {"command": ["true"], "call": "m:f"}}},
    {"tasks": {"a": {}}},
    {"tasks": {"a": {"kind": "profil"}}},
    {"tasks": {"a": {"kind": "drift", "options": {"referenc": "x.csv"}}}},
    {"tasks": {"a": {"command": ["true"], "options": {"x": 1}}}},
    {"tasks": {"a": {"call": "train.py"}}},
    {"tasks": {}},
    {"name": "x"},
    {"schedule": "0 2 * * *", "every": "1h", "tasks": {"a": {"command": ["true"]}}},
    {"catchup": "some", "tasks": {"a": {"command": ["true"]}}},
    {"watch": {"folder": "in", "mod": "batch"}, "tasks": {"a": {"command": ["true"]}}},
    {"params": {"p": {"type": "string"}}, "tasks": {"a": {"command": ["true"]}}},
    {"params": {"task": "x"}, "tasks": {"a": {"command": ["true"]}}},
    {"tasks": {"a": {"command": ["true"], "inputs": ["model:churn@3"]}}},
    {"tasks": {"a": {"command": ["true"], "inputs": ["data.csv", "data.csv"]}}},
    {"tasks": {"a": {"command": ["true"], "inputs": [" "]}}},
    {"tasks": {"a": {"command": ["true"], "inputs": "data.csv"}}},
    {"tasks": {"a": {"command": ["true"], "model": {"name": "m", "pth": "x"}}}},
    {"tasks": {"a": {"command": ["true"], "model": "m"}}, "models": {"m": {"promote": "sometimes"}}},
    {"tasks": {"a": {"command": ["true"], "model": "m"}}, "models": {"m": {"deploy": {"kind": "s3"}}}},
    {"tasks": {"a": {"command": ["true"], "model": "m"}}, "models": {"m": {"canary": {"share": 0.1}}}},
    {"tasks": {"a": {"kind": "gate", "options": {"metrics": "m.json", "condition": ["x < 1"]}}}},
    {"tasks": {"a": {"kind": "drift"}}, "on": [{"name": "r", "signal": "drift_shar", "task": "a", "threshold": 1,
                                                "do": [{"pause": "x"}]}]},
    {"tasks": {"a": {"kind": "drift"}}, "on": [{"name": "r", "signal": "drift_share", "task": "a", "threshold": 1,
                                                "do": [{"pause": "x", "trigger": "y"}]}]},
    {"tasks": {"a": {"kind": "drift"}}, "on": [{"name": "r", "signal": "freshness", "max_age": "1h",
                                                "do": [{"notify": ["x"], "timout": "1s"}]}]},
], ids=lambda d: json.dumps(d)[:60])
def test_schema_refuses_what_the_parser_refuses(validator: jsonschema.Draft7Validator, doc: dict[str, Any]) -> None:
    _pipeline, errors = parse_pipeline(doc, file=Path("probe.toml"), text="")
    assert errors, "the parser should refuse this document"
    assert not validator.is_valid(doc)
