"""Option checkers of the built-in task kinds, and the rules they share.

Pure and light: imports no numpy or numba, because the pipeline loader (and
the daemon) validate pipeline files with it. Each ``check_<kind>`` is named
by that kind's one declaration in :mod:`edgeorch.kernels.kinds`, which also
holds the generic part (unknown kinds, placeholders, unknown keys). The
schema is documented in docs/kernels.md ("Pipeline tasks").

A string value may hold ``{param}`` placeholders that the engine fills in
before the task runs; such a value is accepted for any option (a number, a
list) and checked again, typed, when the task runs (:func:`coerce_numbers`).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

from ..tomlcheck import TableReader, suggest

DRIFT_METHODS = ("ks", "wasserstein", "psi", "jensenshannon", "hellinger", "chisquare", "z")
CORRECTIONS = ("bonferroni", "bh", "none")
ON_VIOLATION = ("fail", "warn")
VALIDATE_TYPES = ("integer", "float", "numeric", "boolean", "string", "categorical", "datetime")
FAIRNESS_METRICS = (
    "demographic_parity_difference",
    "demographic_parity_ratio",
    "equalized_odds_difference",
    "equalized_odds_ratio",
    "equal_opportunity_difference",
    "equal_opportunity_ratio",
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
    "equal_opportunity_difference": 0.1,
    "equal_opportunity_ratio": 0.8,
    "disparate_impact": 0.8,
}

_PLACEHOLDER = re.compile(r"\{[A-Za-z_][A-Za-z0-9_]*\}")


def has_placeholder(value: Any) -> bool:
    """Whether ``value`` is a string holding a ``{param}`` placeholder."""
    return isinstance(value, str) and bool(_PLACEHOLDER.search(value))


def _data_file(r: TableReader, key: str, *, required: bool = False) -> str | None:
    """A data file option (``input``, ``current``, ``reference_profile``): a path, placeholders allowed.

    A value naming one of edgeorch's stored things (``dataset:sales@3``, ``baseline:...``, ``model:...``) is
    refused here, naming what works instead: the task would read it as a file name and fail when it runs.
    """
    value = r.str(key, required=required)
    if isinstance(value, str) and not has_placeholder(value):
        scheme, sep, _ = value.partition(":")
        if sep and scheme == "dataset":
            r.fail(key, "names a data version, which a kind task cannot read by name yet", value=value,
                   expected="a data file's path: restore the version first (edgeorch datasets restore NAME@V "
                   "FOLDER) and name the file in it")
        elif sep and scheme in ("baseline", "model"):
            r.fail(key, f"is a {scheme}: reference, which only a drift task's reference option takes", value=value,
                   expected="a data file's path")
    return value


def _common(r: TableReader) -> None:
    r.choice("on_violation", ON_VIOLATION)
    r.str("report")


def _share(r: TableReader, key: str) -> None:
    """A drift share: above 0 (at 0 a dataset with no column drifted "drifted") and at most 1."""
    v = r.number(key)
    if v is not None and not 0.0 < v <= 1.0:
        r.fail(key, "is out of range", value=v, expected="a share above 0 and at most 1")


def _column_table(r: TableReader, key: str, check: Any, expected: str) -> None:
    table = r.table(key)
    if not table:
        return
    for col, val in table.items():
        if not has_placeholder(val) and not check(val):
            r.fail(f"{key}.{col}", "has a wrong value", value=val, expected=expected)


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def check_profile(r: TableReader) -> None:
    """The options of a ``profile`` task (see its declaration in :mod:`.kinds`)."""
    _data_file(r, "input", required=True)
    r.str_list("columns")
    r.str("save")
    _data_file(r, "reference_profile")
    method = r.choice("method", ("psi", "jensenshannon", "hellinger", "ks", "chisquare"))
    r.number("threshold", minimum=0.0)
    _share(r, "drift_share")
    r.int("max_bins", minimum=2, maximum=4096)
    r.int("sketch_size", minimum=16, maximum=10_000_000)
    _column_table(r, "ranges", _valid_range, "[min, max] with min <= max, or { min = .., max = .. }")
    if method is not None and not r.has("reference_profile"):
        r.fail("method", "needs reference_profile", expected="reference_profile set as well")
    _common(r)


def check_drift(r: TableReader) -> None:
    """The options of a ``drift`` task (see its declaration in :mod:`.kinds`)."""
    ref = r.str("reference", required=True)
    if isinstance(ref, str) and not has_placeholder(ref):
        from ..errors import DataError
        from ..monitor.baselines import parse_reference

        try:
            parse_reference(ref)
        except DataError as exc:
            r.fail("reference", exc.message, value=ref, expected=exc.expected)
    _data_file(r, "current", required=True)
    r.str_list("columns")
    method = r.choice("method", DRIFT_METHODS)
    _column_table(r, "methods", lambda v: v in DRIFT_METHODS, f"one of {', '.join(DRIFT_METHODS)}")
    threshold = r.number("threshold", minimum=0.0)
    if method is not None and isinstance(threshold, (int, float)):
        from ..errors import UsageError
        from .drift import check_threshold

        try:
            check_threshold(method, float(threshold))
        except UsageError as exc:
            r.fail("threshold", exc.message, value=threshold, expected=exc.expected)
    _column_table(r, "thresholds", lambda v: _is_number(v) and v >= 0, "a number >= 0")
    _share(r, "drift_share")
    r.choice("correction", CORRECTIONS)
    _common(r)


def check_fairness(r: TableReader) -> None:
    """The options of a ``fairness`` task (see its declaration in :mod:`.kinds`)."""
    _data_file(r, "input", required=True)
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
    if metrics and any(m.startswith(("equalized_odds", "equal_opportunity")) for m in metrics) \
            and not r.has("label"):
        r.fail("label", "is required for equalized odds and equal opportunity", expected="the true label column")
    r.str("weight")
    _common(r)


EXPLAIN_METRICS = ("accuracy", "r2", "mse", "rmse", "mae")


def check_explain(r: TableReader) -> None:
    """The options of an ``explain`` task (see its declaration in :mod:`.kinds`)."""
    model = r.str("model", required=True)
    if isinstance(model, str) and not has_placeholder(model) and ":" not in model \
            and not model.endswith((".pkl", ".pickle", ".joblib")):
        r.fail("model", "is not a model reference", value=model,
               expected="module:function, module:object (with predict) or a .pkl/.pickle/.joblib file")
    _data_file(r, "input", required=True)
    r.str("target", required=True)
    features = r.str_list("features")
    if features is not None and not features:
        r.fail("features", "is empty", expected="at least one feature column (or leave it out: all but target)")
    r.choice("metric", EXPLAIN_METRICS)
    r.int("n_repeats", minimum=1, maximum=10_000)
    r.int("random_state", minimum=0)
    c = r.number("confidence")
    if c is not None and not 0.0 < c < 1.0:
        r.fail("confidence", "is out of range", value=c, expected="a number strictly between 0 and 1")
    r.int("n_jobs", minimum=1)
    r.bool("shap")
    r.int("shap_samples", minimum=1, maximum=100_000)
    _common(r)


def check_dp_profile(r: TableReader) -> None:
    """The options of a ``dp_profile`` task (see its declaration in :mod:`.kinds`)."""
    _data_file(r, "input", required=True)
    r.str("dataset")
    eps = r.raw("epsilon")
    if eps is None:
        r.fail("epsilon", "is required", expected="the privacy loss this release may spend, a number > 0")
    elif not has_placeholder(eps) and not (_is_number(eps) and 0 < eps < math.inf):  # inf: exit 1, not usage
        r.fail("epsilon", "must be a finite number > 0", value=eps)
    budget = r.raw("budget")
    if budget is not None and not has_placeholder(budget) and not (_is_number(budget) and 0 < budget < math.inf):
        r.fail("budget", "must be a finite number > 0", value=budget, expected="the dataset's total epsilon")
    for key in ("delta", "budget_delta"):  # the one rule for a delta's range: the ledger's and the kernel's
        d = r.raw(key)
        if d is not None and not has_placeholder(d) and not (_is_number(d) and 0 <= d < 1):
            r.fail(key, "must be a number >= 0 and < 1", value=d,
                   expected="0 for pure epsilon-DP, or a small probability such as 1e-6")
    if r.raw("budget_delta") is not None and budget is None:
        r.fail("budget_delta", "needs budget as well", expected="budget = the dataset's total epsilon")
    _column_table(r, "bounds", lambda v: isinstance(v, list) and len(v) == 2 and all(_is_number(x) for x in v)
                  and v[0] < v[1], "[lower, upper] with lower < upper")
    _column_table(r, "categories", lambda v: isinstance(v, list) and bool(v)
                  and all(isinstance(x, (str, int, bool)) for x in v), "a non-empty array of values")
    r.str_list("columns")
    r.int("contributions", minimum=1)
    r.int("bins", minimum=1, maximum=1000)
    _common(r)


def _valid_range(v: Any) -> bool:
    if isinstance(v, list):
        return len(v) == 2 and all(_is_number(x) for x in v) and v[0] <= v[1]
    if isinstance(v, dict):
        return bool(v) and set(v) <= {"min", "max"} and all(_is_number(x) for x in v.values()) and (
            v.get("min", -float("inf")) <= v.get("max", float("inf")))
    return False


def check_validate(r: TableReader) -> None:
    """The options of a ``validate`` task (see its declaration in :mod:`.kinds`)."""
    _data_file(r, "input", required=True)
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


def coerce_numbers(options: dict[str, Any], numbers: Mapping[str, type]) -> dict[str, Any]:
    """``options`` with the strings of the ``numbers`` options (name -> int or float) that hold numbers converted.

    A placeholder ``"{thr}"`` filled with ``"0.2"`` becomes ``0.2``; a string
    that is not a number is left as it is for the kind's checker to reject.
    """
    out: dict[str, Any] = {}
    for key, value in options.items():
        if isinstance(value, str) and key in numbers:
            try:
                value = numbers[key](value)
            except ValueError:
                pass
        out[key] = value
    return out
