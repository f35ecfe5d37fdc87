"""Options of the built-in task kinds ``profile``, ``drift``, ``fairness``, ``validate``.

Pure and light: imports no numpy or numba, because the pipeline loader (and
the daemon) validate pipeline files with it. The schema is documented in
docs/kernels.md ("Pipeline tasks"); :func:`check_options` reports every
problem at once, with did-you-mean for unknown keys.

A string value may hold ``{param}`` placeholders that the engine fills in
before the task runs; such a value is accepted for any option (a number, a
list) and checked again, typed, when the task runs (:func:`coerce`).
"""

from __future__ import annotations

import re
from typing import Any

from ..errors import EdgeorchError, PipelineError
from ..tomlcheck import TableReader, suggest

KINDS = ("profile", "drift", "fairness", "validate")

DRIFT_METHODS = ("ks", "wasserstein", "psi", "jensenshannon", "hellinger", "chisquare", "z")
CORRECTIONS = ("bonferroni", "bh", "none")
ON_VIOLATION = ("fail", "warn")
VALIDATE_TYPES = ("integer", "float", "numeric", "boolean", "string", "categorical")
FAIRNESS_METRICS = (
    "demographic_parity_difference",
    "demographic_parity_ratio",
    "equalized_odds_difference",
    "equalized_odds_ratio",
    "disparate_impact",
)
# Default limits: a difference above, or a ratio below, is a violation.
# 0.8 for ratios is the four-fifths rule (EEOC); 0.1 for differences is
# Fairlearn's documentation's usual example.
FAIRNESS_DEFAULTS = {
    "demographic_parity_difference": 0.1,
    "demographic_parity_ratio": 0.8,
    "equalized_odds_difference": 0.1,
    "equalized_odds_ratio": 0.8,
    "disparate_impact": 0.8,
}

_PLACEHOLDER = re.compile(r"\{[A-Za-z_][A-Za-z0-9_]*\}")

# key -> expected, per kind (the order is the documentation's order)
SCHEMA: dict[str, dict[str, str]] = {
    "profile": {
        "input": "path of the data file (CSV, Parquet, .npy/.npz, JSON lines)",
        "columns": "array of column names (default: all)",
        "save": "path where the profile JSON is written",
        "reference_profile": "path of a saved profile to compare the input against",
        "method": "drift method against the reference profile (psi, jensenshannon, hellinger, ks, chisquare)",
        "threshold": "drift threshold of that method",
        "drift_share": "share of drifted columns that makes the dataset drift (0-1, default 0.5)",
        "max_bins": "histogram bins at most (default 64)",
        "sketch_size": "quantile sketch size (default 32768)",
        "on_violation": "fail or warn (default fail)",
        "report": "path of an HTML report to write",
    },
    "drift": {
        "reference": "path of the reference data file",
        "current": "path of the current data file",
        "columns": "array of column names (default: columns in both files)",
        "method": "one method for all columns (default: chosen per column)",
        "methods": "table of column = method overrides",
        "threshold": "threshold for the method (default per method)",
        "thresholds": "table of column = threshold overrides",
        "drift_share": "share of drifted columns that makes the dataset drift (0-1, default 0.5)",
        "correction": "multiple-testing correction of p-values: bonferroni, bh or none (default bh)",
        "on_violation": "fail or warn (default fail)",
        "report": "path of an HTML report to write",
    },
    "fairness": {
        "input": "path of the data file",
        "group": "sensitive column name, or array of names (intersections)",
        "label": "true label column (needed for equalized odds)",
        "prediction": "predicted label column (binary)",
        "pos_label": "value of the favourable outcome (default 1)",
        "privileged": "privileged group value for disparate impact (default: the group with the highest rate)",
        "metrics": "array of metrics to check (default: all that apply)",
        "thresholds": "table of metric = limit (differences: maximum; ratios: minimum)",
        "min_group_size": "groups smaller than this are flagged and left out (default 30)",
        "on_violation": "fail or warn (default fail)",
        "report": "path of an HTML report to write",
    },
    "validate": {
        "input": "path of the data file",
        "required_columns": "array of column names that must exist",
        "types": "table of column = integer | float | numeric | boolean | string | categorical",
        "ranges": "table of column = [min, max] or { min = .., max = .. }",
        "max_null_rate": "number 0-1 for every column, or table of column = number",
        "allowed": "table of column = array of allowed values",
        "on_violation": "fail or warn (default fail)",
        "report": "path of an HTML report to write",
    },
}


