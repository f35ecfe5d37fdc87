"""Group fairness of binary predictions, with Fairlearn's and AIF360's definitions.

The functions named as Fairlearn's (``demographic_parity_difference`` and
friends) return the same values as ``fairlearn.metrics`` for the same
arguments: groups are the distinct values of the sensitive feature, or the
combinations present of several sensitive features (intersections);
``between_groups`` compares the extreme groups, ``to_overall`` each group with
the whole data. Conventions carried over from Fairlearn (and scikit-learn):

- selection rate = share of ``y_pred == pos_label``;
- a group without actual positives has true positive rate 0, one without
  actual negatives false positive rate 0 (``confusion_matrix(normalize='true')``);
- a ratio whose denominator is 0 is NaN.

A missing group value (None/NaN) forms its own group, ``None``.
``min_group_size`` (0 in the Fairlearn-compatible functions, so that they
agree; 30 in :func:`fairness_report` and the pipeline task) leaves groups
smaller than it out of the comparison; :func:`fairness_report` lists them
with the verdict ``small_group``.

``disparate_impact`` is AIF360's: selection rate of the unprivileged rows
over that of the privileged rows. Without a privileged group it is the
lowest group rate over the highest (= demographic parity ratio). The
four-fifths rule holds when it is at least 0.8.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import ColumnRoleError, DataError
from .columns import series_name, unmasked
from .results import ResultView, Table, doc_tables, strict

FOUR_FIFTHS = 0.8


@dataclass
class Groups:
    """Group membership: ``codes[i]`` is the group of row ``i``; ``keys[g]`` its value(s)."""

    codes: np.ndarray
    keys: list[Any]
    names: list[str]


def _values(x: Any, name: str) -> np.ndarray:
    """One column of values as a 1-D array; masked arrays and 2-D data are refused.

    A column vector ``(n, 1)`` is one column (as scikit-learn and Fairlearn
    read it). Any other 2-D shape is refused: Fairlearn reads ``(n, k)``
    sensitive features as k columns, and flattening would mix them. Pass
    several sensitive columns as a list or a mapping instead.
    """
    try:
        import pyarrow as pa

        if isinstance(x, (pa.Array, pa.ChunkedArray)):
            x = x.to_numpy(zero_copy_only=False)
    except ImportError:  # pragma: no cover
        pass
    arr = unmasked(x, name)
    if arr.ndim == 2 and arr.shape[1] == 1:
        arr = arr[:, 0]
    if arr.ndim != 1:
        raise DataError("must be one-dimensional", field=name, value=f"shape {arr.shape}",
                        expected="a 1-D array or an (n, 1) column; several sensitive columns as a list or mapping")
    return arr


def _key(v: Any) -> Any:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return None
    return v.item() if isinstance(v, np.generic) else v


def make_groups(sensitive_features: Any, n: int) -> Groups:
    """Groups from one sensitive column or several (a mapping name -> values, a DataFrame, or a list of
    columns). A single named Series is named by its name, an unnamed column ``sensitive_feature_0``."""
    sf = sensitive_features
    if not isinstance(sf, (dict, np.ndarray)) and hasattr(sf, "columns") and hasattr(sf, "__getitem__"):
        sensitive_features = {c: sf[c] for c in sf.columns}  # a DataFrame (pandas, polars): one column each
    if isinstance(sensitive_features, dict):
        cols = [(str(k), _values(v, str(k))) for k, v in sensitive_features.items()]
    elif isinstance(sensitive_features, (list, tuple)) and sensitive_features and all(
            isinstance(c, (list, tuple, np.ndarray)) or hasattr(c, "to_numpy") for c in sensitive_features) and \
            len(sensitive_features) != n:
        cols = [(f"sf{i}", _values(c, f"sf{i}")) for i, c in enumerate(sensitive_features)]
    else:
        cols = [(series_name(sensitive_features) or "sensitive_feature_0",
                 _values(sensitive_features, "sensitive_features"))]
    codes = np.zeros(n, dtype=np.int64)
    uniques: list[list[Any]] = []
    for name, col in cols:
        if len(col) != n:
            raise DataError("sensitive feature length differs from the predictions", field=name,
                            value=len(col), expected=str(n))
        keys = [_key(v) for v in col.tolist()]
        # Sorted as Fairlearn (pandas groupby) sorts: by value, None last.
        uniq = sorted(set(keys), key=lambda v: (v is None, str(type(v)), v if v is not None else 0))
        pos = {k: i for i, k in enumerate(uniq)}
        codes = codes * len(uniq) + np.fromiter((pos[k] for k in keys), dtype=np.int64, count=n)
        uniques.append(uniq)
    present, inverse = np.unique(codes, return_inverse=True)
    keys_out: list[Any] = []
    for code in present.tolist():  # decode each combination present into its values
        parts = []
        for uniq in reversed(uniques):
            parts.append(uniq[code % len(uniq)])
            code //= len(uniq)
        parts.reverse()
        keys_out.append(parts[0] if len(parts) == 1 else tuple(parts))
    return Groups(inverse.astype(np.int64), keys_out, [c[0] for c in cols])


@dataclass
class GroupRates:
    """Per-group counts and (weighted) sums, arrays indexed like ``groups.keys``.

    ``size`` counts rows (it decides ``min_group_size``); ``weight`` sums the
    sample weights (equal to ``size`` without weights); ``selected``,
    ``positives``, ``true_pos`` and ``false_pos`` are weighted sums, so
    every rate is a weighted share, as Fairlearn's ``sample_weight``.
    """

    groups: Groups
    size: np.ndarray
    weight: np.ndarray
    selected: np.ndarray
    positives: np.ndarray
    true_pos: np.ndarray
    false_pos: np.ndarray

    @property
    def negatives(self) -> np.ndarray:
        return self.weight - self.positives

    def selection_rate(self) -> np.ndarray:
        """Weighted share of ``y_pred == pos_label`` (NaN for a group whose weights are all 0)."""
        with np.errstate(invalid="ignore", divide="ignore"):
            return self.selected / self.weight

    def tpr(self) -> np.ndarray:
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(self.positives > 0, self.true_pos / np.where(self.positives > 0, self.positives, 1), 0.0)

    def fpr(self) -> np.ndarray:
        neg = self.negatives
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(neg > 0, self.false_pos / np.where(neg > 0, neg, 1), 0.0)

    def overall(self) -> dict[str, float]:
        w = self.weight.sum()
        pos, neg = self.positives.sum(), self.negatives.sum()
        return {"selection_rate": float(self.selected.sum() / w) if w else math.nan,
                "tpr": float(self.true_pos.sum() / pos) if pos else 0.0,
                "fpr": float(self.false_pos.sum() / neg) if neg else 0.0}

    def subset(self, keep: np.ndarray) -> GroupRates:
        g = Groups(self.groups.codes, [k for k, m in zip(self.groups.keys, keep) if m], self.groups.names)
        return GroupRates(g, self.size[keep], self.weight[keep], self.selected[keep], self.positives[keep],
                          self.true_pos[keep], self.false_pos[keep])


def _sample_weight(sample_weight: Any, n: int) -> np.ndarray | None:
    """Sample weights as float64 (None: every row weighs 1); DataError unless finite, >= 0 and one per row."""
    if sample_weight is None:
        return None
    w = np.atleast_1d(_values(sample_weight, "sample_weight"))
    try:
        w = w.astype(np.float64)
    except (TypeError, ValueError):
        raise DataError("sample weights must be numbers", field="sample_weight", value=str(w.dtype)) from None
    if len(w) != n:
        raise DataError("sample_weight differs in length from the predictions", field="sample_weight",
                        value=len(w), expected=f"{n} weights, one per row")
    bad = ~np.isfinite(w) | (w < 0)
    if bad.any():
        raise DataError("sample weights must be finite and non-negative", field="sample_weight",
                        value=float(w[np.argmax(bad)]), expected="a weight >= 0 per row")
    with np.errstate(over="ignore"):
        overflows = not np.isfinite(w.sum())
    if overflows:  # weights near 1e308: their sums were inf, the rates nan or 0 (and a warning on stderr); every
        w = w / w.max()  # rate is a ratio of weighted sums, so the same weights scaled give the same rates
    return w


def group_rates(y_true: Any, y_pred: Any, sensitive_features: Any, pos_label: Any = 1,
                need_truth: bool = True, sample_weight: Any = None) -> GroupRates:
    """Count per group in one pass (bincount); raises DataError for empty or mismatched input."""
    yp = _values(y_pred, "y_pred")
    n = len(yp)
    if n == 0:
        raise DataError("no rows to measure fairness on", field="y_pred", expected="at least one prediction")
    yt = _values(y_true, "y_true") if y_true is not None else None
    if yt is not None and len(yt) != n:
        raise DataError("y_true and y_pred differ in length", field="y_true", value=len(yt), expected=str(n))
    if need_truth and yt is None:
        raise DataError("true labels are needed for equalized odds", field="y_true")
    w = _sample_weight(sample_weight, n)
    groups = make_groups(sensitive_features, n)
    k = len(groups.keys)
    sel = (yp == pos_label)
    size: np.ndarray = np.bincount(groups.codes, minlength=k).astype(np.float64)
    weight: np.ndarray = size if w is None else np.bincount(groups.codes, weights=w, minlength=k)
    ones = 1.0 if w is None else w
    selected = np.bincount(groups.codes, weights=sel * ones, minlength=k)
    positives: np.ndarray
    true_pos: np.ndarray
    false_pos: np.ndarray
    if yt is not None:
        act = (yt == pos_label)
        positives = np.bincount(groups.codes, weights=act * ones, minlength=k)
        true_pos = np.bincount(groups.codes, weights=(act & sel) * ones, minlength=k)
        false_pos = np.bincount(groups.codes, weights=(~act & sel) * ones, minlength=k)
    else:
        positives = true_pos = false_pos = np.zeros(k)
    return GroupRates(groups, size, weight, selected, positives, true_pos, false_pos)


def _drop_small(r: GroupRates, min_group_size: int) -> GroupRates:
    if min_group_size <= 0:
        return r
    keep = r.size >= min_group_size
    if not keep.any():
        raise DataError("every group is smaller than min_group_size", value=int(r.size.max()),
                        expected=f"a group of at least {min_group_size} rows")
    return r.subset(keep)


def _difference(values: np.ndarray, overall: float, method: str) -> float:
    if method == "between_groups":
        return float(values.max() - values.min())
    if method == "to_overall":
        return float(np.abs(values - overall).max())
    raise DataError("unknown method", value=method, expected="between_groups or to_overall")


def _ratio(values: np.ndarray, overall: float, method: str) -> float:
    with np.errstate(invalid="ignore", divide="ignore"):
        if method == "between_groups":
            hi = values.max()
            return float(values.min() / hi) if hi != 0 else math.nan
        if method == "to_overall":
            if overall == 0:
                return math.nan
            r = values / overall
            r = np.where(r > 1, 1 / r, r)
            return float(r.min())
    raise DataError("unknown method", value=method, expected="between_groups or to_overall")


# ---------------------------------------------------------------------------
# Fairlearn-compatible functions


def selection_rate(y_true: Any, y_pred: Any, *, pos_label: Any = 1, sample_weight: Any = None) -> float:
    """The (weighted) share of ``y_pred == pos_label``: Fairlearn's ``selection_rate`` (``y_true`` is ignored).

    A scalar counts as one prediction. Empty predictions raise DataError (a
    ValueError) with Fairlearn's text; weights must be finite and >= 0 (NaN
    when they sum to 0).
    """
    yp = np.atleast_1d(unmasked(y_pred, "y_pred"))
    if yp.ndim == 2 and yp.shape[1] == 1:
        yp = yp[:, 0]
    if yp.size == 0:
        raise DataError("Empty y_pred passed to selection_rate function.")
    if yp.ndim != 1:
        raise DataError("must be one-dimensional", field="y_pred", value=f"shape {yp.shape}",
                        expected="a 1-D array or an (n, 1) column")
    selected = (yp == pos_label).astype(np.float64)
    w = _sample_weight(sample_weight, len(yp))
    if w is None:
        return float(selected.sum() / len(yp))
    with np.errstate(invalid="ignore", divide="ignore"):
        return float(np.dot(selected, w) / w.sum())


def selection_rates(y_pred: Any, sensitive_features: Any, pos_label: Any = 1, *,
                    sample_weight: Any = None) -> dict[Any, float]:
    """Selection rate per group: ``{group: (weighted) share of y_pred == pos_label}``."""
    r = group_rates(None, y_pred, sensitive_features, pos_label, need_truth=False, sample_weight=sample_weight)
    return dict(zip(r.groups.keys, (float(v) for v in r.selection_rate())))


def _rates(y_true: Any, y_pred: Any, sensitive_features: Any, pos_label: Any, min_group_size: int,
           sample_weight: Any, truth: bool) -> GroupRates:
    if truth:
        _check_binary(y_true, "y_true")
        _check_binary(y_pred, "y_pred")
    r = group_rates(y_true, y_pred, sensitive_features, pos_label, need_truth=truth, sample_weight=sample_weight)
    return _drop_small(r, min_group_size)


def demographic_parity_difference(y_true: Any, y_pred: Any, *, sensitive_features: Any,
                                  method: str = "between_groups", sample_weight: Any = None, pos_label: Any = 1,
                                  min_group_size: int = 0) -> float:
    """Largest minus smallest group selection rate (or largest gap to the overall rate)."""
    r = _rates(y_true, y_pred, sensitive_features, pos_label, min_group_size, sample_weight, truth=False)
    return metric_value("demographic_parity_difference", r, method)


def demographic_parity_ratio(y_true: Any, y_pred: Any, *, sensitive_features: Any, method: str = "between_groups",
                             sample_weight: Any = None, pos_label: Any = 1, min_group_size: int = 0) -> float:
    """Smallest over largest group selection rate (NaN when every rate is 0)."""
    r = _rates(y_true, y_pred, sensitive_features, pos_label, min_group_size, sample_weight, truth=False)
    return metric_value("demographic_parity_ratio", r, method)


def _check_binary(y: Any, name: str) -> None:
    vals, _ = _distinct(y, name, None)
    if len(vals) > 2:
        raise DataError("equalized odds and equal opportunity need binary labels", field=name,
                        value=f"{len(vals)} distinct values", expected="two values (the positive label and one other)")


def equalized_odds_difference(y_true: Any, y_pred: Any, *, sensitive_features: Any,
                              method: str = "between_groups", sample_weight: Any = None, agg: str = "worst_case",
                              pos_label: Any = 1, min_group_size: int = 0) -> float:
    """The larger (``worst_case``) or mean of the TPR and FPR differences between groups."""
    _check_agg(agg)
    r = _rates(y_true, y_pred, sensitive_features, pos_label, min_group_size, sample_weight, truth=True)
    return metric_value("equalized_odds_difference", r, method, agg=agg)


def equalized_odds_ratio(y_true: Any, y_pred: Any, *, sensitive_features: Any, method: str = "between_groups",
                         sample_weight: Any = None, agg: str = "worst_case", pos_label: Any = 1,
                         min_group_size: int = 0) -> float:
    """The smaller (``worst_case``) or mean of the TPR and FPR ratios between groups."""
    _check_agg(agg)
    r = _rates(y_true, y_pred, sensitive_features, pos_label, min_group_size, sample_weight, truth=True)
    return metric_value("equalized_odds_ratio", r, method, agg=agg)


def equal_opportunity_difference(y_true: Any, y_pred: Any, *, sensitive_features: Any,
                                 method: str = "between_groups", sample_weight: Any = None, pos_label: Any = 1,
                                 min_group_size: int = 0) -> float:
    """Largest minus smallest group true positive rate (or largest gap to the overall TPR)."""
    r = _rates(y_true, y_pred, sensitive_features, pos_label, min_group_size, sample_weight, truth=True)
    return metric_value("equal_opportunity_difference", r, method)


def equal_opportunity_ratio(y_true: Any, y_pred: Any, *, sensitive_features: Any, method: str = "between_groups",
                            sample_weight: Any = None, pos_label: Any = 1, min_group_size: int = 0) -> float:
    """Smallest over largest group true positive rate (NaN when every TPR is 0)."""
    r = _rates(y_true, y_pred, sensitive_features, pos_label, min_group_size, sample_weight, truth=True)
    return metric_value("equal_opportunity_ratio", r, method)


def _check_agg(agg: str) -> None:
    if agg not in ("worst_case", "mean"):
        # Fairlearn's own words, so code that matches on them keeps working.
        raise DataError(f"agg must be one of 'worst_case' or 'mean', got {agg}", field="agg")


def _agg(d: tuple[float, float], agg: str, worst: Any = max) -> float:
    if agg == "worst_case":
        # Fairlearn applies Python's built-in max/min to the (TPR, FPR) pair;
        # keep its NaN behaviour exactly: a NaN TPR term wins, a NaN FPR term
        # is ignored (a comparison with NaN is false).
        return float(worst(d[0], d[1]))
    # Fairlearn takes pandas' Series.mean(), which skips NaN: the mean of the
    # defined terms, NaN only when both are undefined.
    terms = [v for v in d if not math.isnan(v)]
    return float(sum(terms) / len(terms)) if terms else math.nan


def metric_value(name: str, r: GroupRates, method: str = "between_groups", *, agg: str = "worst_case",
                 privileged: Any = None) -> float:
    """The fairness metric ``name`` of per-group rates: the one place each metric's definition lives.

    ``name`` is one of :data:`~.options.FAIRNESS_METRICS`; ``method`` and
    ``agg`` are Fairlearn's; ``privileged`` is disparate impact's reference
    group (None: lowest over highest group rate). NaN when undefined.
    """
    o = r.overall()
    if name == "demographic_parity_difference":
        return _difference(r.selection_rate(), o["selection_rate"], method)
    if name == "demographic_parity_ratio":
        return _ratio(r.selection_rate(), o["selection_rate"], method)
    if name == "equal_opportunity_difference":
        return _difference(r.tpr(), o["tpr"], method)
    if name == "equal_opportunity_ratio":
        return _ratio(r.tpr(), o["tpr"], method)
    if name == "equalized_odds_difference":
        return _agg((_difference(r.tpr(), o["tpr"], method), _difference(r.fpr(), o["fpr"], method)), agg)
    if name == "equalized_odds_ratio":
        return _agg((_ratio(r.tpr(), o["tpr"], method), _ratio(r.fpr(), o["fpr"], method)), agg, worst=min)
    if name == "disparate_impact":
        if privileged is None:
            return _ratio(r.selection_rate(), 0.0, "between_groups")
        priv = _select(r.groups.keys, privileged, "privileged")
        return _impact(r, priv, ~priv)
    raise DataError("unknown fairness metric", field="metrics", value=name)


def _impact(r: GroupRates, priv: np.ndarray, unpriv: np.ndarray) -> float:
    """(Weighted) selection rate of the ``unpriv`` rows over that of the ``priv`` rows; NaN when undefined."""
    if not unpriv.any():
        return math.nan
    with np.errstate(invalid="ignore", divide="ignore"):
        p_priv = r.selected[priv].sum() / r.weight[priv].sum()
        p_unpriv = r.selected[unpriv].sum() / r.weight[unpriv].sum()
    return float(p_unpriv / p_priv) if p_priv != 0 else math.nan


def disparate_impact(y_pred: Any, sensitive_features: Any, *, privileged: Any = None,
                     unprivileged: Any = None, pos_label: Any = 1, min_group_size: int = 0,
                     sample_weight: Any = None) -> float:
    """AIF360's disparate impact: P(fav | unprivileged) / P(fav | privileged).

    ``privileged``/``unprivileged``: a group value (a tuple for intersections)
    or a list of them; unprivileged defaults to every other group. Without
    ``privileged`` the lowest over the highest group rate. NaN when the
    denominator rate is 0.
    """
    r = _rates(None, y_pred, sensitive_features, pos_label, min_group_size, sample_weight, truth=False)
    if privileged is None:
        return metric_value("disparate_impact", r)
    priv = _select(r.groups.keys, privileged, "privileged")
    unpriv = _select(r.groups.keys, unprivileged, "unprivileged") if unprivileged is not None else ~priv
    if not unpriv.any():
        raise DataError("no unprivileged rows", field="unprivileged")
    return _impact(r, priv, unpriv)


def _select(keys: list[Any], wanted: Any, name: str) -> np.ndarray:
    wanted_list = wanted if isinstance(wanted, list) else [wanted]
    norm = [tuple(w) if isinstance(w, list) else w for w in wanted_list]
    mask = np.array([k in norm or (isinstance(k, tuple) and list(k) in wanted_list) for k in keys])
    # Values given as text (from TOML or the CLI) match groups by their text.
    if not mask.any():
        # An intersection as text: "A,f", "A, f" (as the report labels it) or "A f" after a shell's word split.
        text = {",".join(part.strip() for part in str(w).split(",")) for w in norm}
        mask = np.array([str(k) in text or (isinstance(k, tuple) and ",".join(map(str, k)) in text) for k in keys])
    if not mask.any():
        shown = "; ".join(",".join(map(str, k)) if isinstance(k, tuple) else str(k) for k in keys)
        raise ColumnRoleError("no such group", field=name, value=wanted,
                              expected=f"one of {shown} (an intersection: its values joined by commas)")
    return mask


def four_fifths_rule(di: float) -> bool:
    """True when a disparate impact (or selection-rate ratio) satisfies the four-fifths rule (>= 0.8).

    The EEOC's rule of thumb (Uniform Guidelines, 29 CFR 1607.4(D)): a
    group's selection rate below four fifths of the highest group's is
    evidence of adverse impact. NaN (undefined) does not satisfy it.
    """
    return not math.isnan(di) and di >= FOUR_FIFTHS


# ---------------------------------------------------------------------------
# report for tasks and the CLI


def _clean(v: float) -> float | None:
    return None if v is None or math.isnan(v) or math.isinf(v) else float(v)


def group_label(key: Any) -> str:
    return ", ".join(map(str, key)) if isinstance(key, tuple) else str(key)


FOUR_FIFTHS_RULE = "four-fifths rule"
"""How the disparate-impact row is named in results: the EEOC's rule it checks at its default limit 0.8."""


