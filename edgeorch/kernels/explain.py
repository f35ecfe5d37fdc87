"""Explanations of a model's predictions: permutation importance (and SHAP values when shap is installed).

:func:`permutation_importance` measures how much a model's score drops when
one feature's values are shuffled, breaking its link with the target: the
model-agnostic method of Breiman (2001) and ``sklearn.inspection.
permutation_importance``, with the same definition (importance = baseline
score - score with the feature permuted, scores oriented so that higher is
better), so the two agree within sampling error on the same model and data.

- The model is anything that predicts from a 2-D array: a callable
  ``predict(X)``, an object with ``.predict``, or (:func:`load_model`) a
  ``"module:attr"`` reference to either, or a pickle file.
- Features are shuffled in parallel (one job per feature, threads: model
  code such as numpy or scikit-learn releases the GIL); each feature's
  shuffles come from its own seed spawned from ``random_state``, so the
  result does not depend on the number of threads.
- Each feature gets ``n_repeats`` shuffles: the mean, the standard
  deviation (ddof 1) and a Student-t confidence interval of the mean at
  ``confidence``.

:func:`shap_importance` gives the mean absolute SHAP value per feature,
through the optional ``shap`` package (``pip install 'edgeorch[shap]'``).
"""

from __future__ import annotations

import importlib
import math
import os
import pickle
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DataError, MissingDependencyError
from .results import ResultView, Table, doc_tables, strict

Metric = Callable[[np.ndarray, np.ndarray], float]


def _accuracy(y: np.ndarray, p: np.ndarray) -> float:
    return float(np.mean(np.asarray(p) == y))


def _r2(y: np.ndarray, p: np.ndarray) -> float:
    y = y.astype(np.float64)
    ss_tot = float(np.sum((y - y.mean()) ** 2))
    ss_res = float(np.sum((y - np.asarray(p, dtype=np.float64)) ** 2))
    if ss_tot == 0:
        return 1.0 if ss_res == 0 else 0.0  # scikit-learn's r2_score convention for a constant target
    return 1.0 - ss_res / ss_tot


def _mse(y: np.ndarray, p: np.ndarray) -> float:
    return float(np.mean((y.astype(np.float64) - np.asarray(p, dtype=np.float64)) ** 2))


def _mae(y: np.ndarray, p: np.ndarray) -> float:
    return float(np.mean(np.abs(y.astype(np.float64) - np.asarray(p, dtype=np.float64))))


# name -> (function, greater is better). Losses are negated into scores, as scikit-learn's
# "neg_*" scorers: the importance is always baseline score - permuted score.
METRICS: dict[str, tuple[Metric, bool]] = {
    "accuracy": (_accuracy, True),
    "r2": (_r2, True),
    "mse": (_mse, False),
    "rmse": (lambda y, p: math.sqrt(_mse(y, p)), False),
    "mae": (_mae, False),
}


def _metric(metric: str | Metric, greater_is_better: bool) -> tuple[str, Metric, float]:
    """``(name, function, sign)``: ``sign * function`` is the score, oriented higher-is-better."""
    if callable(metric):
        return getattr(metric, "__name__", "metric"), metric, 1.0 if greater_is_better else -1.0
    if metric not in METRICS:
        raise DataError("unknown metric", field="metric", value=metric,
                        expected=f"one of {', '.join(METRICS)}, or a function (y_true, y_pred) -> float")
    fn, better = METRICS[metric]
    return metric, fn, 1.0 if better else -1.0


def load_model(ref: str, *, field: str = "model") -> Callable[[Any], Any]:
    """The predict function of ``ref``: ``"module:attr"`` (a function, or an object with ``predict``; a
    dotted ``attr`` walks attributes) or the path of a pickle file (``.pkl``, ``.pickle``; ``.joblib``
    through joblib) holding an object with ``predict``.

    A pickle runs code while it loads: only load files the pipeline's own
    tasks wrote. Every failure is a DataError naming ``field`` and ``ref``.
    """
    text = str(ref)
    if text.endswith((".pkl", ".pickle", ".joblib")):
        path = Path(text)
        if not path.is_file():
            raise DataError("model file not found", field=field, value=text, expected="an existing pickle file")
        try:
            if text.endswith(".joblib"):
                import joblib

                obj = joblib.load(path)
            else:
                with open(path, "rb") as fh:
                    obj = pickle.load(fh)
        except ImportError:
            raise MissingDependencyError("a .joblib model needs joblib", field=field, value=text,
                                         hint="pip install joblib") from None
        except Exception as exc:  # noqa: BLE001 - a corrupt or foreign pickle: name the file, not a traceback
            raise DataError(f"cannot load the model file: {type(exc).__name__}: {exc}", field=field,
                            value=text) from None
        return predictor(obj, field=field, ref=text)
    module_name, sep, attr = text.partition(":")
    if not sep or not module_name or not attr:
        raise DataError("is not a model reference", field=field, value=text,
                        expected="module:function, module:object (with predict) or a .pkl/.joblib file")
    try:
        found: Any = importlib.import_module(module_name)
    except ImportError as exc:
        raise DataError(f"cannot import the model's module: {exc}", field=field, value=text) from None
    for part in attr.split("."):
        if not hasattr(found, part):
            raise DataError(f"the module has no attribute {part!r}", field=field, value=text)
        found = getattr(found, part)
    return predictor(found, field=field, ref=text)


