"""`edgeorch models` input and human output: text others chose is escaped in every line (`why` included), a gate
nested too deeply is refused naming the file, field and limit, and the CLI refuses bad metric values, versions and
names as usage errors (exit 2) that say what is expected."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from edgeorch.models import gates
from edgeorch.models.gates import GateSyntaxError, parse_gate
from edgeorch.models.spec import NAME_EXPECTED
from edgeorch.models.views import event_line, why_text
from edgeorch.pipelines.parse import parse_pipeline

HOSTILE = "ok\x1b[2J\x1b]0;pwned\x07\u202egnp.exe\nforged line"
"""A screen clear, a window title, a bidi override and a line break: what must never reach the terminal raw."""
MAX_DEPTH = 64
"""How deep a gate may nest (docs/models.md): the parser's ``gates.MAX_DEPTH``."""
ESCAPED = "ok\\x1b[2J\\x1b]0;pwned\\x07\\u202egnp.exe\\nforged line"


def _raw_controls(text: str) -> list[str]:
    """The characters of ``text`` a terminal would act on (line breaks between lines aside)."""
    return [c for c in text if (ord(c) < 32 and c != "\n") or 0x7f <= ord(c) <= 0x9f or 0x202a <= ord(c) <= 0x202e]


# -- 4: `models why` (and the other human outputs) escape what others chose -------------------------------------


def test_why_promote_and_show_escape_a_reason_and_a_health_checks_output(workspace, harness, model_pipeline) -> None:
    check = workspace.root / "health.py"  # prints a terminal attack, fails for version 2
    check.write_text("import os, sys\nsys.stdout.write('\\x1b[2J\\x1b]0;pwned\\x07\\u202eevil\\n')\n"
                     "sys.exit(1 if os.environ['EDGEORCH_MODEL_VERSION'] == '2' else 0)\n")
    model_pipeline(workspace, gates="[]", deploy=f'health = ["python", "{check}"]\nhealth_timeout = "20s"')
    harness.run("trainer")
    harness.run("trainer", {"rmse": 29.0})  # version 2: its health check fails after the switch, rolled back

    promoted = workspace.invoke("models", "promote", "house", "2", "--reason", HOSTILE)  # rolled back again
    assert workspace.invoke("models", "promote", "house", "1", "--reason", HOSTILE).returncode == 5  # at 1 already
    workspace.invoke("models", "rollback", "house", "--to", "1", "--reason", HOSTILE)

    why = workspace.invoke("models", "why", "house", "2")
    assert why.returncode == 0, why.stderr
    assert "\\x1b[2J\\x1b]0;pwned\\x07\\u202eevil" in why.stdout  # the health output, as `models show` shows it
    assert not _raw_controls(why.stdout), why.stdout
    why1 = workspace.invoke("models", "why", "house", "1")
    assert ESCAPED in why1.stdout and not _raw_controls(why1.stdout), why1.stdout
    assert "forged line" not in why1.stdout.splitlines()[-2:]  # the reason's line break forges no line
    assert promoted.returncode == 1, promoted.stderr  # its outcome holds the health check's output
    assert "pwned" in promoted.stdout and not _raw_controls(promoted.stdout), promoted.stdout
    show = workspace.invoke("models", "show", "house")
    assert "pwned" in show.stdout and not _raw_controls(show.stdout), show.stdout


def test_a_models_event_line_escapes_the_deployments_outcome() -> None:
    line = event_line({"state": "rolled_back", "model": "m", "alias": "champion", "to_version": 2,
                       "outcome": f"health failed: {HOSTILE}"})
    assert line.endswith(ESCAPED) and not _raw_controls(line)


# -- 6: a gate nested too deeply is a refusal naming the limit, not a RecursionError ----------------------------


@pytest.mark.parametrize("expr", [
    "(" * 2000 + "1" + ")" * 2000,  # parentheses
    "-" * 5000 + "1",  # unary minus signs
    "+".join(["1"] * 3000),  # a flat chain: a left-deep tree, as deep
    "*".join(["rmse"] * 3000),
])
def test_a_gate_nested_too_deeply_is_refused_with_the_limit(expr: str) -> None:
    with pytest.raises(GateSyntaxError, match=f"nested too deeply: more than {MAX_DEPTH} levels"):
        parse_gate(f"rmse <= {expr}")


def test_a_gate_at_the_depth_limit_parses() -> None:
    assert getattr(gates, "MAX_DEPTH", None) == MAX_DEPTH
    [cond] = parse_gate("rmse <= " + "(" * (MAX_DEPTH - 1) + "-1" + ")" * (MAX_DEPTH - 1))
    assert cond.op == "<="
    [cond] = parse_gate("rmse <= " + "+".join(["1"] * (MAX_DEPTH + 1)))  # 64 operators: 64 levels
    assert cond.op == "<="
    with pytest.raises(GateSyntaxError):
        parse_gate("rmse <= " + "+".join(["1"] * (MAX_DEPTH + 2)))


