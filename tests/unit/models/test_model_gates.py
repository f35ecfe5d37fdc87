"""The gate language: parsed without eval, evaluated with every condition's value, threshold, verdict and why."""

from __future__ import annotations

import pytest

from edgeorch.models.gates import (CheckResult, GateInputs, GateSyntaxError, Holder, check_references, evaluate,
                                   parse_gate, verdict_of)

INPUTS = GateInputs(
    metrics={"rmse": 31.2, "auc": 0.8, "n": 3},
    holders={"champion": Holder(3, {"rmse": 30.1, "auc": 0.81})},
    checks={"drift": CheckResult("warn", ({"metric": "psi", "value": 0.3, "verdict": "drift"},
                                          {"metric": "psi", "value": 0.1, "verdict": "ok"})),
            "schema": CheckResult("violation", ())},
)


@pytest.mark.parametrize("gate, verdicts", [
    ("rmse <= 40", ["passed"]),
    ("rmse <= champion.rmse + 2", ["passed"]),
    ("rmse <= champion.rmse", ["failed"]),
    ("auc >= champion.auc - 0.005 and auc >= 0.7", ["failed", "passed"]),
    ("auc >= champion.auc * 0.98", ["passed"]),
    ("-(rmse - 40) > 0", ["passed"]),
    ("n == 3 and n != 4 and n < 4 and n > 2 and n >= 3", ["passed"] * 5),
    ("checks.drift.flagged_share < 0.6", ["passed"]),
    ("checks.drift.psi <= 0.2", ["failed"]),  # the largest value of its rows
    ("checks.drift.passed == 1 and checks.schema.passed == 1", ["passed", "failed"]),
    ("auc >= challenger.auc", ["skipped"]),  # no challenger yet: nothing to compare with
    ("missing <= 1", ["failed"]),
    ("checks.other.passed == 1", ["failed"]),
])
def test_conditions_are_evaluated_one_by_one(gate: str, verdicts: list[str]) -> None:
    assert [o.verdict for o in evaluate([gate], INPUTS)] == verdicts


def test_an_outcome_records_value_threshold_and_plain_words() -> None:
    [o] = evaluate(["rmse <= champion.rmse + 0.5"], INPUTS)
    assert (o.value, o.threshold, o.verdict) == (31.2, pytest.approx(30.6), "failed")
    assert o.why == "rmse is 31.2, but it had to be at most champion.rmse + 0.5 = 30.6"
    [o] = evaluate(["rmse <= 40"], INPUTS)
    assert o.why == "rmse is 31.2, which is at most 40"
    [o] = evaluate(["auc >= challenger.auc"], INPUTS)
    assert o.why == "no version is challenger yet, so there is nothing to compare with"
    [o] = evaluate(["missing <= 1"], INPUTS)
    assert o.why == "the candidate reported no missing"


def test_skipped_conditions_do_not_block_but_failed_ones_do() -> None:
    assert verdict_of(evaluate(["auc >= challenger.auc", "rmse <= 40"], INPUTS)) == "passed"
    assert verdict_of(evaluate(["auc >= challenger.auc", "rmse <= 1"], INPUTS)) == "failed"


@pytest.mark.parametrize("gate, message, hint", [
    ("rmse => 3", "'=>' is not an operator (at character 6)", "write '>='"),
    ("rmse = 3", "'=' is not an operator (at character 6)", "compare with '=='"),
    ("rmse <= ", "ends too early: a number or a metric name is missing", None),
    ("a < b < c", "comparisons cannot be chained ('<' at character 7)", "write two conditions joined by 'and'"),
    ("a < 1 or b < 2", "'or' is not supported (at character 7)", "write separate conditions joined by 'and'; "
     "every gate must pass"),
    ("a < 1 && b < 2", "'&' is not an operator (at character 7)", "join conditions with 'and'"),
    ("x <= (y + 1", "the '(' at character 6 is never closed", None),
    ("a.b.c.d < 1", "'a.b.c.d' has too many parts", None),
    ("checks.t < 1", "'checks.t' is not a check result", None),
    ("rmse", "expected a comparison (<=, >=, ==, !=, <, >) after 'rmse'", None),
    ("x / 2 < 1", "'/' is not supported (at character 3)", "multiply instead: 'x <= y * 0.5'"),
    ("__import__('os') < 1", "unexpected character \"'\" at character 12", None),  # no strings, no calls
    ("", "is empty", "write a condition such as 'rmse <= 30000'"),
    # It was read as infinity: a gate that always passed.
    ("rmse <= 1e999", "the number 1e999 at character 9 is too large (a float holds up to about 1.8e308)", None),
])
def test_bad_gates_are_refused_with_the_position_and_a_hint(gate: str, message: str, hint: str | None) -> None:
    with pytest.raises(GateSyntaxError) as err:
        parse_gate(gate)
    assert err.value.message == message
    if hint is not None:
        assert err.value.hint == hint


@pytest.mark.parametrize("gate, message", [
    ("rsme <= 1", "unknown metric 'rsme'"),
    ("rmse <= champ.rmse", "unknown alias 'champ' (in 'champ.rmse')"),
    ("rmse <= champion.rsme", "unknown metric 'rsme' (in 'champion.rsme')"),
    ("checks.nope.passed == 1", "'checks.nope.passed' names 'nope', which is not a check task this model's task needs"),
])
def test_references_are_checked_against_declared_metrics_aliases_and_check_tasks(gate: str, message: str) -> None:
    with pytest.raises(GateSyntaxError) as err:
        check_references(parse_gate(gate), metrics=["rmse", "r2"], aliases=["champion", "challenger", "canary"],
                         check_tasks=["drift"])
    assert err.value.message == message


def test_a_misspelt_name_gets_a_did_you_mean() -> None:
    with pytest.raises(GateSyntaxError) as err:
        check_references(parse_gate("rsme <= 1"), metrics=["rmse", "r2"], aliases=[], check_tasks=[])
    assert err.value.hint == "declared metrics: rmse, r2; did you mean 'rmse'?"


def test_nan_never_passes() -> None:
    [o] = evaluate(["x <= 1"], GateInputs(metrics={"x": float("nan")}))
    assert o.verdict == "failed"


def test_a_floor_naming_an_alias_says_none_can_be_named_there_not_an_empty_list() -> None:
    """It ended with "known aliases: " and nothing after it."""
    with pytest.raises(GateSyntaxError) as err:
        check_references(parse_gate("rmse <= champion.rmse"), metrics=["rmse"], aliases=(), check_tasks=None)
    assert err.value.hint == ("no alias can be named here (a floor reads the metrics observed for the version "
                              "served)")
