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

from ..errors import DataError
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
    """Per-group counts and rates (arrays indexed like ``groups.keys``)."""

    groups: Groups
    size: np.ndarray
    selected: np.ndarray
    positives: np.ndarray
    negatives: np.ndarray
    true_pos: np.ndarray
    false_pos: np.ndarray

    def selection_rate(self) -> np.ndarray:
        return self.selected / self.size

    def tpr(self) -> np.ndarray:
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(self.positives > 0, self.true_pos / np.maximum(self.positives, 1), 0.0)

    def fpr(self) -> np.ndarray:
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(self.negatives > 0, self.false_pos / np.maximum(self.negatives, 1), 0.0)

    def overall(self) -> dict[str, float]:
        sel = self.selected.sum() / self.size.sum()
        pos, neg = self.positives.sum(), self.negatives.sum()
        return {"selection_rate": float(sel), "tpr": float(self.true_pos.sum() / pos) if pos else 0.0,
                "fpr": float(self.false_pos.sum() / neg) if neg else 0.0}

    def subset(self, keep: np.ndarray) -> GroupRates:
        g = Groups(self.groups.codes, [k for k, m in zip(self.groups.keys, keep) if m], self.groups.names)
        return GroupRates(g, self.size[keep], self.selected[keep], self.positives[keep], self.negatives[keep],
                          self.true_pos[keep], self.false_pos[keep])


def group_rates(y_true: Any, y_pred: Any, sensitive_features: Any, pos_label: Any = 1,
                need_truth: bool = True) -> GroupRates:
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
    groups = make_groups(sensitive_features, n)
    k = len(groups.keys)
    sel = (yp == pos_label)
    size = np.bincount(groups.codes, minlength=k).astype(np.float64)
    selected = np.bincount(groups.codes, weights=sel, minlength=k)
    if yt is not None:
        act = (yt == pos_label)
        positives = np.bincount(groups.codes, weights=act, minlength=k)
        true_pos = np.bincount(groups.codes, weights=act & sel, minlength=k)
        false_pos = np.bincount(groups.codes, weights=~act & sel, minlength=k)
    else:
        positives = true_pos = false_pos = np.zeros(k)
    return GroupRates(groups, size, selected, positives, size - positives, true_pos, false_pos)


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


def selection_rates(y_pred: Any, sensitive_features: Any, pos_label: Any = 1) -> dict[Any, float]:
    """Selection rate per group: ``{group: share of y_pred == pos_label}``."""
    r = group_rates(None, y_pred, sensitive_features, pos_label, need_truth=False)
    return dict(zip(r.groups.keys, (float(v) for v in r.selection_rate())))


def demographic_parity_difference(y_true: Any, y_pred: Any, *, sensitive_features: Any,
                                  method: str = "between_groups", pos_label: Any = 1,
                                  min_group_size: int = 0) -> float:
    """Largest minus smallest group selection rate (or largest gap to the overall rate)."""
    r = _drop_small(group_rates(y_true, y_pred, sensitive_features, pos_label, need_truth=False), min_group_size)
    return _difference(r.selection_rate(), r.overall()["selection_rate"], method)


def demographic_parity_ratio(y_true: Any, y_pred: Any, *, sensitive_features: Any,
                             method: str = "between_groups", pos_label: Any = 1, min_group_size: int = 0) -> float:
    """Smallest over largest group selection rate (NaN when every rate is 0)."""
    r = _drop_small(group_rates(y_true, y_pred, sensitive_features, pos_label, need_truth=False), min_group_size)
    return _ratio(r.selection_rate(), r.overall()["selection_rate"], method)


def _check_binary(y: Any, name: str) -> None:
    vals = np.unique(_values(y, name).astype(str) if _values(y, name).dtype == object else _values(y, name))
    if len(vals) > 2:
        raise DataError("equalized odds needs binary labels", field=name, value=f"{len(vals)} distinct values",
                        expected="two values (the positive label and one other)")


def equalized_odds_difference(y_true: Any, y_pred: Any, *, sensitive_features: Any,
                              method: str = "between_groups", agg: str = "worst_case", pos_label: Any = 1,
                              min_group_size: int = 0) -> float:
    """The larger (``worst_case``) or mean of the TPR and FPR differences between groups."""
    _check_binary(y_true, "y_true")
    _check_binary(y_pred, "y_pred")
    r = _drop_small(group_rates(y_true, y_pred, sensitive_features, pos_label), min_group_size)
    o = r.overall()
    d = (_difference(r.tpr(), o["tpr"], method), _difference(r.fpr(), o["fpr"], method))
    return _agg(d, agg)