def has_placeholder(value: Any) -> bool:
    return isinstance(value, str) and bool(_PLACEHOLDER.search(value))


def check_options(kind: str, options: dict[str, Any], *, file: str, prefix: str) -> list[EdgeorchError]:
    """Every problem with ``options`` of a task of ``kind``, as PipelineErrors.

    ``prefix`` is the dotted path of the options table (``tasks.check.options``).
    An empty list means the options are valid (up to placeholders).
    """
    errors: list[EdgeorchError] = []
    if kind not in KINDS:
        close = suggest(kind, list(KINDS))
        errors.append(PipelineError("unknown task kind", file=file, field=prefix, value=kind,
                                    expected=f"one of {', '.join(KINDS)}",
                                    hint=f"did you mean {close!r}?" if close else None))
        return errors
    r = TableReader(options, file=file, prefix=prefix, errors=errors, error_cls=PipelineError)
    # Placeholders stand for values not known until the run: skip their type check.
    for key, value in list(r.data.items()):
        if has_placeholder(value):
            r.seen.add(key)
    # Free-text options (paths, column names) keep their placeholder: any
    # string is valid there, and required ones must still be present.
    data = {k: v for k, v in r.data.items() if not has_placeholder(v) or k in _FREE_TEXT}
    g = TableReader(data, file=file, prefix=prefix, errors=errors, error_cls=PipelineError)
    _CHECKS[kind](g, kind)
    g.seen |= r.seen
    g.data = r.data
    g.finish(list(SCHEMA[kind]))
    return errors


def _common(r: TableReader) -> None:
    r.choice("on_violation", ON_VIOLATION)
    r.str("report")


def _share(r: TableReader, key: str) -> None:
    v = r.number(key)
    if v is not None and not 0.0 <= v <= 1.0:
        r.fail(key, "is out of range", value=v, expected="a number from 0 to 1")


def _column_table(r: TableReader, key: str, check: Any, expected: str) -> None:
    table = r.table(key)
    if not table:
        return
    for col, val in table.items():
        if not has_placeholder(val) and not check(val):
            r.fail(f"{key}.{col}", "has a wrong value", value=val, expected=expected)


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _check_profile(r: TableReader, kind: str) -> None:
    r.str("input", required=True)
    r.str_list("columns")
    r.str("save")
    r.str("reference_profile")
    method = r.choice("method", ("psi", "jensenshannon", "hellinger", "ks", "chisquare"))
    r.number("threshold", minimum=0.0)
    _share(r, "drift_share")
    r.int("max_bins", minimum=2, maximum=4096)
    r.int("sketch_size", minimum=16, maximum=10_000_000)
    if method is not None and not r.has("reference_profile"):
        r.fail("method", "needs reference_profile", expected="reference_profile set as well")
    _common(r)


def _check_drift(r: TableReader, kind: str) -> None:
    r.str("reference", required=True)
    r.str("current", required=True)
    r.str_list("columns")
    r.choice("method", DRIFT_METHODS)
    _column_table(r, "methods", lambda v: v in DRIFT_METHODS, f"one of {', '.join(DRIFT_METHODS)}")
    r.number("threshold", minimum=0.0)
    _column_table(r, "thresholds", lambda v: _is_number(v) and v >= 0, "a number >= 0")
    _share(r, "drift_share")
    r.choice("correction", CORRECTIONS)
    _common(r)