@dataclass(repr=False)
class FairnessReport(ResultView):
    """Per-group rates and metric verdicts (:func:`fairness_report`).

    ``groups``: one dict per group: ``group`` (its value, or values joined
    by ``, `` for intersections), ``size`` (rows), ``weight`` (sum of the
    sample weights, when given), ``selection_rate``, ``tpr`` and ``fpr``
    (with true labels), ``verdict`` (``ok`` or ``small_group``: left out of
    the metrics). ``metrics``: one dict per metric: ``metric``, ``value``
    (None when undefined), ``threshold``, ``kind`` (``maximum`` for
    differences, ``minimum`` for ratios), ``verdict`` (``ok``,
    ``violation``, ``undefined``), and ``rule`` = ``four-fifths rule`` on
    ``disparate_impact``. ``group_columns``: the sensitive columns' names.

    The stable API for gates and monitoring rules: :attr:`verdict`,
    :attr:`passed`, :meth:`metric`, :attr:`four_fifths_rule` and
    :meth:`values` (a flat ``{name: number}``); the result document
    (:meth:`to_dict`) carries the same values in its rows and summary.
    """

    groups: list[dict[str, Any]]
    metrics: list[dict[str, Any]]
    group_columns: list[str]
    min_group_size: int

    @property
    def violations(self) -> int:
        return sum(1 for m in self.metrics if m["verdict"] == "violation")

    @property
    def small_groups(self) -> int:
        return sum(1 for g in self.groups if g["verdict"] == "small_group")

    @property
    def verdict(self) -> str:
        """``violation`` when a limit is broken; ``warn`` for an undefined metric or a small group left out."""
        if self.violations:
            return "violation"
        if self.small_groups or any(m["verdict"] == "undefined" for m in self.metrics):
            return "warn"
        return "ok"

    @property
    def passed(self) -> bool:
        """True unless a limit is broken (``warn`` passes, as a gate's ``checks.TASK.passed``)."""
        return self.verdict != "violation"

    def metric(self, name: str) -> float | None:
        """The value of the metric ``name`` (None when undefined); DataError when the report did not compute it."""
        for m in self.metrics:
            if m["metric"] == name:
                return m["value"]
        raise DataError("the report has no such metric", field="metric", value=name,
                        expected=f"one of {', '.join(m['metric'] for m in self.metrics)}")

    @property
    def four_fifths_rule(self) -> bool | None:
        """Whether the four-fifths rule holds (disparate impact >= 0.8); None when not computed or undefined."""
        for m in self.metrics:
            if m["metric"] == "disparate_impact":
                return None if m["value"] is None else four_fifths_rule(m["value"])
        return None

    def values(self) -> dict[str, float | None]:
        """Every number a rule may test, flat: each metric's value, ``four_fifths_rule`` (1.0 or 0.0),
        ``passed`` (1.0 or 0.0), ``violations``, ``small_groups``, and the lowest and highest group
        ``selection_rate`` among the groups that count (``min_selection_rate``, ``max_selection_rate``)."""
        out: dict[str, float | None] = {m["metric"]: m["value"] for m in self.metrics}
        ff = self.four_fifths_rule
        out["four_fifths_rule"] = None if ff is None else float(ff)
        out["passed"] = float(self.passed)
        out["violations"] = float(self.violations)
        out["small_groups"] = float(self.small_groups)
        rates = [g["selection_rate"] for g in self.groups if g["verdict"] == "ok" and g["selection_rate"] is not None]
        out["min_selection_rate"] = min(rates) if rates else None
        out["max_selection_rate"] = max(rates) if rates else None
        return out

    @property
    def message(self) -> str:
        if self.violations:
            broken = [m["metric"] + (f" ({m['rule']})" if m.get("rule") else "")
                      for m in self.metrics if m["verdict"] == "violation"]
            text = f"{self.violations} of {len(self.metrics)} fairness metrics out of bounds: {', '.join(broken)}"
        elif any(m["verdict"] == "undefined" for m in self.metrics) and self.small_groups and \
                len(self.groups) - self.small_groups < 2:
            text = (f"no fairness metric computed: {len(self.groups) - self.small_groups} group(s) of "
                    f"{len(self.groups)} have min_group_size ({self.min_group_size}) rows, and a metric compares two")
        elif any(m["verdict"] == "undefined" for m in self.metrics):
            text = "some fairness metrics are undefined (a rate of 0 in the denominator)"
        else:
            text = f"all {len(self.metrics)} fairness metrics within bounds"
        if self.small_groups:
            text += f"; {self.small_groups} group(s) below min_group_size left out"
        return text

    def to_dict(self) -> dict[str, Any]:
        """The fairness result document, as the ``fairness`` task records it and ``edgeorch fairness --json``
        prints it (less ``outputs``/``on_violation``).

        One row per metric (``column`` = the sensitive columns joined by ``+``,
        ``threshold`` = the limit, ``details.rule`` naming the four-fifths
        rule), then one per group: ``metric`` ``group``, ``column`` naming
        the group (``sex=f``), ``value`` its selection rate, no threshold,
        and the group's size, rates and the ``min_group_size`` that decides
        ``small_group`` in ``details``. ``summary.four_fifths_rule``: true,
        false or null (not computed or undefined).
        """
        cols = "+".join(self.group_columns)
        rows = [{"column": cols, "metric": m["metric"], "value": m["value"], "p_value": None,
                 "threshold": m["threshold"], "verdict": m["verdict"],
                 "details": {"kind": m["kind"], **({"rule": m["rule"]} if m.get("rule") else {})}}
                for m in self.metrics]
        rows += [{"column": f"{cols}={g['group']}", "metric": "group", "value": g["selection_rate"], "p_value": None,
                  "threshold": None, "verdict": g["verdict"], "details": {**g, "min_group_size": self.min_group_size}}
                 for g in self.groups]
        return strict({"kind": "fairness", "verdict": self.verdict, "message": self.message, "rows": rows,
                       "summary": {"groups": len(self.groups), "small_groups": self.small_groups,
                                   "violations": self.violations, "rows": sum(g["size"] for g in self.groups),
                                   "four_fifths_rule": self.four_fifths_rule}})

    def _frames(self) -> dict[str, tuple[list[dict[str, Any]], str | None]]:
        return {"metrics": (strict(self.metrics), "metric"), "groups": (strict(self.groups), "group")}

    def _display(self) -> tuple[str, str | None, str | None, list[Table]]:
        doc = self.to_dict()
        return f"edgeorch fairness by {'+'.join(self.group_columns)}", doc["verdict"], doc["message"], doc_tables(doc)