def predictor(model: Any, *, field: str = "model", ref: str | None = None) -> Callable[[Any], Any]:
    """``model.predict`` when it has one, else ``model`` itself when callable; DataError otherwise."""
    predict = getattr(model, "predict", None)
    if callable(predict):
        return predict
    if callable(model):
        return model
    raise DataError("is neither a function nor an object with predict", field=field,
                    value=ref or type(model).__name__, expected="a callable predict(X), or an object with .predict")


@dataclass
class _Features:
    """The feature matrix as given (numpy 2-D, or a DataFrame kept as one) and its column names."""

    data: Any
    names: list[str]
    n_rows: int

    def permuted(self, j: int, order: np.ndarray) -> Any:
        if isinstance(self.data, np.ndarray):
            out = self.data.copy()
            out[:, j] = self.data[order, j]
            return out
        out = self.data.copy()  # a DataFrame: the model may rely on its column names
        out.isetitem(j, self.data.iloc[order, j].to_numpy())
        return out


def _features(X: Any, feature_names: Sequence[str] | None) -> _Features:
    if hasattr(X, "iloc") and hasattr(X, "columns"):
        names = [str(c) for c in X.columns]
        return _Features(X, list(feature_names) if feature_names else names, len(X))
    arr = np.asarray(X)
    if arr.ndim != 2 or arr.shape[1] == 0:
        raise DataError("X must be a 2-D array of rows and features", field="X", value=f"shape {arr.shape}",
                        expected="(n_rows, n_features) with at least one feature")
    names = list(feature_names) if feature_names else [str(i) for i in range(arr.shape[1])]
    if len(names) != arr.shape[1]:
        raise DataError("feature_names differ in number from X's columns", field="feature_names",
                        value=len(names), expected=str(arr.shape[1]))
    return _Features(arr, names, arr.shape[0])


def _threads(n_jobs: int | None, n_features: int) -> int:
    if n_jobs is None or n_jobs <= 0:
        try:
            n_jobs = len(os.sched_getaffinity(0))
        except (AttributeError, OSError):  # pragma: no cover - not Linux
            n_jobs = os.cpu_count() or 1
    return max(1, min(n_jobs, n_features))


@dataclass(repr=False)
class Explanation(ResultView):
    """Permutation importances (:func:`permutation_importance`), most important first.

    ``features``: one dict per feature: ``feature``, ``importance`` (mean
    over repeats), ``std`` (ddof 1; None for one repeat), ``ci_low``,
    ``ci_high`` (Student-t interval of the mean at ``confidence``; None for
    one repeat), ``importances`` (every repeat's value), ``rank`` (1 =
    most important), and ``shap`` (mean |SHAP value|) when computed.
    ``baseline``: the model's score on the unshuffled data (in the metric's
    own units, a loss as a loss). ``importances``: a ``(n_features,
    n_repeats)`` array in ``feature_names`` order, as scikit-learn's.
    """

    metric: str
    baseline: float
    n_repeats: int
    confidence: float
    features: list[dict[str, Any]]
    importances: np.ndarray = field(repr=False)
    feature_names: list[str] = field(default_factory=list)

    @property
    def importances_mean(self) -> np.ndarray:
        """Mean importance per feature in ``feature_names`` order (scikit-learn's ``importances_mean``)."""
        return self.importances.mean(axis=1)

    @property
    def importances_std(self) -> np.ndarray:
        """Population standard deviation per feature (ddof 0, scikit-learn's ``importances_std``)."""
        return self.importances.std(axis=1)

    def to_dict(self) -> dict[str, Any]:
        """The ``explain`` result document (verdict ``ok``: an explanation checks nothing), less
        ``outputs``/``on_violation``: one row per feature, ``metric`` ``permutation_importance``,
        ``value`` the mean importance, the interval, repeats and rank in ``details``."""
        rows = [{"column": f["feature"], "metric": "permutation_importance", "value": f["importance"],
                 "p_value": None, "threshold": None, "verdict": "ok",
                 "details": {k: v for k, v in f.items() if k not in ("feature", "importance")}}
                for f in self.features]
        top = ", ".join(f["feature"] for f in self.features[:3])
        return strict({"kind": "explain", "verdict": "ok",
                       "message": f"{len(self.features)} features by permutation importance "
                                  f"({self.metric}, {self.n_repeats} repeats); most important: {top}",
                       "rows": rows,
                       "summary": {"metric": self.metric, "baseline": self.baseline, "n_repeats": self.n_repeats,
                                   "confidence": self.confidence, "features": len(self.features)}})

    def _frames(self) -> dict[str, tuple[list[dict[str, Any]], str | None]]:
        return {"features": (strict([{k: v for k, v in f.items() if k != "importances"} for f in self.features]),
                             "feature")}

    def _display(self) -> tuple[str, str | None, str | None, list[Table]]:
        doc = self.to_dict()
        return f"edgeorch explain ({self.metric})", None, doc["message"], doc_tables(doc)


