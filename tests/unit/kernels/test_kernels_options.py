"""Option schemas of the built-in task kinds (check_options, coerce)."""

from __future__ import annotations

from typing import Any

import pytest

from edgeorch.errors import PipelineError
from edgeorch.kernels.kinds import check_options, coerce, registered_kinds


def check(kind: str, options: Any) -> list[PipelineError]:
    return check_options(kind, options, file="p.toml", prefix="tasks.t.options")  # type: ignore[return-value]


VALID = [
    ("profile", {"input": "data.csv"}),
    ("profile", {"input": "d.parquet", "columns": ["a"], "save": "p.json", "report": "r.html"}),
    ("profile", {"input": "d.csv", "reference_profile": "ref.json", "method": "psi", "threshold": 0.2}),
    ("drift", {"reference": "r.csv", "current": "c.csv"}),
    ("drift", {"reference": "r.csv", "current": "c.csv", "columns": ["a", "b"], "method": "ks",
               "methods": {"b": "psi"}, "threshold": 0.01, "thresholds": {"b": 0.2}, "drift_share": 0.3,
               "correction": "bonferroni", "on_violation": "warn", "report": "d.html"}),
    ("fairness", {"input": "s.csv", "group": "sex", "prediction": "yhat"}),
    ("fairness", {"input": "s.csv", "group": ["sex", "race"], "label": "y", "prediction": "yhat",
                  "pos_label": 1, "privileged": "m", "metrics": ["equalized_odds_difference"],
                  "thresholds": {"disparate_impact": 0.9}, "min_group_size": 50}),
    ("validate", {"input": "d.csv", "required_columns": ["a"], "types": {"a": "integer"},
                  "ranges": {"a": [0, 10], "b": {"min": 0}}, "max_null_rate": 0.1,
                  "allowed": {"c": ["x", "y"]}}),
    ("validate", {"input": "d.csv", "max_null_rate": {"a": 0.0, "b": 0.5}}),
]


@pytest.mark.parametrize(("kind", "options"), VALID)
def test_valid_options_have_no_errors(kind: str, options: dict[str, Any]) -> None:
    assert check(kind, options) == []


INVALID = [
    ("profile", {}, "tasks.t.options.input", "is required"),
    ("drift", {"reference": "r.csv"}, "tasks.t.options.current", "is required"),
    ("drift", {"reference": "r.csv", "current": "c.csv", "method": "kss"}, "tasks.t.options.method", "unknown value"),
    ("drift", {"reference": "r", "current": "c", "correction": "holm"}, "tasks.t.options.correction", "unknown value"),
    ("drift", {"reference": "r", "current": "c", "drift_share": 1.5}, "tasks.t.options.drift_share", "out of range"),
    # 0 called a dataset with no column drifted "drifted"; a p-value threshold of 1.5 flagged the same file drifted.
    ("drift", {"reference": "r", "current": "c", "drift_share": 0}, "tasks.t.options.drift_share", "out of range"),
    ("drift", {"reference": "r", "current": "c", "method": "ks", "threshold": 1.5}, "tasks.t.options.threshold",
     "whose threshold is a p-value"),
    ("drift", {"reference": "r", "current": "c", "methods": {"a": "bogus"}}, "tasks.t.options.methods.a", "wrong value"),
    ("drift", {"reference": "r", "current": "c", "threshold": "high"}, "tasks.t.options.threshold", "wrong type"),
    ("drift", {"reference": "r", "current": "c", "on_violation": "explode"}, "tasks.t.options.on_violation",
     "unknown value"),
    ("fairness", {"input": "s", "prediction": "p"}, "tasks.t.options.group", "is required"),
    ("fairness", {"input": "s", "group": 3, "prediction": "p"}, "tasks.t.options.group", "wrong type"),
    ("fairness", {"input": "s", "group": "g", "prediction": "p", "metrics": ["parity"]}, "tasks.t.options.metrics",
     "unknown metric"),
    ("fairness", {"input": "s", "group": "g", "prediction": "p", "metrics": ["equalized_odds_ratio"]},
     "tasks.t.options.label", "required for equalized odds"),
    ("fairness", {"input": "s", "group": "g", "prediction": "p", "min_group_size": -1},
     "tasks.t.options.min_group_size", "out of range"),
    ("validate", {"input": "d", "types": {"a": "int"}}, "tasks.t.options.types.a", "wrong value"),
    ("validate", {"input": "d", "ranges": {"a": [5, 1]}}, "tasks.t.options.ranges.a", "wrong value"),
    ("validate", {"input": "d", "max_null_rate": 2}, "tasks.t.options.max_null_rate", "out of range"),
    ("profile", {"input": "d", "method": "psi"}, "tasks.t.options.method", "needs reference_profile"),
    # A stored thing named where a data file goes passed validate and failed at run time as a missing file.
    ("validate", {"input": "dataset:sales@3"}, "tasks.t.options.input", "names a data version"),
    ("drift", {"reference": "baseline:ref", "current": "dataset:sales"}, "tasks.t.options.current",
     "names a data version"),
    ("profile", {"input": "baseline:ref"}, "tasks.t.options.input", "only a drift task's reference"),
    ("fairness", {"input": "model:m@champion", "group": "g", "prediction": "p"}, "tasks.t.options.input",
     "only a drift task's reference"),
]


@pytest.mark.parametrize(("kind", "options", "field", "text"), INVALID)
def test_invalid_option_is_reported_with_its_field(kind: str, options: dict[str, Any], field: str,
                                                   text: str) -> None:
    errors = check(kind, options)
    assert [e.field for e in errors] == [field]
    assert text in errors[0].message
    assert errors[0].file == "p.toml"


def test_unknown_key_gets_did_you_mean() -> None:
    errors = check("drift", {"reference": "r", "current": "c", "treshold": 0.1})
    assert len(errors) == 1
    assert errors[0].field == "tasks.t.options.treshold"
    assert "did you mean 'threshold'" in (errors[0].hint or "")


def test_every_problem_is_reported_at_once() -> None:
    errors = check("drift", {"method": "nope", "extra": 1})
    assert {e.field for e in errors} == {"tasks.t.options.reference", "tasks.t.options.current",
                                         "tasks.t.options.method", "tasks.t.options.extra"}


def test_unknown_kind_is_reported() -> None:
    errors = check("profiel", {})
    assert "did you mean 'profile'" in (errors[0].hint or "")


def test_placeholders_are_accepted_for_any_option() -> None:
    opts = {"reference": "data/{date}/ref.csv", "current": "{cur}", "threshold": "{thr}", "drift_share": "{s}"}
    assert check("drift", opts) == []


def test_coerce_turns_filled_placeholders_into_numbers() -> None:
    out = coerce("drift", {"reference": "r", "current": "c", "threshold": "0.2", "drift_share": "0.3"})
    assert out["threshold"] == 0.2 and out["drift_share"] == 0.3


def test_coerce_rejects_a_filled_placeholder_of_the_wrong_type() -> None:
    with pytest.raises(PipelineError, match="wrong type"):
        coerce("drift", {"reference": "r", "current": "c", "threshold": "high"})


def test_options_must_be_a_table() -> None:
    errors = check("profile", ["input"])
    assert any("must be a table" in e.message for e in errors)


def test_schema_covers_every_kind() -> None:
    # The schema is part of each kind's one declaration: every kind documents its options.
    assert all(kind.options for kind in registered_kinds())