def _check_fairness(r: TableReader, kind: str) -> None:
    r.str("input", required=True)
    group = r.raw("group")
    if group is None:
        r.fail("group", "is required", expected="a column name or an array of column names")
    elif not (isinstance(group, str) and group) and not (
            isinstance(group, list) and group and all(isinstance(g, str) for g in group)):
        r.fail("group", "has the wrong type", value=group, expected="a column name or an array of column names")
    r.str("label")
    r.str("prediction", required=True)
    pos = r.raw("pos_label")
    if pos is not None and not isinstance(pos, (str, int, bool)):
        r.fail("pos_label", "has the wrong type", value=pos, expected="a string, integer or boolean")
    priv = r.raw("privileged")
    if priv is not None and not isinstance(priv, (str, int, bool, list)):
        r.fail("privileged", "has the wrong type", value=priv, expected="a group value")
    metrics = r.str_list("metrics")
    for m in metrics or []:
        if m not in FAIRNESS_METRICS:
            close = suggest(m, list(FAIRNESS_METRICS))
            r.fail("metrics", "unknown metric", value=m, expected=f"some of {', '.join(FAIRNESS_METRICS)}",
                   hint=f"did you mean {close!r}?" if close else None)
    th = r.table("thresholds")
    for m, v in (th or {}).items():
        if m not in FAIRNESS_METRICS:
            close = suggest(m, list(FAIRNESS_METRICS))
            r.fail(f"thresholds.{m}", "unknown metric", expected=f"one of {', '.join(FAIRNESS_METRICS)}",
                   hint=f"did you mean {close!r}?" if close else None)
        elif not has_placeholder(v) and not (_is_number(v) and v >= 0):
            r.fail(f"thresholds.{m}", "has a wrong value", value=v, expected="a number >= 0")
    r.int("min_group_size", minimum=0)
    if metrics and any(m.startswith("equalized_odds") for m in metrics) and not r.has("label"):
        r.fail("label", "is required for equalized odds", expected="the true label column")
    _common(r)


def _valid_range(v: Any) -> bool:
    if isinstance(v, list):
        return len(v) == 2 and all(_is_number(x) for x in v) and v[0] <= v[1]
    if isinstance(v, dict):
        return bool(v) and set(v) <= {"min", "max"} and all(_is_number(x) for x in v.values()) and (
            v.get("min", -float("inf")) <= v.get("max", float("inf")))
    return False


def _check_validate(r: TableReader, kind: str) -> None:
    r.str("input", required=True)
    r.str_list("required_columns")
    _column_table(r, "types", lambda v: v in VALIDATE_TYPES, f"one of {', '.join(VALIDATE_TYPES)}")
    _column_table(r, "ranges", _valid_range, "[min, max] with min <= max, or { min = .., max = .. }")
    mnr = r.raw("max_null_rate")
    if isinstance(mnr, dict):
        _column_table(r, "max_null_rate", lambda v: _is_number(v) and 0 <= v <= 1, "a number from 0 to 1")
    elif mnr is not None:
        _share(r, "max_null_rate")
    _column_table(r, "allowed", lambda v: isinstance(v, list) and all(isinstance(x, (str, int, bool)) for x in v),
                  "an array of values")
    _common(r)


_CHECKS = {"profile": _check_profile, "drift": _check_drift, "fairness": _check_fairness, "validate": _check_validate}


def coerce(kind: str, options: dict[str, Any]) -> dict[str, Any]:
    """Options after placeholder substitution, re-checked; raises the first problem.

    Strings that now hold numbers where numbers are expected are converted
    (a placeholder ``"{thr}"`` filled with ``"0.2"`` becomes ``0.2``).
    """
    out: dict[str, Any] = {}
    for key, value in options.items():
        if isinstance(value, str) and key in _NUMERIC_KEYS:
            try:
                value = int(value) if key in _INT_KEYS else float(value)
            except ValueError:
                pass
        out[key] = value
    errors = check_options(kind, out, file="<task options>", prefix="options")
    if errors:
        raise errors[0]
    return out


_FREE_TEXT = {"input", "reference", "current", "save", "reference_profile", "report", "label", "prediction", "group"}
_INT_KEYS = {"max_bins", "sketch_size", "min_group_size"}
_NUMERIC_KEYS = _INT_KEYS | {"threshold", "drift_share", "max_null_rate"}