def permutation_importance(model: Any, X: Any, y: Any, *, metric: str | Metric = "r2",
                           greater_is_better: bool = True, n_repeats: int = 5, random_state: int | None = 0,
                           n_jobs: int | None = None, confidence: float = 0.95,
                           feature_names: Sequence[str] | None = None, progress: Any = None,
                           source: str | None = None, target_name: str = "y") -> Explanation:
    """Permutation importance of each feature of ``X`` for ``model`` (see the module docstring).

    ``model``: a callable, an object with ``predict``, or a reference for
    :func:`load_model`. ``metric``: ``accuracy``, ``r2``, ``mse``, ``rmse``,
    ``mae``, or a function ``(y_true, y_pred) -> float`` (with
    ``greater_is_better``). ``random_state`` None draws fresh seeds.
    ``progress`` (a :class:`edgeorch.textui.Progress`) counts features done.
    Raises DataError for bad input (shapes, a metric name, ``n_repeats`` < 1,
    ``confidence`` outside (0, 1)) and for a model whose predictions do not
    fit ``y``. Missing values (None, NaN): in ``y`` a DataError naming
    ``target_name``, their count and first row (a row without a truth cannot
    be scored); in ``X`` passed to the model as NaN, and when the model
    fails on them (most of scikit-learn's), a DataError naming the feature,
    the count and the first row instead of the model's traceback. ``source``:
    the file these errors name.
    """
    predict = load_model(model) if isinstance(model, str) else predictor(model)
    feats = _features(X, feature_names)
    y_arr = np.asarray(y)
    if y_arr.ndim != 1 or len(y_arr) != feats.n_rows:
        raise DataError("y must have one value per row of X", field="y", value=f"shape {y_arr.shape}",
                        expected=f"({feats.n_rows},)")
    if feats.n_rows < 2:
        raise DataError("too few rows to permute", field="X", value=feats.n_rows, expected="at least 2 rows")
    if not isinstance(n_repeats, int) or n_repeats < 1:
        raise DataError("must be a positive integer", field="n_repeats", value=n_repeats)
    if not 0.0 < confidence < 1.0:
        raise DataError("must lie strictly between 0 and 1", field="confidence", value=confidence)
    name, fn, sign = _metric(metric, greater_is_better)
    _refuse_missing(y_arr, target_name, source, "the target: a row without its true value cannot be scored")

    def scored(data: Any) -> float:
        pred = np.asarray(predict(data))
        if pred.ndim == 2 and pred.shape[1] == 1:
            pred = pred[:, 0]
        if pred.shape != y_arr.shape:
            raise DataError("the model's predictions do not match y", field="model", value=f"shape {pred.shape}",
                            expected=f"one prediction per row, shape {y_arr.shape}")
        return sign * float(fn(y_arr, pred))

    try:
        base = scored(feats.data)
    except DataError:
        raise
    except Exception:  # noqa: BLE001 - the model's own error; ours when missing values explain it
        for j, feature in enumerate(feats.names):
            column = feats.data[:, j] if isinstance(feats.data, np.ndarray) else feats.data.iloc[:, j].to_numpy()
            _refuse_missing(column, feature, source, "a feature, and the model cannot predict from them")
        raise
    n_feat = len(feats.names)
    seeds = np.random.SeedSequence(random_state).spawn(n_feat)
    done = [0]
    lock = threading.Lock()

    def one_feature(j: int) -> np.ndarray:
        rng = np.random.default_rng(seeds[j])
        out = np.array([base - scored(feats.permuted(j, rng.permutation(feats.n_rows))) for _ in range(n_repeats)])
        if progress is not None:
            with lock:  # one line on the terminal, redrawn by whichever thread finishes a feature
                done[0] += 1
                progress.update(done[0], n_feat, "explain", unit="features")
        return out

    try:
        with ThreadPoolExecutor(_threads(n_jobs, n_feat)) as pool:
            imps = np.vstack(list(pool.map(one_feature, range(n_feat))))
    finally:
        if progress is not None:
            progress.close()
    return _explanation(name, sign * base, imps, feats.names, confidence)


