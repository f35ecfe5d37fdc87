"""The task-kind registry: each kind declared once, every consumer looks it up here.

A :class:`Kind` is a task type a pipeline names with ``kind = "..."``: its
one-line help, its options (name -> what is expected, in documentation
order), the checker of those options (:mod:`.options`) and the runner that
produces the result document (:mod:`.tasks`). The built-in kinds are declared
at the bottom of this module; :func:`register_kind` adds another.

Consumers: pipeline validation and the ``edgeorch profile|drift|fairness``
commands call :func:`check_options`; the task's child process
(``engine/callrunner``) calls :func:`run_task`. An unknown kind is one
:func:`unknown_kind` error that lists the registered kinds, with
did-you-mean.

Light: imports no numpy or numba (the daemon validates pipelines with it);
a runner imports them when it runs.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import field
from typing import Any

from ..errors import EdgeorchError, PipelineError
from ..records import frozen
from ..tomlcheck import TableReader, suggest
from . import options as opt
from . import tasks

# Options every kind accepts (checked by each checker's shared part).
COMMON_OPTIONS = {
    "on_violation": "fail or warn (default fail)",
    "report": "path of an HTML report to write",
}


@frozen
class Kind:
    """One task kind.

    ``check(reader)`` records every problem with the options through the
    :class:`TableReader` (typed getters, ``fail``); keys it never asks for
    are reported as unknown against ``options``. ``run(options, progress)``
    returns the result document (see :mod:`.tasks`) from options already
    checked and coerced; it raises an :class:`EdgeorchError` on bad data.
    ``numbers`` names the options that take a number (``int`` or ``float``):
    a placeholder filled with ``"0.2"`` becomes ``0.2`` before the check.
    ``served``: a kernel server may run it for a command (:mod:`.keepwarm`);
    False for a kind that reads or writes the state file (a privacy ledger),
    which only the command's own process, holding its config, may do.
    """

    name: str
    help: str
    options: Mapping[str, str]
    check: Callable[[TableReader], None]
    run: Callable[[dict[str, Any], Any], dict[str, Any]] = field(repr=False)
    numbers: Mapping[str, type] = field(default_factory=dict)
    served: bool = True


_REGISTRY: dict[str, Kind] = {}


def register_kind(kind: Kind) -> Kind:
    """Add ``kind`` to the registry; a name is declared once (a second declaration is a ValueError)."""
    if kind.name in _REGISTRY:
        raise ValueError(f"task kind {kind.name!r} is already registered")
    _REGISTRY[kind.name] = kind
    return kind


def kind_names() -> tuple[str, ...]:
    """The registered kinds' names, in declaration order."""
    return tuple(_REGISTRY)


def registered_kinds() -> tuple[Kind, ...]:
    """The registered kinds, in declaration order."""
    return tuple(_REGISTRY.values())


def unknown_kind(name: str, *, file: str, field: str) -> PipelineError:
    """The error for a kind that is not registered: lists the registered kinds, with did-you-mean."""
    close = suggest(name, list(_REGISTRY))
    return PipelineError("is not a built-in task kind", file=file, field=field, value=name,
                         expected=f"one of {', '.join(_REGISTRY) or '(none registered)'}",
                         hint=f"did you mean {close!r}?" if close else None)


def get_kind(name: str, *, file: str = "", field: str = "kind") -> Kind:
    """The registered kind ``name``; raises :func:`unknown_kind`'s error when there is none."""
    kind = _REGISTRY.get(name)
    if kind is None:
        raise unknown_kind(name, file=file, field=field)
    return kind