def _distinct(y: Any, name: str, pos_label: Any) -> tuple[np.ndarray, Any]:
    """The distinct present values of ``y`` (None and NaN left out; text compared as text) and ``pos_label`` in
    the same terms: the one count behind every "binary?" check."""
    arr = _values(y, name)
    if arr.dtype == object:
        present = [v for v in arr if v is not None and not (isinstance(v, float) and math.isnan(v))]
        vals = np.unique(np.asarray([str(v) for v in present], dtype=object)) if present else np.asarray([])
        return vals, str(pos_label)
    return np.unique(arr[~np.isnan(arr)] if arr.dtype.kind == "f" else arr), pos_label


def binary_problem(y: Any, field: str, pos_label: Any) -> ColumnRoleError | None:
    """Why ``y`` cannot be predictions or labels for rates (None: it can): more than two distinct values (a score,
    a weight: only values equal to ``pos_label`` would count, and every rate would quietly be about 0), or two
    values of which none is ``pos_label`` (``yes``/``no`` measured with the default 1: every rate 0). Missing
    values (None, NaN) are not counted as values. One value is fine (a model that selects nobody)."""
    vals, pos = _distinct(y, field, pos_label)
    shown = ", ".join(repr(v.item() if hasattr(v, "item") else v) for v in vals[:4])
    shown += ", ..." if len(vals) > 4 else ""
    if len(vals) > 2:
        return ColumnRoleError("must hold two values (a decision or a label), not a score or a weight", field=field,
                               value=f"{len(vals)} distinct values: {shown}",
                               expected=f"two values, one of them the positive label {pos_label!r} (threshold a "
                                        "score into 0/1 first)")
    try:
        present_pos = bool(np.any(vals == pos))
    except (TypeError, ValueError):  # values of a type the label does not compare with
        present_pos = False
    if len(vals) == 2 and not present_pos:
        return ColumnRoleError(f"the positive label {pos_label!r} is not one of its two values", field=field,
                               value=shown, expected="the positive label set to one of them (pos_label; the CLI's "
                                                     "--pos-label)")
    return None


