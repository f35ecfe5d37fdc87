"""Profiles: agreement with numpy/scipy, the merge property, edge cases, JSON round trip."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import scipy.stats as st
from hypothesis import given, settings
from hypothesis import strategies as hs

from edgeorch.errors import DataError
from edgeorch.kernels import Profile, merge_profiles, profile


def col(data: object, **kw: object) -> dict:
    return profile({"x": data}, **kw).summary()[0]  # type: ignore[arg-type]


def test_statistics_agree_with_numpy_and_scipy(rng: np.random.Generator) -> None:
    x = rng.standard_t(3, size=20_000) * 5 + 2  # heavy tails
    s = col(x)
    assert s["count"] == s["finite"] == 20_000
    assert s["min"] == x.min() and s["max"] == x.max()
    assert s["mean"] == pytest.approx(x.mean(), rel=1e-12)
    assert s["variance"] == pytest.approx(np.var(x, ddof=1), rel=1e-12)
    assert s["skewness"] == pytest.approx(st.skew(x), rel=1e-9)
    assert s["kurtosis"] == pytest.approx(st.kurtosis(x), rel=1e-9)
    assert s["zeros"] == 0 and s["negatives"] == int((x < 0).sum())


def test_quantiles_are_numpys_while_the_sketch_holds_every_value(rng: np.random.Generator) -> None:
    x = rng.normal(size=5000)
    s = col(x)
    assert s["quantiles_exact"]
    assert s["quantiles"]["p25"] == np.quantile(x, 0.25)
    assert s["quantiles"]["p99"] == np.quantile(x, 0.99)
    assert s["distinct"] == 5000 and s["distinct_exact"]


def test_large_column_quantiles_within_rank_error(rng: np.random.Generator) -> None:
    x = rng.exponential(size=300_000)
    s = col(x)
    xs = np.sort(x)
    for name, q in (("p5", 0.05), ("p50", 0.5), ("p95", 0.95)):
        rank = np.searchsorted(xs, s["quantiles"][name]) / len(xs)
        assert abs(rank - q) <= 0.01
    assert s["distinct"] == pytest.approx(300_000, rel=0.02)


def test_categorical_top_values_and_distinct() -> None:
    s = col(["b", "a", "b", None, "c", "b", "a"])
    assert s["type"] == "string" and s["nulls"] == 1 and s["count"] == 7
    assert s["top"] == [["b", 3], ["a", 2], ["c", 1]]
    assert s["distinct"] == 3


# -- edge cases (docs/kernels.md "Edge cases") -----------------------------------

def test_empty_column() -> None:
    s = col(np.array([], dtype=float))
    assert s["count"] == 0 and s["finite"] == 0
    assert s["mean"] is None and s["variance"] is None and s["min"] is None
    assert s["quantiles"]["p50"] is None


def test_one_value() -> None:
    s = col(np.array([3.5]))
    assert s["mean"] == 3.5 and s["min"] == s["max"] == 3.5
    assert s["variance"] is None  # ddof=1 needs two values
    assert s["skewness"] is None and s["kurtosis"] is None
    assert s["quantiles"]["p1"] == s["quantiles"]["p99"] == 3.5


def test_all_nan() -> None:
    s = col(np.full(10, np.nan))
    assert s["nan"] == 10 and s["finite"] == 0 and s["mean"] is None and s["min"] is None


def test_constant_column_has_no_shape_statistics() -> None:
    s = col(np.full(100, 7.0))
    assert s["variance"] == 0.0 and s["skewness"] is None and s["kurtosis"] is None
    assert s["distinct"] == 1


def test_infinities_are_counted_and_left_out_of_statistics() -> None:
    s = col(np.array([1.0, np.inf, -np.inf, np.inf, 3.0, np.nan]))
    assert (s["pos_inf"], s["neg_inf"], s["nan"], s["finite"]) == (2, 1, 1, 2)
    assert s["mean"] == 2.0 and s["max"] == 3.0


def test_integers_near_overflow_keep_exact_extremes() -> None:
    big = np.iinfo(np.int64).max
    x = np.array([big, big - 1, big - 2], dtype=np.int64)
    s = col(x)
    assert s["type"] == "integer"
    assert s["max"] == big and s["min"] == big - 2  # exact ints, not rounded floats
    assert s["mean"] == pytest.approx(float(big), rel=1e-15)
    # Never an overflow; and not the 0.0 float64 rounds it to (the true variance is 1): unknown, said as None.
    assert s["variance"] is None and s["std"] is None


def test_python_integers_beyond_int64() -> None:
    s = col([2**70, 1, None])
    assert s["type"] == "integer" and s["max"] == 2**70 and s["nulls"] == 1


def test_mixed_types_are_profiled_as_text() -> None:
    s = col([1, "a", 2.5, None])
    assert s["type"] == "mixed" and s["distinct"] == 3 and s["nulls"] == 1


def test_booleans_are_numeric() -> None:
    s = col(np.array([True, False, True]))
    assert s["type"] == "boolean" and s["mean"] == pytest.approx(2 / 3)


def test_zeros_include_negative_zero() -> None:
    s = col(np.array([0.0, -0.0, 1.0]))
    assert s["zeros"] == 2 and s["negatives"] == 0 and s["distinct"] == 2


def test_unknown_column_is_a_data_error() -> None:
    with pytest.raises(DataError, match="no such column") as e:
        profile({"age": [1, 2]}, columns=["aeg"])
    assert e.value.hint == "did you mean 'age'?"


# -- merge property ---------------------------------------------------------------

EXACT_KEYS = ("count", "nulls", "nan", "pos_inf", "neg_inf", "zeros", "negatives", "finite", "min", "max")


def assert_merge_equals_concat(a: np.ndarray, b: np.ndarray) -> None:
    merged = merge_profiles(profile({"x": a}), profile({"x": b}))
    whole = profile({"x": np.concatenate([a, b])})
    m, w = merged.summary()[0], whole.summary()[0]
    for k in EXACT_KEYS:
        assert m[k] == w[k], k
    fin = np.concatenate([a, b])
    fin = fin[np.isfinite(fin)]
    big = float(np.max(np.abs(fin))) if fin.size else 0.0
    # "Equal to floating-point rounding" is relative to the data's scale:
    # identical values can give a variance of 0 or of (one ulp)^2.
    tol = {"mean": 1e-12 * big, "variance": 1e-12 * big * big}
    for k in ("mean", "variance"):
        if w[k] is None:
            assert m[k] is None, k
        else:
            assert abs(m[k] - w[k]) <= tol[k] + 1e-300, (k, m[k], w[k])
    # Shape statistics are only defined well when the spread is not rounding
    # noise and fourth powers do not underflow (documented: None then).
    if w["variance"] is not None and w["variance"] > 1e-8 * big * big and big > 1e-70:
        for k in ("skewness", "kurtosis"):
            assert m[k] is not None and w[k] is not None
            assert abs(m[k] - w[k]) <= 1e-6 * max(abs(w[k]), 1.0), (k, m[k], w[k])
    mh, wh = merged["x"].histogram, whole["x"].histogram
    # exact counts: the merged histogram equals the whole one coarsened to its grid
    if len(wh.counts):
        expected, _ = np.histogram(np.concatenate([a, b])[np.isfinite(np.concatenate([a, b]))], bins=mh.edges)
        assert mh.counts.tolist() == expected.tolist()


def test_merged_profile_equals_profile_of_concatenation(rng: np.random.Generator) -> None:
    assert_merge_equals_concat(rng.normal(0, 1, 10_000), rng.gamma(2.0, 3.0, 7_000))


floats = hs.one_of(hs.floats(min_value=-1e6, max_value=1e6), hs.sampled_from([np.nan, np.inf, -np.inf, 0.0, -0.0]))


@settings(max_examples=40, deadline=None)
@given(hs.lists(floats, max_size=50), hs.lists(floats, max_size=50))
def test_merge_property_on_generated_data(a: list[float], b: list[float]) -> None:
    assert_merge_equals_concat(np.array(a, dtype=float), np.array(b, dtype=float))


def test_merge_of_categorical_profiles_adds_counts() -> None:
    m = merge_profiles(profile({"c": ["a", "b"]}), profile({"c": ["b", None]}))
    s = m.summary()[0]
    assert s["top"] == [["b", 2], ["a", 1]] and s["nulls"] == 1 and m.rows == 4


def test_merge_of_numeric_and_categorical_is_a_data_error() -> None:
    with pytest.raises(DataError, match="cannot merge"):
        merge_profiles(profile({"c": [1.0]}), profile({"c": ["a"]}))


def test_chunked_file_profile_equals_in_memory_profile(tmp_path, rng: np.random.Generator) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    x = rng.normal(size=30_000)
    pq.write_table(pa.table({"x": x}), tmp_path / "d.parquet", row_group_size=7_000)
    from edgeorch.kernels import io

    old = io.BATCH_ROWS
    io.BATCH_ROWS = 7_000  # several batches
    try:
        f = profile(str(tmp_path / "d.parquet")).summary()[0]
    finally:
        io.BATCH_ROWS = old
    m = profile({"x": x}).summary()[0]
    for k in EXACT_KEYS:
        assert f[k] == m[k]
    assert f["mean"] == pytest.approx(m["mean"], rel=1e-12)
    assert f["variance"] == pytest.approx(m["variance"], rel=1e-12)


# -- serialisation ----------------------------------------------------------------

def test_profile_round_trips_through_json(rng: np.random.Generator) -> None:
    p = profile({"x": np.concatenate([rng.normal(size=40_000), [np.inf, np.nan]]),
                 "i": np.arange(40_002), "c": ["u", "v"] * 20_001})
    text = p.to_json()
    json.loads(text)  # strict JSON
    back = Profile.from_json(text)
    assert back.summary() == p.summary()
    assert merge_profiles(back, p).summary()[0]["count"] == 2 * 40_002


def test_profile_json_keeps_every_bit_of_the_moments() -> None:
    p = profile({"x": np.array([0.1, 0.2, 0.30000000000000004])})
    back = Profile.from_json(p.to_json())
    assert back["x"].mean == p["x"].mean and back["x"].m2 == p["x"].m2


@pytest.mark.parametrize("text", ["{", "[]", '{"format": "other"}', '{"format": "edgeorch.profile/1"}'])
def test_malformed_profile_json_is_a_data_error(text: str) -> None:
    with pytest.raises(DataError):
        Profile.from_json(text, file="p.json")


def test_save_and_load(tmp_path) -> None:
    p = profile({"x": [1.0, 2.0]})
    p.save(tmp_path / "p.json")
    assert Profile.load(tmp_path / "p.json").summary() == p.summary()
    with pytest.raises(DataError, match="profile not found"):
        Profile.load(tmp_path / "missing.json")


def test_subnormal_values_get_a_finite_grid() -> None:
    s = col(np.array([0.0, 1.1125369292536007e-308, 5e-324]))
    assert s["max"] == 1.1125369292536007e-308 and s["finite"] == 3
    assert sum(profile({"x": np.array([0.0, 1e-308])})["x"].histogram.counts) == 2


def test_dataframes_are_accepted_without_pandas_in_the_kernels() -> None:
    pd = pytest.importorskip("pandas")
    df = pd.DataFrame({"a": [1.0, None, 3.0], "b": ["x", None, "y"]})
    s = {c["column"]: c for c in profile(df).summary()}
    assert s["a"]["mean"] == 2.0 and s["a"]["nan"] == 1  # pandas stores a missing float as NaN
    assert s["b"]["nulls"] == 1 and s["b"]["distinct"] == 2


def test_pandas_missing_values_of_every_dtype_are_nulls() -> None:
    """pandas 3 stores a missing string as NaN and converts Int64 to float: both are nulls, types kept."""
    pd = pytest.importorskip("pandas")
    df = pd.DataFrame({
        "s": pd.array(["x", None, "y", "x"], dtype="str"),
        "i": pd.array([1, None, 3, 2**60], dtype="Int64"),
        "c": pd.Categorical(["u", None, "v", None]),
        "b": pd.array([True, None, False, True], dtype="boolean"),
        "o": pd.Series(["x", None, "y", "z"], dtype=object),
    })
    s = {c["column"]: c for c in profile(df).summary()}
    assert (s["s"]["type"], s["s"]["nulls"], s["s"]["distinct"]) == ("string", 1, 2)
    assert "nan" not in dict(s["s"]["top"])
    assert (s["i"]["type"], s["i"]["nulls"], s["i"]["nan"], s["i"]["max"]) == ("integer", 1, 0, 2**60)
    assert (s["c"]["type"], s["c"]["nulls"], s["c"]["distinct"]) == ("string", 2, 2)
    assert (s["b"]["type"], s["b"]["nulls"]) == ("boolean", 1)
    assert (s["o"]["type"], s["o"]["nulls"]) == ("string", 1)


def test_distinct_count_of_int64_beyond_2_53_is_never_called_exact_when_floats_merge_them() -> None:
    """2**60 + arange(1000) rounds onto 5 float64 values: the count must not say 5 and exact (item 32)."""
    for values in (2**60 + np.arange(1000), (2**63 + np.arange(1000, dtype=np.uint64)).astype(np.uint64)):
        s = profile({"x": values}).summary()[0]
        assert not s["distinct_exact"] and abs(s["distinct"] - 1000) <= 20  # HLL error (2% at 2.5 sigma)
        assert s["min"] == int(values.min()) and s["max"] == int(values.max())
    merged = merge_profiles(profile({"x": 2**60 + np.arange(500)}), profile({"x": 2**60 + np.arange(500, 1000)}))
    s = merged.summary()[0]
    assert not s["distinct_exact"] and abs(s["distinct"] - 1000) <= 20
    assert Profile.from_json(merged.to_json()).summary() == merged.summary()
    small = profile({"x": np.arange(1000)}).summary()[0]
    assert small["distinct_exact"] and small["distinct"] == 1000


def test_an_estimated_distinct_count_never_exceeds_the_values_counted() -> None:
    """50,000 distinct floats were profiled as 50,104 distinct (the HyperLogLog's +0.2 %)."""
    x = np.random.default_rng(5).normal(size=50_000)
    col = profile({"x": x}).columns["x"]
    assert not col.distinct_exact and 49_000 < col.distinct <= 50_000