def check_options(kind: str, options: Any, *, file: str, prefix: str,
                  kind_field: str = "kind") -> list[EdgeorchError]:
    """Every problem with the ``options`` of a task of ``kind``, as PipelineErrors (empty: valid).

    ``prefix`` is the dotted path of the options table (``tasks.check.options``),
    ``kind_field`` that of the kind (named by the unknown-kind error). A value
    holding a ``{param}`` placeholder is accepted for any option; it is checked,
    typed, when the task runs (:func:`coerce`).
    """
    try:
        spec = get_kind(kind, file=file, field=kind_field)
    except PipelineError as exc:
        return [exc]
    errors: list[EdgeorchError] = []
    r = TableReader(options, file=file, prefix=prefix, errors=errors, error_cls=PipelineError)
    # A placeholder stands for a value not known until the run: its key is
    # present (a required option is given) but its type and value are checked
    # at run time, so the checker's verdict on that key is set aside.
    placeholders = {r.field(key) for key, value in r.data.items() if opt.has_placeholder(value)}
    found: list[EdgeorchError] = []
    spec.check(TableReader(r.data, file=file, prefix=prefix, errors=found, error_cls=PipelineError))
    errors.extend(e for e in found if e.field not in placeholders)
    r.finish(list(spec.options))
    return errors


def coerce(kind: str, options: dict[str, Any]) -> dict[str, Any]:
    """Options after placeholder substitution, re-checked; raises the first problem.

    Strings that now hold numbers where numbers are expected are converted
    (a placeholder ``"{thr}"`` filled with ``"0.2"`` becomes ``0.2``).
    """
    out = opt.coerce_numbers(options, get_kind(kind).numbers)
    errors = check_options(kind, out, file="<task options>", prefix="options")
    if errors:
        raise errors[0]
    return out


def run_task(kind: str, options: dict[str, Any], *, progress: Any = None) -> dict[str, Any]:
    """Run the task ``kind`` with ``options`` (placeholders already filled): its strict-JSON result document."""
    opts = coerce(kind, options)
    doc = get_kind(kind).run(opts, progress)
    doc["kind"] = kind
    doc["on_violation"] = opts.get("on_violation", "fail")
    return tasks.strict(doc)


# ---------------------------------------------------------------------------
# The built-in kinds: each declared here, once. docs/kernels.md ("Pipeline
# tasks") lists them; a unit test holds the two together.

register_kind(Kind(
    name="profile",
    help="profile the columns of a data file; optionally compare with a saved profile",
    options={
        "input": "path of the data file (CSV, Parquet, .npy/.npz, JSON lines)",
        "columns": "array of column names (default: all)",
        "save": "path where the profile JSON is written",
        "reference_profile": "path of a saved profile to compare the input against",
        "method": "drift method against the reference profile (psi, jensenshannon, hellinger, ks, chisquare)",
        "threshold": "drift threshold of that method",
        "drift_share": "share of drifted columns that makes the dataset drift (0-1, default 0.5)",
        "max_bins": "histogram bins at most (default 64)",
        "sketch_size": "quantile sketch size (default 32768)",
        "ranges": "table of column = [min, max]: the report alerts on values outside (negatives below a 0 minimum)",
        **COMMON_OPTIONS,
    },
    check=opt.check_profile,
    run=tasks.run_profile,
    numbers={"threshold": float, "drift_share": float, "max_bins": int, "sketch_size": int},
))

register_kind(Kind(
    name="drift",
    help="compare current data with a reference, column by column; violation on dataset drift",
    options={
        "reference": "path of the reference data file or saved profile, or \"baseline:NAME[@VERSION]\" (a stored "
                     "baseline) or \"model:NAME[@ALIAS]\" (the training data of the version ALIAS points at)",
        "current": "path of the current data file",
        "columns": "array of column names (default: columns in both files)",
        "method": "one method for all columns (default: chosen per column)",
        "methods": "table of column = method overrides",
        "threshold": "threshold for the method (default per method)",
        "thresholds": "table of column = threshold overrides",
        "drift_share": "share of drifted columns that makes the dataset drift (0-1, default 0.5)",
        "correction": "multiple-testing correction of p-values: bonferroni, bh or none (default bh)",
        **COMMON_OPTIONS,
    },
    check=opt.check_drift,
    run=tasks.run_drift,
    numbers={"threshold": float, "drift_share": float},
))

