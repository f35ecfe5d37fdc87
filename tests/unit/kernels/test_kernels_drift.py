"""Column and dataset drift: method rule, thresholds, cleaning, corrections, profile references."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.stats as st

from edgeorch.errors import DataError
from edgeorch.kernels import column_drift, dataset_drift, drift_from_profile, profile
from edgeorch.kernels.drift import adjust_pvalues

RULE = [
    ("numeric small", lambda r: r.normal(size=500), "ks"),
    ("numeric large", lambda r: r.normal(size=5000), "wasserstein"),
    ("numeric few values small", lambda r: r.integers(0, 4, 500).astype(float), "chisquare"),
    ("numeric binary small", lambda r: r.integers(0, 2, 500).astype(float), "z"),
    ("numeric few values large", lambda r: r.integers(0, 4, 5000).astype(float), "jensenshannon"),
    ("categorical small", lambda r: list(r.choice(["a", "b", "c"], 300)), "chisquare"),
    ("categorical binary small", lambda r: list(r.choice(["a", "b"], 300)), "z"),
    ("categorical large", lambda r: list(r.choice(["a", "b", "c"], 3000)), "jensenshannon"),
]


@pytest.mark.parametrize(("case", "make", "method"), RULE)
def test_default_method_follows_the_rule(case: str, make, method: str, rng: np.random.Generator) -> None:  # type: ignore[no-untyped-def]
    ref = make(rng)
    assert column_drift(ref, make(rng)).method == method


def test_ks_column_uses_scipy_p_value_and_threshold(rng: np.random.Generator) -> None:
    ref, cur = rng.normal(size=300), rng.normal(0.5, size=300)
    d = column_drift(ref, cur)
    assert d.p_value == pytest.approx(st.ks_2samp(ref, cur).pvalue)
    assert d.threshold == 0.05 and d.drift and d.verdict == "drift"


def test_wasserstein_is_normalised_by_reference_std(rng: np.random.Generator) -> None:
    ref, cur = rng.normal(0, 2, 5000), rng.normal(0.1, 2, 5000)
    d = column_drift(ref, cur)
    assert d.value == pytest.approx(st.wasserstein_distance(ref, cur) / np.std(ref))
    assert d.p_value is None


def test_same_distribution_does_not_drift(rng: np.random.Generator) -> None:
    assert not column_drift(rng.normal(size=5000), rng.normal(size=5000)).drift
    assert not column_drift(list(rng.choice(["a", "b", "c"], 5000)), list(rng.choice(["a", "b", "c"], 5000))).drift


@pytest.mark.parametrize("method", ["psi", "jensenshannon", "hellinger", "chisquare"])
def test_named_methods_detect_a_clear_shift(method: str, rng: np.random.Generator) -> None:
    d = column_drift(rng.normal(size=3000), rng.normal(1.0, size=3000), method=method)
    assert d.method == method and d.drift


def test_threshold_override_changes_the_verdict(rng: np.random.Generator) -> None:
    ref, cur = rng.normal(size=5000), rng.normal(0.3, size=5000)
    assert column_drift(ref, cur).drift
    assert not column_drift(ref, cur, threshold=0.9).drift


def test_nan_and_inf_are_dropped_and_reported() -> None:
    ref = [1.0, 2.0, 3.0, np.nan, np.inf, None]
    cur = [1.0, 2.0, 3.5, -np.inf]
    d = column_drift(ref, cur, method="ks")
    assert d.n_ref == 3 and d.n_cur == 3
    assert d.details["dropped_ref"] == {"nulls": 1, "nan": 1, "inf": 1}
    assert d.details["dropped_cur"] == {"inf": 1}
    assert d.value == pytest.approx(st.ks_2samp([1, 2, 3], [1, 2, 3.5]).statistic, rel=2**-52)  # 1 ulp (scipy 1.18)


def test_all_nan_column_has_no_data_verdict() -> None:
    d = column_drift([np.nan, np.nan], [1.0, 2.0])
    assert d.verdict == "no_data" and not d.drift and d.value is None


def test_constant_columns_do_not_drift_and_stay_finite() -> None:
    d = column_drift(np.full(2000, 3.0), np.full(2000, 3.0))
    assert not d.drift and np.isfinite(d.value)


def test_unseen_category_gives_finite_chi_square() -> None:
    d = column_drift(["a"] * 50 + ["b"] * 50, ["a"] * 40 + ["b"] * 40 + ["new"] * 20, method="chisquare")
    assert np.isfinite(d.value) and d.drift


def test_ks_on_categorical_column_is_a_data_error() -> None:
    with pytest.raises(DataError, match="needs a numeric column"):
        column_drift(["a", "b"], ["a", "c"], method="ks")


def test_unknown_method_suggests_one() -> None:
    with pytest.raises(DataError) as e:
        column_drift([1.0], [1.0], method="wasserstien")
    assert e.value.hint == "did you mean 'wasserstein'?"


def test_numeric_vs_categorical_is_a_data_error() -> None:
    with pytest.raises(DataError, match="numeric on one side"):
        column_drift([1.0, 2.0], ["a", "b"], column="age")


@pytest.mark.parametrize("correction", ["bonferroni", "bh"])
def test_adjusted_p_values_match_scipy(correction: str, rng: np.random.Generator) -> None:
    p = list(rng.random(12) ** 3)
    ref = np.minimum(np.asarray(p) * 12, 1) if correction == "bonferroni" else st.false_discovery_control(p, method="bh")
    assert adjust_pvalues(p, correction) == pytest.approx(list(ref), rel=1e-12)


def _table(rng: np.random.Generator, shift: dict[str, float], n: int = 400) -> dict[str, np.ndarray]:
    return {f"c{i}": rng.normal(shift.get(f"c{i}", 0.0), size=n) for i in range(6)}


def test_dataset_drift_by_share_of_drifted_columns(rng: np.random.Generator) -> None:
    ref = _table(rng, {})
    few = dataset_drift(ref, _table(rng, {"c0": 2.0}))
    many = dataset_drift(ref, _table(rng, {f"c{i}": 2.0 for i in range(4)}))
    assert few.n_drifted == 1 and not few.drift
    assert many.n_drifted == 4 and many.drift and many.share == pytest.approx(4 / 6)
    assert "4 of 6 columns drifted" in many.message


def test_correction_can_remove_a_marginal_drift(rng: np.random.Generator) -> None:
    ref = {f"c{i}": np.arange(100.0) for i in range(20)}
    cur = {f"c{i}": np.arange(100.0) for i in range(20)}
    cur["c0"] = np.arange(100.0) + 25  # p ~ 0.004: significant alone, not after Bonferroni (x20)
    raw = dataset_drift(ref, cur, correction="none")
    bonf = dataset_drift(ref, cur, correction="bonferroni")
    assert raw.columns[0].drift and not bonf.columns[0].drift
    assert bonf.columns[0].details["p_value_adjusted"] == pytest.approx(min(1.0, raw.columns[0].p_value * 20))


def test_missing_column_is_a_data_error(rng: np.random.Generator) -> None:
    with pytest.raises(DataError, match="no such column") as e:
        dataset_drift({"a": [1.0], "b": [2.0]}, {"a": [1.0]}, columns=["a", "b"])
    assert e.value.field == "b"


def test_per_column_method_overrides(rng: np.random.Generator) -> None:
    t = _table(rng, {})
    res = dataset_drift(t, t, methods={"c1": "psi"}, method="hellinger")
    assert [c.method for c in res.columns] == ["hellinger", "psi"] + ["hellinger"] * 4


# -- against a saved profile -----------------------------------------------------

def test_sketch_ks_against_small_profile_is_exact(rng: np.random.Generator) -> None:
    ref, cur = rng.normal(size=800), rng.normal(0.2, size=600)
    res = drift_from_profile(profile({"x": ref}), {"x": cur})
    c = res.columns[0]
    exact = st.ks_2samp(ref, cur)
    assert c.method == "ks" and c.details["sketch_exact"]
    assert c.value == pytest.approx(exact.statistic, rel=2**-52) and c.p_value == pytest.approx(exact.pvalue)  # 1 ulp


def test_sketch_ks_against_large_profile_is_within_the_error_bound(rng: np.random.Generator) -> None:
    ref, cur = rng.normal(size=200_000), rng.normal(0.05, size=50_000)
    res = drift_from_profile(profile({"x": ref}), {"x": cur}, method="ks")
    c = res.columns[0]
    assert not c.details["sketch_exact"]
    assert abs(c.value - st.ks_2samp(ref, cur).statistic) <= c.details["error_bound"]


@pytest.mark.parametrize("method", ["psi", "jensenshannon", "hellinger"])
def test_binned_profile_drift_detects_shift_and_not_sameness(method: str, rng: np.random.Generator) -> None:
    prof = profile({"x": rng.normal(size=20_000)})
    assert not drift_from_profile(prof, {"x": rng.normal(size=20_000)}, method=method).drift
    assert drift_from_profile(prof, {"x": rng.normal(1.5, size=20_000)}, method=method).drift


def test_profile_drift_counts_values_outside_the_reference_range(rng: np.random.Generator) -> None:
    prof = profile({"x": rng.uniform(0, 1, 5000)})
    res = drift_from_profile(prof, {"x": rng.uniform(5, 6, 5000)}, method="jensenshannon")
    assert res.columns[0].value == pytest.approx(np.sqrt(np.log(2)), rel=1e-9)  # disjoint: maximal JS


def test_profile_chisquare_for_categories() -> None:
    prof = profile({"c": ["a"] * 300 + ["b"] * 300})
    res = drift_from_profile(prof, {"c": ["a"] * 100 + ["b"] * 100 + ["z"] * 100})
    assert res.columns[0].method == "chisquare" and res.columns[0].drift


def test_profile_drift_rejects_unavailable_method() -> None:
    with pytest.raises(DataError, match="not available against a profile"):
        drift_from_profile(profile({"x": [1.0]}), {"x": [1.0]}, method="wasserstein")


def test_two_series_with_different_names_are_compared_not_skipped() -> None:
    pd = pytest.importorskip("pandas")
    rng = np.random.default_rng(3)
    ref = pd.Series(rng.normal(size=400), name="price")
    cur = pd.Series(rng.normal(3.0, 1.0, size=400), name="price_usd")
    result = dataset_drift(ref, cur)
    assert [c.column for c in result.columns] == ["price"]
    assert result.drift and result.n_tested == 1


def test_tables_with_no_column_in_common_are_an_error_not_no_drift() -> None:
    with pytest.raises(DataError, match=r"no column in common \(reference: a; current: b\)") as err:
        dataset_drift({"a": [1.0, 2.0, 3.0]}, {"b": [1.0, 2.0, 3.0]})
    assert err.value.exit_code == 2  # usage, not 1: `edgeorch drift A B || alert` read the wrong pair as drift


def test_files_with_no_column_in_common_name_their_columns(tmp_path) -> None:
    """`edgeorch drift houses.csv loans.csv` said "(reference: none; current: none)": the task passed the empty
    intersection as the columns to load."""
    from edgeorch.kernels.tasks import run_drift

    (tmp_path / "a.csv").write_text("area,rooms\n1,2\n3,4\n")
    (tmp_path / "b.csv").write_text("group,label\nx,1\ny,0\n")
    with pytest.raises(DataError) as err:
        run_drift({"reference": str(tmp_path / "a.csv"), "current": str(tmp_path / "b.csv")}, None)
    assert "(reference: area, rooms; current: group, label)" in str(err.value) and err.value.exit_code == 2


def test_one_method_for_every_column_leaves_text_columns_to_the_rule_and_a_named_one_is_still_checked() -> None:
    """`edgeorch drift ref cur --method ks` failed on the first text column ("method ks needs a numeric column",
    exit 1): the one method now tests the columns it can measure; a column given ks by name is still refused."""
    from edgeorch.kernels.drift import dataset_drift

    ref = {"age": np.arange(200.0), "region": ["n", "s"] * 100}
    cur = {"age": np.arange(200.0) + 50, "region": ["n"] * 150 + ["s"] * 50}
    res = dataset_drift(ref, cur, method="ks")
    assert [(c.column, c.method) for c in res.columns] == [("age", "ks"), ("region", "z")]  # the rule's, for 2 values
    with pytest.raises(DataError, match="needs a numeric column"):
        dataset_drift(ref, cur, methods={"region": "ks"})


def test_methods_or_thresholds_for_a_column_not_compared_are_refused_with_a_did_you_mean() -> None:
    """`methods = { incme = "ks" }` was ignored: income was tested with the rule's method, and nothing said so."""
    from edgeorch.errors import UnknownColumnError
    from edgeorch.kernels.drift import dataset_drift

    ref = {"age": np.arange(50.0), "income": np.arange(50.0)}
    for kw, field in (({"methods": {"incme": "ks"}}, "methods.incme"), ({"thresholds": {"agee": 0.9}}, "thresholds.agee")):
        with pytest.raises(UnknownColumnError) as e:
            dataset_drift(ref, ref, **kw)
        assert e.value.field == field and e.value.exit_code == 2
        assert e.value.hint in ("did you mean 'income'?", "did you mean 'age'?")


def test_a_datetime_column_with_text_on_the_other_side_is_skipped_unless_named() -> None:
    """A JSON-lines batch keeps timestamps as text: its datetime column (skipped by default) ended the whole check."""
    import pyarrow as pa

    from edgeorch.kernels.drift import dataset_drift

    stamps = pa.array(np.arange(6, dtype="int64") * 10**9).cast(pa.timestamp("ns"))
    ref = {"t": stamps, "x": np.arange(6.0)}
    cur = {"t": [f"2024-01-0{i + 1}" for i in range(6)], "x": np.arange(6.0)}
    t = dataset_drift(ref, cur).columns[0]
    assert t.verdict == "skipped" and "datetime in the reference, string in the current data" in t.details["reason"]
    with pytest.raises(DataError, match="datetimes on one side"):
        dataset_drift(ref, cur, methods={"t": "ks"})