def equalized_odds_ratio(y_true: Any, y_pred: Any, *, sensitive_features: Any, method: str = "between_groups",
                         agg: str = "worst_case", pos_label: Any = 1, min_group_size: int = 0) -> float:
    """The smaller (``worst_case``) or mean of the TPR and FPR ratios between groups."""
    _check_binary(y_true, "y_true")
    _check_binary(y_pred, "y_pred")
    r = _drop_small(group_rates(y_true, y_pred, sensitive_features, pos_label), min_group_size)
    o = r.overall()
    d = (_ratio(r.tpr(), o["tpr"], method), _ratio(r.fpr(), o["fpr"], method))
    return _agg(d, agg, worst=min)


def _agg(d: tuple[float, float], agg: str, worst: Any = max) -> float:
    if agg == "worst_case":
        # Fairlearn applies Python's built-in max/min to the (TPR, FPR) pair;
        # keep its NaN behaviour exactly: a NaN TPR term wins, a NaN FPR term
        # is ignored (a comparison with NaN is false).
        return float(worst(d[0], d[1]))
    if agg == "mean":
        # Fairlearn takes pandas' Series.mean(), which skips NaN: the mean of
        # the defined terms, NaN only when both are undefined.
        terms = [v for v in d if not math.isnan(v)]
        return float(sum(terms) / len(terms)) if terms else math.nan
    raise DataError("unknown aggregation", value=agg, expected="worst_case or mean")


def disparate_impact(y_pred: Any, sensitive_features: Any, *, privileged: Any = None,
                     unprivileged: Any = None, pos_label: Any = 1, min_group_size: int = 0) -> float:
    """AIF360's disparate impact: P(fav | unprivileged) / P(fav | privileged).

    ``privileged``/``unprivileged``: a group value (a tuple for intersections)
    or a list of them; unprivileged defaults to every other group. Without
    ``privileged`` the lowest over the highest group rate. NaN when the
    denominator rate is 0.
    """
    r = _drop_small(group_rates(None, y_pred, sensitive_features, pos_label, need_truth=False), min_group_size)
    if privileged is None:
        return _ratio(r.selection_rate(), 0.0, "between_groups")
    keys = r.groups.keys
    priv = _select(keys, privileged, "privileged")
    unpriv = _select(keys, unprivileged, "unprivileged") if unprivileged is not None else ~priv
    if not unpriv.any():
        raise DataError("no unprivileged rows", field="unprivileged")
    p_priv = r.selected[priv].sum() / r.size[priv].sum()
    p_unpriv = r.selected[unpriv].sum() / r.size[unpriv].sum()
    return float(p_unpriv / p_priv) if p_priv != 0 else math.nan


def _select(keys: list[Any], wanted: Any, name: str) -> np.ndarray:
    wanted_list = wanted if isinstance(wanted, list) else [wanted]
    norm = [tuple(w) if isinstance(w, list) else w for w in wanted_list]
    mask = np.array([k in norm or (isinstance(k, tuple) and list(k) in wanted_list) for k in keys])
    # Values given as text (from TOML or the CLI) match groups by their text.
    if not mask.any():
        text = {str(w) for w in norm}
        mask = np.array([str(k) in text or (isinstance(k, tuple) and ",".join(map(str, k)) in text) for k in keys])
    if not mask.any():
        raise DataError("no such group", field=name, value=wanted, expected=f"one of {', '.join(map(str, keys))}")
    return mask


def four_fifths_rule(di: float) -> bool:
    """True when a disparate impact (or selection-rate ratio) satisfies the four-fifths rule (>= 0.8)."""
    return not math.isnan(di) and di >= FOUR_FIFTHS


# ---------------------------------------------------------------------------
# report for tasks and the CLI


def _clean(v: float) -> float | None:
    return None if v is None or math.isnan(v) or math.isinf(v) else float(v)


def group_label(key: Any) -> str:
    return ", ".join(map(str, key)) if isinstance(key, tuple) else str(key)