def fairness_report(y_true: Any, y_pred: Any, sensitive_features: Any, *, pos_label: Any = 1,
                    privileged: Any = None, min_group_size: int = 30, metrics: Sequence[str] | None = None,
                    thresholds: dict[str, float] | None = None, sample_weight: Any = None,
                    names: tuple[str, str] = ("y_true", "y_pred")) -> FairnessReport:
    """Per-group rates and fairness metrics with verdicts (the task's and CLI's content).

    Groups are the values of one sensitive column, or the intersections
    present of several (a mapping or DataFrame of columns). Groups below
    ``min_group_size`` rows are listed with verdict ``small_group`` and left
    out of the metrics. A difference above its threshold, or a ratio below,
    is a ``violation``; a metric that cannot be computed (NaN) is
    ``undefined``. ``sample_weight`` weighs every rate (Fairlearn's
    meaning); group sizes stay row counts. Returns a :class:`FairnessReport`.

    Raises :class:`DataError` for predictions (or labels) that are not binary, or whose two values do not include
    ``pos_label`` (:func:`binary_problem`; ``names``: how the errors name the label and prediction columns).
    """
    from .options import FAIRNESS_DEFAULTS

    for y, field in ((y_pred, names[1]), (y_true, names[0])):
        problem = None if y is None else binary_problem(y, field, pos_label)
        if problem is not None:
            raise problem

    th = {**FAIRNESS_DEFAULTS, **(thresholds or {})}
    has_truth = y_true is not None
    wanted = list(metrics) if metrics else [m for m in FAIRNESS_DEFAULTS if has_truth or not _needs_truth(m)]
    for m in wanted:
        if _needs_truth(m) and not has_truth:
            raise DataError(f"{m} needs the true labels", field="label")
    r_all = group_rates(y_true, y_pred, sensitive_features, pos_label, need_truth=False, sample_weight=sample_weight)
    small = r_all.size < min_group_size
    groups = []
    tpr, fpr, sel = r_all.tpr(), r_all.fpr(), r_all.selection_rate()
    for i, key in enumerate(r_all.groups.keys):
        row: dict[str, Any] = {"group": group_label(key), "size": int(r_all.size[i])}
        if sample_weight is not None:
            row["weight"] = float(r_all.weight[i])
        row.update({"selection_rate": _clean(float(sel[i])), "verdict": "small_group" if small[i] else "ok"})
        if has_truth:
            row["tpr"] = float(tpr[i])
            row["fpr"] = float(fpr[i])
        groups.append(row)
    out_metrics = []
    # Nothing to compare once min_group_size left fewer than two groups out of several: a metric of one group is 0
    # (or 1), "perfectly fair", while the groups it left out may be treated worst (a single-group file keeps
    # Fairlearn's 0 and 1: it has no other group).
    kept = int((~small).sum())
    r = r_all.subset(~small) if kept >= 2 or (kept == 1 and len(small) == 1) else None
    for m in wanted:
        value = math.nan if r is None else metric_value(m, r, privileged=privileged)
        limit = float(th[m])
        is_diff = m.endswith("difference")
        if math.isnan(value):
            verdict = "undefined"
        elif (value > limit) if is_diff else (value < limit):
            verdict = "violation"
        else:
            verdict = "ok"
        entry = {"metric": m, "value": _clean(value), "threshold": limit,
                 "kind": "maximum" if is_diff else "minimum", "verdict": verdict}
        if m == "disparate_impact" and limit == FOUR_FIFTHS:
            entry["rule"] = FOUR_FIFTHS_RULE
        out_metrics.append(entry)
    return FairnessReport(groups, out_metrics, r_all.groups.names, min_group_size)


def _needs_truth(metric: str) -> bool:
    return metric.startswith(("equalized_odds", "equal_opportunity"))