@pytest.mark.parametrize("key, field", [("gates", "models.house.gates[0]"), ("floors", "models.house.floors[0]")])
def test_a_pipeline_with_a_deep_gate_or_floor_names_the_file_field_value_and_limit(key: str, field: str) -> None:
    text = ('[tasks.train]\ncommand = ["true"]\nmodel = { name = "house", path = "m.bin", metrics = "m.json" }\n'
            f'[models.house]\nmetrics = ["rmse"]\n{key} = ["rmse <= {"(" * 2000}1{")" * 2000}"]\n')
    _p, errors = parse_pipeline(tomllib.loads(text), file=Path("/p/deep.toml"), text=text)
    [e] = errors
    assert e.field == field and e.value.startswith("rmse <= ((")
    rendered = e.render()
    assert "/p/deep.toml" in rendered and field in rendered and f"more than {MAX_DEPTH} levels" in rendered
    assert len(rendered) < 1500  # the 4,000-character value shortened


def test_a_gate_number_is_ascii_digits_only() -> None:
    with pytest.raises(GateSyntaxError):
        parse_gate("rmse <= \u0663")  # ARABIC-INDIC DIGIT THREE: float() reads it as 3


def test_validate_of_a_deep_gate_says_the_field_without_a_traceback(workspace) -> None:
    path = workspace.root / "deep.toml"
    path.write_text('[tasks.train]\ncommand = ["true"]\nmodel = { name = "fk", path = "m.bin", metrics = "m.json" }\n'
                    f'[models.fk]\nmetrics = ["rmse"]\ngates = ["rmse <= {"-" * 5000}1"]\n')
    r = workspace.invoke("validate", str(path))
    out = r.stdout + r.stderr
    assert "Traceback" not in out and "internal error" not in out, out
    assert "models.fk.gates[0]" in out and f"more than {MAX_DEPTH} levels" in out, out


# -- 9: observe's values, versions and names on the command line ------------------------------------------------


@pytest.fixture
def house(workspace, harness, model_pipeline):
    model_pipeline(workspace, gates="[]")
    harness.run("trainer")
    return workspace


@pytest.mark.parametrize("values, said", [
    (["rmse=11", "rmse=22"], "'rmse' a second time"),
    (["rmse=1_000"], "rmse=1_000"),
    (["rmse=\u0663"], "is not METRIC=NUMBER"),
    (["rmse= 3"], "is not METRIC=NUMBER"),
    (["rmse=nan"], "is not METRIC=NUMBER"),
    (["rmse=1e999"], "is not METRIC=NUMBER"),
])
def test_observe_refuses_a_metric_twice_and_numbers_json_would_not_write(house, values, said) -> None:
    r = house.invoke("models", "observe", "house", "champion", *values)
    assert r.returncode == 2 and said in r.stderr, r.stderr
    ok = house.invoke("models", "observe", "house", "champion", "rmse=31.5", "r2=-1.5e-1")
    assert ok.returncode == 0 and "recorded 2 value(s)" in ok.stdout, ok.stderr


@pytest.mark.parametrize("args", [
    ("show", "house", "99999999999999999999999"),
    ("show", "house", "9" * 5000),
    ("show", "house", "0"),
    ("show", "house", "\u0663"),
    ("observe", "house", "champion", "rmse=1", "--version", "0"),
    ("diff", "house", "1", "-1"),
])
def test_a_version_out_of_range_is_a_usage_error_saying_it_is_at_least_1(house, args) -> None:
    r = house.invoke("models", *args)
    assert r.returncode == 2 and "expected an integer >= 1" in r.stderr, r.stderr
    assert "internal error" not in r.stderr and "-9223372036854775808" not in r.stderr


@pytest.mark.parametrize("action", [("show",), ("why", "1"), ("promote", "1"), ("observe", "champion", "rmse=1")])
def test_a_bad_model_name_says_what_a_name_is(house, action) -> None:
    r = house.invoke("models", action[0], "../../etc", *action[1:])
    assert r.returncode == 2 and "'../../etc' is not a valid model name" in r.stderr, r.stderr
    assert NAME_EXPECTED in r.stderr


def test_a_canary_start_left_undone_says_its_retry_once() -> None:
    hint = "`edgeorch models promote cn 5 --alias canary` once it is decided"
    doc = {"model": "cn", "version": 5, "decisions": [], "alias_moves": [], "aliases": [],
           "current_aliases": {"champion": 4},
           "deployments": [{"id": 9, "alias": "canary", "action": "canary_start", "state": "undone",
                            "outcome": f"not started: the canary of version 4 is still open; {hint}"}]}
    text = why_text(doc)
    assert text.count("edgeorch models promote cn 5 --alias canary") == 1, text
    doc["deployments"][0]["outcome"] = "undone: edgeorch stopped before the switch"  # others keep their retry
    assert "(edgeorch models promote cn 5 --alias canary tries again)" in why_text(doc)
