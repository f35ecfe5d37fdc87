"""Permutation importance: agrees with scikit-learn within sampling error; the explain task; bad inputs."""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from edgeorch.errors import DataError, PipelineError
from edgeorch.kernels import permutation_importance, run_task
from edgeorch.kernels.kinds import check_options

sklearn_inspection = pytest.importorskip("sklearn.inspection")
from sklearn.linear_model import LinearRegression, LogisticRegression  # noqa: E402


@pytest.fixture(scope="module")
def regression() -> tuple[Any, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(3)
    X = rng.normal(size=(400, 4))
    y = 3 * X[:, 0] + X[:, 1] + 0.2 * X[:, 2] + rng.normal(scale=0.5, size=400)
    return LinearRegression().fit(X, y), X, y


def _agree_within_sampling_error(ours: Any, ref: Any, n: int) -> None:
    # The two draw different shuffles: compare means by their standard errors (4.5 sigma, plus a hair for ~0).
    se = np.sqrt(ours.importances.var(axis=1, ddof=1) / n + ref.importances.var(axis=1, ddof=1) / n)
    assert np.all(np.abs(ours.importances_mean - ref.importances_mean) <= 4.5 * se + 1e-4), \
        (ours.importances_mean, ref.importances_mean, se)
    assert list(np.argsort(-ours.importances_mean)[:2]) == list(np.argsort(-ref.importances_mean)[:2])


@pytest.mark.parametrize(("metric", "scoring"), [("r2", "r2"), ("mse", "neg_mean_squared_error")])
def test_agrees_with_sklearn_on_a_regression(regression: tuple[Any, np.ndarray, np.ndarray], metric: str,
                                             scoring: str) -> None:
    model, X, y = regression
    ours = permutation_importance(model, X, y, metric=metric, n_repeats=20, random_state=1)
    ref = sklearn_inspection.permutation_importance(model, X, y, scoring=scoring, n_repeats=20, random_state=2)
    _agree_within_sampling_error(ours, ref, 20)
    assert ours.importances.shape == (4, 20) and ours.features[0]["feature"] == "0"


def test_agrees_with_sklearn_on_a_classifier_by_accuracy() -> None:
    rng = np.random.default_rng(5)
    X = rng.normal(size=(500, 3))
    y = (X[:, 0] + 0.5 * X[:, 1] + rng.normal(scale=0.3, size=500) > 0).astype(int)
    model = LogisticRegression().fit(X, y)
    ours = permutation_importance(model, X, y, metric="accuracy", n_repeats=20, random_state=0)
    ref = sklearn_inspection.permutation_importance(model, X, y, scoring="accuracy", n_repeats=20, random_state=0)
    _agree_within_sampling_error(ours, ref, 20)


def test_intervals_ranks_and_thread_count(regression: tuple[Any, np.ndarray, np.ndarray]) -> None:
    model, X, y = regression
    one = permutation_importance(model.predict, X, y, n_repeats=8, n_jobs=1, feature_names=["a", "b", "c", "d"])
    many = permutation_importance(model.predict, X, y, n_repeats=8, n_jobs=4, feature_names=["a", "b", "c", "d"])
    assert np.array_equal(one.importances, many.importances)  # seeds per feature, not per thread
    assert [f["feature"] for f in one.features][:3] == ["a", "b", "c"] and [f["rank"] for f in one.features] == [1, 2, 3, 4]
    for f in one.features:
        assert f["ci_low"] <= f["importance"] <= f["ci_high"] and len(f["importances"]) == 8
    doc = one.to_dict()
    assert doc["verdict"] == "ok" and doc["rows"][0]["column"] == "a" and doc["summary"]["baseline"] == one.baseline
    single = permutation_importance(model, X, y, n_repeats=1)
    assert single.features[0]["std"] is None and single.features[0]["ci_low"] is None


@pytest.mark.parametrize(("kwargs", "field"), [
    ({"metric": "auc"}, "metric"), ({"n_repeats": 0}, "n_repeats"), ({"confidence": 1.0}, "confidence"),
    ({"y": np.zeros(3)}, "y"), ({"model": object()}, "model"), ({"model": "no_such_module_xyz:predict"}, "model"),
    ({"model": "math:nothing_here"}, "model"), ({"model": lambda X: np.zeros((len(X), 2))}, "model")])
def test_bad_inputs_are_data_errors_naming_the_argument(regression: tuple[Any, np.ndarray, np.ndarray],
                                                        kwargs: dict[str, Any], field: str) -> None:
    model, X, y = regression
    args = {"model": model, "X": X, "y": y, **kwargs}
    with pytest.raises(DataError) as exc:
        permutation_importance(args.pop("model"), args.pop("X"), args.pop("y"), **args)
    assert exc.value.field == field


@pytest.fixture
def scored_model(workdir: Path, regression: tuple[Any, np.ndarray, np.ndarray]) -> Path:
    model, X, y = regression
    with open("model.pkl", "wb") as fh:
        pickle.dump(model, fh)
    pq.write_table(pa.table({"x0": X[:, 0], "x1": X[:, 1], "x2": X[:, 2], "x3": X[:, 3], "y": y,
                             "city": ["a"] * len(y)}), "data.parquet")
    return workdir


def test_explain_task_document_and_report(scored_model: Path) -> None:
    doc = run_task("explain", {"model": "model.pkl", "input": "data.parquet", "target": "y",
                               "features": ["x0", "x1", "x2", "x3"], "n_repeats": 4, "report": "explain.html"})
    assert doc["kind"] == "explain" and doc["verdict"] == "ok"
    assert [r["column"] for r in doc["rows"]][:2] == ["x0", "x1"]
    assert doc["rows"][0]["metric"] == "permutation_importance" and doc["rows"][0]["details"]["rank"] == 1
    assert doc["summary"]["metric"] == "r2" and doc["summary"]["rows"] == 400
    assert (scored_model / "explain.html").read_text().count("x0") >= 1


def test_explain_task_bad_data_is_named(scored_model: Path) -> None:
    with pytest.raises(DataError, match="not numeric") as exc:
        run_task("explain", {"model": "model.pkl", "input": "data.parquet", "target": "y",
                             "features": ["x0", "city"]})
    assert exc.value.field == "city"
    with pytest.raises(DataError, match="not found"):
        run_task("explain", {"model": "missing.pkl", "input": "data.parquet", "target": "y"})
    Path("junk.pkl").write_bytes(b"not a pickle")
    with pytest.raises(DataError, match="cannot load the model file"):
        run_task("explain", {"model": "junk.pkl", "input": "data.parquet", "target": "y"})


def test_explain_options_are_checked_at_load_time() -> None:
    errors = check_options("explain", {"model": "model", "input": "d.csv", "metric": "auc", "confidence": 2,
                                       "n_repeats": 0}, file="p.toml", prefix="tasks.e.options")
    fields = {e.field for e in errors}
    assert {"tasks.e.options.model", "tasks.e.options.target", "tasks.e.options.metric",
            "tasks.e.options.confidence", "tasks.e.options.n_repeats"} <= fields
    assert all(isinstance(e, PipelineError) for e in errors)


def test_shap_values_when_the_extra_is_installed(scored_model: Path) -> None:
    pytest.importorskip("shap", reason="the optional shap extra is not installed")
    doc = run_task("explain", {"model": "model.pkl", "input": "data.parquet", "target": "y",
                               "features": ["x0", "x1", "x2", "x3"], "n_repeats": 2, "shap": True,
                               "shap_samples": 20})
    shap = {r["column"]: r["details"]["shap"] for r in doc["rows"]}
    assert shap["x0"] > shap["x1"] > shap["x3"] >= 0


def test_missing_values_in_a_feature_or_the_target_are_named_not_a_model_traceback(
        workdir: Path, regression: tuple[Any, np.ndarray, np.ndarray]) -> None:
    """Found by a tester: a null in a feature column ended in scikit-learn's "ValueError: Input X contains NaN"
    traceback, naming no column."""
    model, X, y = regression
    with open("model.pkl", "wb") as fh:
        pickle.dump(model, fh)
    x1 = [None if i in (4, 9) else float(v) for i, v in enumerate(X[:, 1])]
    pq.write_table(pa.table({"x0": X[:, 0], "x1": x1, "x2": X[:, 2], "x3": X[:, 3], "y": y}), "gaps.parquet")
    with pytest.raises(DataError) as exc:
        run_task("explain", {"model": "model.pkl", "input": "gaps.parquet", "target": "y"})
    assert exc.value.field == "x1" and "2 missing value(s)" in exc.value.message and "row 5" in exc.value.message
    y_gaps = [None if i == 0 else float(v) for i, v in enumerate(y)]
    with pytest.raises(DataError) as exc:
        permutation_importance(model, X, np.array(y_gaps, dtype=object), source="data.csv", target_name="price")
    assert (exc.value.file, exc.value.field) == ("data.csv", "price") and "row 1" in exc.value.message
    # a model that takes NaN itself is left to: nothing refused
    permutation_importance(lambda a: np.nan_to_num(a[:, 0]), np.where(np.isnan(X), np.nan, X), y, n_repeats=1)