@dataclass(repr=False)
class FairnessReport(ResultView):
    """Per-group rates and metric verdicts (:func:`fairness_report`).

    ``groups``: one dict per group: ``group`` (its value, or values joined
    by ``, `` for intersections), ``size``, ``selection_rate``, ``tpr`` and
    ``fpr`` (with true labels), ``verdict`` (``ok`` or ``small_group``: left
    out of the metrics). ``metrics``: one dict per metric: ``metric``,
    ``value`` (None when undefined), ``threshold``, ``kind`` (``maximum`` for
    differences, ``minimum`` for ratios), ``verdict`` (``ok``, ``violation``,
    ``undefined``). ``group_columns``: the sensitive columns' names.
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
    def message(self) -> str:
        if self.violations:
            text = f"{self.violations} of {len(self.metrics)} fairness metrics out of bounds"
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
        ``threshold`` = the limit), then one per group: ``metric`` ``group``,
        ``column`` naming the group (``sex=f``), ``value`` its selection rate,
        no threshold, and the group's size, rates and the ``min_group_size``
        that decides ``small_group`` in ``details``.
        """
        cols = "+".join(self.group_columns)
        rows = [{"column": cols, "metric": m["metric"], "value": m["value"], "p_value": None,
                 "threshold": m["threshold"], "verdict": m["verdict"], "details": {"kind": m["kind"]}}
                for m in self.metrics]
        rows += [{"column": f"{cols}={g['group']}", "metric": "group", "value": g["selection_rate"], "p_value": None,
                  "threshold": None, "verdict": g["verdict"], "details": {**g, "min_group_size": self.min_group_size}}
                 for g in self.groups]
        return strict({"kind": "fairness", "verdict": self.verdict, "message": self.message, "rows": rows,
                       "summary": {"groups": len(self.groups), "small_groups": self.small_groups,
                                   "violations": self.violations, "rows": sum(g["size"] for g in self.groups)}})

    def _frames(self) -> dict[str, tuple[list[dict[str, Any]], str | None]]:
        return {"metrics": (strict(self.metrics), "metric"), "groups": (strict(self.groups), "group")}

    def _display(self) -> tuple[str, str | None, str | None, list[Table]]:
        doc = self.to_dict()
        return f"edgeorch fairness by {'+'.join(self.group_columns)}", doc["verdict"], doc["message"], doc_tables(doc)


def fairness_report(y_true: Any, y_pred: Any, sensitive_features: Any, *, pos_label: Any = 1,
                    privileged: Any = None, min_group_size: int = 30, metrics: Sequence[str] | None = None,
                    thresholds: dict[str, float] | None = None) -> FairnessReport:
    """Per-group rates and fairness metrics with verdicts (the task's and CLI's content).

    Groups below ``min_group_size`` are listed with verdict ``small_group`` and
    left out of the metrics. A difference above its threshold, or a ratio
    below, is a ``violation``; a metric that cannot be computed (NaN) is
    ``undefined``. Returns a :class:`FairnessReport`.
    """
    from .options import FAIRNESS_DEFAULTS

    th = {**FAIRNESS_DEFAULTS, **(thresholds or {})}
    has_truth = y_true is not None
    wanted = list(metrics) if metrics else [m for m in FAIRNESS_DEFAULTS
                                            if has_truth or not m.startswith("equalized_odds")]
    r_all = group_rates(y_true, y_pred, sensitive_features, pos_label, need_truth=False)
    small = r_all.size < min_group_size
    groups = []
    tpr, fpr, sel = r_all.tpr(), r_all.fpr(), r_all.selection_rate()
    for i, key in enumerate(r_all.groups.keys):
        row: dict[str, Any] = {"group": group_label(key), "size": int(r_all.size[i]),
                               "selection_rate": float(sel[i]), "verdict": "small_group" if small[i] else "ok"}
        if has_truth:
            row["tpr"] = float(tpr[i])
            row["fpr"] = float(fpr[i])
        groups.append(row)
    out_metrics = []
    r = r_all.subset(~small) if (~small).any() else None
    for m in wanted:
        if r is None:
            value = math.nan
        elif m == "demographic_parity_difference":
            value = _difference(r.selection_rate(), 0.0, "between_groups")
        elif m == "demographic_parity_ratio":
            value = _ratio(r.selection_rate(), 0.0, "between_groups")
        elif m == "disparate_impact":
            if privileged is None:
                value = _ratio(r.selection_rate(), 0.0, "between_groups")
            else:
                priv = _select(r.groups.keys, privileged, "privileged")
                p_priv = r.selected[priv].sum() / r.size[priv].sum()
                unpriv = ~priv
                value = (r.selected[unpriv].sum() / r.size[unpriv].sum()) / p_priv if p_priv and unpriv.any() \
                    else math.nan
        elif not has_truth:
            raise DataError(f"{m} needs the true labels", field="label")
        elif m == "equalized_odds_difference":
            value = _agg((_difference(r.tpr(), 0, "between_groups"), _difference(r.fpr(), 0, "between_groups")),
                         "worst_case")
        else:
            value = _agg((_ratio(r.tpr(), 0, "between_groups"), _ratio(r.fpr(), 0, "between_groups")),
                         "worst_case", worst=min)
        limit = float(th[m])
        is_diff = m.endswith("difference")
        if math.isnan(value):
            verdict = "undefined"
        elif (value > limit) if is_diff else (value < limit):
            verdict = "violation"
        else:
            verdict = "ok"
        out_metrics.append({"metric": m, "value": _clean(value), "threshold": limit,
                            "kind": "maximum" if is_diff else "minimum", "verdict": verdict})
    return FairnessReport(groups, out_metrics, r_all.groups.names, min_group_size)