def _missing(values: np.ndarray) -> np.ndarray:
    """Where ``values`` (one column, numbers or objects) are missing: None or NaN."""
    if values.dtype.kind in "fc":
        return np.isnan(values)
    if values.dtype.kind == "O":
        return np.array([v is None or (isinstance(v, float) and math.isnan(v)) for v in values], dtype=bool)
    return np.zeros(len(values), dtype=bool)  # integers, booleans, text: never missing


def _refuse_missing(values: np.ndarray, column: str, source: str | None, role: str) -> None:
    """A DataError naming ``source``, ``column``, how many values are missing and the first row (1: the first
    data row, as the readers count), when any is; ``role`` says why that matters."""
    gaps = _missing(np.asarray(values))
    n = int(gaps.sum())
    if n:
        first = int(np.argmax(gaps)) + 1
        raise DataError(f"{n} missing value(s) (null or NaN; the first in row {first}) in {role}", file=source,
                        field=column, expected="a value in every row: drop or fill the rows with missing values "
                        "first")


def _explanation(metric: str, baseline: float, imps: np.ndarray, names: list[str], confidence: float) -> Explanation:
    n_repeats = imps.shape[1]
    mean = imps.mean(axis=1)
    if n_repeats > 1:
        from scipy.stats import t

        std = imps.std(axis=1, ddof=1)
        half = float(t.ppf((1 + confidence) / 2, n_repeats - 1)) * std / math.sqrt(n_repeats)
    order = np.argsort(-mean, kind="stable")
    rank = np.empty(len(names), dtype=np.int64)
    rank[order] = np.arange(1, len(names) + 1)
    features = []
    for j in order.tolist():
        features.append({"feature": names[j], "importance": float(mean[j]),
                         "std": float(std[j]) if n_repeats > 1 else None,
                         "ci_low": float(mean[j] - half[j]) if n_repeats > 1 else None,
                         "ci_high": float(mean[j] + half[j]) if n_repeats > 1 else None,
                         "importances": [float(v) for v in imps[j]], "rank": int(rank[j])})
    return Explanation(metric, float(baseline), n_repeats, confidence, features, imps, names)


def shap_importance(model: Any, X: Any, *, background: int = 100, samples: int = 100,
                    random_state: int | None = 0, feature_names: Sequence[str] | None = None) -> dict[str, float]:
    """Mean |SHAP value| per feature (``{name: value}``), through ``shap.Explainer`` on ``predict``.

    A sample of ``background`` rows is the reference distribution and
    ``samples`` rows are explained (both drawn with ``random_state``), which
    bounds the cost on large data. Raises MissingDependencyError without the
    optional ``shap`` package.
    """
    try:
        import shap
    except ImportError:
        raise MissingDependencyError("SHAP values need the shap package, which is not installed", field="shap",
                                     hint="pip install 'edgeorch[shap]'") from None
    predict = load_model(model) if isinstance(model, str) else predictor(model)
    feats = _features(X, feature_names)
    rng = np.random.default_rng(random_state)
    pick = lambda k: np.sort(rng.choice(feats.n_rows, size=min(k, feats.n_rows), replace=False))
    data = feats.data
    take = (lambda idx: data.iloc[idx]) if hasattr(data, "iloc") else (lambda idx: data[idx])
    explainer = shap.Explainer(predict, take(pick(background)))
    values = np.asarray(explainer(take(pick(samples)), silent=True).values)
    if values.ndim == 3:  # one set per output (classes): their mean magnitude
        values = np.abs(values).mean(axis=2)
    mean_abs = np.abs(values).mean(axis=0)
    return {name: float(v) for name, v in zip(feats.names, mean_abs)}