register_kind(Kind(
    name="fairness",
    help="fairness metrics of binary predictions across groups; violation when a limit is broken",
    options={
        "input": "path of the data file",
        "group": "sensitive column name, or array of names (intersections)",
        "label": "true label column (needed for equalized odds and equal opportunity)",
        "prediction": "predicted label column (binary)",
        "pos_label": "value of the favourable outcome (default 1)",
        "privileged": "privileged group value for disparate impact (default: the group with the highest rate)",
        "metrics": "array of metrics to check (default: all that apply)",
        "thresholds": "table of metric = limit (differences: maximum; ratios: minimum)",
        "min_group_size": "groups smaller than this are flagged and left out (default 30)",
        "weight": "column of sample weights (default: every row weighs 1)",
        **COMMON_OPTIONS,
    },
    check=opt.check_fairness,
    run=tasks.run_fairness,
    numbers={"min_group_size": int},
))

register_kind(Kind(
    name="validate",
    help="schema checks of a data file: required columns, types, ranges, null rates, allowed values",
    options={
        "input": "path of the data file",
        "required_columns": "array of column names that must exist",
        "types": "table of column = integer | float | numeric | boolean | string | categorical | datetime",
        "ranges": "table of column = [min, max] or { min = .., max = .. }",
        "max_null_rate": "number 0-1 for every column, or table of column = number",
        "allowed": "table of column = array of allowed values",
        **COMMON_OPTIONS,
    },
    check=opt.check_validate,
    run=tasks.run_validate,
    numbers={"max_null_rate": float},
))


register_kind(Kind(
    name="explain",
    help="permutation importance of each feature for a model (and SHAP values with the shap extra)",
    options={
        "model": "module:function, module:object (with predict) or a .pkl/.joblib file of the model",
        "input": "path of the data file (features and target)",
        "target": "column of the true values",
        "features": "array of feature columns, in the model's order (default: every column but target)",
        "metric": "accuracy, r2, mse, rmse or mae (default r2)",
        "n_repeats": "shuffles per feature (default 5)",
        "random_state": "seed of the shuffles (default 0)",
        "confidence": "level of the importances' confidence intervals (default 0.95)",
        "n_jobs": "features explained at once (default: the task's cores)",
        "shap": "also compute mean |SHAP| per feature (needs the shap extra; default false)",
        "shap_samples": "rows explained by SHAP (default 100)",
        **COMMON_OPTIONS,
    },
    check=opt.check_explain,
    run=tasks.run_explain,
    numbers={"n_repeats": int, "random_state": int, "confidence": float, "n_jobs": int, "shap_samples": int},
))


register_kind(Kind(
    name="dp_profile",
    help="a differentially private profile of a data file, charged to the dataset's privacy budget",
    options={
        "input": "path of the data file",
        "dataset": "name of the dataset whose privacy budget pays (default: the input's absolute path)",
        "epsilon": "privacy loss this release spends (a number > 0)",
        "budget": "the dataset's total epsilon (declares or changes it in the ledger)",
        "delta": "delta this release spends (default 0: pure epsilon-DP; > 0: Gaussian noise, (epsilon, delta)-DP)",
        "budget_delta": "the dataset's total delta, declared with budget (default: the delta declared before, 0 "
                        "for a new dataset)",
        "bounds": "table of column = [lower, upper]: the numeric columns released",
        "categories": "table of column = array of values: the categorical columns released",
        "columns": "array of column names (default: all)",
        "contributions": "rows one individual contributes at most (default 1)",
        "bins": "histogram bins per numeric column (default 20)",
        **COMMON_OPTIONS,
    },
    check=opt.check_dp_profile,
    run=tasks.run_dp_profile,
    numbers={"epsilon": float, "budget": float, "delta": float, "budget_delta": float, "contributions": int,
             "bins": int},
    served=False,  # charges the ledger in the state file
))


def _gate_kind() -> Kind:
    # The gate language is the models' (edgeorch/models/gates.py): one parser for gates and gate tasks.
    from ..models import gatetask

    return Kind(
        name="gate",
        help="a test as a task: conditions over a metrics file; violation (the run fails, with the reason) when one fails",
        options={**gatetask.OPTIONS, **COMMON_OPTIONS},
        check=gatetask.check_gate,
        run=gatetask.run_gate,
    )


register_kind(_gate_kind())
